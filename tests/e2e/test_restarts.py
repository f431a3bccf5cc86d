"""Restarts with streams in flight, on real gunicorn workers, counting what each client received.

- SIGTERM: the server stops accepting at once; streams that fit in ``graceful_timeout`` finish whole; those still
  running shortly before it end with an error event and ``[DONE]``; the server is gone within the grace period.
- SIGHUP: the configuration is read again and the workers are replaced, and no stream in flight is dropped.
- SIGKILL to a worker: it is replaced; what the shared state had committed (journal entries, one-shot faults)
  is all still there, on both backends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid

import pytest
import requests

from tests.sse import parse_sse

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "hi"}]


def chat(tokens: int, stream: bool = True) -> dict:
    return {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": tokens, "stream": stream}


class Client(threading.Thread):
    """One streaming client: what it received (``events``), and how its stream ended: ``done``, ``stopped``
    (the restart's error event, then ``[DONE]``) or ``cut`` (the connection ended mid-stream)."""

    def __init__(self, url: str, tokens: int):
        super().__init__(daemon=True)
        self.url, self.tokens = url, tokens
        self.started = threading.Event()
        self.events, self.ending = [], None

    def run(self):
        raw = b""
        try:
            with requests.post(self.url, json=chat(self.tokens), stream=True, timeout=60) as reply:
                for piece in reply.iter_content(None):
                    raw += piece
                    self.started.set()
        except requests.RequestException:
            self.ending = "cut"
            self.started.set()
            return
        self.events = parse_sse(raw)
        errors = [e for e in self.events if isinstance(e, dict) and "error" in e]
        if errors:
            assert errors[0]["error"]["code"] == "server_shutting_down" and self.events[-2:] == [errors[0], "[DONE]"]
            self.ending = "stopped"
        else:
            assert self.events[-2]["choices"][0]["finish_reason"] == "length"
            self.ending = "done"

    @property
    def tokens_received(self) -> int:
        return sum(
            1
            for e in self.events
            if isinstance(e, dict) and e.get("choices") and e["choices"][0]["delta"].get("content")
        )


def start_clients(url: str, lengths: list[int]) -> list[Client]:
    clients = [Client(url, n) for n in lengths]
    for client in clients:
        client.start()
    for client in clients:
        assert client.started.wait(10)
    return clients


def workers_of(master: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == master:
                        found.add(int(entry))
            except (OSError, IndexError):
                pass
    return found


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def test_sigterm_finishes_what_fits_and_ends_the_rest_cleanly(start_server):
    server = start_server("-w", "2", "--inter-token-latency", "20", env={"MOCK_OPENAI_SERVER_GRACEFUL_TIMEOUT": "4"})
    url = server.base_url + "/v1/chat/completions"
    # 40 tokens at 20 ms fit in the grace period; 1000 (20 s) do not.
    clients = start_clients(url, [40] * 6 + [1000] * 6)
    stopped_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)  # the master, as a process manager sends it
    # gunicorn's workers look at their stop flag once a second, then close their listeners
    deadline = time.monotonic() + 1.5
    while not refused(server.port):
        assert time.monotonic() < deadline, "a stopping server still accepts new connections"
        time.sleep(0.1)
    for client in clients:
        client.join(30)
    server.process.wait(timeout=30)
    took = time.monotonic() - stopped_at
    short, long = clients[:6], clients[6:]
    assert [c.ending for c in short] == ["done"] * 6 and all(c.tokens_received == 40 for c in short)
    assert [c.ending for c in long] == ["stopped"] * 6
    # each long stream ran until shortly before the grace period's end: about 2.5 s of tokens at 20 ms
    assert all(50 < c.tokens_received < 1000 for c in long), [c.tokens_received for c in long]
    assert took < 4 + 1.5, f"the stop took {took:.1f} s"


def test_sighup_reloads_the_config_and_drops_no_stream(start_server, tmp_path):
    config = tmp_path / "extra.toml"
    config.write_text("[rate_limits]\nrequests_per_minute = 1000\n")
    server = start_server("-w", "2", "--inter-token-latency", "20", "--config", str(config))
    url = server.base_url + "/v1/chat/completions"
    old_workers = workers_of(server.process.pid)
    assert len(old_workers) == 2
    clients = start_clients(url, [150] * 10)  # 3 s each
    config.write_text("[rate_limits]\nrequests_per_minute = 2000\n")
    server.process.send_signal(signal.SIGHUP)
    limits, deadline = set(), time.monotonic() + 20
    while "2000" not in limits:  # requests keep being answered while the workers are replaced
        reply = requests.post(url, json=chat(2, stream=False), timeout=10)
        assert reply.status_code == 200
        limits.add(reply.headers["x-ratelimit-limit-requests"])
        assert time.monotonic() < deadline, "the new config was not seen"
        time.sleep(0.05)
    for client in clients:
        client.join(30)
    assert [c.ending for c in clients] == ["done"] * 10
    assert all(c.tokens_received == 150 for c in clients)
    deadline = time.monotonic() + 10
    while workers_of(server.process.pid) & old_workers:  # the old workers leave once their streams are done
        assert time.monotonic() < deadline, "the old workers did not leave"
        time.sleep(0.1)
    assert len(workers_of(server.process.pid)) == 2


@pytest.mark.parametrize("backend", ["local", "redis"])
def test_a_killed_worker_is_replaced_and_the_shared_state_keeps_what_was_committed(start_server, request, backend):
    env = {}
    if backend == "redis":
        env = {"MOCK_OPENAI_SHARED_REDIS_URL": request.getfixturevalue("redis_url"),
               "MOCK_OPENAI_SHARED_REDIS_PREFIX": uuid.uuid4().hex}  # fmt: skip
    server = start_server("-w", "1", "--inter-token-latency", "20", env=env)
    url = server.base_url + "/v1/chat/completions"
    assert requests.post(server.base_url + "/_mock/faults", json={"error": "503", "count": 3}).status_code == 201
    statuses = [requests.post(url, json=chat(2, stream=False)).status_code for _ in range(10)]
    assert statuses == [503] * 3 + [200] * 7
    committed = requests.get(server.base_url + "/_mock/requests?path=/v1/chat/completions&limit=100").json()
    assert committed["total"] == 10
    (worker,) = workers_of(server.process.pid)
    clients = start_clients(url, [1000] * 5)
    requests.post(server.base_url + "/_mock/faults", json={"error": "429", "count": 2})
    os.kill(worker, signal.SIGKILL)
    for client in clients:
        client.join(30)
    # The streams on the killed worker are cut (nothing can end them cleanly), none hangs.
    assert [c.ending for c in clients] == ["cut"] * 5
    deadline = time.monotonic() + 20
    while True:  # a replacement worker serves
        try:
            if requests.get(server.base_url + "/health", timeout=2).ok:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "no worker replaced the killed one"
        time.sleep(0.1)
    assert workers_of(server.process.pid) - {worker}
    page = requests.get(server.base_url + "/_mock/requests?path=/v1/chat/completions&limit=100").json()
    ids = {e["id"] for e in page["data"]}
    assert {e["id"] for e in committed["data"]} <= ids  # every committed entry is still there
    faults = requests.get(server.base_url + "/_mock/faults").json()
    # the 429s were queued after the streams began, so the streams did not use them: 2 left, none lost
    assert faults["pending"] == 2 and [f["used"] for f in faults["data"]] == [3, 0]
    assert requests.post(url, json=chat(2, stream=False)).status_code == 429


def test_a_batch_whose_worker_is_killed_is_taken_over_and_completes(start_server):
    """The worker running a batch holds a lease on it; killed, its lease runs out, and the next read of the
    batch (by the worker that replaced it) runs the batch again from its first line."""
    server = start_server("-w", "1", env={"MOCK_OPENAI_BATCH_DURATION_S": "6"})
    lines = [{"custom_id": f"k{n}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "text-embedding-3-small", "input": f"line {n}"}} for n in range(30)]  # fmt: skip
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    file = requests.post(server.base_url + "/v1/files", data={"purpose": "batch"},
                         files={"file": ("k.jsonl", data)}, timeout=10).json()  # fmt: skip
    body = {"input_file_id": file["id"], "endpoint": "/v1/embeddings", "completion_window": "24h"}
    batch = requests.post(server.base_url + "/v1/batches", json=body, timeout=10).json()
    url = server.base_url + f"/v1/batches/{batch['id']}"
    while requests.get(url, timeout=10).json()["request_counts"]["completed"] < 5:
        time.sleep(0.1)
    (worker,) = workers_of(server.process.pid)
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        try:
            batch = requests.get(url, timeout=5).json()
            if batch["status"] == "completed":
                break
        except requests.RequestException:
            pass  # while no worker serves
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)
    assert batch["request_counts"] == {"total": 30, "completed": 30, "failed": 0}
    output = requests.get(server.base_url + f"/v1/files/{batch['output_file_id']}/content", timeout=10).text
    assert sorted(json.loads(line)["custom_id"] for line in output.splitlines()) == sorted(f"k{n}" for n in range(30))
