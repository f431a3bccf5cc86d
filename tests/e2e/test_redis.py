"""Three instances sharing one Redis, behind nginx, act as one server: the rate limits hold in sum, a one-shot
fault fires once, and the journal shows every request once, whichever instance is asked."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
import requests

from pytest_mock_openai import free_port
from tests.conftest import component
from tests.sse import parse_sse

pytestmark = pytest.mark.e2e

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
NGINX = """
worker_processes 1;
pid {folder}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream mock {{ {servers} }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def start_nginx(folder, ports) -> tuple[subprocess.Popen, str]:
    """nginx, round-robin over ``ports``, as this user, from a config of its own."""
    binary = component("nginx")
    port = free_port()
    servers = " ".join(f"server 127.0.0.1:{p};" for p in ports)
    conf = folder / "nginx.conf"
    conf.write_text(NGINX.format(folder=folder, servers=servers, port=port))
    process = subprocess.Popen([binary, "-e", "stderr", "-p", str(folder), "-c", str(conf), "-g", "daemon off;"])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            requests.get(url + "/health", timeout=1)
            return process, url
        except requests.ConnectionError:
            assert time.monotonic() < deadline and process.poll() is None, "nginx did not start"
            time.sleep(0.05)


@pytest.fixture
def cluster(start_server, redis_url, tmp_path):
    """Three servers of two workers each on one Redis prefix, and nginx in front."""
    env = {"MOCK_OPENAI_SHARED_REDIS_URL": redis_url, "MOCK_OPENAI_SHARED_REDIS_PREFIX": uuid.uuid4().hex}
    servers = [
        start_server("-w", "2", "--inter-token-latency", "0", "--rpm", "12", env=env, cwd=tmp_path) for _ in range(3)
    ]
    nginx, url = start_nginx(tmp_path, [s.port for s in servers])
    yield url, servers
    nginx.terminate()
    nginx.wait(10)


def test_three_instances_behind_nginx_act_as_one(cluster):
    url, servers = cluster
    test_id = uuid.uuid4().hex
    headers = {"Authorization": "Bearer sk-cluster", "X-Mock-Test-Id": test_id}
    # One one-shot fault, queued on the first instance, for whichever request comes next anywhere.
    assert requests.post(servers[0].base_url + "/_mock/faults", json={"error": "503", "count": 1}).status_code == 201
    statuses = [requests.post(url + "/v1/chat/completions", json=CHAT, headers=headers).status_code for _ in range(20)]
    # The fault fires once; the 12 requests a minute hold across the three instances, not 12 each.
    assert statuses.count(503) == 1
    assert statuses.count(200) == 12 and statuses.count(429) == 7, statuses
    # Every request once in the journal, asked of any instance; they came through all three.
    for server in servers:
        page = requests.get(server.base_url + f"/_mock/requests?test_id={test_id}&limit=100").json()
        assert page["total"] == 20
        assert len({entry["id"] for entry in page["data"]}) == 20
    workers = {entry["worker"] for entry in page["data"]}
    assert len(workers) >= 3, workers
    assert requests.get(servers[2].base_url + "/_mock/faults").json()["pending"] == 0
    for server in servers:  # no warning as the workers start (gevent's about ssl, once redis was imported)
        assert "Warning" not in server.output(), server.output()


def test_a_request_answered_anywhere_is_in_the_journal_read_next_elsewhere(start_server, redis_url, tmp_path):
    """Workers write the journal only once a minute here, and a request costs it no round trip: a reader's
    sync has every worker of every instance write what it holds before the read, streams and bodies alike.
    The reader has served no stream, so it makes the streams' bytes from the event table the writers stored
    in Redis (app.streaming.recipes)."""
    from concurrent.futures import ThreadPoolExecutor

    env = {"MOCK_OPENAI_SHARED_REDIS_URL": redis_url, "MOCK_OPENAI_SHARED_REDIS_PREFIX": uuid.uuid4().hex,
           "MOCK_OPENAI_JOURNAL_FLUSH_INTERVAL_MS": "60000"}  # fmt: skip
    writer, reader = (start_server("-w", "2", "--inter-token-latency", "0", env=env, cwd=tmp_path) for _ in range(2))
    texts = {}  # user -> the text a stream's client assembled

    def ask(n):
        body = CHAT | {"stream": n % 2 == 0, "user": f"u{n}", "max_tokens": 3 + n % 5}
        response = requests.post(writer.base_url + "/v1/chat/completions", json=body, timeout=30)
        if body["stream"]:
            chunks = [e for e in parse_sse(response.content) if e != "[DONE]" and e["choices"]]
            texts[body["user"]] = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        return response.status_code

    for rounds in range(3):  # each round's requests, read at once
        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(ask, range(40 * rounds, 40 * rounds + 40))) == {200}
        query = {"limit": 200, "path": "/v1/chat/completions"}
        listed = requests.get(reader.base_url + "/_mock/requests", params=query, timeout=10).json()
        assert listed["total"] == 40 * (rounds + 1)
    assert sorted(e["request"]["body"]["user"] for e in listed["data"]) == sorted(f"u{n}" for n in range(120))
    streams = {e["request"]["body"]["user"]: e["response"]["text"] for e in listed["data"] if e["stream"]}
    assert streams == texts and all(texts.values())


def test_an_unreachable_redis_stops_the_start_with_a_clear_message_and_an_outage_is_a_503(start_server, tmp_path):
    import os
    import signal
    import subprocess

    from pytest_mock_openai import MOCK_OPENAI, clean_env
    from tests.conftest import start_redis

    dead = f"redis://127.0.0.1:{free_port()}/0"
    start = subprocess.run(
        [str(MOCK_OPENAI), "-p", str(free_port())],
        env=clean_env({"MOCK_OPENAI_SHARED_REDIS_URL": dead}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert start.returncode != 0 and f"cannot reach Redis at {dead}" in start.stderr
    # Redis going away while the server runs: requests get a 503 in the API's shape (the SDK retries those)
    redis, url = start_redis(tmp_path)
    try:
        env = {"MOCK_OPENAI_SHARED_REDIS_URL": url}
        server = start_server("-w", "1", "--inter-token-latency", "0", env=env, cwd=tmp_path)
        assert requests.post(server.base_url + "/v1/chat/completions", json=CHAT).status_code == 200
    finally:
        os.kill(redis.pid, signal.SIGKILL)
        redis.wait()
    reply = requests.post(server.base_url + "/v1/chat/completions", json=CHAT)
    assert reply.status_code == 503 and reply.json()["error"]["type"] == "server_error", reply.text


def test_more_requests_at_once_than_a_worker_has_connections_all_succeed(start_server, redis_url, tmp_path):
    """A worker's greenlets share a bounded pool of Redis connections and wait for one: 300 streams at once
    on one worker all succeed (redis-py's default pool refused the 101st with "Too many connections")."""
    from concurrent.futures import ThreadPoolExecutor

    env = {"MOCK_OPENAI_SHARED_REDIS_URL": redis_url, "MOCK_OPENAI_SHARED_REDIS_PREFIX": uuid.uuid4().hex}
    server = start_server("-w", "1", "--inter-token-latency", "5", env=env, cwd=tmp_path)

    def stream(_):
        with requests.post(server.base_url + "/v1/chat/completions", json=CHAT | {"stream": True, "max_tokens": 20},
                           stream=True, timeout=30) as response:  # fmt: skip
            return response.status_code, response.content.endswith(b"data: [DONE]\n\n")

    with ThreadPoolExecutor(300) as pool:
        results = list(pool.map(stream, range(300)))
    assert results == [(200, True)] * 300


def test_while_redis_is_down_the_journal_keeps_only_its_newest_entries(start_server, tmp_path):
    """Entries wait while Redis is away, bounded by [journal] max_entries (the oldest go, as the journal would
    not keep them anyway); once it is back the newest are written."""
    import os
    import signal

    from tests.conftest import start_redis

    redis, url = start_redis(tmp_path)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    env = {"MOCK_OPENAI_SHARED_REDIS_URL": url, "MOCK_OPENAI_JOURNAL_MAX_ENTRIES": "20",
           "MOCK_OPENAI_JOURNAL_FLUSH_INTERVAL_MS": "10"}  # fmt: skip
    server = start_server("-w", "1", "--inter-token-latency", "0", env=env, cwd=tmp_path)
    os.kill(redis.pid, signal.SIGKILL)
    redis.wait()
    for n in range(60):
        sent = requests.post(server.base_url + "/v1/chat/completions", json=CHAT, headers={"X-Mock-Test-Id": f"t{n}"})
        assert sent.status_code == 503
    deadline = time.monotonic() + 10
    while "dropped the" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "keeping the newest 20" in server.output()
    redis, _ = start_redis(tmp_path, port)
    try:
        deadline = time.monotonic() + 10
        while True:  # the writer retries each second
            listed = requests.get(server.base_url + "/_mock/requests", params={"limit": 100}, timeout=5)
            ids = {e["test_id"] for e in listed.json()["data"]} if listed.status_code == 200 else set()
            if "t59" in ids or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert {f"t{n}" for n in range(40, 60)} <= ids and "t0" not in ids
    finally:
        redis.terminate()
        redis.wait()
