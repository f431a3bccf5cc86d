"""app.flask_app.ApiResponse: the headers and body a response sends as WSGI, with werkzeug's copies and wrappers
left out where they would change nothing. What goes on the wire must be werkzeug's, for every kind of response."""

import pytest
from flask.wrappers import Response
from werkzeug.test import create_environ, run_wsgi_app

from app.flask_app import ApiResponse

CASES = [
    ("GET", 200, b'{"ok": true}', {}),
    ("HEAD", 200, b'{"ok": true}', {}),
    ("GET", 204, b"", {}),
    ("GET", 304, b"", {}),
    ("GET", 412, b'{"error": 1}', {}),
    ("GET", 101, b"", {}),
    ("GET", 404, b'{"error": {"message": "no"}}', {}),
    ("GET", 302, b"", {"Location": "/elsewhere"}),
    ("GET", 200, [b"a", b"b"], {}),  # a sequence of several parts
    ("GET", 200, "text, not bytes", {}),
]


def _sent(response_class, method, status, body, headers):
    response = response_class(body, status=status, headers=headers, mimetype="application/json")
    closed = []
    if status == 404:  # one response with a close callback, which must run
        response.call_on_close(lambda: closed.append(True))
    app_iter, sent_status, sent_headers = run_wsgi_app(response, create_environ("/x", method=method))
    sent = b"".join(app_iter)
    if hasattr(app_iter, "close"):
        app_iter.close()
    return sent, sent_status, sorted(sent_headers.items()), closed


@pytest.mark.parametrize(("method", "status", "body", "headers"), CASES)
def test_a_response_sends_what_werkzeug_would(method, status, body, headers):
    assert _sent(ApiResponse, method, status, body, headers) == _sent(Response, method, status, body, headers)


def test_a_whole_body_is_handed_to_the_server_as_it_is_and_anything_else_through_werkzeug():
    environ = create_environ("/x")
    plain = ApiResponse(b"{}", mimetype="application/json")
    assert plain.get_app_iter(environ) is plain.response
    closing = ApiResponse(b"{}", mimetype="application/json")
    closing.call_on_close(lambda: None)
    assert closing.get_app_iter(environ) is not closing.response  # werkzeug's wrapper runs the callback
    assert ApiResponse(b"{}").get_app_iter(create_environ("/x", method="HEAD")) is not None
    assert list(ApiResponse(b"{}").get_app_iter(create_environ("/x", method="HEAD"))) == []
