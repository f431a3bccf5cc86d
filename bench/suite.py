"""The benchmark suite: mock-openai, the floor Flask app and aimock, side by side, one worker each on CPU 0 and
the load on CPU 1, in interleaved rounds (the order of the servers alternates from round to round).

    python bench/suite.py [--rounds 3] [--duration 5] [--quick] [--no-record]

Loads (every figure is the median over rounds; each row also gives the CPU each side used and the steal):

- non-streaming chat completions, kept alive, wrk at 64 and 512 connections, max_tokens 16 and 256;
- unpaced streams (no inter-token latency), wrk with ``wrk/stream.lua`` at 100, 1,000 and 10,000 concurrent
  streams of 64 tokens: content events per second in whole, checked responses, and the stream time's p50 and
  p99 (fairness: p99 at most 3x p50);
- keep-alive off: the first original's own load test (hey, 512 connections offering 3,000 requests a second,
  ``--disable-keepalive``, max_tokens 2048, then a stream of 64 tokens) and wrk with ``Connection: close``;
- paced capacity at an inter-token latency of 10 ms: the most streams each server holds with no failure, gap
  p50 <= 12.5 ms, gap p99 <= 30 ms and first tokens p99 <= 100 ms (``loads.held``), in two shapes: one wave of
  200-token streams opened over 1 s, and a closed loop keeping that many 64-token streams open for 10 s, new
  ones starting as others end; and, read
  against them, the kernel's part (``sendfloor.py``): what one event's ``send`` costs on this machine alone;
- start-up time (spawn to first answer) and idle resident memory; and two workers against one (unpinned).

Results are printed as Markdown and, unless ``--no-record``, appended to ``bench/RESULTS.md`` with the date and
the machine. A load client above 90% of its core is flagged: its figure measures the client, not the server.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
import loads  # noqa: E402
import sendfloor  # noqa: E402
import servers  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
CAPACITY_STEPS = (100, 200, 300, 400, 600, 800, 1200, 1600, 2400, 3200)


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"
    )
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, Python {platform.python_version()}"


def measured_commit() -> str:
    """The commit the figures are of (several runs a day need telling apart), and whether the tree had changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=RESULTS.parent, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    return commit + (" with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def median(rows, key):
    values = [row[key] for row in rows if key in row]
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk or hey run")
    parser.add_argument("--quick", action="store_true", help="one round, 3 s runs, no 10,000-stream load")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
    for tool in ("wrk", "hey", "taskset"):
        if not any(Path(d, tool).exists() for d in os.environ["PATH"].split(":")):
            sys.exit(f"bench: {tool} is needed (apt-get install wrk hey util-linux)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    started = {}
    unpaced = {
        "floor": servers.start_floor(cpus="0"),
        "aimock": servers.start_aimock(0, cpus="0"),
        "ours": servers.start_ours(0, cpus="0"),
    }
    unpaced = {name: server for name, server in unpaced.items() if server is not None}
    for name, server in unpaced.items():
        started[name] = (server.startup_s, server.rss_mb())
    if importlib.util.find_spec("bpe_openai") is not None:  # installed: also without it, as a default install runs
        hidden = Path(tempfile.mkdtemp(prefix="mock-openai-bench-")) / "bpe_openai"
        hidden.mkdir()
        (hidden / "__init__.py").write_text('raise ImportError("hidden: the default install has no tokenizer")\n')
        plain = servers.start_ours(0, cpus="0", env={"PYTHONPATH": str(hidden.parent)})
        started["ours, no [tokenizer] extra"] = (plain.startup_s, plain.rss_mb())
        plain.stop()
        started["ours, with [tokenizer]"] = started.pop("ours")
    os.sched_setaffinity(0, {1})  # this process reads the paced streams; wrk and hey start from here on CPU 1
    loads.client_cpu.start()  # what children used before (npm installing aimock) is not a load's

    table: dict[str, dict[str, list]] = {}

    def record(load: str, who: str, figures: dict):
        table.setdefault(load, {}).setdefault(who, []).append(figures)
        print(f"  {load:48s} {who:7s} " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()), flush=True)

    stream_counts = (100, 1000) if args.quick else (100, 1000, 10000)
    try:
        for round_number in range(args.rounds):
            print(f"round {round_number + 1} of {args.rounds}", flush=True)
            order = list(unpaced.items())
            if round_number % 2:
                order.reverse()
            for connections in (64, 512):
                for tokens in (16, 256):
                    for who, server in order:
                        figures = loads.wrk_bodies(server, tokens, connections, args.duration)
                        record(f"bodies, {connections} connections, max_tokens {tokens}", who, figures)
            for streams in stream_counts:
                for who, server in order:
                    figures = loads.wrk_streams(server, 64, streams, args.duration + (5 if streams > 1000 else 0))
                    record(f"unpaced streams, {streams} at once, 64 tokens", who, figures)
            for who, server in order:
                record("keep-alive off: hey 512 conns, 3000 req/s offered, 2048 tokens", who,
                       loads.hey_bodies(server, 2048, 512, 3000, args.duration))  # fmt: skip
                record("keep-alive off: hey, stream of 64 tokens", who,
                       loads.hey_bodies(server, 64, 512, 3000, args.duration, stream=True))  # fmt: skip
                record("keep-alive off: wrk Connection: close, 64 conns", who,
                       loads.wrk_bodies(server, 16, 64, args.duration, close=True))  # fmt: skip
    finally:
        for server in unpaced.values():
            server.stop()

    capacity = paced_capacity(args, started)
    # the kernel's part at the closed loop's step where ours failed (or its last): sends alone, nothing else
    steps = capacity.get(("ours", "closed loop"), (0, [{"streams": 1200}]))[1]
    send_floor = sendfloor.send_floor(steps[-1]["streams"])
    scaling = two_workers(args)
    report = render(args, table, capacity, send_floor, scaling, started)
    print("\n" + report)
    if not args.no_record:
        with RESULTS.open("a") as out:
            out.write("\n" + report)
        print(f"appended to {RESULTS}")
    return 0


# The two shapes of paced load: one wave of streams opened over a second, and a closed loop that keeps N open
# for 10 s, new ones starting as others end (their starts then compete with running streams all along).
SHAPES = {
    "one wave": lambda server, streams: loads.paced_wave(server, streams, 200, 1.0),
    "closed loop": lambda server, streams: loads.paced_loop(server, streams, 64, 10.0),
}


def paced_capacity(args, started) -> dict:
    """For each server that paces and each shape, the most streams held at ITL 10 ms, and the figures at each
    step."""
    capacity = {}
    paced = {"aimock": lambda: servers.start_aimock(10, cpus="0"), "ours": lambda: servers.start_ours(10, cpus="0")}
    for who, start in paced.items():
        server = start()
        if server is None:
            continue
        try:
            for shape, load in SHAPES.items():
                steps = []
                for streams in CAPACITY_STEPS:
                    figures = load(server, streams)
                    steps.append(figures)
                    print(
                        f"  paced ITL 10 ms {who:7s} {shape}: " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items())
                    )
                    if not loads.held(figures, 10):
                        break
                held = [f["streams"] for f in steps if loads.held(f, 10)]
                capacity[who, shape] = (max(held) if held else 0, steps)
        finally:
            server.stop()
    return capacity


def two_workers(args) -> dict:
    """Non-streaming req/s and unpaced chunks/s with two workers against one, unpinned (the load shares the two
    cores, so this understates what two cores of their own would give)."""
    figures = {}
    for workers in (1, 2):
        server = servers.start_ours(0, workers=workers)
        try:
            bodies = [loads.wrk_bodies(server, 16, 64, args.duration)["rps"] for _ in range(2)]
            streams = [loads.wrk_streams(server, 64, 1000, args.duration)["chunks_per_s"] for _ in range(2)]
            figures[workers] = (statistics.median(bodies), statistics.median(streams))
        finally:
            server.stop()
    return figures


def render(args, table, capacity, send_floor, scaling, started) -> str:
    names = [n for n in ("floor", "aimock", "ours") if any(n in row for row in table.values())]
    lines = [
        f"## {date.today().isoformat()}, at {measured_commit()}: {machine()}",
        "",
        f"One worker per server on CPU 0, the load on CPU 1; medians of {args.rounds} interleaved rounds of "
        f"{args.duration} s. CPU: cores used by server / client. ⚠ marks a client above 90% of its core.",
        "",
        "| load | measure | " + " | ".join(names) + " | ours / aimock | ours / floor | CPU server (ours, aimock) | "
        "client CPU max | steal |",
        "|---|---|" + "---:|" * len(names) + "---:|---:|---|---:|---:|",
    ]
    for load, rows in table.items():
        measures = [("req/s", "rps"), ("p99 ms", "p99")]
        if load.startswith("unpaced"):
            measures = [("content chunks/s", "chunks_per_s"), ("stream p50 ms", "p50"), ("stream p99 ms", "p99")]
        failures = {n: sum(r.get("errors", 0) + r.get("bad", 0) for r in rows.get(n, [])) for n in names}
        for label, key in measures:
            values = {n: median(rows.get(n, []), key) for n in names}
            client = max((median(rows.get(n, []), "client_cpu") for n in names), default=float("nan"))
            steal = statistics.median([r["steal"] for n in names for r in rows.get(n, [])])
            ratio = {
                other: (values["ours"] / values[other]) if values.get(other) else float("nan")
                for other in ("aimock", "floor")
                if other in values
            }
            cells = " | ".join(f"{values[n]:.0f}" + (f" ({failures[n]} failed)" if failures[n] else "") for n in names)
            cpu = ", ".join(f"{median(rows.get(n, []), 'server_cpu'):.2f}" for n in ("ours", "aimock") if n in names)
            lines.append(
                f"| {load} | {label} | {cells} | {ratio.get('aimock', float('nan')):.2f} | "
                f"{ratio.get('floor', float('nan')):.2f} | {cpu} | {client:.2f}{' ⚠' if client > 0.9 else ''} | "
                f"{steal:.1%} |"
            )
    lines += [
        "",
        "Paced streams at ITL 10 ms held (no failure, gap p50 <= 12.5 ms, p99 <= 30 ms, first token p99 <= 100 ms):",
        "one wave of 200-token streams opened over 1 s, and a closed loop keeping that many 64-token streams open",
        "for 10 s:",
        "",
    ]
    lines += ["| server | shape | streams held | at the first step that failed: streams, gap p50, gap p99, first "
              "token p99, failures, server CPU, client CPU |", "|---|---|---:|---|"]  # fmt: skip
    for (who, shape), (count, steps) in capacity.items():
        last = steps[-1]
        lines.append(
            f"| {who} | {shape} | {count} | {last['streams']}, {last['gap_p50']:.1f} ms, {last['gap_p99']:.1f} ms, "
            f"{last['ttft_p99']:.0f} ms, {last['failures']}, {last['server_cpu']:.2f}, {last['client_cpu']:.2f} |"
        )
    lines += [
        "",
        f"The kernel's part (`sendfloor.py`): {send_floor['streams']} loopback connections, one "
        f"{sendfloor.EVENT_BYTES}-byte event to each every 10 ms from a loop that does nothing else: "
        f"{send_floor['us_per_send']:.2f} µs of CPU a send ({send_floor['kernel_us_per_send']:.2f} in the kernel), "
        f"{send_floor['sender_cpu']:.2f} of the core; sends alone would fill it at "
        f"{send_floor['streams_one_core']:.0f} streams.",
    ]
    lines += ["", "| server | start-up (spawn to first answer) | idle RSS per process, MB |", "|---|---:|---|"]
    for who, (seconds, rss) in started.items():
        lines.append(f"| {who} | {seconds:.2f} s | {', '.join(f'{mb:.0f}' for mb in sorted(rss.values()))} |")
    if scaling:
        (b1, s1), (b2, s2) = scaling[1], scaling[2]
        lines += [
            "",
            f"Two workers against one (unpinned, the load on the same two cores): non-stream req/s {b2:.0f} / "
            f"{b1:.0f} = {b2 / b1:.2f}x, unpaced chunks/s {s2:.0f} / {s1:.0f} = {s2 / s1:.2f}x.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    started_at = time.monotonic()
    code = main()
    print(f"suite took {time.monotonic() - started_at:.0f} s")
    sys.exit(code)
