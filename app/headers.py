"""The headers the real API puts on its responses: request id, processing time, version, rate limits.

The ``x-ratelimit-*`` values of a server with no limits configured are a high usage tier's and do not count
down; with ``[rate_limits]`` set they come from :mod:`app.simulation.limits` and count for real.
"""

from __future__ import annotations

from random import getrandbits
from time import monotonic

from flask import Flask, Response

from app.context import this_g
from app.flask_app import add_own_headers

OPENAI_VERSION = "2020-10-01"
# A high usage tier's limits, shown when no [rate_limits] are set.
LIMIT_REQUESTS = 10000
LIMIT_TOKENS = 30000000


def init_app(app: Flask) -> None:
    app.before_request(_start_clock)
    app.after_request(_add_headers)


def _start_clock() -> None:
    this_g().started = monotonic()


def request_id() -> str:
    """This request's ``x-request-id``, made on first use (some error messages quote it)."""
    g = this_g()
    rid = g.get("request_id")
    if rid is None:
        # 32 random hex digits, as the real ids; random, not os.urandom: a syscall a request for an id that
        # guards nothing
        rid = g.request_id = f"req_{getrandbits(128):032x}"
    return rid


def _add_headers(response: Response) -> Response:
    if getattr(response, "own_headers", False):  # an upstream's exchange (record, replay), another wire format
        return response
    # New headers (item assignment would scan for old ones first), and ours: added as they are.
    own = [("x-request-id", request_id()), ("openai-version", OPENAI_VERSION)]
    started = this_g().get("started")
    if started is not None:  # for a stream this is the time to headers, as with the real API
        own.append(("openai-processing-ms", str(int((monotonic() - started) * 1000))))
    add_own_headers(response, own)
    return response
