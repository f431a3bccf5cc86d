"""Paced streams sent by the worker's timer, not by their connections' greenlets.

Sent from its connection's greenlet, every token of a paced stream costs two greenlet switches (the timer
wakes the greenlet, the greenlet goes back to the hub to wait for the next) and a walk down the iterators
between the server and the stream's writer (the journal's capture, the release of the running sequence, the
writer's own generator), twice. Here the timer's callback, in the hub, asks the body for each write when it
is due and sends it at once, while the connection's greenlet waits for the stream to be handed back
(:class:`app.streaming.PacedEvents` says when: before its last write, or anything else that is not a plain
token). One paced token then costs one call down the iterators and one ``send``.

A write the socket cannot take whole at once (a client that reads slowly) goes back to the greenlet with
the rest of the stream, which it sends waiting on the socket, as any stream's writes; so does an error (the
client gone), raised in the greenlet where it would have been raised. Over TLS the timer writes each record
with the TLS object itself; one that would wait (for room, or for a read TLS needs first) goes back whole, and
the greenlet's ``sendall`` writes it again, as OpenSSL asks of a write that could not finish.
"""

from __future__ import annotations

from ssl import SSLWantReadError, SSLWantWriteError
from time import monotonic

from gevent import getcurrent
from gevent.socket import socket as plain_socket
from gevent.ssl import SSLSocket

from app.streaming.deadlines import ticker

WOULD_WAIT = (BlockingIOError, SSLWantReadError, SSLWantWriteError)  # from a non-blocking socket, at once


def paced_stream(body, client):
    """The paced stream this response body is, if this server can send it from its timer; else None."""
    paced = getattr(body, "paced", None)
    if paced is None or type(client) not in (plain_socket, SSLSocket):
        return None
    return paced


def send_paced(chunks, paced, client, chunked: bool) -> None:
    """Send ``chunks`` (the body's iterator, over ``paced``) from the timer, each write as it comes due, until
    the stream is handed back to this greenlet: then return, and the caller iterates the rest."""
    timer = ticker()
    sender = _Sender(chunks, paced, client, chunked, getcurrent(), timer)
    due = paced.due if paced.asleep else monotonic()  # a wait already returned (the head's early send)
    paced.asleep, paced.driven = False, True
    timer.wake_at(due, sender)
    try:
        handed_back = timer.hub.switch()
    except BaseException:  # killed while the timer sends (the worker stopping): it sends no more
        sender.dead = True
        raise
    finally:
        paced.driven = paced.handback = False
    error, rest = handed_back
    if error is not None:
        raise error
    if rest:
        client.sendall(rest)
    paced.asleep = True  # what the plan waits for when it is handed back: slept in this greenlet


class _Sender:
    """Stands in, in the timer's lists, for the greenlet of a stream that the timer sends."""

    __slots__ = ("chunks", "paced", "write", "chunked", "greenlet", "timer", "dead")

    def __init__(self, chunks, paced, client, chunked: bool, greenlet, timer):
        self.chunks, self.paced, self.chunked, self.greenlet, self.timer = chunks, paced, chunked, greenlet, timer
        # Beneath gevent's waiting: the socket itself, or its TLS object, whose fd is non-blocking
        self.write = client._sslobj.write if type(client) is SSLSocket else client._sock.send
        self.dead = False

    def switch(self) -> None:
        """The next write is due: send it (and any due with it), then wait on the timer for the one after."""
        paced, chunks = self.paced, self.chunks
        try:
            while True:
                chunk = next(chunks)
                if not chunk:
                    if paced.handback:
                        return self._back(None, b"")
                    self.timer.wake_at(paced.due, self)
                    return None
                data = b"%x\r\n%s\r\n" % (len(chunk), chunk) if self.chunked else chunk
                try:
                    sent = self.write(data)
                except WOULD_WAIT:
                    sent = 0
                if sent < len(data):
                    return self._back(None, data[sent:])
                if paced.due > monotonic():  # (set with the write: when the next one is due)
                    self.timer.wake_at(paced.due, self)
                    return None
        except StopIteration:  # (a stream hands itself back before its end: this is for any other)
            return self._back(None, b"")
        except Exception as exc:  # noqa: BLE001 (raised in the greenlet, where the server handles it)
            return self._back(exc, b"")

    def _back(self, error, rest: bytes) -> None:
        self.dead = True
        self.greenlet.switch((error, rest))
