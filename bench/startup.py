"""Memory and start-up with many workers: start ``mock-openai -w W`` from this checkout, time its first answer
and the moment every worker has answered, send 200 more bodies, and print the master's RSS and each worker's median
RSS and PSS (PSS counts a page shared by N processes as 1/N: what a worker really adds).

    .venv/bin/python bench/startup.py 16
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from servers import ROOT, free_port  # noqa: E402

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}).encode()


def measure(workers: int) -> dict:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOCK_OPENAI_", "MOCK_GPT_"))}
    started = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "-a", "127.0.0.1", "-p", str(port), "-w", str(workers)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=1).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() - started > 120:
                    raise RuntimeError("mock-openai did not start") from None
                time.sleep(0.02)
        first = time.monotonic() - started
        # Every worker serving: bursts of requests at once (a connection each, so that busy workers leave some to
        # the others) until each worker's pid has answered one (the journal names it).
        answered: set[int] = set()
        with ThreadPoolExecutor(2 * workers) as pool:
            while len(answered) < workers and time.monotonic() - started < 60:
                list(pool.map(_ask, [url] * 4 * workers))
                answered = _workers_answered(url)
            every = time.monotonic() - started
            list(pool.map(_ask, [url] * 200))
        kids = _children(server.pid)
        rss = sorted(_status(k, "VmRSS") for k in kids)
        pss = sorted(_pss(k) for k in kids)
        return {
            "workers": workers,
            "first_answer_s": round(first, 2),
            "every_worker_answered_s": round(every, 2) if len(answered) >= workers else None,
            "master_rss_mb": round(_status(server.pid, "VmRSS"), 1),
            "worker_rss_mb_median": round(rss[len(rss) // 2], 1),
            "worker_pss_mb_median": round(pss[len(pss) // 2], 1) if pss and pss[0] else None,
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def _ask(url: str) -> None:
    request = urllib.request.Request(url + "/v1/chat/completions", BODY, {"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()


def _workers_answered(url: str) -> set[int]:
    page = json.loads(urllib.request.urlopen(url + "/_mock/requests?limit=1000").read())
    return {entry["worker"] for entry in page["data"] if entry.get("path") == "/v1/chat/completions"}


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def _status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pss(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))
