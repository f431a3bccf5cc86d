"""Benchmark mock-openai against a minimal Flask + gunicorn gevent app, in the same run, on this machine.

    python bench/run.py [--workers 2] [--duration 10] [--streams 1000] [--tokens 100] [--rounds 3] [--compare REF]

Two loads, each run against both servers in alternating rounds (this machine is shared and noisy, so the
figures are medians over rounds, and the ratios are what to read):

- non-streaming chat completions with ``wrk`` at 64 connections: requests/s and p99 latency;
- ``--streams`` concurrent streaming chat completions with ``include_usage``, ``--tokens`` tokens each: content
  chunks/s over the whole wave. Every stream is read to the end and parsed, every event decoded as JSON,
  and each stream must hold exactly ``--tokens`` content chunks, a usage chunk and ``[DONE]``.

mock-openai streams twice: with no pacing (``--inter-token-latency 0``), and with the default 10 ms pacing,
where it also reports how late the streams end against their deadlines. It is also loaded once more with
rate limits on (limits too high to refuse anything), to show what a simulation feature costs when it is on.

``--compare REF`` also runs an earlier commit of mock-openai (checked out into a temporary git worktree) in
the same rounds, so a change on the request path can quote its before and after as ratios of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, name: str, command: list[str], port: int, cwd: Path = ROOT, env: dict | None = None):
        self.name, self.port = name, port
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("MOCK_OPENAI_", "MOCK_GPT_"))}
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                time.sleep(1.0)  # let every worker finish booting
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not start")

    def stop(self):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def start_mock(workers: int, inter_token_latency: float, *extra: str, env: dict | None = None) -> Server:
    port = free_port()
    command = [str(BIN / "mock-openai"), "-a", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    command += ["--inter-token-latency", str(inter_token_latency), "--max-connection-rate", "0", *extra]
    return Server(f"mock-openai (ITL {inter_token_latency:g} ms)", command, port, env=env)


def start_checkout(folder: Path, workers: int) -> Server:
    """An earlier commit, from its own folder: gunicorn with that commit's gunicorn.conf.py, as its README
    runs it, configured through the environment names every version reads."""
    port = free_port()
    command = [str(BIN / "python"), "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    env = {
        "PYTHONPATH": str(folder),
        "MOCK_OPENAI_SERVER_HOST": "127.0.0.1",
        "MOCK_OPENAI_SERVER_PORT": str(port),
        "MOCK_OPENAI_SERVER_WORKERS": str(workers),
        "MOCK_OPENAI_SERVER_MAX_CONNECTION_RATE": "0",
        "MOCK_OPENAI_RESPONSES_INTER_TOKEN_LATENCY_MS": "0",
    }
    return Server(f"mock-openai at {folder.name}", command, port, cwd=folder, env=env)


def remove_worktree(folder: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False)
    shutil.rmtree(folder.parent, ignore_errors=True)


def worktree(ref: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mock-openai-bench-")) / ref.replace("/", "_")
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), ref], check=True, capture_output=True
    )
    return folder


def start_baseline(workers: int) -> Server:
    port = free_port()
    command = [str(BIN / "gunicorn"), "-k", "gevent", "-w", str(workers), "--worker-connections", "10000"]
    command += ["-b", f"127.0.0.1:{port}", "--log-level", "warning", "bench.baseline_app:app"]
    return Server("baseline Flask app", command, port)


# --- non-streaming: wrk ---------------------------------------------------------------------------------


def run_wrk(port: int, duration: int, connections: int = 64) -> tuple[float, float]:
    """(requests/s, p99 latency in ms)."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "post.lua"),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw error responses:\n{out}")
    if "Socket errors" in out:  # wrk's 2 s timeouts under overload: worth seeing, not fatal
        print("  wrk:", re.search(r"Socket errors:.*", out).group(0), flush=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return rps, p99


# --- streaming: raw asyncio connections, every event parsed -------------------------------------------


async def one_stream(port: int, request: bytes, tokens: int) -> tuple[int, float]:
    """Read one stream to its end; returns (content chunks, seconds)."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    writer.write(request)
    raw = await reader.read(-1)  # HTTP/1.0: the body ends when the server closes
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
        raise RuntimeError(f"bad response: {head[:100]!r}")
    content = usage = done = 0
    for event in body.split(b"\n\n"):
        if not event:
            continue
        if not event.startswith(b"data: "):
            raise RuntimeError(f"bad event {event[:80]!r}")
        data = event[6:]
        if data == b"[DONE]":
            done += 1
            continue
        chunk = json.loads(data)
        if chunk["choices"]:
            if "content" in chunk["choices"][0]["delta"] and chunk["choices"][0]["delta"].get("role") is None:
                content += 1
        elif "usage" in chunk:
            usage += 1
    if (content, usage, done) != (tokens, 1, 1):
        raise RuntimeError(f"incomplete stream: {content} chunks, {usage} usage, {done} [DONE]")
    return content, time.monotonic() - start


async def stream_wave(port: int, streams: int, tokens: int) -> tuple[float, list[float]]:
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Hello there!"}],
            "max_tokens": tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.0\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    start = time.monotonic()
    results = await asyncio.gather(*(one_stream(port, request, tokens) for _ in range(streams)))
    elapsed = time.monotonic() - start
    return sum(r[0] for r in results) / elapsed, [r[1] for r in results]


# --- the run ----------------------------------------------------------------------------------------------


def median(values):
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk load per round")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", metavar="REF", help="also run this earlier commit, side by side")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is needed for the non-streaming load (apt-get install wrk)")
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.streams * 2 + 256)), hard))

    servers = {
        "baseline": start_baseline(args.workers),
        "mock": start_mock(args.workers, 0),
        "mock_paced": start_mock(args.workers, 10),
        "limits": start_mock(args.workers, 0, "--rpm", "1000000000", "--tpm", "1000000000"),
    }
    checkout = None
    if args.compare:
        checkout = worktree(args.compare)
        servers["before"] = start_checkout(checkout, args.workers)
    figures: dict[str, list] = {key: [] for key in ("rps", "p99", "chunks", "paced_chunks", "lateness")}
    figures.update({f"{who}_{key}": [] for who in ("base", "before", "limits") for key in ("rps", "p99", "chunks")})
    ideal_paced = (args.tokens - 1) * 0.010
    try:
        for round_number in range(1, args.rounds + 1):
            rps, p99 = run_wrk(servers["baseline"].port, args.duration)
            figures["base_rps"].append(rps)
            figures["base_p99"].append(p99)
            rps, p99 = run_wrk(servers["mock"].port, args.duration)
            figures["rps"].append(rps)
            figures["p99"].append(p99)
            chunks, _ = asyncio.run(stream_wave(servers["baseline"].port, args.streams, args.tokens))
            figures["base_chunks"].append(chunks)
            chunks, _ = asyncio.run(stream_wave(servers["mock"].port, args.streams, args.tokens))
            figures["chunks"].append(chunks)
            chunks, durations = asyncio.run(stream_wave(servers["mock_paced"].port, args.streams, args.tokens))
            figures["paced_chunks"].append(chunks)
            figures["lateness"].append(median(durations) - ideal_paced)
            for who in ("before", "limits"):
                if who in servers:
                    rps, p99 = run_wrk(servers[who].port, args.duration)
                    figures[f"{who}_rps"].append(rps)
                    figures[f"{who}_p99"].append(p99)
                    chunks, _ = asyncio.run(stream_wave(servers[who].port, args.streams, args.tokens))
                    figures[f"{who}_chunks"].append(chunks)
            print(
                f"round {round_number}: non-stream req/s mock {figures['rps'][-1]:.0f} / baseline "
                f"{figures['base_rps'][-1]:.0f}; stream chunks/s mock {figures['chunks'][-1]:.0f} / baseline "
                f"{figures['base_chunks'][-1]:.0f}; paced {figures['paced_chunks'][-1]:.0f}",
                flush=True,
            )
    finally:
        for server in servers.values():
            server.stop()
        if checkout is not None:
            remove_worktree(checkout)

    m = {key: median(values) for key, values in figures.items() if values}
    print()
    print(
        f"{args.workers} workers, {os.cpu_count()} CPUs, medians of {args.rounds} rounds "
        "(load generator on the same machine)"
    )
    print("| load | mock-openai | baseline Flask app | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| non-stream req/s (64 conns) | {m['rps']:.0f} | {m['base_rps']:.0f} | {m['rps'] / m['base_rps']:.2f} |")
    print(f"| non-stream p99 ms | {m['p99']:.1f} | {m['base_p99']:.1f} | {m['p99'] / m['base_p99']:.2f} |")
    print(
        f"| content chunks/s, {args.streams} streams x {args.tokens} tokens, ITL 0 | {m['chunks']:.0f} | "
        f"{m['base_chunks']:.0f} | {m['chunks'] / m['base_chunks']:.2f} |"
    )
    print(
        f"| content chunks/s, same, ITL 10 ms | {m['paced_chunks']:.0f} | {m['base_chunks']:.0f} | "
        f"{m['paced_chunks'] / m['base_chunks']:.2f} |"
    )
    if "before_rps" in m:
        print(f"\nThis commit against {args.compare} (feature-off path, medians of the same rounds):")
        print(f"| load | now | {args.compare} | ratio |")
        print("|---|---:|---:|---:|")
        print(f"| non-stream req/s | {m['rps']:.0f} | {m['before_rps']:.0f} | {m['rps'] / m['before_rps']:.2f} |")
        print(f"| non-stream p99 ms | {m['p99']:.1f} | {m['before_p99']:.1f} | {m['p99'] / m['before_p99']:.2f} |")
        print(
            f"| content chunks/s, ITL 0 | {m['chunks']:.0f} | {m['before_chunks']:.0f} | "
            f"{m['chunks'] / m['before_chunks']:.2f} |"
        )
    print("\nWith rate limits on (shared state on every request; limits too high to refuse):")
    print("| load | limits on | all off | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| non-stream req/s | {m['limits_rps']:.0f} | {m['rps']:.0f} | {m['limits_rps'] / m['rps']:.2f} |")
    print(
        f"| content chunks/s, ITL 0 | {m['limits_chunks']:.0f} | {m['chunks']:.0f} | "
        f"{m['limits_chunks'] / m['chunks']:.2f} |"
    )
    print(
        f"\nPaced streams (ITL 10 ms): median stream took {m['lateness'] * 1000:+.0f} ms against the ideal "
        f"{ideal_paced * 1000:.0f} ms (connection set-up and time to headers included)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
