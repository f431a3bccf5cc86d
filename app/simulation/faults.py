"""Faults: the real API's failures, what the ``X-Mock-*`` headers ask for, and the error mix.

Every injected error is the body, status and headers a client gets from the real API for that failure, so
the official SDK reacts as it would there: it retries 429, 5xx and timeouts (``max_retries``, 2 by default),
reading ``retry-after-ms`` then ``retry-after``, and raises ``RateLimitError``, ``InternalServerError`` or
``APITimeoutError`` once it gives up.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from itertools import repeat

from app.config import ERROR_KINDS, RESPONSE_MODES, STREAM_FAULT_KINDS
from app.errors import SERVER_ERROR, SERVER_ERROR_MESSAGE, OpenAIError

RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more information on this "
    "error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
)
OVERLOADED_MESSAGE = (
    "That model is currently overloaded with other requests. You can retry your request, or contact us through "
    "our help center at help.openai.com if the error persists. (Please include the request ID {request_id} in "
    "your message.)"
)
INVALID_PROMPT_MESSAGE = (
    "Invalid prompt: your prompt was flagged as potentially violating our usage policy. Please try again with a "
    "different prompt: https://platform.openai.com/docs/guides/reasoning#advice-on-prompting"
)
# 502 and 504 come from the real API's edge proxy, with their fields in its order and a numeric code.
EDGE_FIELD_ORDER = ("code", "message", "param", "type")


def go_duration(seconds: float) -> str:
    """A duration as the real API writes ``x-ratelimit-reset-*`` and "try again in": 120ms, 1.5s, 6m0s."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}s"
    if minutes:
        return f"{int(minutes)}m{text}s"
    return f"{text}s"


def retry_after_headers(seconds: float) -> dict:
    """``retry-after`` in whole seconds (rounded up, as HTTP has it) and the exact ``retry-after-ms``, which
    the SDK reads first."""
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, round(seconds * 1000)))}


def rate_limit_error(
    model: str, organization: str, kind: str, limit: int, used: int, requested: int, retry_after_s: float, headers: dict
) -> OpenAIError:
    """The real 429 for a request (``kind`` "requests") or token (``kind`` "tokens") limit."""
    unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
    message = (
        f"Rate limit reached for {model} in organization {organization} on {unit}: Limit {limit}, Used {used}, "
        f"Requested {requested}. Please try again in {go_duration(retry_after_s)}. Visit {RATE_LIMITS_URL} to "
        "learn more."
    )
    return OpenAIError(
        429, message, kind, code="rate_limit_exceeded", headers=headers | retry_after_headers(retry_after_s)
    )


def error_for(kind: str, model: str, request_id: str, faults: dict, limits) -> OpenAIError:
    """The error of one of :data:`ERROR_KINDS`, as the real API sends it, with its ``kind`` set. ``limits``
    gives the rate-limit figures a 429 quotes (:class:`app.simulation.limits.RateLimits`)."""
    error = _error_for(kind, model, request_id, faults, limits)
    error.kind = kind
    return error


def _error_for(kind: str, model: str, request_id: str, faults: dict, limits) -> OpenAIError:
    if kind == "429":
        return limits.injected_429(model, faults["retry_after_ms"] / 1000)
    if kind == "insufficient_quota":
        return OpenAIError(429, QUOTA_MESSAGE, "insufficient_quota", code="insufficient_quota")
    if kind == "500":
        return OpenAIError(500, SERVER_ERROR_MESSAGE, SERVER_ERROR)
    if kind == "502":
        return OpenAIError(502, "Bad gateway.", "cf_bad_gateway", code=502, field_order=EDGE_FIELD_ORDER)
    if kind == "503":
        return OpenAIError(503, OVERLOADED_MESSAGE.format(request_id=request_id), SERVER_ERROR)
    if kind == "timeout":
        return OpenAIError(504, "Gateway timeout.", "cf_gateway_timeout", code=504, field_order=EDGE_FIELD_ORDER)
    if kind == "content_filter":  # the prompt is refused by the provider's safety system
        return OpenAIError(400, INVALID_PROMPT_MESSAGE, param="prompt", code="invalid_prompt")
    raise ValueError(kind)


def draw(faults: dict, rng=random) -> str | None:
    """A fault kind, ``error_rate_percent`` of the time, chosen by the weights of ``error_mix``."""
    rate = faults["error_rate_percent"]
    if not rate or rng.random() * 100 >= rate:
        return None
    mix = faults["error_mix"]
    return rng.choices(list(mix), weights=list(mix.values()))[0]


# --- X-Mock-* request headers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamFault:
    """Strikes once ``after`` content tokens have been sent."""

    kind: str  # one of STREAM_FAULT_KINDS
    after: int
    stall_s: float = 0.0


@dataclass(slots=True)
class Controls:
    """What a request's ``X-Mock-*`` headers ask for; None fields were not sent."""

    error: str | None = None
    stream_faults: list[StreamFault] = field(default_factory=list)
    stall_ms: float | None = None
    trickle_bytes_per_s: int | None = None
    ttft_ms: float | None = None
    inter_token_latency_ms: float | None = None
    mode: str | None = None
    scenario: str | None = None


def _header_error(name: str, value: str, expected: str) -> OpenAIError:
    return OpenAIError(
        400,
        f"Invalid value for header '{name}': expected {expected}, got {value!r}.",
        param=name,
        code="invalid_header_value",
    )


def _count(name, value) -> int:
    if not value.strip().isdigit():
        raise _header_error(name, value, "a whole number >= 0")
    return int(value)


def _positive(name, value) -> int:
    number = _count(name, value)
    if number < 1:
        raise _header_error(name, value, "a whole number >= 1")
    return number


def _ms(name, value) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not math.isfinite(number) or number < 0:
        raise _header_error(name, value, "a number of milliseconds >= 0")
    return number


def _choice(choices):
    def parse(name, value):
        if value not in choices:
            raise _header_error(name, value, "one of " + ", ".join(choices))
        return value

    return parse


def _name(name, value) -> str:
    if not value.strip():
        raise _header_error(name, value, "a scenario name")
    return value.strip()


# Header (as the WSGI environ spells it) -> (its name, parser, Controls field, or the stream fault kind).
HEADERS = {
    "HTTP_X_MOCK_ERROR": ("X-Mock-Error", _choice(ERROR_KINDS), "error"),
    "HTTP_X_MOCK_STREAM_ERROR_AFTER": ("X-Mock-Stream-Error-After", _count, "stream_error"),
    "HTTP_X_MOCK_DISCONNECT_AFTER": ("X-Mock-Disconnect-After", _count, "disconnect"),
    "HTTP_X_MOCK_MALFORMED_CHUNK_AFTER": ("X-Mock-Malformed-Chunk-After", _count, "malformed"),
    "HTTP_X_MOCK_STALL_AFTER": ("X-Mock-Stall-After", _count, "stall"),
    "HTTP_X_MOCK_FILTERED_AFTER": ("X-Mock-Filtered-After", _count, "filtered"),
    "HTTP_X_MOCK_STALL_MS": ("X-Mock-Stall-Ms", _ms, "stall_ms"),
    "HTTP_X_MOCK_TRICKLE_BYTES_PER_S": ("X-Mock-Trickle-Bytes-Per-S", _positive, "trickle_bytes_per_s"),
    "HTTP_X_MOCK_TTFT_MS": ("X-Mock-TTFT-Ms", _ms, "ttft_ms"),
    "HTTP_X_MOCK_ITL_MS": ("X-Mock-ITL-Ms", _ms, "inter_token_latency_ms"),
    "HTTP_X_MOCK_MODE": ("X-Mock-Mode", _choice(RESPONSE_MODES), "mode"),
    "HTTP_X_MOCK_SCENARIO": ("X-Mock-Scenario", _name, "scenario"),
}
_PREFIX = "HTTP_X_MOCK_"
TEST_ID = "HTTP_X_MOCK_TEST_ID"  # X-Mock-Test-Id tags a request in the journal; it changes nothing else


# Whether an environ with these keys, in this order, holds an X-Mock header: a client sends the same headers
# on every request, so a repeat costs a tuple and a lookup (0.3 µs) where a scan of the keys cost 1.6.
_SHAPES_WITH_CONTROLS: dict[tuple, bool] = {}
_SHAPES = 512


def read_controls(environ) -> Controls | None:
    """The request's ``X-Mock-*`` headers, or None when it sent none (the common case, known by the environ's
    keys). An unknown ``X-Mock-`` header or a malformed value is a 400 that names it."""
    shape = tuple(environ)
    asked = _SHAPES_WITH_CONTROLS.get(shape)
    if asked is None:
        if len(_SHAPES_WITH_CONTROLS) >= _SHAPES:
            _SHAPES_WITH_CONTROLS.clear()
        asked = _SHAPES_WITH_CONTROLS[shape] = any(map(str.startswith, shape, repeat(_PREFIX)))
    if not asked:
        return None
    present = [key for key in environ if key.startswith(_PREFIX) and key != TEST_ID]
    if not present:  # only the journal's tag
        return None
    controls = Controls()
    for key in present:
        if key not in HEADERS:
            name = "X-Mock-" + "-".join(part.title() for part in key[len(_PREFIX) :].split("_"))
            known = ", ".join([*(spec[0] for spec in HEADERS.values()), "X-Mock-Test-Id"])
            raise OpenAIError(
                400, f"Unknown header '{name}'. Known X-Mock headers: {known}.", param=name, code="unknown_header"
            )
        name, parse, target = HEADERS[key]
        value = parse(name, environ[key])
        if target in STREAM_FAULT_KINDS:
            controls.stream_faults.append(StreamFault(target, value))
        else:
            setattr(controls, target, value)
    return controls


def stream_faults_of(controls: Controls | None, drawn: str | None, after: int | None, faults: dict) -> list:
    """The mid-stream faults of a request, in the order they strike: those its headers ask for, and one drawn
    from the mix or queued (after ``after`` tokens, else ``[faults] stream_fault_after_tokens``). A stall
    lasts ``X-Mock-Stall-Ms`` or ``[faults] stall_ms``."""
    stall_s = (controls.stall_ms if controls and controls.stall_ms is not None else faults["stall_ms"]) / 1000
    asked = [(f.kind, f.after) for f in controls.stream_faults] if controls else []
    if drawn in STREAM_FAULT_KINDS:
        asked.append((drawn, faults["stream_fault_after_tokens"] if after is None else after))
    found = [StreamFault(kind, k, stall_s if kind == "stall" else 0.0) for kind, k in asked]
    return sorted(found, key=lambda f: f.after)
