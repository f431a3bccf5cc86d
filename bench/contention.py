"""What the one-host shared state costs when workers use it at once: each operation run flat out by one process,
then by N processes at the same time, each pinned to a core of its own; calls a second in all, and N against one.
An operation under the cross-process lock stops scaling where the workers queue for it.

    .venv/bin/python bench/contention.py            # N = the cores this process may use, at most 8
    .venv/bin/python bench/contention.py --processes 2 --seconds 3

The operations, as requests call them (``app/shared/local.py``):

- ``prompt cache``: a long prompt's 11 prefixes read and cached (a 1,400-token prompt), 50 prompts in turn;
  without the lock.
- ``rate limits``: two buckets (requests and tokens) taken from, for 50 keys in turn; under the lock.
- ``sequences``: a running sequence counted and given back (``[latency] max_num_seqs``); under the lock.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from app.shared.local import LocalSharedState  # noqa: E402

PROMPTS = 50


def _prompt_cache(shared):
    prompts = [
        [hashlib.blake2b(f"{p}-{k}".encode(), digest_size=16).digest() for k in range(11)] for p in range(PROMPTS)
    ]

    def call(n):
        shared.cache_prefixes(prompts[n % PROMPTS], time.time() + 300)

    return call


def _rate_limits(shared):
    keys = [[f"key{p}\0requests", f"key{p}\0tokens"] for p in range(PROMPTS)]

    def call(n):  # a request and 100 tokens of limits far above what a run can take
        shared.take_from_buckets(keys[n % PROMPTS], [1e-9, 1e-7], [60.0, 60.0], time.time())

    return call


def _sequences(shared):
    def call(n):
        shared.acquire_sequence("gpt-4o-mini", 1 << 30, 0)
        shared.release_sequence("gpt-4o-mini")

    return call


OPERATIONS = {"prompt cache": _prompt_cache, "rate limits": _rate_limits, "sequences": _sequences}


def _run(path, operation, cpu, seconds, start, results):
    os.sched_setaffinity(0, {cpu})
    shared = LocalSharedState(path)
    call = OPERATIONS[operation](shared)
    call(0)
    start.wait()
    calls, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        for _ in range(100):
            call(calls)
            calls += 1
    results.put(calls / elapsed)


def rate(operation: str, cpus: list[int], seconds: float) -> float:
    """Calls a second of ``operation`` in all, one process on each of ``cpus`` at once."""
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "state.sqlite3")
        LocalSharedState(path).close()  # the files made before any process maps them
        start, results = context.Event(), context.Queue()
        processes = [context.Process(target=_run, args=(path, operation, cpu, seconds, start, results)) for cpu in cpus]
        for process in processes:
            process.start()
        time.sleep(0.5)  # all of them mapped and ready
        start.set()
        rates = [results.get(timeout=seconds + 30) for _ in processes]
        for process in processes:
            process.join()
        return sum(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = sorted(os.sched_getaffinity(0))
    parser.add_argument("--processes", type=int, default=min(8, len(cores)))
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    cpus = cores[: args.processes]
    print(f"| operation | 1 process, calls/s | {len(cpus)} processes, calls/s | {len(cpus)} / 1 |")
    print("|---|---:|---:|---:|")
    for operation in OPERATIONS:
        one, many = rate(operation, cpus[:1], args.seconds), rate(operation, cpus, args.seconds)
        print(f"| {operation} | {one:,.0f} | {many:,.0f} | {many / one:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
