"""This commit against an earlier one, or against itself with other settings: many short interleaved rounds,
per-round ratios.

    python bench/compare.py REF [--rounds 8] [--duration 5] [--streams 1000] [--tokens 64] [--body-tokens 16] [--pin]
    python bench/compare.py --setting journal.enabled=false [--pin]   # what the journal costs
    python bench/compare.py REF --both shared.redis_url=redis://127.0.0.1:6379/0 --pin   # both on Redis
    python bench/compare.py REF --pin --paced 600   # and a paced closed loop: the CPU each server spends on it

The machine is shared and noisy; the median of per-round ratios (each round loads both servers back to back,
in alternating order) is steadier than a ratio of medians taken over minutes. ``--pin`` runs one worker per
server on CPU 0 and the load (wrk, with ``wrk/stream.lua`` checking every stream) on CPU 1.

``--paced N`` adds a third load to each round: N streams at an inter-token latency of 10 ms kept open for the
round's duration, new ones starting as others end (:func:`loads.paced_loop`, read by this process). Both
servers serve the same load, so what differs is the CPU each spends on it (the ratio: lower is better) and
how late its tokens come (gap p99). Each stream comes on a connection of its own (HTTP/1.0), or with
``--paced-keep-alive`` each client's streams one after another on one connection (HTTP/1.1, chunked).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))
import loads  # noqa: E402
from servers import remove_worktree, start_checkout, start_ours, worktree  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", nargs="?", help="an earlier commit (or use --setting)")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="instead of REF: this commit with these settings, as the baseline",
    )
    parser.add_argument(
        "--both",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a setting for both servers (on one Redis, each gets a prefix of its own)",
    )
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=64, help="tokens a stream")
    parser.add_argument("--body-tokens", type=int, default=16, help="max_tokens of the non-stream bodies")
    parser.add_argument(
        "--system-prompt", type=int, default=0, metavar="CHARS", help="a system prompt of this much prose first"
    )
    parser.add_argument("--turns", type=int, default=0, help="earlier exchanges of a conversation, sent first")
    parser.add_argument("--tools", type=int, default=0, help="function tools sent with every request")
    parser.add_argument(
        "--distinct", type=int, default=0, metavar="WORDS", help="a prompt of this many words of its own a request"
    )
    parser.add_argument("--close", action="store_true", help="bodies with Connection: close, a connection each")
    parser.add_argument(
        "--api",
        choices=("chat", "responses", "messages", "embeddings", "azure"),
        default="chat",
        help="both loads to this API (responses: stored; messages: Anthropic's; embeddings: bodies only; azure: "
        "Azure OpenAI's chat route)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pin", action="store_true", help="servers (one worker) on CPU 0, the load on CPU 1")
    parser.add_argument(
        "--paced", type=int, default=0, metavar="N", help="also a closed loop of N streams at ITL 10 ms each round"
    )
    parser.add_argument(
        "--paced-keep-alive",
        action="store_true",
        help="the paced streams of each client on one kept-alive connection (HTTP/1.1), as a pooled SDK client",
    )
    args = parser.parse_args()
    cpus = None
    if args.pin:
        args.workers, cpus = 1, "0"
        os.sched_setaffinity(0, {int(loads.LOAD_CPUS)})  # the paced streams' reader is this process
    if bool(args.ref) == bool(args.setting):
        parser.error("give either REF or --setting")
    both = _env(args.both)
    checkout = worktree(args.ref) if args.ref else None
    if checkout:
        baseline = start_checkout(checkout, args.workers, cpus, env=both | _prefix("before", both))
    else:
        baseline = start_ours(0, args.workers, cpus, env=both | _prefix("before", both) | _env(args.setting))
    servers = {"now": start_ours(0, args.workers, cpus, env=both | _prefix("now", both)), "before": baseline}
    label = args.ref or ", ".join(args.setting)
    rps = {"now": [], "before": []}
    chunks = {"now": [], "before": []}
    # The server's CPU per request and per content chunk: what each costs where the load client, not the
    # server, sets the pace (long streams: wrk checking 700 KB responses runs out of its core first).
    body_cpu = {"now": [], "before": []}
    chunk_cpu = {"now": [], "before": []}
    paced = {"now": [], "before": []}
    try:
        for round_number in range(args.rounds):
            order = ["now", "before"] if round_number % 2 == 0 else ["before", "now"]
            for who in order:
                body_load = loads.wrk_bodies(
                    servers[who],
                    args.body_tokens,
                    64,
                    args.duration,
                    args.close,
                    args.system_prompt,
                    args.turns,
                    args.tools,
                    args.api,
                    args.distinct,
                )
                rps[who].append(body_load["rps"])
                body_cpu[who].append(body_load["server_cpu"] / body_load["rps"] * 1e6)
            for who in order if args.api != "embeddings" else ():
                streamed = loads.wrk_streams(
                    servers[who],
                    args.tokens,
                    args.streams,
                    args.duration,
                    args.system_prompt,
                    args.turns,
                    args.tools,
                    args.api,
                    args.distinct,
                )
                if streamed["bad"]:
                    raise RuntimeError(f"{streamed['bad']} incomplete or wrong streams from {who}")
                chunks[who].append(streamed["chunks_per_s"])
                chunk_cpu[who].append(streamed["server_cpu"] / streamed["chunks_per_s"] * 1e6)
            for who in order if args.paced else ():
                held = loads.paced_loop(
                    servers[who], args.paced, args.tokens, args.duration, itl_ms=10, keep_alive=args.paced_keep_alive
                )
                if held["failures"]:
                    raise RuntimeError(f"{held['failures']} paced streams from {who} failed")
                paced[who].append(held)
            line = f"round {round_number + 1}: req/s {rps['now'][-1]:.0f} / {rps['before'][-1]:.0f}"
            if chunks["now"]:
                line += f", chunks/s {chunks['now'][-1]:.0f} / {chunks['before'][-1]:.0f}"
            if args.paced:
                now, before = paced["now"][-1], paced["before"][-1]
                line += f", paced CPU {now['server_cpu']:.3f} / {before['server_cpu']:.3f}"
                line += f", gap p99 {now['gap_p99']:.1f} / {before['gap_p99']:.1f} ms"
            print(line, flush=True)
    finally:
        for server in servers.values():
            server.stop()
        if checkout:
            remove_worktree(checkout)

    def ratios(figures):
        return [a / b for a, b in zip(figures["now"], figures["before"], strict=True)]

    print(f"\n| load | now | {label} | median of per-round ratios |")
    print("|---|---:|---:|---:|")
    bodies = "non-stream req/s" + (", Connection: close" if args.close else "")
    bodies += API_NAMES[args.api]
    for name, figures in (
        (bodies, rps),
        ("content chunks/s, ITL 0", chunks),
        ("server CPU a request, µs (lower is better)", body_cpu),
        ("server CPU a content chunk, µs (lower is better)", chunk_cpu),
    ):
        if not figures["now"]:
            continue  # no streams (embeddings)
        print(
            f"| {name} | {_figure(statistics.median(figures['now']))} | "
            f"{_figure(statistics.median(figures['before']))} | {statistics.median(ratios(figures)):.2f} |"
        )
    if args.paced:
        for name, key in ((f"paced closed loop of {args.paced}: server CPU (lower is better)", "server_cpu"),
                          (f"paced closed loop of {args.paced}: gap p99, ms", "gap_p99")):  # fmt: skip
            figures = {who: [held[key] for held in paced[who]] for who in paced}
            print(
                f"| {name} | {statistics.median(figures['now']):.3g} | {statistics.median(figures['before']):.3g} | "
                f"{statistics.median(ratios(figures)):.2f} |"
            )
    return 0


API_NAMES = {
    "chat": "",
    "responses": ", Responses API",
    "messages": ", Anthropic Messages",
    "embeddings": ", embeddings",
    "azure": ", Azure OpenAI",
}


def _figure(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _prefix(who: str, env: dict) -> dict:
    """Two servers on one Redis keep apart: each its own key prefix."""
    return (
        {"MOCK_OPENAI_SHARED_REDIS_PREFIX": f"bench-{who}-{os.getpid()}"}
        if "MOCK_OPENAI_SHARED_REDIS_URL" in env
        else {}
    )


def _env(settings: list[str]) -> dict:
    """``journal.enabled=false`` as the environment variable every layer reads."""
    env = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        section, _, key = name.partition(".")
        env[f"MOCK_OPENAI_{section.upper()}_{key.upper()}"] = value
    return env


if __name__ == "__main__":
    sys.exit(main())
