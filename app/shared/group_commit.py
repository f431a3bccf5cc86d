"""Writes that many requests of one worker ask for at the same time, made in one transaction (on Redis, in
one round trip).

A stored object (a response, a chat completion with ``store``) must be in the shared state before its
request is answered: the client's next request may reach another worker and ask for it. Written one
transaction a request, each paid the shared lock, ``begin``/``commit`` and the log's pages of its own, and
the workers queued on the lock (on Redis, each paid a round trip). Here a request hands its row to the
worker's writer greenlet and waits: the writer takes every row handed over since it last ran, commits them
together, then wakes their requests. A request alone is written at once, as before; under load a transaction
holds as many rows as requests arrived while the one before it was written. Nobody is answered before their
row is committed, so what a client sees is what it saw with a transaction each.

Outside a gevent worker (the Flask test client, ``flask run``'s threads) there is no loop to wait in: each
row is written at once by its caller.
"""

from __future__ import annotations

from collections.abc import Callable

from app import shared


class GroupCommit:
    """``submit(row)`` returns once ``write(rows)`` has committed a batch holding ``row`` (or raises what
    that ``write`` raised)."""

    def __init__(self, write: Callable[[list], None]):
        self._write = write
        self._rows: list = []
        self._done = None  # the AsyncResult of the rows gathered now
        self._wake = None
        self._writer = None
        # Asked in the process that writes: a master that opened the state before forking is not patched.
        self._pid = self._background = None

    def submit(self, row) -> None:
        if self._pid != shared.process_id():  # (never carried across a fork)
            self._pid, self._background, self._writer = shared.process_id(), shared.under_gevent(), None
        if not self._background:
            self._write([row])
            return
        if self._writer is None or self._writer.dead:
            self._start()
        self._rows.append(row)
        done = self._done
        self._wake.set()
        done.get()

    def _start(self) -> None:
        import gevent
        from gevent.event import AsyncResult, Event

        self._rows, self._done, self._wake = [], AsyncResult(), Event()
        self._writer = gevent.spawn(self._write_forever)

    def _write_forever(self) -> None:
        from gevent.event import AsyncResult

        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                rows, done = self._rows, self._done
                if not rows:
                    continue
                self._rows, self._done = [], AsyncResult()
                try:
                    self._write(rows)
                except Exception as exc:  # noqa: BLE001 (each waiting request raises it, as it would alone)
                    done.set_exception(exc)
                except BaseException as exc:
                    done.set_exception(exc)
                    raise
                else:
                    done.set(None)
        except BaseException as exc:  # stopped (the worker is stopping): those waiting are told; the next
            self._done.set_exception(exc)  # request starts another writer
            raise
