"""The shared state's one interface, on both backends (one host's files, and Redis): what one process writes,
the others see."""

from __future__ import annotations

import multiprocessing
import os
import uuid

import pytest

from app.shared import open_shared

FAR = 4e9  # a time in 2096


@pytest.fixture(params=["local", "redis"])
def path(request, tmp_path):
    """Where the state is, as ``open_``'s argument: a file, or a Redis URL and a prefix of this test's own."""
    if request.param == "local":
        return str(tmp_path / "shared.sqlite3")
    return (request.getfixturevalue("redis_url"), f"test-{uuid.uuid4().hex}")


def open_(where):
    if isinstance(where, tuple):
        return open_shared("", redis_url=where[0], redis_prefix=where[1])
    return open_shared(where)


def _take_buckets(path, rounds):
    shared = open_(path)
    for _ in range(rounds):
        # Values are times; one far in the future stays live.
        shared.update_buckets(["count"], lambda values: ([(values[0] or FAR) + 1], None))


def _hold_a_sequence(path, ready):
    shared = open_(path)
    shared.acquire_sequence("m", 5, 0)
    ready.set()
    multiprocessing.Event().wait(30)  # killed by the test


def test_version_and_runtime_layer_are_seen_by_another_process(path):
    first, second = open_(path), open_(path)
    assert first.version() == second.version() == 0 and second.runtime_layer() == {}
    first.set_runtime_layer({"latency": {"ttft_ms": 5}})
    assert second.version() == 1 and second.runtime_layer() == {"latency": {"ttft_ms": 5}}


def test_changes_reads_the_version_and_the_pending_faults_at_once(path):
    first, second = open_(path), open_(path)
    assert second.changes() == (0, 0)
    first.set_runtime_layer({"latency": {"ttft_ms": 5}})
    first.add_faults([{"error": "500", "count": 2}])
    assert second.changes() == (second.version(), second.pending_faults()) == (1, 2)


def test_on_redis_requests_that_ask_at_once_share_reads_but_none_is_answered_from_one_sent_before_it(redis_url):
    """The coalescing of a gevent worker, with each reply from Redis held back until the test lets it go: a
    request that asks while a read is out waits for the next read, which goes when that one is back."""
    import gevent
    from gevent.event import AsyncResult, Event

    prefix = f"test-{uuid.uuid4().hex}"
    reader, writer = (open_shared("", redis_url=redis_url, redis_prefix=prefix) for _ in "rw")
    reader._coalesced, reader._spawn = AsyncResult, gevent.spawn  # as in a gevent worker
    reads, gates, real = [], [], reader._read_changes

    def held_read():
        value = real()  # Redis answers now; the reply reaches the worker when the gate opens
        reads.append(value)
        gates.append(Event())
        gates[-1].wait()
        return value

    reader._read_changes = held_read
    first = gevent.spawn(reader.changes)
    gevent.sleep(0)  # its read is out
    writer.add_faults([{"error": "500", "count": 1}])  # queued after that read was sent
    later = [gevent.spawn(reader.changes) for _ in range(5)]
    gevent.sleep(0)
    assert len(reads) == 1  # the five wait for the next read
    gates[0].set()
    gevent.sleep(0.01)
    assert first.value == (0, 0) and len(reads) == 2  # one read, sent now, for all five
    gates[1].set()
    gevent.joinall(later, timeout=5)
    assert [g.value for g in later] == [(0, 1)] * 5
    reader._read_changes = real
    writer.add_faults([{"error": "500", "count": 1}])
    assert reader.changes() == (0, 2)  # nothing out: a read of its own, at once
    assert not reader._reading


def test_faults_are_served_first_in_first_out_and_by_model(path):
    shared = open_(path)
    shared.add_faults([{"error": "429", "count": 2, "model": "a"}, {"error": "500", "count": 1}])
    assert shared.pending_faults() == 3
    assert shared.take_fault("b")["error"] == "500"  # the first for any model
    assert [shared.take_fault("a")["error"] for _ in range(2)] == ["429", "429"]
    assert shared.take_fault("a") is None and shared.pending_faults() == 0
    assert [(f["used"], f["remaining"]) for f in shared.faults()] == [(2, 0), (1, 0)]
    shared.add_faults([{"error": "502", "count": 4}])
    assert shared.clear_faults() == 4 and shared.faults() == []


def test_a_fault_for_one_test_is_taken_and_cleared_by_that_test_only(path):
    shared = open_(path)
    shared.add_faults([{"error": "429", "count": 2, "test_id": "t1"}, {"error": "500", "count": 1, "test_id": "t2"}])
    assert shared.take_fault("m") is None and shared.take_fault("m", "t3") is None  # untagged, another test
    taken = shared.take_fault("m", "t2")
    assert taken["error"] == "500" and taken["test_id"] == "t2"
    assert shared.take_fault("m", "t1")["error"] == "429"
    assert shared.clear_faults("t1") == 1 and shared.pending_faults() == 0
    assert [f["test_id"] for f in shared.faults()] == ["t2"]
    shared.add_faults([{"error": "502", "count": 3, "test_id": "t2"}, {"error": "503", "count": 1}])
    assert shared.clear_faults("t2") == 3 and shared.pending_faults() == 1
    assert shared.take_fault("m", "anyone")["error"] == "503"  # an untagged fault is for every request


def test_bucket_updates_are_atomic_across_processes(path):
    # As under gunicorn: the processes fork before any of them opens the file.
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_take_buckets, args=(path, 300)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert open_(path).update_buckets(["count"], lambda values: (None, values[0])) == FAR + 900


def test_a_bucket_whose_time_has_passed_reads_as_new_and_its_slot_is_reused(path):
    import time

    shared = open_(path)
    shared.update_buckets(["a"], lambda values: ([time.time() - 1], None))
    assert shared.update_buckets(["a"], lambda values: (None, values)) == [None]
    shared.update_buckets(["b", "c"], lambda values: ([FAR, FAR + 1], None))
    assert shared.update_buckets(["c", "b"], lambda values: (None, values)) == [FAR + 1, FAR]


def test_a_take_from_buckets_moves_every_bucket_or_none(path):
    import time

    shared, now = open_(path), time.time()
    assert shared.take_from_buckets(["r", "t"], [20.0, 30.0], [60.0, 60.0], now) == (True, [None, None])
    assert shared.take_from_buckets(["r", "t"], [20.0, 30.0], [60.0, 60.0], now) == (True, [now + 20, now + 30])
    # t would end 90 s ahead: neither moves
    assert shared.take_from_buckets(["r", "t"], [20.0, 30.0], [60.0, 60.0], now) == (False, [now + 40, now + 60])
    assert open_(path).take_from_buckets(["r"], [20.0], [60.0], now) == (True, [now + 40])  # exactly at the end
    assert shared.take_from_buckets(["r"], [1e-3], [60.0], now) == (False, [now + 60])
    later = now + 61  # past every bucket's time: as new, whatever they held
    assert shared.take_from_buckets(["r", "t"], [1.0, 1.0], [60.0, 60.0], later) == (True, [None, None])


def test_a_minute_of_forty_thousand_api_keys_is_metered_on_one_host(tmp_path):
    """Each API key and model holds two budgets until they are full again: a load with a key of its own for
    every virtual user keeps that many live at once, and every one is metered (the table used to end at 65,536
    budgets, and the request past it got a 500)."""
    import time

    shared, now = open_(str(tmp_path / "shared.sqlite3")), time.time()
    for n in range(40_000):
        keys = [f"key-{n}:gpt-4o:requests", f"key-{n}:gpt-4o:tokens"]
        assert shared.take_from_buckets(keys, [1.0, 2.0], [60.0, 60.0], now) == (True, [None, None])
    assert shared.take_from_buckets(["key-7:gpt-4o:requests"], [1.0], [60.0], now) == (True, [now + 1])


def test_a_take_from_buckets_tests_the_bound_as_python_does_to_the_bit(path):
    import time

    shared, now = open_(path), time.time()  # (Redis expires a bucket by its own clock)
    cost, within = 60 / 7, 60.0
    taken, value = 0, None
    while True:  # seven sevenths of a window, added up in doubles: the seventh lands past 60 s or not
        fits = max(value or now, now) + cost <= now + within
        ok, (before,) = shared.take_from_buckets(["sevenths"], [cost], [within], now)
        assert ok == fits and before == value
        if not ok:
            break
        taken, value = taken + 1, max(value or now, now) + cost
    assert taken in (6, 7)


def _take_in_turn(path, rounds, ready, now):
    shared = open_(path)
    ready.wait(10)
    for _ in range(rounds):
        shared.take_from_buckets(["shared"], [1000.0], [100_000.5], now)


def test_takes_from_one_bucket_by_processes_at_once_are_counted_exactly(path):
    """Four processes take 60 times each from a bucket that holds 100: exactly 100 are taken."""
    import time

    context, now = multiprocessing.get_context("fork"), time.time()
    ready = context.Event()
    workers = [context.Process(target=_take_in_turn, args=(path, 60, ready, now)) for _ in range(4)]
    for worker in workers:
        worker.start()
    ready.set()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert open_(path).take_from_buckets(["shared"], [0.0], [1e9], now) == (True, [now + 100 * 1000.0])


def test_sequences_count_across_processes_and_a_dead_worker_gives_its_back(path):
    # As under gunicorn: the processes fork before any of them opens the file.
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_hold_a_sequence, args=(path, ready))
    holder.start()
    assert ready.wait(10)
    shared = open_(path)
    assert shared.running_sequences("m") == 1
    assert shared.acquire_sequence("m", 2, 1) == ("running", 2)
    assert shared.acquire_sequence("m", 2, 1) == ("queued", 2)
    assert shared.acquire_sequence("m", 2, 1) == ("full", 2)
    holder.kill()
    holder.join()
    shared.forget_process(holder.pid)
    assert shared.running_sequences("m") == 1
    assert shared.promote_queued("m", 1, 2) == (1, 2)
    shared.release_sequence("m")
    shared.release_sequence("m")
    assert shared.running_sequences("m") == 0


def test_a_new_server_gets_a_new_file_and_removes_it_at_exit():
    import subprocess
    import sys

    from app.shared import shared_path

    script = "from app.shared import open_shared, shared_path; p = shared_path(''); open_shared(p); print(p)"
    made = [subprocess.check_output([sys.executable, "-c", script], text=True).strip() for _ in range(2)]
    assert made[0] != made[1]
    assert not any(os.path.exists(os.path.dirname(path)) for path in made)  # removed when the process ended
    assert shared_path("/x/y.sqlite3") == "/x/y.sqlite3"  # a path of the user's own is used as it is


def test_the_prompt_cache_says_which_prefixes_were_cached_and_caches_them_all(path):
    import time

    shared, later = open_(path), time.time() + 60
    one, two, three = b"1" * 16, b"2" * 16, b"3" * 16
    assert shared.cache_prefixes([one, two], later) == [False, False]  # nothing cached yet: all are cached now
    assert open_(path).cache_prefixes([one, two, three], later) == [True, True, False]  # another process sees them
    assert shared.cache_prefixes([b"y" * 16, three], later) == [False, True]


def _prefix(prompt: int, k: int) -> bytes:
    import hashlib

    return hashlib.blake2b(f"prompt {prompt} prefix {k}".encode(), digest_size=16).digest()


def _cache_prompts(path, first, count):
    import time

    shared = open_(path)
    for n in range(first, first + count):
        shared.cache_prefixes([_prefix(n, k) for k in range(2)], time.time() + 60)


def test_workers_caching_prompts_at_once_keep_nearly_all_and_invent_none(path):
    """Four processes cache 500 prompts each at once (without a lock, on one host): afterwards the prefixes are
    cached, but for one lost now and then where two workers raced for a slot, and one never sent is not."""
    import time

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_cache_prompts, args=(path, 500 * n, 500)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    shared, later = open_(path), time.time() + 60
    sent = [_prefix(n, k) for n in range(2000) for k in range(2)]
    assert sum(shared.cache_prefixes(sent, later)) >= 0.99 * len(sent)
    assert shared.cache_prefixes([_prefix(n, 2) for n in range(200)], later) == [False] * 200


def test_the_prompt_cache_does_not_wait_for_the_lock_the_workers_write_under(tmp_path):
    """A worker holding the shared lock (adding a fault, counting a sequence) keeps no long prompt waiting."""
    import fcntl
    import threading
    import time

    path = str(tmp_path / "shared.sqlite3")
    shared = open_(path)
    answers = []
    with open(path + ".ctl", "a+b") as control:  # another open file: flock keeps it apart, as a worker's
        fcntl.flock(control, fcntl.LOCK_EX)
        try:
            reader = threading.Thread(
                target=lambda: answers.append(shared.cache_prefixes([b"k" * 16], time.time() + 9))
            )
            reader.start()
            reader.join(10)
            assert answers == [[False]]
        finally:
            fcntl.flock(control, fcntl.LOCK_UN)
            reader.join(10)


class _CountedReads:
    """A table's record format, counting the records read."""

    def __init__(self, record):
        self.record, self.reads, self.size = record, 0, record.size

    def unpack_from(self, *args):
        self.reads += 1
        return self.record.unpack_from(*args)

    def pack_into(self, *args):
        return self.record.pack_into(*args)


def test_a_full_prompt_cache_evicts_what_expires_first_and_reads_a_few_slots_a_prefix(tmp_path, monkeypatch):
    """A load test's distinct long prompts fill the table with live prefixes within their retention. The newest
    are still cached, each by evicting the record near its slot that expires first, and a prefix costs at most
    PREFIX_WAYS reads, not a walk of the whole table (which stalled a worker until gunicorn killed it)."""
    import time

    from app.shared import local

    monkeypatch.setattr(local, "PREFIX_SLOTS", 256)
    shared = open_(str(tmp_path / "shared.sqlite3"))
    table = shared._prefixes
    table.record = counted = _CountedReads(table.record)
    start = time.time() + 600
    for n in range(5000):  # twenty times the slots, every one still live
        assert shared.cache_prefixes([_prefix(n, 0)], start + n) == [False]
    assert counted.reads <= 5000 * local.PREFIX_WAYS
    newest = [_prefix(n, 0) for n in range(4950, 5000)]
    assert sum(shared.cache_prefixes(newest, start + 5000)) >= 45  # the last 50 sent, nearly all still there
    oldest = [_prefix(n, 0) for n in range(50)]
    assert shared.cache_prefixes(oldest, start + 5000) == [False] * 50  # evicted long since


def test_a_prompt_prefix_unused_past_its_retention_is_forgotten(path):
    import time

    shared = open_(path)
    shared.cache_prefixes([b"p" * 16, b"q" * 16], time.time() + 0.05)
    time.sleep(0.1)
    assert shared.cache_prefixes([b"p" * 16, b"q" * 16], time.time() + 60) == [False, False]
    assert shared.cache_prefixes([b"p" * 16, b"q" * 16], time.time() + 0.01) == [True, True]
    time.sleep(0.05)  # a shorter retention asked later does not shorten a longer one
    assert shared.cache_prefixes([b"p" * 16], time.time() + 60) == [True]


def test_kv_cache_blocks_are_taken_within_capacity_and_a_dead_workers_are_given_back(path):
    shared = open_(path)
    assert shared.take_blocks("m", 6, 10) and not shared.take_blocks("m", 5, 10)  # 11 > 10: none taken
    assert shared.take_blocks("m", 4, 10) and shared.used_blocks("m") == 10
    assert shared.take_blocks("m", -4, 10) and shared.used_blocks("m") == 6
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    worker = context.Process(target=_hold_blocks, args=(path, ready))
    worker.start()
    assert ready.wait(10)
    assert open_(path).used_blocks("m") == 9
    worker.kill()
    worker.join(10)
    shared.forget_process(worker.pid)
    assert shared.used_blocks("m") == 6


def _hold_blocks(path, ready):
    open_(path).take_blocks("m", 3, 10)
    ready.set()
    multiprocessing.Event().wait(30)  # killed by the test
