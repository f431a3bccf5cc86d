"""The worker's connection greenlets, each serving one connection after another.

gevent's server spawns a greenlet for each connection it accepts and lets it end with the connection: making
and ending one costs about 13 µs (gevent's Greenlet, its start callback and its links, and CPython's frame
stack for it, a 16 KB mapping made and unmapped, two system calls and a page fault). Pooled clients never
notice; a client that opens a connection a request (keep-alive off, the original's own load test) pays it
on every request. Here a greenlet whose connection has ended waits for the next one instead, as a thread
pool's threads do; switching into it costs about 1.5 µs.

:class:`ConnectionPool` is gevent's :class:`~gevent.pool.Pool` to its users (the server, gunicorn's
graceful stop): a greenlet is in the pool while it serves a connection and leaves it when the connection
ends, so ``free_count()``, ``full()``, ``join()`` and ``kill()`` mean what they always meant. A greenlet
that is waiting for its next connection is not in the pool; at most ``max_idle`` wait (the most connections
this worker served at once, up to that bound), and a burst past it leaves behind greenlets that simply end.
"""

from __future__ import annotations

import sys

from gevent import Greenlet, GreenletExit, get_hub, getcurrent
from gevent.pool import Pool

MAX_IDLE = 512  # greenlets kept waiting for a connection: about 6 KB of RSS each, 3 MB for all of them


class _Job:
    """What a connection greenlet runs next; also what an error is reported against (gevent's hub reads
    ``args`` of the greenlet that failed, as it would from a Greenlet of its own)."""

    __slots__ = ("run", "args")

    def __init__(self, run, args):
        self.run, self.args = run, args

    def __repr__(self) -> str:  # (how the hub's report of a failure names it)
        return f"<connection job {getattr(self.run, '__name__', self.run)}{self.args!r}>"


class ConnectionPool(Pool):
    def __init__(self, size: int | None = None, max_idle: int = MAX_IDLE):
        super().__init__(size)
        self.max_idle = max_idle
        self.idle: list = []  # greenlets waiting in _serve for their next job, the most recent last
        self.hub = None

    def spawn(self, run, *args):
        """Run ``run(*args)`` in a greenlet of the pool, on the next turn of the loop, as ``Pool.spawn``
        does (it waits for a free slot first when the pool is full)."""
        job = _Job(run, args)
        if self.idle:
            connection = self.idle.pop()
            self.add(connection)  # (blocks while the pool is full, as Pool.spawn does)
            self.hub.loop.run_callback(connection.switch, job)
            return connection
        hub = get_hub()
        if self.hub is not hub:  # the first connection of this worker (after the fork)
            self.hub, self.idle = hub, []
        connection = Greenlet(self._serve, job)
        self.add(connection)
        connection.start()
        return connection

    def _serve(self, job: _Job) -> None:
        connection = getcurrent()
        hub = self.hub
        own = dict(vars(connection))  # gevent's own attributes; what a connection sets on it goes with it
        while True:
            try:
                job.run(*job.args)
            except GreenletExit:
                raise  # killed: this greenlet ends, as any other would
            except BaseException:  # noqa: BLE001 (reported as gevent reports a greenlet's failure)
                hub.handle_error(job, *sys.exc_info())
            finally:
                self.discard(connection)
            job = None
            if len(self.idle) >= self.max_idle:
                return
            # The next connection starts with nothing left on this greenlet from the last one.
            attributes = vars(connection)
            attributes.clear()
            attributes.update(own)
            self.idle.append(connection)
            while not isinstance(job, _Job):  # (anything else switching in here is not a connection)
                try:
                    job = hub.switch()
                except GreenletExit:
                    if connection in self.idle:
                        self.idle.remove(connection)
                    raise
                except BaseException:  # noqa: BLE001, S112 (meant for the connection that has ended: late)
                    continue
