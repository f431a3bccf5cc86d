"""The headers the real API puts on its responses: request id, processing time, version, rate limits."""

from __future__ import annotations

import os
from time import monotonic

from flask import Flask, Response, g

OPENAI_VERSION = "2020-10-01"
# Plausible limits for a high usage tier; a later simulation layer makes them count for real.
LIMIT_REQUESTS = 10000
LIMIT_TOKENS = 30000000


def init_app(app: Flask) -> None:
    app.before_request(_start_clock)
    app.after_request(_add_headers)


def _start_clock() -> None:
    g.started = monotonic()


def _add_headers(response: Response) -> Response:
    # add(), not item assignment: these are new headers, and assignment scans for old ones first.
    add = response.headers.add
    add("x-request-id", "req_" + os.urandom(16).hex())
    add("openai-version", OPENAI_VERSION)
    started = g.get("started")
    if started is not None:  # for a stream this is the time to headers, as with the real API
        add("openai-processing-ms", str(int((monotonic() - started) * 1000)))
    return response


def add_rate_limit_headers(response: Response, tokens: int) -> None:
    """``x-ratelimit-*`` as after one request that reserved ``tokens`` (prompt plus completion)."""
    add = response.headers.add
    add("x-ratelimit-limit-requests", str(LIMIT_REQUESTS))
    add("x-ratelimit-limit-tokens", str(LIMIT_TOKENS))
    add("x-ratelimit-remaining-requests", str(LIMIT_REQUESTS - 1))
    add("x-ratelimit-remaining-tokens", str(max(0, LIMIT_TOKENS - tokens)))
    add("x-ratelimit-reset-requests", "6ms")
    add("x-ratelimit-reset-tokens", f"{max(1, tokens * 60000 // LIMIT_TOKENS)}ms")
