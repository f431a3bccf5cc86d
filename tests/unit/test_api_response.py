"""app.flask_app.ApiResponse: the headers and body a response sends as WSGI, with werkzeug's copies and wrappers
left out where they would change nothing. What goes on the wire must be werkzeug's, for every kind of response."""

import pytest
from flask.wrappers import Response
from werkzeug.test import create_environ, run_wsgi_app

from app.flask_app import ApiResponse, MockOpenAIFlask

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


@pytest.mark.parametrize("body", [b'{"id": "chatcmpl-1"}', b"", "é".encode() * 1000])
def test_a_json_body_made_directly_is_what_werkzeugs_constructor_makes(body):
    made, constructed = ApiResponse.of_json(body), ApiResponse(body, mimetype="application/json")
    assert type(made) is ApiResponse
    assert list(made.headers) == list(constructed.headers)  # Content-Type first: the journal looks there
    assert made.headers._list is not constructed.headers._list
    mine, werkzeugs = vars(made), vars(constructed)
    assert mine.keys() == werkzeugs.keys()  # a werkzeug that sets more in its constructor fails here
    assert {k: v for k, v in mine.items() if k != "headers"} == {k: v for k, v in werkzeugs.items() if k != "headers"}
    assert _sent_as_is(made, "GET") == _sent_as_is(constructed, "GET")
    assert _sent_as_is(made, "HEAD") == _sent_as_is(constructed, "HEAD")


@pytest.mark.parametrize("mimetype", ["text/event-stream", "application/json"])
def test_a_stream_made_directly_is_what_werkzeugs_constructor_makes(mimetype):
    events = iter([b"data: 1\n\n"])
    made, constructed = (
        ApiResponse.of_stream(events, mimetype),
        ApiResponse(events, mimetype=mimetype, direct_passthrough=True),
    )
    assert list(made.headers) == list(constructed.headers)  # text/event-stream; charset=utf-8, as werkzeug writes it
    mine, werkzeugs = vars(made), vars(constructed)
    assert mine.keys() == werkzeugs.keys()
    assert {k: v for k, v in mine.items() if k != "headers"} == {k: v for k, v in werkzeugs.items() if k != "headers"}


def _sent_as_is(response, method):
    app_iter, status, headers = run_wsgi_app(response, create_environ("/x", method=method))
    return b"".join(app_iter), status, list(headers.items())


def test_a_views_flask_response_becomes_the_apps_class_with_its_status_and_headers():
    app = MockOpenAIFlask(__name__)

    @app.get("/plain")
    def plain():
        response = Response(b"{}", 201, {"X-Own": "1"}, mimetype="application/json")
        response.call_on_close(lambda: None)
        return response

    @app.get("/tuple")
    def with_status():
        return Response(b"{}", mimetype="application/json"), 202, {"X-Added": "2"}

    with app.test_request_context("/plain"):
        response = app.make_response(plain())
        assert type(response) is ApiResponse
        assert (response.status, response.headers["X-Own"], response.get_data(), len(response._on_close)) == (
            "201 CREATED",
            "1",
            b"{}",
            1,
        )
    answered = app.test_client().get("/tuple")
    assert (answered.status_code, answered.headers["X-Added"], answered.data) == (202, "2", b"{}")
