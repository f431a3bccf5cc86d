"""What every wire format attaches to its blueprint: its error shape for every failure in its routes, the key
taken from its own auth header (checked by the one check, :func:`app.auth.key_problem`), and its own
response headers in place of OpenAI's."""

from __future__ import annotations

import json
from collections.abc import Callable
from time import monotonic

from flask import Blueprint, Response, g, request

from app import auth
from app.apikeys import PRESENTED, presented_key
from app.context import this_request
from app.errors import PATH_OWNERS, OpenAIError, neutral_error
from app.headers import request_id
from app.journal import annotate, request_body


class WireFormat:
    """A provider's wire format. Subclasses say how its errors look and where its key comes from."""

    name = ""

    def error_response(self, error: OpenAIError) -> Response:
        """The neutral error (status, message, ``kind``, headers) in this format's shape."""
        raise NotImplementedError

    def presented_key(self) -> str:
        raise NotImplementedError

    def auth_error(self, problem: str, key: str) -> OpenAIError:
        """The 401 (or 403) for a ``"missing"`` or ``"invalid"`` key, in this format's wording."""
        raise NotImplementedError

    def add_headers(self, response: Response) -> None:
        """This provider's response headers (request id, rate limits); the status is already set."""

    def attach(self, bp: Blueprint, owned_prefix: str | None = None) -> Blueprint:
        """Give ``bp`` this format's auth, errors and headers; a URL under ``owned_prefix`` that matches no
        route gets this format's 404 too."""
        if owned_prefix:
            PATH_OWNERS[owned_prefix] = self.error_response
        auth.OWN_AUTH.add(bp.name)
        bp.before_request(self._authenticate)
        bp.register_error_handler(Exception, lambda exc: self.error_response(neutral_error(exc)))
        bp.after_request(self._finish)
        return bp

    def _authenticate(self) -> None:
        annotate(api=self.name)  # the journal's and the metrics' label of the request
        key = self.presented_key()
        if key:
            request.environ[PRESENTED] = key  # the rate limits are per key, whichever header carried it
        problem = auth.key_problem(key)
        if problem is not None:
            raise self.auth_error(problem, key)

    def _finish(self, response: Response) -> Response:
        if getattr(response, "own_headers", False):  # recorded from an upstream: its headers as they were
            return response
        self.add_headers(response)
        response.own_headers = True  # not OpenAI's headers (app.headers) on top
        return response

    def claim(self, app, prefix: str, asks: Callable[[], bool], view: Callable[[], Response]) -> None:
        """Serve requests under ``prefix`` that another format also serves (``GET /v1/models``), told apart by
        ``asks`` (this format's own header), before any other hook of the app: with this format's auth,
        errors and headers. Any other request passes on, after one test of its path."""
        claims = app.extensions.get(CLAIMS)
        if claims is None:
            claims = app.extensions[CLAIMS] = Claims()
            app.before_request_funcs.setdefault(None, []).insert(0, claims)
        claims.add(prefix, self, asks, view)

    def serve(self, view: Callable[[], Response]) -> Response:
        try:
            self._authenticate()
            response = view()
        except Exception as exc:  # noqa: BLE001 (every failure in this format's shape)
            response = self.error_response(neutral_error(exc))
        return self._finish(response)


CLAIMS = "mock_openai.claims"


class Claims:
    """The app's one hook for the paths that formats share, called before every request."""

    def __init__(self):
        self.prefixes: tuple[str, ...] = ()
        self.claims: list[tuple] = []

    def add(self, prefix: str, wire: WireFormat, asks, view) -> None:
        self.prefixes = (*self.prefixes, prefix)
        self.claims.append((prefix, wire, asks, view))

    def __call__(self):
        path = this_request().path
        if not path.startswith(self.prefixes):
            return None
        for prefix, wire, asks, view in self.claims:
            if path.startswith(prefix) and asks():
                return wire.serve(view)
        return None


def key_in(header: str) -> str:
    """The key in a format's own header, else a bearer token (which each provider's gateway also takes)."""
    return request.headers.get(header) or presented_key(request.headers.get("Authorization", ""))


def with_headers(response: Response, error: OpenAIError, kept: tuple[str, ...]) -> Response:
    """``response`` with the error's retry hint and the limits a 429 quotes: ``kept`` and ``x-ratelimit-*``."""
    for name, value in error.headers.items():
        if name.lower() in kept or name.lower().startswith("x-ratelimit-"):
            response.headers[name] = value
    return response


def processing_ms() -> int:
    started = g.get("started")
    return int((monotonic() - started) * 1000) if started is not None else 0


def json_body(invalid: OpenAIError):
    """The request's JSON, or ``invalid`` (this format's 400 for a body that is not JSON)."""
    raw = request_body()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid from None


__all__ = ["WireFormat", "json_body", "processing_ms", "request_id"]
