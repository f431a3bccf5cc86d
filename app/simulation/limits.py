"""Requests and tokens per minute, per API key and model, metered as the real API meters them.

Each limit is a bucket that holds a minute's allowance and refills continuously (GCRA: one stored number per
bucket, the time at which it will be full again). A request takes one request and its tokens (prompt tokens
plus the completion it may produce: ``max_tokens`` reserved at admission) from both buckets, or from neither.
The buckets live in shared state, so the limits hold across every worker of a server.

``x-ratelimit-remaining-*`` is what is left in the bucket, ``x-ratelimit-reset-*`` the time until it is full,
and a refused request gets the real 429 with a ``retry-after`` of exactly the time until it would fit.
"""

from __future__ import annotations

import functools
import hashlib
import math
import string
import time
from dataclasses import dataclass

from app.errors import OpenAIError
from app.headers import LIMIT_REQUESTS, LIMIT_TOKENS
from app.simulation.faults import RATE_LIMITS_URL, go_duration, rate_limit_error

WINDOW_S = 60.0
WITHIN_S = WINDOW_S + 1e-6  # a bucket's reach: the window, and what rounds times near 1.7e9 s
_ALPHABET = string.ascii_letters + string.digits


@functools.lru_cache(maxsize=4096)
def organization_of(api_key: str) -> str:
    """A stable ``org-`` id per key, for the messages that quote one."""
    digest = int.from_bytes(hashlib.sha256(api_key.encode()).digest(), "big")
    chars = []
    for _ in range(24):
        digest, index = divmod(digest, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "org-" + "".join(chars)


_STATIC = (
    ("x-ratelimit-limit-requests", str(LIMIT_REQUESTS)),
    ("x-ratelimit-limit-tokens", str(LIMIT_TOKENS)),
    ("x-ratelimit-remaining-requests", str(LIMIT_REQUESTS - 1)),
)


@functools.lru_cache(maxsize=1024)
def static_headers(tokens: int) -> tuple[tuple[str, str], ...]:
    """A high tier's headers, for a server with no limits set: they do not count down."""
    reset_ms = tokens * 60000 // LIMIT_TOKENS  # under a second for any request a model can take
    return (
        *_STATIC,
        ("x-ratelimit-remaining-tokens", str(max(0, LIMIT_TOKENS - tokens))),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-reset-tokens", f"{max(1, reset_ms)}ms" if reset_ms < 1000 else go_duration(reset_ms / 1000)),
    )


@functools.lru_cache(maxsize=4096)
def _key_id(api_key: str) -> str:
    """Buckets are named by a digest of the key: shared state never holds a key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class BucketState:
    limit: int
    remaining: int
    reset_s: float


def _level(limit: int, full_at: float | None, now: float) -> float:
    """Units in a bucket that is full at ``full_at``."""
    if full_at is None or full_at <= now:
        return float(limit)
    return max(0.0, limit - (full_at - now) * limit / WINDOW_S)


class RateLimits:
    """The limits of one request: which apply, and the figures they quote."""

    def __init__(self, shared, api_key: str, model: str, settings: dict):
        self.shared, self.api_key, self.model = shared, api_key, model
        self.requests_per_minute = settings["requests_per_minute"]
        self.tokens_per_minute = settings["tokens_per_minute"]

    @property
    def enabled(self) -> bool:
        return bool(self.requests_per_minute or self.tokens_per_minute)

    def admit(self, tokens: int) -> list[tuple[str, str]]:
        """Take one request and ``tokens`` from the buckets; the ``x-ratelimit-*`` headers of the answer.
        Raises the real 429 when either bucket cannot give them (then neither is charged)."""
        limits = [("requests", self.requests_per_minute, 1), ("tokens", self.tokens_per_minute, tokens)]
        limits = [(kind, limit, cost) for kind, limit, cost in limits if limit]
        for _kind, limit, cost in limits:
            if cost > limit:  # can never fit: the real API's "Request too large"
                organization = organization_of(self.api_key)
                raise OpenAIError(
                    429,
                    f"Request too large for {self.model} in organization {organization} on tokens per min (TPM): "
                    f"Limit {limit}, Requested {cost}. The input or output tokens must be reduced in order to run "
                    f"successfully. Visit {RATE_LIMITS_URL} to learn more.",
                    "tokens",
                    code="rate_limit_exceeded",
                )
        keys = [f"{_key_id(self.api_key)}:{self.model}:{kind}" for kind, _, _ in limits]
        # A bucket is the time it is full again; a request moves it on by its cost's share of the window, and
        # fits while that stays within the window (GCRA).
        costs_s = [cost * WINDOW_S / limit for _, limit, cost in limits]
        now = time.time()
        taken, full_at = self.shared.take_from_buckets(keys, costs_s, [WITHIN_S] * len(limits), now)
        states, refused = {}, None
        for (kind, limit, cost), stored, cost_s in zip(limits, full_at, costs_s, strict=True):
            level = _level(limit, stored, now)
            if taken:
                left = level - cost
                states[kind] = BucketState(limit, max(0, math.floor(left + 1e-9)), (limit - left) * WINDOW_S / limit)
                continue
            states[kind] = BucketState(limit, math.floor(level + 1e-9), (limit - level) * WINDOW_S / limit)
            if refused is None and max(stored or now, now) + cost_s > now + WITHIN_S:  # the backend's test
                refused = (kind, limit, cost, level, max(0.0, cost - level) * WINDOW_S / limit)
        if not taken and refused is None:  # (never: the test above is the backend's, to the bit)
            kind, limit, cost = limits[0]
            refused = (kind, limit, cost, _level(limit, full_at[0], now), 0.0)
        headers = self._headers(states, tokens)
        if refused:
            kind, limit, cost, level, wait = refused
            raise rate_limit_error(
                self.model,
                organization_of(self.api_key),
                kind,
                limit,
                limit - math.floor(level + 1e-9),
                cost,
                wait,
                dict(headers),
            )
        return headers

    def injected_429(self, model: str, retry_after_s: float) -> OpenAIError:
        """A 429 ``rate_limit_exceeded`` asked for by a fault, quoting the configured (or the tier's) limit."""
        limit = self.requests_per_minute or LIMIT_REQUESTS
        state = BucketState(limit, 0, retry_after_s)
        headers = dict(self._headers({"requests": state}, 1))
        return rate_limit_error(
            model, organization_of(self.api_key), "requests", limit, limit, 1, retry_after_s, headers
        )

    @staticmethod
    def _headers(states: dict, tokens: int) -> list[tuple[str, str]]:
        headers = dict(static_headers(tokens))  # a copy: the cached tuple is shared
        for kind, state in states.items():
            headers[f"x-ratelimit-limit-{kind}"] = str(state.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(state.remaining)
            headers[f"x-ratelimit-reset-{kind}"] = go_duration(state.reset_s)
        return list(headers.items())
