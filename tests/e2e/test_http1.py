"""The worker's own HTTP/1.1 loop (app/server/http1.py) over raw sockets: keep-alive, pipelining, HTTP/1.0, the
requests it hands to gunicorn's loop, and fairness between connections."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "Hi"}]
BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3})


def chat_request(version="1.1", extra="", body=BODY) -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n{body}"
    ).encode()


def read_response(sock, pending=b""):
    """(status line, headers as a lowercase dict, body, bytes after the response) for one whole response."""
    while b"\r\n\r\n" not in pending:
        data = sock.recv(65536)
        assert data, f"closed before a whole head: {pending!r}"
        pending += data
    head, _, rest = pending.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        length = int(headers["content-length"])
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body, rest = body + rest[:size], rest[size + 2 :]
            if size == 0:
                return status, headers, body, rest
    else:
        length = None
    if length is None:  # ends with the connection
        while data := sock.recv(65536):
            rest += data
        return status, headers, rest, b""
    while len(rest) < length:
        data = sock.recv(65536)
        assert data, "closed mid-body"
        rest += data
    return status, headers, rest[:length], rest[length:]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from pytest_mock_openai import LiveServer

    live = LiveServer(["-w", "1", "--inter-token-latency", "0"], None, tmp_path_factory.mktemp("http1"))
    yield live
    live.stop()


def connect(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(10)
    return sock


def test_kept_alive_and_pipelined_requests_are_answered_in_order(server):
    with connect(server) as sock:
        sock.sendall(chat_request() + chat_request() + b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        pending = b""
        ids = []
        for _ in range(2):
            status, headers, body, pending = read_response(sock, pending)
            assert status == "HTTP/1.1 200 OK" and headers["connection"] == "keep-alive"
            assert headers["content-type"] == "application/json" and headers["date"].endswith(" GMT")
            ids.append(json.loads(body)["id"])
        status, headers, body, pending = read_response(sock, pending)
        assert json.loads(body)["object"] == "list"
        assert len(set(ids)) == 2 and pending == b""
        sock.sendall(chat_request())  # and the connection still serves
        assert read_response(sock)[0] == "HTTP/1.1 200 OK"


def test_http_1_0_closes_unless_asked_to_keep_alive(server):
    with connect(server) as sock:
        sock.sendall(chat_request("1.0"))
        status, headers, body, _ = read_response(sock)
        assert status == "HTTP/1.0 200 OK" and headers["connection"] == "close"
        assert json.loads(body)["object"] == "chat.completion"
        assert sock.recv(1) == b""
    with connect(server) as sock:
        sock.sendall(chat_request("1.0", "Connection: keep-alive\r\n"))
        assert read_response(sock)[1]["connection"] == "keep-alive"
        sock.sendall(chat_request("1.0", "Connection: keep-alive\r\n"))
        assert read_response(sock)[0] == "HTTP/1.0 200 OK"


def test_connection_close_is_honoured(server):
    with connect(server) as sock:
        sock.sendall(chat_request(extra="Connection: close\r\n"))
        assert read_response(sock)[1]["connection"] == "close"
        assert sock.recv(1) == b""


def test_an_http_1_0_stream_ends_with_the_connection(server):
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    with connect(server) as sock:
        sock.sendall(chat_request("1.0", body=body))
        status, headers, events, _ = read_response(sock)
        assert "transfer-encoding" not in headers and headers["connection"] == "close"
        assert events.endswith(b"data: [DONE]\n\n")


def test_a_stream_is_chunked_and_the_connection_serves_on(server):
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    with connect(server) as sock:
        sock.sendall(chat_request(body=body))
        status, headers, events, pending = read_response(sock)
        assert headers["transfer-encoding"] == "chunked" and headers["content-type"].startswith("text/event-stream")
        assert events.endswith(b"data: [DONE]\n\n") and pending == b""
        sock.sendall(chat_request())
        assert read_response(sock)[0] == "HTTP/1.1 200 OK"


def test_a_chunked_request_body_is_served_by_gunicorns_loop(server):
    chunked = f"{len(BODY):x}\r\n{BODY}\r\n0\r\n\r\n"
    raw = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n{chunked}"
    ).encode()
    with connect(server) as sock:
        sock.sendall(chat_request() + raw + chat_request())  # lean, handed over, and on in gunicorn's loop
        pending = b""
        for _ in range(3):
            status, _, body, pending = read_response(sock, pending)
            assert status == "HTTP/1.1 200 OK" and json.loads(body)["usage"]["completion_tokens"] == 3


def test_expect_100_continue_gets_its_interim_response(server):
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    with connect(server) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(BODY.encode())
        assert read_response(sock)[0] == "HTTP/1.1 200 OK"


def test_a_malformed_request_gets_400_and_the_worker_serves_on(server):
    with connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nBad Header: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    with connect(server) as sock:
        sock.sendall(chat_request())
        assert read_response(sock)[0] == "HTTP/1.1 200 OK"


def test_a_percent_encoded_path_and_a_query_reach_the_app_decoded(server):
    with connect(server) as sock:
        sock.sendall(b"GET /v1/models/gpt%2D4o%2Dmini?x=%20y HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body, _ = read_response(sock)
        assert status == "HTTP/1.1 200 OK" and json.loads(body)["id"] == "gpt-4o-mini"


def test_head_gets_headers_and_no_body(server):
    with connect(server) as sock:
        sock.sendall(b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 10
        while data.count(b"HTTP/1.1 200") < 2 and time.monotonic() < deadline:
            data += sock.recv(65536)
        first, _, second = data.partition(b"\r\n\r\n")
        assert b"Content-Length:" in first and second.startswith(b"HTTP/1.1 200 OK")


def test_a_connection_with_many_requests_queued_does_not_starve_another(server):
    """One client pipelines 300 requests; a second client's one request is answered after few of them. Counted
    by the server's own journal (when each request started), not by what the first client happened to read."""
    with connect(server) as busy, connect(server) as other:
        busy.sendall(chat_request(extra="X-Mock-Test-Id: busy\r\n") * 300)
        time.sleep(0.05)  # the busy connection is being served
        sent_at = time.time()
        other.sendall(chat_request(extra="X-Mock-Test-Id: other\r\n"))
        assert read_response(other)[0] == "HTTP/1.1 200 OK"
        pending = b""
        for _ in range(300):
            status, _, _, pending = read_response(busy, pending)
            assert status == "HTTP/1.1 200 OK"

    def started(test_id):
        page = requests.get(f"{server.base_url}/_mock/requests", params={"test_id": test_id, "limit": 1000}).json()
        return [entry["time"] for entry in page["data"]]

    (other_started,) = started("other")
    busy_started = started("busy")
    assert len(busy_started) == 300 and min(busy_started) < sent_at  # it was under way when the other came
    served_meanwhile = sum(sent_at <= t < other_started for t in busy_started)
    # Measured: 1. With sleep(0) as the yield (no poll of the sockets first): 17-34; with no yield: ~250.
    assert served_meanwhile < 10, served_meanwhile


def test_a_streams_head_goes_out_before_its_first_token(start_server):
    """The real API answers with its status and headers at once and sends the first token later."""
    slow = start_server("-w", "1", "--time-to-first-token", "600", "--inter-token-latency", "0")
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    with connect(slow) as sock:
        start = time.monotonic()
        sock.sendall(chat_request(body=body))
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        head_at = time.monotonic() - start
        _, _, events, _ = read_response(sock, head)
        assert head_at < 0.4 and time.monotonic() - start >= 0.6
        assert events.endswith(b"data: [DONE]\n\n")


@pytest.fixture(scope="module")
def paced_server(tmp_path_factory):
    from pytest_mock_openai import LiveServer

    live = LiveServer(["-w", "1", "--inter-token-latency", "20"], None, tmp_path_factory.mktemp("paced"))
    yield live
    live.stop()


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_a_paced_stream_goes_out_on_its_deadlines_and_is_journaled_write_by_write(paced_server, version):
    """The worker's timer sends a paced stream's tokens (app/server/pacing.py): each at its time, never before,
    as chunks (HTTP/1.1) or as the body itself (HTTP/1.0); the journal has each write and when it went out, and
    a kept-alive connection serves its next request."""
    tokens, itl_ms = 10, 20
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": tokens, "stream": True})
    test_id = f"paced-{version}"
    with connect(paced_server) as sock:
        sock.sendall(chat_request(version, f"X-Mock-Test-Id: {test_id}\r\n", body))
        status, headers, streamed, rest = read_response(sock)
        assert status.endswith("200 OK")
        assert headers.get("transfer-encoding") == ("chunked" if version == "1.1" else None)
        events = [e for e in streamed.split(b"\n\n") if e.startswith(b"data: {")]
        assert len([e for e in events if b'"content":"' in e]) == tokens + 1  # the role's empty content, then each
        assert streamed.endswith(b"data: [DONE]\n\n")
        if version == "1.1":  # the same connection, for the next request
            sock.sendall(chat_request())
            assert read_response(sock, rest)[0].endswith("200 OK")
    listed = requests.get(paced_server.base_url + "/_mock/requests", params={"test_id": test_id}, timeout=5).json()
    entry = requests.get(f"{paced_server.base_url}/_mock/requests/{listed['data'][0]['id']}", timeout=5).json()
    assert entry["response"]["ending"] == "done"
    times = [e["t_ms"] for e in entry["response"]["stream_events"] if isinstance(e["data"], dict)]
    first, token_times = times[0], times[1 : tokens + 1]  # the head (the role's chunk) goes with token 0
    # Token k is due k ITLs after token 0 was due, and goes out then or later (the timer's tick rounds up), each in
    # a write of its own but the last, which carries the end of the stream with it. Token 0's write may itself go
    # out late on a busy machine (by 1.01 ms once, in CI) while the later ones keep to the plan: a token that goes
    # out a quarter of an ITL before its time fails.
    assert all(t >= first + k * itl_ms - itl_ms / 4 for k, t in enumerate(token_times)), times
    assert len(set(token_times[:-1])) == tokens - 1, times


def test_a_graceful_stop_does_not_wait_for_pooled_clients(start_server):
    """Pooled clients (requests.Session, as httpx and nginx's upstream keep-alive do) keep their connections
    after each response. On SIGTERM the streams in flight finish whole, and then their connections close, as
    do idle pooled ones: the server is gone in about a second, not after graceful_timeout (30 s)."""
    server = start_server("-w", "1", "--inter-token-latency", "20")
    url = server.base_url + "/v1/chat/completions"
    idle = [requests.Session() for _ in range(5)]
    for session in idle:  # answered, then idle in its pool
        assert session.post(url, json={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 2}).ok
    streaming = [requests.Session() for _ in range(20)]
    finished = []

    def stream(session):
        body = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 40, "stream": True}
        with session.post(url, json=body, stream=True, timeout=30) as reply:
            finished.append(reply.content.endswith(b"data: [DONE]\n\n"))

    threads = [threading.Thread(target=stream, args=(session,)) for session in streaming]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # every stream under way (40 tokens at 20 ms: 0.8 s each)
    stopped_at = time.monotonic()
    os.killpg(server.process.pid, signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    server.process.wait(timeout=30)
    took = time.monotonic() - stopped_at
    assert finished == [True] * 20
    assert took < 5, f"the stop took {took:.1f} s"


def test_a_large_body_arriving_in_pieces_is_read_whole(server):
    """A 4 MB prompt, sent in small writes: the worker gathers the whole body before the app sees it (800,000
    tokens: a model with a window of a million)."""
    text = "word " * 800_000
    body = json.dumps({"model": "gpt-4.1-nano", "messages": [{"role": "user", "content": text}], "max_tokens": 2})
    raw = chat_request(body=body)
    with connect(server) as sock:
        for i in range(0, len(raw), 1 << 16):
            sock.sendall(raw[i : i + (1 << 16)])
        status, _, reply, _ = read_response(sock)
        assert status == "HTTP/1.1 200 OK" and json.loads(reply)["usage"]["prompt_tokens"] > 700_000


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read a listening socket's backlog")
def test_the_listen_backlog_holds_a_workers_connections(start_server):
    """Connections opened all at once wait in the kernel's accept queue, not for the client's SYN retry: the
    backlog is ``[server] max_connections`` (past gunicorn's 2,048), as far as the kernel allows."""
    server = start_server("-w", "1", env={"MOCK_OPENAI_SERVER_MAX_CONNECTIONS": "3000"})
    listening = subprocess.run(
        ["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    with open("/proc/sys/net/core/somaxconn") as f:
        assert int(listening[2]) == min(3000, int(f.read()))  # LISTEN, Recv-Q, Send-Q (the backlog), ...


# --- the access log -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logged_servers(tmp_path_factory):
    """The same server twice with the access log on: on the lean loop, and on gunicorn's own."""
    from tests.e2e.loops import start

    folder = tmp_path_factory.mktemp
    servers = {own: start(folder("access-log"), own_loop=own, hook="post_request") for own in (False, True)}
    yield servers
    for live in servers.values():
        live.stop()


def logged_exchanges(server) -> list[tuple[str, int]]:
    """A mix of requests, each on a connection of its own: (request line, bytes of body the client got)."""
    stream = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "max_tokens": 8})
    requests_sent = [
        b"GET /v1/models?limit=2 HTTP/1.1\r\nHost: x\r\nReferer: http://r.example/\r\nUser-Agent: ua/1\r\n\r\n",
        chat_request(extra="X-Test-Case: body\r\n"),
        chat_request(body=stream),  # a stream: chunked, sent at once
        chat_request(body=stream, extra="X-Mock-ITL-Ms: 2\r\n"),  # a paced stream, sent by the worker's timer
        chat_request("1.0", body=stream, extra="X-Mock-ITL-Ms: 2\r\n"),  # ... its end the connection's
        chat_request(body=json.dumps({"model": "no-such-model", "messages": MESSAGES})),  # a 404 in the API's shape
        b"GET /nowhere HTTP/1.0\r\n\r\n",
        b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    received = []
    for data in requests_sent:
        with connect(server) as sock:
            sock.sendall(data)
            if data.startswith(b"HEAD"):  # a head, and nothing after it
                response = b""
                while chunk := sock.recv(65536):
                    response += chunk
                assert response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(b"\r\n\r\n")
                body = b""
            else:
                body = read_response(sock)[2]
            received.append((data.split(b"\r\n", 1)[0].decode(), len(body)))
    return received


def access_lines(server, count: int) -> list[dict]:
    """The server's access log so far, each line's atoms by name, once it holds ``count`` lines."""
    from tests.e2e.loops import ACCESS_LINE

    deadline = time.monotonic() + 5
    while True:
        lines = [m.groupdict() for m in map(ACCESS_LINE.fullmatch, server.output().splitlines()) if m]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_the_lean_loop_writes_the_access_log_gunicorns_loop_writes(logged_servers):
    """Every atom of gunicorn's access log that is the same from run to run, from both loops, for bodies,
    streams (paced ones included), HTTP/1.0, errors and HEAD; the body's bytes as the client counted them."""
    from tests.e2e.loops import OWN_LOOP_MARK

    logs = {}
    for own, live in logged_servers.items():
        before = len(access_lines(live, 0))
        received = logged_exchanges(live)
        lines = access_lines(live, before + len(received))[before:]
        assert len(lines) == len(received), live.output()
        for atoms, (request_line, length) in zip(lines, received, strict=True):
            assert atoms["r"] == request_line
            assert int(atoms["b"]) == int(atoms["B"]) == length, (atoms, length)
            assert atoms["length_out"] in ("-", str(length)) or request_line.startswith("HEAD")
        logs[own] = [{k: v for k, v in atoms.items() if k not in ("b", "B", "length_out")} for atoms in lines]
        assert (OWN_LOOP_MARK in live.output()) is own
    assert logs[False] == logs[True]
    assert logs[False][0] == {
        "h": "127.0.0.1", "l": "-", "u": "-", "r": "GET /v1/models?limit=2 HTTP/1.1", "s": "200", "m": "GET",
        "U": "/v1/models", "q": "limit=2", "H": "HTTP/1.1", "f": "http://r.example/", "a": "ua/1", "type_in": "-",
        "test_in": "-", "type_out": "application/json", "method_env": "GET",
    }  # fmt: skip
    assert [(atoms["s"], atoms["test_in"]) for atoms in logs[False][1:]] == [
        ("200", "body"), ("200", "-"), ("200", "-"), ("200", "-"), ("404", "-"), ("404", "-"), ("200", "-")
    ]  # fmt: skip


def test_an_access_log_in_a_logging_config_of_ones_own_is_written(tmp_path):
    """No ``accesslog``, but a ``logconfig_dict`` that sends ``gunicorn.access`` somewhere: gunicorn writes
    the access log there, and so does the lean loop."""
    from tests.e2e.loops import start

    handler = {"class": "logging.StreamHandler", "formatter": "marked", "stream": "ext://sys.stdout"}
    logging_config = {
        "version": 1,
        "root": {"level": "INFO", "handlers": []},
        "formatters": {"marked": {"format": "ACCESS %(message)s"}},
        "handlers": {"out": handler},
        "loggers": {"gunicorn.access": {"handlers": ["out"], "level": "INFO", "propagate": False}},
    }
    live = start(
        tmp_path, False, {"MOCK_OPENAI_SERVER_ACCESS_LOG": "false"}, settings=f"logconfig_dict = {logging_config!r}\n"
    )
    try:
        assert requests.get(live.base_url + "/v1/models?limit=1", timeout=10).status_code == 200
        deadline = time.monotonic() + 5
        while '"GET /v1/models?limit=1 HTTP/1.1" 200' not in live.output():
            assert time.monotonic() < deadline, live.output()
            time.sleep(0.05)
        assert 'ACCESS 127.0.0.1 - - "GET /v1/models?limit=1 HTTP/1.1" 200' in live.output()
    finally:
        live.stop()
