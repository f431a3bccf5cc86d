"""Sleeping until a deadline, for thousands of paced streams at once, on one timer.

``gevent.sleep`` makes, starts and disposes of one libev timer and one waiter each time it is called: a
paced stream calls it once per token, so at a thousand streams that is a hundred thousand timers a second,
about a third of a worker's time. Here the deadlines are rounded up to the next tick (half a millisecond)
and every stream due in the same tick waits in that tick's list; one timer, armed for the earliest tick
anyone waits for, wakes them in the order their deadlines fell due. Between ticks the worker does nothing
for pacing at all.

A stream woken by something else while it waits (the worker killing it as it stops, a ``gevent.Timeout``)
leaves its tick's list on the way out, so that no later tick switches into a greenlet that is by then
waiting for something else.
"""

from __future__ import annotations

import math
from heapq import heappop, heappush
from time import monotonic

import gevent
from gevent import get_hub, getcurrent

TICK_S = 0.0005


class Ticker:
    """The deadlines of one gevent hub's greenlets."""

    def __init__(self, hub):
        self.hub = hub
        self.waiting: dict[int, list] = {}  # tick -> greenlets, in the order they asked
        self.ticks: list[int] = []  # heap of the ticks in ``waiting``
        self.timer = None
        self.armed_for: int | None = None
        self.firing = False

    def sleep_until(self, deadline: float) -> None:
        current = getcurrent()
        tick = self.wake_at(deadline, current)
        try:
            self.hub.switch()
        except BaseException:
            waiters = self.waiting.get(tick)
            if waiters is not None and current in waiters:
                waiters.remove(current)
            raise

    def wake_at(self, deadline: float, waiter) -> int:
        """``waiter.switch()`` at the first tick at or after ``deadline``, unless ``waiter.dead`` by then: a
        greenlet, or what stands in for one (:mod:`app.server.pacing`). Returns the tick."""
        tick = math.ceil(deadline / TICK_S)
        waiters = self.waiting.get(tick)
        if waiters is None:
            waiters = self.waiting[tick] = []
            heappush(self.ticks, tick)
            if not self.firing and (self.armed_for is None or tick < self.armed_for):
                self._arm(tick)
        waiters.append(waiter)
        return tick

    def _arm(self, tick: int) -> None:
        if self.timer is not None:
            self.timer.stop()
        self.armed_for = tick
        self.timer = self.hub.loop.timer(max(0.0, tick * TICK_S - monotonic()))
        self.timer.start(self._fire)

    def _fire(self) -> None:
        self.armed_for = None
        self.firing = True
        try:
            now = monotonic() / TICK_S
            while self.ticks and self.ticks[0] <= now:
                for waiter in self.waiting.pop(heappop(self.ticks)):
                    if not waiter.dead:
                        waiter.switch()  # it runs until it waits again, for its next deadline or its socket
        finally:
            self.firing = False
            if self.ticks:
                self._arm(self.ticks[0])


_tickers: dict[int, Ticker] = {}


def ticker(hub=None) -> Ticker:
    """The ticker of ``hub``, by default the current gevent hub."""
    hub = hub or get_hub()
    found = _tickers.get(id(hub))
    if found is None or found.hub is not hub:
        found = _tickers[id(hub)] = Ticker(hub)
    return found


def sleep_until(deadline: float) -> None:
    """Return at ``deadline`` (a ``monotonic()`` time), or at once if it has passed."""
    if deadline <= monotonic():
        return
    hub = get_hub()
    if getcurrent() is hub:  # the hub cannot wait on itself
        gevent.sleep(deadline - monotonic())
        return
    ticker(hub).sleep_until(deadline)
