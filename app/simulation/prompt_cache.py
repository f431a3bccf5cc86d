"""Prompt caching, as OpenAI reports it: a repeated prefix of a prompt is ``cached_tokens``.

As the real API documents it: a prompt of at least ``min_tokens`` (1,024) tokens is cached, in prefixes that
grow by ``step_tokens`` (128); a later request whose prompt begins with the same tokens, for the same model,
is served that prefix from the cache, and reports it in ``usage``. A cached prefix is forgotten after
``retention_s`` unused (five minutes by default; ``prompt_cache_retention: "24h"`` keeps it a day, and
``prompt_cache_options.ttl`` at least that long). ``prompt_cache_key`` routes requests to their own cache: the
same prefix under another key is not a hit. Cached tokens skip prefill (:mod:`.latency` counts only the rest).

A prompt is read in the order the model reads it (:func:`app.tokens.chat_tokens`: the tools, then each
message, then the priming of the reply), so that the prefixes are counted as ``usage.prompt_tokens`` is.
Each prefix is named by a digest that chains the one before it, and the prefixes live in the shared state,
so every worker and instance sees one cache.
"""

from __future__ import annotations

import hashlib
import time
from array import array

from app.memo import Memo, content_key
from app.tokens import chat_tokens

RETENTION_24H_S = 86400.0
TTL_OPTION_S = {"30m": 1800.0}
PREFIX_DIGESTS = Memo(1 << 22)  # a prompt's (app.memo.content_key, scope, sizes) -> its prefixes' digests


class PromptCache:
    def __init__(self, shared):
        self.shared = shared

    def explicit(self, settings: dict, breakpoints: list[tuple[list, float]], model: str) -> tuple[int, dict]:
        """Explicit breakpoints (Anthropic's ``cache_control``): the prompt is read from the cache up to the
        longest breakpoint cached before, and written at every breakpoint past it. ``(tokens read, {retention_s:
        tokens written})``; a write is counted once, under the breakpoint that ends it."""
        if not settings["enabled"] or not breakpoints:
            return 0, {}
        scope = hashlib.blake2b(f"{model}\0explicit".encode(), digest_size=16)
        now, read, hit = time.time(), 0, {}
        by_retention: dict[float, list[int]] = {}
        digests = []
        for index, (tokens, retention) in enumerate(breakpoints):
            state = scope.copy()
            state.update(tokens_bytes(tokens))
            digests.append(state.digest())
            by_retention.setdefault(retention, []).append(index)
        for retention, indexes in by_retention.items():
            found = self.shared.cache_prefixes([digests[i] for i in indexes], now + retention)
            hit |= {i: was for i, was in zip(indexes, found, strict=True)}
        read = max((len(breakpoints[i][0]) for i, was in hit.items() if was), default=0)
        written: dict[float, int] = {}
        end = read
        for tokens, retention in breakpoints:
            if len(tokens) > end:
                written[retention] = written.get(retention, 0) + len(tokens) - end
                end = len(tokens)
        return read, written

    def cached_tokens(self, settings: dict, body: dict, model: str, prompt_tokens: int) -> int:
        """How many of this chat prompt's ``prompt_tokens`` the cache serves; the prompt's prefixes are
        cached (again) for the requests after it."""
        if not settings["enabled"] or prompt_tokens < settings["min_tokens"]:
            return 0
        options = body.get("prompt_cache_options") or {}
        if options.get("mode") == "explicit":  # no implicit breakpoint, and breakpoints are not simulated
            return 0
        messages, tools = body.get("messages") or (), body.get("tools")
        scope = f"{model}\0{body.get('prompt_cache_key') or ''}"
        min_tokens, step = settings["min_tokens"], settings["step_tokens"]
        content = content_key((messages, tools))
        key = (content, scope, prompt_tokens, min_tokens, step)
        digests = PREFIX_DIGESTS.get(key)
        if digests is None:  # (a repeated prompt's are kept: tokenizing and hashing 2,000 tokens took 0.5 ms)
            tokens = chat_tokens(messages, tools, model, ids=True)
            if tokens is None:  # (pieces of the approximation, or an image's tokens among the ids)
                tokens = chat_tokens(messages, tools, model)
            digests = prefix_digests(tokens[:prompt_tokens], scope, min_tokens, step)
            PREFIX_DIGESTS.put(key, digests, len(content))
        if not digests:
            return 0
        found = self.shared.cache_prefixes(digests, time.time() + retention_s(settings, body))
        hits = found.index(False) if False in found else len(found)  # the longest prefix cached: a hit
        return settings["min_tokens"] + (hits - 1) * settings["step_tokens"] if hits else 0


def retention_s(settings: dict, body: dict) -> float:
    retention = settings["retention_s"]
    if body.get("prompt_cache_retention") == "24h":
        retention = max(retention, RETENTION_24H_S)
    ttl = (body.get("prompt_cache_options") or {}).get("ttl")
    return max(retention, TTL_OPTION_S.get(ttl, 0.0))


def prefix_digests(tokens: list, scope: str, min_tokens: int, step: int) -> list[bytes]:
    """The digests of the prefixes of ``min_tokens``, ``min_tokens + step``, ... tokens, shortest first; each
    chains the one before it, so equal digests mean equal prefixes."""
    ends = range(min_tokens, len(tokens) + 1, step)
    if not ends:
        return []
    state = hashlib.blake2b(scope.encode(), digest_size=16)
    ids = _ids(tokens[: ends[-1]]) if type(tokens[0]) is int else None  # (with the vocabularies: one array)
    digests, start = [], 0
    for end in ends:
        if ids is not None:
            state.update(b"i")
            state.update(ids[4 * start : 4 * end])
        else:
            state.update(tokens_bytes(tokens[start:end]))
        digests.append(state.copy().digest())
        start = end
    return digests


def tokens_bytes(tokens: list) -> bytes:
    """Bytes that are equal only for equal lists of tokens: ids (the vocabularies' ints) four bytes each, the
    approximation's pieces joined by NUL, anything else (an image's mark among ids, a piece that holds a NUL)
    as its ``repr``; the first byte says which. A load test's random prompts are each hashed once: for 1,800
    tokens, ``repr`` took about 100 µs, these about 20 (ids) and 28 (pieces)."""
    if tokens and type(tokens[0]) is int:
        ids = _ids(tokens)
        if ids is not None:
            return b"i" + ids
    else:
        try:
            joined = "\0".join(tokens)
        except TypeError:  # (not all pieces)
            joined = None
        if joined is not None and joined.count("\0") == len(tokens) - 1:
            return b"s" + joined.encode("utf-8", "surrogatepass")
    return b"r" + repr(tokens).encode()


def _ids(tokens: list) -> memoryview | None:
    """Token ids, four bytes each; None unless every token is an id."""
    try:
        return memoryview(array("I", tokens).tobytes())
    except (TypeError, OverflowError):
        return None
