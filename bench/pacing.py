"""Paced streams under load: are the gaps a client measures what was asked for?

    python bench/pacing.py [--streams 1000] [--tokens 50] [--itl 20 50] [--rounds 3]

Starts mock-openai with one gevent worker pinned to CPU 0 and reads ``--streams`` concurrent streams from
CPU 1 (raw asyncio sockets: the reader must cost little), for each inter-token latency in ``--itl``. Every
content event is stamped when the read that completed it returns; the figures pool every gap of every
stream: median, p90 and p99, against the setting. Also: time to first token (from the request's write)
and how long the client's own core was busy, since a saturated reader would distort the gaps.

A second configuration per ITL turns simulation features on (``--itl-jitter`` of 20% of the setting, and
``--max-concurrent-sequences`` above the stream count with ``load_slowdown = 0``, so the shared sequence
count is kept on every request but does not stretch the timing) to show what they cost at the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from run import BIN, Server, free_port  # noqa: E402

CONTENT = b'"delta":{"content"'


def start(itl: float, extra: list[str]) -> Server:
    port = free_port()
    command = ["taskset", "-c", "0", str(BIN / "mock-openai"), "-a", "127.0.0.1", "-p", str(port), "-w", "1"]
    command += ["--inter-token-latency", str(itl), "--max-connection-rate", "0", *extra]
    # No load slowdown: this measures what keeping the count costs, not the load model's intended stretch.
    return Server(f"ITL {itl}", command, port, env={"MOCK_OPENAI_LATENCY_LOAD_SLOWDOWN": "0"})


async def one_stream(port: int, request: bytes, tokens: int) -> tuple[float, list[float]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    writer.write(request)
    sent = time.monotonic()
    arrivals: list[float] = []
    pending = b""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        now = time.monotonic()
        pending += data
        *events, pending = pending.split(b"\n\n")
        arrivals += [now] * sum(1 for e in events if CONTENT in e)
    writer.close()
    if len(arrivals) != tokens:
        raise RuntimeError(f"stream ended after {len(arrivals)} of {tokens} content chunks")
    return arrivals[0] - sent, [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]


async def wave(port: int, streams: int, tokens: int):
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": tokens, "stream": True}
    ).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.0\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    return await asyncio.gather(*(one_stream(port, request, tokens) for _ in range(streams)))


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--itl", type=float, nargs="+", default=[20.0, 50.0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.streams * 2 + 256)), hard))
    print(
        f"{args.streams} streams x {args.tokens} tokens on one worker (CPU 0), reader on CPU 1, "
        f"medians of {args.rounds} rounds"
    )
    print("| ITL setting | features | gap p50 | gap p90 | gap p99 | p50 / setting | TTFT p50 | TTFT p99 | reader CPU |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for itl in args.itl:
        configs = {
            "all off": [],
            "jitter + sequences": ["--itl-jitter", str(itl / 5), "--max-concurrent-sequences", str(args.streams * 2)],
        }
        for name, extra in configs.items():
            server = start(itl, extra)
            rows = []
            try:
                for _ in range(args.rounds):
                    cpu = time.process_time()
                    started = time.monotonic()
                    results = asyncio.run(wave(server.port, args.streams, args.tokens))
                    busy = (time.process_time() - cpu) / (time.monotonic() - started)
                    gaps = [g for _, stream in results for g in stream]
                    ttfts = [t for t, _ in results]
                    rows.append(
                        (
                            statistics.median(gaps),
                            percentile(gaps, 0.9),
                            percentile(gaps, 0.99),
                            statistics.median(ttfts),
                            percentile(ttfts, 0.99),
                            busy,
                        )
                    )
            finally:
                server.stop()
            p50, p90, p99, ttft50, ttft99, busy = (statistics.median(col) for col in zip(*rows, strict=True))
            print(
                f"| {itl:g} ms | {name} | {p50 * 1000:.1f} ms | {p90 * 1000:.1f} ms | {p99 * 1000:.1f} ms | "
                f"{p50 * 1000 / itl:.2f} | {ttft50 * 1000:.0f} ms | {ttft99 * 1000:.0f} ms | {busy:.0%} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
