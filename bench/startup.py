"""Memory and start-up with many workers: start ``mock-openai -w W`` from this checkout, time its first answer
and its last worker's start, send 200 bodies, and print the master's RSS and each worker's median RSS and PSS
(PSS counts a page shared by N processes as 1/N: what a worker really adds).

    .venv/bin/python bench/startup.py 16
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

W = int(sys.argv[1])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


port = free_port()
env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_OPENAI_")}
t0 = time.monotonic()
p = subprocess.Popen(
    [".venv/bin/mock-openai", "-p", str(port), "-w", str(W)],
    env=env,
    stderr=subprocess.PIPE,
    stdout=subprocess.DEVNULL,
    start_new_session=True,
)
first = None
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
        first = time.monotonic() - t0
        break
    except Exception:
        time.sleep(0.02)


def children(pid):
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                stat = open(f"/proc/{e}/stat").read().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    out.append(int(e))
            except Exception:
                pass
    return out


# every worker booted: gunicorn's workers are children of the master; wait until W exist and each has imported the app
deadline = time.monotonic() + 120
while len(children(p.pid)) < W and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.5)
all_ready = time.monotonic() - t0


def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024


def pss(pid):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except Exception:
        return None


kids = children(p.pid)
# warm each worker a little: 200 requests
body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}).encode()
for _ in range(200):
    urllib.request.urlopen(
        urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
    ).read()
ws = [rss(k) for k in kids]
ps = [pss(k) for k in kids]
print(
    json.dumps(
        {
            "workers": W,
            "first_answer_s": round(first, 2),
            "all_workers_s": round(all_ready, 2),
            "master_rss_mb": round(rss(p.pid), 1),
            "worker_rss_mb_median": round(sorted(ws)[len(ws) // 2], 1),
            "worker_pss_mb_median": round(sorted(ps)[len(ps) // 2], 1) if ps[0] else None,
        }
    )
)
os.killpg(p.pid, signal.SIGTERM)
p.wait(30)
