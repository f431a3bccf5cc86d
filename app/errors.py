"""The one OpenAI error helper, and the Flask handlers that route every failure through it.

Every error a client sees is ``{"error": {"message", "type", "param", "code"}}`` with the real API's status
and wording. Nothing reaches the client as an HTML page or a stack trace.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException

from app.pretty_json import pretty

log = logging.getLogger(__name__)

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"

INVALID_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
    "If you have trouble figuring out how to fix this, please contact us through our help center at "
    "help.openai.com.)"
)
SERVER_ERROR_MESSAGE = (
    "The server had an error while processing your request. Sorry about that! You can retry your request, "
    "or contact us through our help center at help.openai.com if the error persists."
)


FIELD_ORDER = ("message", "type", "param", "code")


class OpenAIError(Exception):
    """An error to answer in the real API's shape. Raise it anywhere in a request.

    It is also the core's neutral error: a view of another wire format (:mod:`app.formats`) renders the same
    status, message and ``kind`` in its own shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | int | None = None,
        headers: dict | None = None,
        field_order: tuple = FIELD_ORDER,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.field_order = field_order
        self.kind: str | None = None  # the fault (``[faults] error_mix`` kind) this error stands for, if any

    def body(self) -> dict:
        return {"error": {key: getattr(self, key) for key in self.field_order}}

    def to_response(self) -> Response:
        return error_response(
            self.status, self.message, self.type, self.param, self.code, self.headers, self.field_order
        )


def error_response(
    status: int,
    message: str,
    type: str = INVALID_REQUEST,
    param: str | None = None,
    code: str | int | None = None,
    headers: dict | None = None,
    field_order: tuple = FIELD_ORDER,
) -> Response:
    """A response with the error body; the real API indents error bodies by four spaces. Errors that come
    from the real API's edge proxy (502, 504) order their fields differently, hence ``field_order``."""
    return Response(error_body(message, type, param, code, field_order), status, headers, mimetype="application/json")


def error_body(
    message: str,
    type: str = INVALID_REQUEST,
    param: str | None = None,
    code: str | int | None = None,
    field_order: tuple = FIELD_ORDER,
) -> str:
    """The error's JSON text, as the real API indents it."""
    fields = {"message": message, "type": type, "param": param, "code": code}
    return pretty({"error": {key: fields[key] for key in field_order}}, indent=4, ensure_ascii=True) + "\n"


def write_refusal(sock, status: int, reason: str, message: str) -> None:
    """What gunicorn sends for a request it refuses before the app sees it (``gunicorn.util.write_error``: a
    request line or a header past its limit, a head it cannot parse, a bad ``Content-Length`` or chunk), with
    gunicorn's status and wording, in the API's error shape instead of gunicorn's HTML page."""
    from gunicorn.util import http_date, write_nonblock

    if message:
        body = error_body(message)
    else:  # gunicorn's own 500: an error in the app that reached the worker
        body = error_body(SERVER_ERROR_MESSAGE, SERVER_ERROR)
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nDate: {http_date()}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    write_nonblock(sock, head.encode("latin-1") + data)


# Path prefixes another wire format owns (``/openai/``, ``/v1beta/``) -> its error renderer: a request that
# matched none of its routes (a 404, a 405) still gets that format's error shape.
PATH_OWNERS: dict[str, object] = {}


def init_app(app: Flask) -> None:
    app.register_error_handler(Exception, _error_response)


def _error_response(exc: Exception) -> Response:
    error = neutral_error(exc)
    if PATH_OWNERS:
        path = request.path
        for prefix, render in PATH_OWNERS.items():
            if path.startswith(prefix):
                return render(error)
    return error.to_response()


def neutral_error(exc: BaseException) -> OpenAIError:
    """Any failure of a request as the error the client gets: the one mapping, which every wire format then
    renders in its own shape (HTTP errors of routing and body limits, an unreadable body, Redis down, a bug)."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if isinstance(exc, ParseException):  # gunicorn could not decode the body the app was reading
        return OpenAIError(400, f"We could not read the body of your request: {exc}", headers={"Connection": "close"})
    if _is_redis_unreachable(exc):  # [shared] redis_url is down or too slow: a 503 the SDKs retry
        log.warning("shared state unreachable on %s %s: %s", request.method, request.path, exc)
        return OpenAIError(503, f"The server could not reach its shared state (Redis): {exc}. Retry.", SERVER_ERROR)
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return OpenAIError(500, SERVER_ERROR_MESSAGE, SERVER_ERROR)


def _is_redis_unreachable(exc: BaseException) -> bool:
    if not type(exc).__module__.startswith("redis"):  # redis is only imported when configured
        return False
    from redis.exceptions import ConnectionError, TimeoutError

    return isinstance(exc, ConnectionError | TimeoutError)


def _http_error(exc: HTTPException) -> OpenAIError:
    error = _http_error_of(exc)
    error.kind = f"http_{exc.code}"  # another wire format words these its own way
    return error


def _http_error_of(exc: HTTPException) -> OpenAIError:
    route = f"({request.method} {request.path})"
    if exc.code == 404:
        return OpenAIError(404, f"Invalid URL {route}")
    if exc.code == 405:
        return OpenAIError(405, f"Invalid method for URL {route}")
    if exc.code == 413:
        limit = request.max_content_length
        return OpenAIError(
            413, f"Request body too large for {request.path}. The maximum request body size is {limit} bytes."
        )
    if exc.code == 400:
        return OpenAIError(400, INVALID_JSON_MESSAGE)
    return OpenAIError(exc.code or 500, exc.description or exc.name)
