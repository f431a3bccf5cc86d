"""End to end, observability: the journal that all gunicorn workers share, /metrics summed over them, the
request log lines, through real servers."""

from __future__ import annotations

import json
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "Say hello"}]


def chat(server, headers=None, **body):
    body.setdefault("messages", MESSAGES)
    body.setdefault("model", "gpt-4o-mini")
    return requests.post(server.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_two_workers_and_500_concurrent_requests_give_exactly_500_entries(start_server):
    server = start_server("-w", "2", "--inter-token-latency", "1")

    def one(n):
        return chat(server, {"X-Mock-Test-Id": "load"}, max_tokens=8, stream=n % 2 == 0, user=f"u{n}").status_code

    with ThreadPoolExecutor(100) as pool:
        assert set(pool.map(one, range(500))) == {200}
    page = requests.get(server.base_url + "/_mock/requests", params={"test_id": "load", "limit": 1000}).json()
    assert page["total"] == 500
    assert sorted(e["request"]["body"]["user"] for e in page["data"]) == sorted(f"u{n}" for n in range(500))
    assert len({e["worker"] for e in page["data"]}) == 2  # both workers wrote to the one journal
    stats = requests.get(server.base_url + "/_mock/stats").json()
    assert stats["by_path"]["/v1/chat/completions"] == 500 and stats["streams"] == 250  # and the /health probes
    assert stats["by_model"] == {"gpt-4o-mini": 500} and set(stats["by_status"]) == {"200"}

    # Each worker adds its numbers to the metrics twice a second: poll until both have added all of them (a
    # worker's streams may be in while its last bodies, answered after its last push, are not yet).
    labels = 'api="openai",endpoint="/v1/chat/completions",method="POST",model="gpt-4o-mini",status="200"'
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        metrics = requests.get(server.base_url + "/metrics").text
        if f"mock_openai_requests_total{{{labels}}} 500.0" in metrics and (
            'vllm:time_to_first_token_seconds_count{model_name="gpt-4o-mini"} 250.0' in metrics
        ):
            break
        time.sleep(0.1)
    assert f"mock_openai_requests_total{{{labels}}} 500.0" in metrics
    assert 'vllm:time_to_first_token_seconds_count{model_name="gpt-4o-mini"} 250.0' in metrics
    assert 'vllm:generation_tokens_total{model_name="gpt-4o-mini"} 4000.0' in metrics


def completions_in(path) -> int:
    """Completions recorded in a journal file, read as a server reads it."""
    from app.shared.journal_store import JournalStore

    store = JournalStore(str(path), 10000)
    try:
        return store.query({"path": "/v1/chat/completions"}, None, None, None, 1, 0)[1]
    finally:
        store.close()


def test_a_graceful_stop_writes_what_is_pending(start_server, tmp_path):
    path = tmp_path / "journal.sqlite3"
    env = {"MOCK_OPENAI_JOURNAL_PATH": str(path), "MOCK_OPENAI_JOURNAL_FLUSH_INTERVAL_MS": "60000"}
    server = start_server("-w", "2", "--inter-token-latency", "0", env=env)
    for n in range(40):
        assert chat(server, max_tokens=4, stream=n % 2 == 0).ok
    assert not os.listdir(f"{path}.workers")  # a minute between writes: nothing is written yet
    server.stop()
    assert completions_in(path) == 40


def test_a_journal_path_keeps_entries_across_restarts(start_server, tmp_path):
    env = {"MOCK_OPENAI_JOURNAL_PATH": str(tmp_path / "kept.sqlite3")}
    first = start_server("-w", "1", env=env)
    assert chat(first, max_tokens=2, user="before-restart").ok
    first.stop()
    second = start_server("-w", "1", env=env)
    entries = requests.get(second.base_url + "/_mock/requests", params={"method": "POST"}).json()["data"]
    assert [e["request"]["body"]["user"] for e in entries] == ["before-restart"]


def test_a_client_that_leaves_mid_stream_is_recorded_as_gone(start_server):
    server = start_server("-w", "1", "--inter-token-latency", "20")
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 200, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        received = b""
        while received.count(b"data: ") < 3:
            received += sock.recv(65536)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries = requests.get(server.base_url + "/_mock/requests", params={"method": "POST"}).json()["data"]
        if entries:
            break
        time.sleep(0.05)
    entry = entries[0]
    assert entry["response"]["ending"] == "client_gone"
    assert 3 <= entry["response"]["events"] < 200
    assert entry["response"]["text"]  # what had been assembled before the client left


def test_injected_disconnects_are_told_apart_from_clients_leaving(start_server):
    server = start_server("-w", "1", "--inter-token-latency", "0")
    with pytest.raises(requests.RequestException):
        _ = chat(server, {"X-Mock-Disconnect-After": "3"}, stream=True, max_tokens=20).content
    entry = requests.get(server.base_url + "/_mock/requests", params={"method": "POST"}).json()["data"][0]
    assert entry["fault"] == "disconnect" and entry["response"]["ending"] == "disconnect"


def test_request_log_lines_as_json_in_a_rotating_file(start_server, tmp_path):
    log = tmp_path / "logs" / "mock-server.log"
    env = {
        "MOCK_OPENAI_LOGGING_FILE": str(log),
        "MOCK_OPENAI_LOGGING_FORMAT": "json",
        "MOCK_OPENAI_LOGGING_MAX_BYTES": "4000",
        "MOCK_OPENAI_LOGGING_BACKUPS": "2",
    }
    server = start_server("-w", "2", "--log-level", "info", "--inter-token-latency", "0", env=env)
    ids = [chat(server, max_tokens=2).headers["x-request-id"] for _ in range(30)]
    server.stop()
    files = sorted(log.parent.glob("mock-server.log*"))
    assert {f.name for f in files} >= {"mock-server.log", "mock-server.log.1"}
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    requests_logged = [line for line in lines if line["logger"] == "mock_openai.requests"]
    assert all(line["level"] == "info" and line["status"] == 200 for line in requests_logged)
    kept = {line["request_id"] for line in requests_logged}
    assert set(ids[-10:]) <= kept  # the newest are all there; the oldest may have rotated away
    assert all(len(line["request_id"]) == 36 for line in requests_logged)


def test_request_lines_show_at_info_as_text_and_not_at_warning(start_server):
    quiet = start_server("-w", "1")
    chat(quiet, max_tokens=2)
    talkative = start_server("-w", "1", "--log-level", "info")
    request_id = chat(talkative, max_tokens=2).headers["x-request-id"]
    quiet.stop()
    talkative.stop()
    assert "POST /v1/chat/completions" not in quiet.output()
    line = next(line for line in talkative.output().splitlines() if request_id in line)
    assert "[INFO] POST /v1/chat/completions 200" in line and "model=gpt-4o-mini" in line
