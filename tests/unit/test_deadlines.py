"""The one timer that paces every stream (app/streaming/deadlines.py). Each test runs on a gevent hub of its own
(tests/hubs.py)."""

from __future__ import annotations

from time import monotonic

import gevent
from gevent.event import Event

from app.streaming.deadlines import TICK_S, sleep_until
from tests.hubs import own_hub


@own_hub
def test_each_sleeper_wakes_at_its_deadline_in_deadline_order():
    start = monotonic()
    deadlines = [start + 0.05 + 0.002 * (k % 10) for k in range(200)]  # all asked for before the first is due
    woke = []

    def sleeper(deadline):
        sleep_until(deadline)
        woke.append((deadline, monotonic()))

    gevent.joinall([gevent.spawn(sleeper, d) for d in deadlines], timeout=5)
    assert len(woke) == 200
    assert all(at >= deadline for deadline, at in woke)  # never early
    assert [d for d, _ in woke] == sorted(d for d, _ in woke)  # the earlier deadline first
    assert max(at - deadline for deadline, at in woke) < 0.1


@own_hub
def test_a_past_deadline_returns_at_once():
    start = monotonic()
    sleep_until(start - 1)
    assert monotonic() - start < TICK_S


@own_hub
def test_a_sleeper_woken_otherwise_is_not_woken_again_by_its_tick():
    """Killed while it waited, it leaves its tick: the tick must not switch into it once it waits elsewhere."""
    later = Event()
    events = []

    def sleeper():
        try:
            sleep_until(monotonic() + 0.05)
        except gevent.GreenletExit:
            events.append("killed")
        later.wait(0.3)  # now waiting for something else, past the tick it had asked for
        events.append("set" if later.is_set() else "timed out")

    greenlet = gevent.spawn(sleeper)
    gevent.sleep(0.01)
    greenlet.kill(gevent.GreenletExit, block=False)
    gevent.sleep(0.12)  # the tick at 50 ms has passed
    later.set()
    greenlet.join(2)
    assert events == ["killed", "set"]


@own_hub
def test_the_main_greenlet_can_sleep_too():
    """Flask's test client iterates a paced stream in the main greenlet."""
    deadline = monotonic() + 0.02
    sleep_until(deadline)
    assert monotonic() >= deadline
