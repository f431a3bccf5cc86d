"""#11's proof, in one run: abuse, restarts and several instances, with the figures the README quotes.

    python bench/proof.py            # about two minutes; needs redis-server and nginx (as the tests do)

1. Fuzzing: ``tests/e2e/test_fuzz.py`` (schemathesis from the official spec, real workers): requests sent, 5xx and
   non-JSON errors seen, streams read whole.
2. Abuse: 400 streams, half of whose clients hang up mid-stream, and three 20 MB prompts: streams that did not
   end whole among those read to the end, and the worker's memory before and after.
3. A graceful restart: SIGHUP with 60 streams in flight: how many ended whole.
4. Three instances on one Redis behind nginx: 300 requests, counted by each instance's journal; 60 requests a
   minute allowed in sum.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pytest_mock_openai import LiveServer  # noqa: E402
from tests.conftest import start_redis  # noqa: E402
from tests.e2e.test_redis import start_nginx  # noqa: E402
from tests.e2e.test_restarts import Client, workers_of  # noqa: E402

CHAT = "/v1/chat/completions"


def body(tokens: int, stream: bool = True, content: str = "hi") -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], "max_tokens": tokens,
            "stream": stream}  # fmt: skip


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fuzzing(folder: Path) -> dict:
    report = folder / "fuzz.json"
    env = {**os.environ, "MOCK_OPENAI_FUZZ_REPORT": str(report)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/e2e/test_fuzz.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    return {**json.loads(report.read_text()), "tests_passed": run.returncode == 0}


def abuse(folder: Path) -> dict:
    server = LiveServer(["-w", "1", "--inter-token-latency", "5"], None, folder)
    try:
        (worker,) = workers_of(server.process.pid)
        url = server.base_url + CHAT
        requests.post(url, json=body(2, stream=False))
        before = rss_mb(worker)
        whole, cut_short = [], []

        def stream(n: int):
            with requests.post(url, json=body(200), stream=True, timeout=60) as reply:
                if n % 2:  # this client hangs up after its first events
                    next(reply.iter_content(256))
                    cut_short.append(n)
                    return
                whole.append(reply.content.endswith(b"data: [DONE]\n\n"))

        threads = [threading.Thread(target=stream, args=(n,)) for n in range(400)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        prompt = "word " * 4_000_000  # 20 MB
        big = [
            requests.post(url, json=body(2, stream=False, content=prompt), timeout=120).status_code for _ in range(3)
        ]
        time.sleep(1)
        return {
            "streams_read_to_the_end": len(whole),
            "streams_dropped": whole.count(False),
            "clients_that_hung_up": len(cut_short),
            "large_prompts_statuses": big,
            "worker_rss_mb_before": round(before, 1),
            "worker_rss_mb_after": round(rss_mb(worker), 1),
        }
    finally:
        server.stop()


def restart(folder: Path) -> dict:
    server = LiveServer(["-w", "2", "--inter-token-latency", "20"], None, folder)
    try:
        clients = [Client(server.base_url + CHAT, 150) for _ in range(60)]  # 3 s each
        for client in clients:
            client.start()
        for client in clients:
            client.started.wait(10)
        server.process.send_signal(signal.SIGHUP)
        for client in clients:
            client.join(60)
        endings = [c.ending for c in clients]
        return {"streams_in_flight": len(clients), "ended_whole": endings.count("done"),
                "tokens_each": sorted({c.tokens_received for c in clients})}  # fmt: skip
    finally:
        server.stop()


def instances(folder: Path) -> dict:
    redis, redis_url = start_redis(folder)
    env = {"MOCK_OPENAI_SHARED_REDIS_URL": redis_url, "MOCK_OPENAI_SHARED_REDIS_PREFIX": uuid.uuid4().hex}
    servers = []
    try:
        servers = [LiveServer(["-w", "2", "--inter-token-latency", "0", "--rpm", "60"], env, folder) for _ in range(3)]
        nginx, url = start_nginx(folder, [s.port for s in servers])
        try:
            test_id = uuid.uuid4().hex
            headers = {"Authorization": "Bearer sk-proof", "X-Mock-Test-Id": test_id}
            statuses = [requests.post(url + CHAT, json=body(2, stream=False), headers=headers).status_code
                        for _ in range(300)]  # fmt: skip
            counted = [
                requests.get(s.base_url + f"/_mock/requests?test_id={test_id}&limit=1").json()["total"] for s in servers
            ]
            workers = {
                e["worker"] for e in requests.get(servers[0].base_url + "/_mock/requests?limit=300").json()["data"]
            }
        finally:
            nginx.terminate()
        return {"requests": 300, "answered_200": statuses.count(200), "answered_429": statuses.count(429),
                "journal_total_on_each_instance": counted, "workers_that_answered": len(workers)}  # fmt: skip
    finally:
        for server in servers:
            server.stop()
        redis.terminate()


def main() -> int:
    results = {}
    with tempfile.TemporaryDirectory(prefix="mock-openai-proof-") as folder:
        for name, step in (("fuzzing", fuzzing), ("abuse", abuse), ("restart", restart), ("instances", instances)):
            started = time.monotonic()
            results[name] = step(Path(folder))
            results[name]["seconds"] = round(time.monotonic() - started, 1)
            print(name, json.dumps(results[name]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
