"""The Flask class this server runs: Flask, minus two costs per request that an API of synchronous views
does not need (each measured under load with bench/).

- ``ensure_sync`` asks ``inspect`` whether every hook and view is a coroutine, on every request; no view
  here is ``async``.
- A response's WSGI headers are, in werkzeug, a validated copy of its headers made for every response, so
  that a relative ``Location`` can be fixed and some statuses can lose their length. A response with
  neither concern (every API answer) sends its own headers as they are.
"""

from __future__ import annotations

from flask import Flask
from flask.wrappers import Response

# Statuses whose headers werkzeug may change: no body (1xx, 204, 304), or a precondition that failed (412).
_ADJUSTED_STATUSES = frozenset((204, 304, 412))
_URL_HEADERS = frozenset(("location", "content-location"))


class ApiResponse(Response):
    def get_wsgi_headers(self, environ):
        status = self.status_code
        if status < 200 or status in _ADJUSTED_STATUSES:
            return super().get_wsgi_headers(environ)
        has_length = False
        for name, _ in self.headers:
            lower = name.lower()
            if lower in _URL_HEADERS:
                return super().get_wsgi_headers(environ)
            if lower == "content-length":
                has_length = True
        if not has_length and self.is_sequence:  # werkzeug would measure the body and set the length
            return super().get_wsgi_headers(environ)
        return self.headers


class MockOpenAIFlask(Flask):
    response_class = ApiResponse

    def ensure_sync(self, func):
        return func
