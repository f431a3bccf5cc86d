"""What the worker's HTTP/1.1 loop hands the kernel for each response (app/server/http1.py): one send per write
of the app, a whole body with its head, and a chunked body's end with the write that says it is the last."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from app.server import http1
from app.streaming import LastWrite

pytestmark = pytest.mark.skipif(not http1.AVAILABLE, reason="gunicorn_h1c is not built here")


class Client:
    """A socket that takes everything at once and remembers each send."""

    def __init__(self):
        self.sends = []

    def send(self, data):
        self.sends.append(bytes(data))
        return len(data)


def respond(writes, content_length=None):
    ran_out = []

    def app(environ, start_response):
        headers = [("Content-Type", "text/event-stream")]
        if content_length is not None:
            headers.append(("Content-Length", str(content_length)))
        start_response("200 OK", headers)
        yield from writes
        ran_out.append(True)  # what the app does after its last write still runs

    server = http1.Http1Server(SimpleNamespace(cfg=Config(), wsgi=app, log=None), 1 << 20)
    client = Client()
    environ = {"REQUEST_METHOD": "POST", "SERVER_PROTOCOL": "HTTP/1.1"}
    assert server._respond(client, environ, True, {"headers": []}) is True
    assert ran_out == [True]
    return client.sends


def test_a_last_write_carries_the_chunked_end():
    head, first, last = respond([b"", b"one", LastWrite(b"two")])
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nTransfer-Encoding: chunked\r\n" in head
    assert head.endswith(b"\r\n\r\n")
    assert first == b"3\r\none\r\n"
    assert last == b"3\r\ntwo\r\n0\r\n\r\n"


def test_a_stream_written_at_once_is_one_send():
    (only,) = respond([LastWrite(b"everything")])
    assert only.endswith(b"\r\n\r\na\r\neverything\r\n0\r\n\r\n")


def test_without_a_last_write_the_end_goes_alone_and_nothing_follows_a_last_write():
    assert respond([b"a", b"b"])[-2:] == [b"1\r\nb\r\n", b"0\r\n\r\n"]
    sends = respond([LastWrite(b"a"), b"stray"])
    assert len(sends) == 1 and b"stray" not in sends[0] and sends[0].endswith(b"1\r\na\r\n0\r\n\r\n")


def test_a_body_with_a_length_is_not_chunked_whatever_its_writes_are():
    (only,) = respond([LastWrite(b"abc")], content_length=3)
    assert only.endswith(b"\r\n\r\nabc") and b"chunked" not in only
