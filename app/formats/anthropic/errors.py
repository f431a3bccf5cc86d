"""Anthropic's error shape and headers: ``{"type": "error", "error": {"type", "message"}, "request_id"}``
with its statuses and types, ``request-id``, and the ``anthropic-ratelimit-*`` headers.

The core's errors arrive neutral (status, message, the fault ``kind``); an injected fault is reworded as
Anthropic words it: an overloaded model is its 529 ``overloaded_error``, a gateway timeout its 504
``timeout_error``, a rate limit its 429 ``rate_limit_error`` with ``retry-after``.
"""

from __future__ import annotations

import json
import re
import time

from flask import Response

from app.errors import OpenAIError
from app.formats.wire import WireFormat, key_in, processing_ms, request_id, with_headers

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
RATE_LIMITS_URL = "https://docs.claude.com/en/api/rate-limits"
RATE_LIMIT_MESSAGE = (
    "This request would exceed your organization's rate limit of {limit} {unit} per minute. For details, refer "
    "to: " + RATE_LIMITS_URL + ". You can see the response headers for current usage. Please reduce the prompt "
    "length or the maximum tokens requested, or try again later. You may also contact sales at "
    "https://claude.com/contact-sales to discuss your options for a rate limit increase."
)
# Injected faults, as Anthropic answers them: (status, type, message).
FAULTS = {
    "insufficient_quota": (
        400,
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or "
        "purchase credits.",
    ),
    "content_filter": (400, "invalid_request_error", "Output blocked by content filtering policy"),
    "500": (500, "api_error", "Internal server error"),
    "502": (502, "api_error", "Bad gateway"),
    "503": (529, "overloaded_error", "Overloaded"),
    "timeout": (504, "timeout_error", "Request timed out"),
}
ROUTE_ERRORS = {
    "http_404": (404, "not_found_error", "Not found"),
    "http_405": (405, "invalid_request_error", "Method not allowed"),
    "http_413": (413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
}
_KEPT_HEADERS = ("retry-after", "connection")


def error_object(error: OpenAIError) -> dict:
    status, kind, message = _reworded(error)
    return {"type": kind, "message": message}


def _reworded(error: OpenAIError) -> tuple[int, str, str]:
    if error.kind in FAULTS:
        return FAULTS[error.kind]
    if error.kind in ROUTE_ERRORS:
        return ROUTE_ERRORS[error.kind]
    status = error.status
    if status == 429:
        headers = error.headers
        unit = "input tokens" if error.type == "tokens" else "requests"
        limit = headers.get(f"x-ratelimit-limit-{'tokens' if error.type == 'tokens' else 'requests'}", "?")
        return 429, "rate_limit_error", RATE_LIMIT_MESSAGE.format(limit=limit, unit=unit)
    return status, TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"), error.message


class AnthropicFormat(WireFormat):
    name = "anthropic"

    def error_response(self, error: OpenAIError) -> Response:
        status, kind, message = _reworded(error)
        body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id()}
        response = Response(json.dumps(body, separators=(",", ":")), status, mimetype="application/json")
        return with_headers(response, error, _KEPT_HEADERS)

    def presented_key(self) -> str:
        return key_in("x-api-key")

    def auth_error(self, problem: str, key: str) -> OpenAIError:
        if problem == "missing":
            return OpenAIError(401, "x-api-key header is required", "authentication_error")
        return OpenAIError(401, "invalid x-api-key", "authentication_error")

    def add_headers(self, response: Response) -> None:
        headers = response.headers
        limits = {
            name[len("x-ratelimit-") :]: value for name, value in headers.items() if name.startswith("x-ratelimit-")
        }
        for name in [n for n in headers.keys() if n.startswith("x-ratelimit-") or n == "retry-after-ms"]:
            del headers[name]
        if limits:
            for name, value in anthropic_limits(limits):
                headers.add(name, value)
        headers.add("request-id", request_id())
        headers.add("anthropic-organization-id", "0b8e5bd4-8a6f-4d5c-9c3e-6f1d2a7b9e41")
        headers.add("x-envoy-upstream-service-time", str(processing_ms()))


_DURATION = re.compile(r"([\d.]+)(ms|h|m|s)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def _seconds(duration: str) -> float:
    return sum(float(n) * _SECONDS[unit] for n, unit in _DURATION.findall(duration))


def anthropic_limits(limits: dict) -> list[tuple[str, str]]:
    """The neutral limits (``limit-requests``, ``remaining-tokens``, ``reset-tokens`` as a duration) as
    Anthropic's headers: requests, tokens, and input and output tokens (one token bucket here), each reset
    an RFC 3339 time."""
    now = time.time()
    out = []
    for kind, names in (("requests", ("requests",)), ("tokens", ("tokens", "input-tokens", "output-tokens"))):
        if f"limit-{kind}" not in limits:
            continue
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + _seconds(limits.get(f"reset-{kind}", "0s"))))
        for name in names:
            out += [
                (f"anthropic-ratelimit-{name}-limit", limits[f"limit-{kind}"]),
                (f"anthropic-ratelimit-{name}-remaining", limits.get(f"remaining-{kind}", limits[f"limit-{kind}"])),
                (f"anthropic-ratelimit-{name}-reset", reset),
            ]
    return out
