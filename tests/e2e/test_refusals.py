"""Requests refused before the app sees them, over raw sockets to real gunicorn workers: each gets the API's
JSON error shape with gunicorn's status and wording (never its HTML page), the limits are the ones the README
gives, a body past ``max_body_bytes`` is refused before it is read, and memory returns after large bodies.
Both connection loops: the worker's lean one (app/server/http1.py) and gunicorn's own (tests/e2e/loops.py)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.test_http1 import read_response

pytestmark = pytest.mark.e2e

CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})


@pytest.fixture(scope="module", params=["lean loop", "gunicorn's loop"])
def server(request, tmp_path_factory):
    from tests.e2e.loops import OWN_LOOP_MARK, start

    own_loop = request.param == "gunicorn's loop"
    live = start(tmp_path_factory.mktemp("refusals"), own_loop)
    yield live
    live.stop()
    assert (OWN_LOOP_MARK in live.output()) is own_loop  # the loop named served the requests


def exchange(server, data: bytes):
    """Send ``data`` on a new connection; (status line, headers, body) of the one response, which must end
    the connection if it is an error."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(data)
        status, headers, body, _ = read_response(sock)
        return status, headers, body


def assert_api_error(status_line, headers, body, status: int, wording: str):
    assert status_line.startswith(f"HTTP/1.1 {status} "), status_line
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert list(error) == ["message", "type", "param", "code"]
    assert wording in error["message"] and error["type"] == "invalid_request_error"


def get(path: str, headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode()


def test_a_request_line_past_8190_bytes_gets_414_and_one_within_it_is_served(server):
    assert_api_error(*exchange(server, get("/v1/models?q=" + "a" * 8200)), 414, "8190")
    assert exchange(server, get("/v1/models?q=" + "a" * 8000))[0] == "HTTP/1.1 200 OK"


def test_a_header_past_16_kb_gets_431_and_one_of_12_kb_is_served(server):
    big = get("/v1/models", "X-Big: " + "a" * 17000 + "\r\n")
    assert_api_error(*exchange(server, big), 431, "Error parsing headers")
    assert exchange(server, get("/v1/models", "X-Big: " + "a" * 12000 + "\r\n"))[0] == "HTTP/1.1 200 OK"


def test_more_than_200_headers_get_431_and_150_are_served(server):
    many = "".join(f"X-H{i}: v\r\n" for i in range(300))
    assert_api_error(*exchange(server, get("/v1/models", many)), 431, "Error parsing headers")
    some = "".join(f"X-H{i}: v\r\n" for i in range(150))
    assert exchange(server, get("/v1/models", some))[0] == "HTTP/1.1 200 OK"


def test_a_garbage_request_line_gets_400(server):
    assert_api_error(*exchange(server, b"HELLO THERE\r\n\r\n"), 400, "Invalid")


def test_a_content_length_that_is_not_a_number_gets_400(server):
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
    assert_api_error(*exchange(server, head), 400, "Invalid HTTP Header")


def test_a_bad_chunk_size_gets_400_in_the_api_shape(server):
    data = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    )
    status, headers, body = exchange(server, data)
    assert status.startswith("HTTP/1.1 400 ") and headers["content-type"] == "application/json"
    assert "Invalid chunk size" in json.loads(body)["error"]["message"]


def test_a_body_past_the_limit_is_refused_before_it_is_sent_whole(server):
    """Content-Length 100 MB (the limit is 32 MB), 300 KB of it sent: the 413 comes at once, whole (no reset
    for the bytes left unread), and the connection ends."""
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000000\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(head + b"{" + b" " * 300_000)
        status, headers, body, rest = read_response(sock)
        assert time.monotonic() - started < 2
        assert status.startswith("HTTP/1.1 413 ") and headers["connection"] == "close"
        assert "The maximum request body size is 33554432 bytes" in json.loads(body)["error"]["message"]
        sock.settimeout(5)
        while sock.recv(65536):  # then the end of the connection, not a reset: the server lingers first
            pass
    assert exchange(server, get("/v1/models"))[0] == "HTTP/1.1 200 OK"


def worker_rss_mb(server) -> float:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    status = Path(f"/proc/{children[0]}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def test_memory_returns_after_large_bodies(server):
    """Three 20 MB prompts: the worker ends within 50 MB of where it started (it was 150 MB above). Each is
    read, parsed and counted whole (4 million tokens), then refused as the real API refuses a prompt past the
    model's context window."""
    url = f"{server.base_url}/v1/chat/completions"
    requests.post(url, data=CHAT, headers={"Content-Type": "application/json"}, timeout=30)
    before = worker_rss_mb(server)
    big = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "word " * 4_000_000}]})
    for _ in range(3):
        reply = requests.post(url, data=big, headers={"Content-Type": "application/json"}, timeout=60)
        assert reply.status_code == 400 and reply.json()["error"]["code"] == "context_length_exceeded"
    deadline = time.monotonic() + 5
    while worker_rss_mb(server) > before + 50 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker_rss_mb(server) < before + 50, (before, worker_rss_mb(server))
