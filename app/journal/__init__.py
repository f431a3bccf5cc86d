"""The request journal: every exchange with a client, as the client saw it, shared by all workers.

A WSGI middleware around the app captures each request as it passes: the environ, the status and headers,
the bytes of the body as they are written (up to ``[journal] max_body_bytes``) and when each write went
out. The views add what only they know (model, tokens, scenario, fault) with :func:`annotate`. When the
response has ended the exchange becomes a row (a few microseconds: the environ and the response are let go
at once, as without the journal) and is queued; a greenlet writes the queue in one transaction every
``flush_interval_ms`` (:mod:`app.shared`).

Not journaled: the server's own pages and control routes (``/_mock/``, ``/ui``, ``/metrics``), so a test's
"last request" is its client's, not its own read of the journal.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from array import array
from time import monotonic, time

from flask import request

from app.context import this_app, this_request
from app.journal.entries import BATCH as BATCH  # noqa: PLC0414 (one name for the views and the simulation)
from app.journal.entries import asked_of, response_lines, row_of
from app.shared import under_gevent
from app.streaming import DONE, STOPPED, count_events
from app.streaming.recipes import plan_of

log = logging.getLogger(__name__)
NOTE = "mock_openai.journal"  # environ key of the note the views fill in
BODY = "mock_openai.body"  # environ key of the raw request body, once a view has read it
# environ key of the bytes a stream ends with, when it ends well: OpenAI's [DONE], another format's last event
STREAM_END = "mock_openai.stream_end"
STREAM_STOPPED = "mock_openai.stream_stopped"  # ... and the bytes it ends with when its worker stops
SKIPPED = ("/_mock/", "/_mock", "/ui", "/metrics", "/favicon.ico")


def annotate(**fields) -> None:
    """Tell the journal something about this request (``model``, ``prompt_tokens``, ``fault`` ...)."""
    note = this_request().environ.get(NOTE)
    if note is not None:
        note.update(fields)


def request_body() -> bytes:
    """This request's body, read once and kept: the views parse it, recording hashes and forwards it, and the
    journal shows it."""
    environ = this_request().environ
    raw = environ.get(BODY)
    if raw is None:
        raw = _whole_body(environ)
        if raw is None:
            raw = request.get_data(cache=False)
        environ[BODY] = raw
    return raw


def _whole_body(environ) -> bytes | None:
    """The body, read straight from a server that delivers it whole and no longer than its length
    (``wsgi.input_terminated``: gunicorn's loop and this server's own), when it is within the app's limit;
    otherwise None, and werkzeug reads it (and refuses one too large). werkzeug's way there (a stream object,
    its checks, the limit looked up through the app context) cost ~5 % of a completion."""
    length = environ.get("CONTENT_LENGTH", "")
    if "wsgi.input_terminated" not in environ or not length.isdigit():
        return None
    limit = this_app().config["MAX_CONTENT_LENGTH"]
    if limit is not None and int(length) > limit:
        return None
    return environ["wsgi.input"].read()


class Exchange:
    """One request and its response, as they pass."""

    __slots__ = (
        "environ",
        "note",
        "started",
        "t0",
        "status",
        "headers",
        "stream",
        "kept",
        "size",
        "events",
        "writes",
        "first_at",
        "last",
        "length",
        "latency",
        "ending",
        "client_cert",
        "end",
        "stopped",
        "finished",
        "writer",
        "asked",
        "response_lines",
        "plan",
    )

    def __init__(self, environ):
        self.environ = environ
        self.note = {}
        self.started, self.t0 = time(), monotonic()
        self.status, self.headers, self.stream = "500 INTERNAL SERVER ERROR", [], False
        self.kept, self.size, self.events, self.writes = [], 0, 0, None
        self.first_at = self.last = self.length = self.latency = self.ending = self.client_cert = None
        self.end, self.stopped, self.finished = DONE, STOPPED, False  # a stream's endings; whether it ran out
        # A stream's writer where it counts the events it sends (PacedEvents.events_sent), else None: looked up
        # as a journaled stream starts, and with no journal (False until then) only for a stream that runs past
        # the kept bytes (shorter ones are counted if read)
        self.writer = False
        # What the row takes from the request and the response's headers, as they pass (app.journal.entries)
        self.asked, self.response_lines = None, ""
        self.plan = None  # how its recipe would tell a stream that sends what it plans (app.streaming.recipes)


class Journal:
    """The capture, and the journal it feeds. ``observers`` also see each finished exchange (metrics, the
    log line); with ``[journal] enabled = false`` they are all it feeds (``store`` is None)."""

    def __init__(self, settings, shared, observers=(), stream_observers=()):
        config = settings.journal
        self.store = shared.journal() if config["enabled"] else None
        self.limit = config["max_body_bytes"]
        self.interval = config["flush_interval_ms"] / 1000
        # While the store is unreachable (Redis down), entries wait; beyond the journal's own size the oldest
        # go, as the journal would not have kept them anyway.
        self.max_backlog = config["max_entries"]
        self.dropped = 0
        self.mtls = settings.tls_enabled and bool(settings.tls["ca_cert_path"])
        self.observers = list(observers)  # called with each finished exchange
        self.stream_observers = list(stream_observers)  # called when a stream starts
        self.pending: list[tuple] = []  # rows, made when the exchange ends (holding the exchange longer costs more)
        self._writer = None
        self._wake = None
        self._lock = threading.Lock()  # flask run serves from threads; gevent workers never contend
        self._pid = os.getpid()
        self.background = under_gevent()  # a gevent worker: write from a greenlet
        atexit.register(self._flush_at_exit)

    # --- capture ------------------------------------------------------------------------------------------
    def wrap(self, wsgi_app):
        def journaled(environ, start_response):
            if environ.get("PATH_INFO", "").startswith(SKIPPED):
                return wsgi_app(environ, start_response)
            exchange = Exchange(environ)
            environ[NOTE] = exchange.note
            if self.store is not None:
                exchange.asked = asked_of(environ)

            def start(status, headers, exc_info=None):
                exchange.status, exchange.headers = status, headers
                if self.store is not None:
                    exchange.response_lines = response_lines(headers)
                # werkzeug puts Content-Type first; look further only when it is not there
                first = headers[:1] if headers and headers[0][0] == "Content-Type" else headers
                for name, value in first:
                    if name == "Content-Type" and value.startswith("text/event-stream"):
                        exchange.stream, exchange.writes = True, array("d")
                        exchange.end = environ.get(STREAM_END, DONE)
                        exchange.stopped = environ.get(STREAM_STOPPED, STOPPED)
                        if self.store is not None:
                            self.store.stream_opened()
                        for observe in self.stream_observers:
                            observe(exchange)
                        break
                else:
                    for name, value in headers:
                        if name == "Content-Length":
                            exchange.length = int(value)
                            break
                return start_response(status, headers, exc_info)

            try:
                body = wsgi_app(environ, start)
            except BaseException:
                self._finish(exchange, "error")
                raise
            return _Capturing(body, exchange, self)

        return journaled

    def _finish(self, exchange: Exchange, ending: str | None) -> None:
        exchange.latency = monotonic() - exchange.t0
        if exchange.stream and self.store is not None:
            self.store.stream_closed()
        exchange.ending = ending or self._ending(exchange)
        if self.mtls:
            exchange.client_cert = _peer_subject(exchange.environ.get("gunicorn.socket"))
        for observe in self.observers:
            observe(exchange)
        if self.store is None:
            return
        self.pending.append(row_of(exchange, self.limit))
        self.store.captured()
        if self._wake is None and self.background:
            self._start_writer()
        if self._wake is not None:
            self._wake.set()
        else:  # no event loop to write from (the Flask test client, flask run): write now
            self.flush()

    @staticmethod
    def _ending(exchange: Exchange) -> str:
        """How the response ended, for a stream: ``done`` ([DONE] sent), ``stopped`` (ended by a stopping
        worker), the injected fault that cut it, or ``client_gone``; for a body: ``complete`` or ``client_gone``."""
        fault = exchange.note.get("fault")
        if exchange.stream:
            if exchange.last == exchange.stopped:
                return "stopped"  # still running at the stop deadline of a worker that was stopping
            if fault in ("disconnect", "stream_error"):
                return fault
            if exchange.finished or (exchange.last is not None and exchange.last.endswith(exchange.end)):
                return "done"
            return "client_gone"
        return fault if fault == "disconnect" else "complete"

    # --- writing ------------------------------------------------------------------------------------------
    def _start_writer(self):
        import gevent
        from gevent.event import Event

        self._wake = Event()
        self._writer = gevent.spawn(self._write_forever)
        self.store.attend(self.flush)  # a reader elsewhere may ask this worker to write what it holds

    def _write_forever(self):
        from gevent import sleep

        while True:
            self._wake.wait()
            self._wake.clear()
            if self.interval:
                sleep(self.interval)  # gather a batch: one transaction for many entries
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 (the store is unreachable: keep the entries, try again)
                log.warning("could not write %d journal entries, retrying in 1 s: %r", len(self.pending), exc)
                sleep(1)
                self._wake.set()

    def flush(self) -> None:
        """Write every pending entry now (and wait for nothing)."""
        with self._lock:
            pending, self.pending = self.pending, []
            if pending:
                try:
                    self.store.append(pending)
                except BaseException:
                    self.pending[:0] = pending  # kept for the next try (the flush at exit)
                    self._bound_backlog()
                    raise

    def _bound_backlog(self) -> None:
        excess = len(self.pending) - self.max_backlog
        if excess <= 0:
            return
        del self.pending[:excess]
        self.dropped += excess
        log.warning(
            "journal store unreachable: dropped the %d oldest waiting entries (%d so far), keeping the newest %d",
            excess,
            self.dropped,
            self.max_backlog,
        )
        try:  # nothing left to wait for: a reader must not wait for these
            self.store.discarded(excess)
        except Exception:  # noqa: BLE001 (the store is still down: its readers are too)
            pass

    def _flush_at_exit(self):
        if os.getpid() == self._pid or self.pending:
            self.flush()

    def settled(self, timeout: float = 2.0) -> None:
        """Before a read: this worker's entries written, and every other worker's up to now."""
        self.flush()
        self.store.wait_committed(timeout)


class _Capturing:
    """The response's own iterable, passed through; each write is counted and (up to the limit) kept."""

    __slots__ = ("body", "it", "exchange", "journal")

    def __init__(self, body, exchange, journal):
        self.body, self.it, self.exchange, self.journal = body, iter(body), exchange, journal
        if exchange.stream and journal.store is not None:
            # Looked up as the stream starts, with what its recipe needs (app.streaming.recipes.plan_of says why)
            writer = exchange.writer = self._counting_writer()
            if writer is not None:
                exchange.plan = plan_of(writer)

    @property
    def paced(self):
        """The paced stream inside, for a server that sends it from its timer (app.server.pacing): the writes
        still come through :meth:`__next__`, and are captured."""
        return getattr(self.body, "paced", None)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            chunk = next(self.it)
        except StopIteration:
            if self.exchange is not None:
                self.exchange.finished = True
            self._done(None)  # the whole response went out (the test client never closes it)
            raise
        exchange = self.exchange
        if chunk and exchange is not None:  # (None: the last chunk has been entered)
            if exchange.size < self.journal.limit:
                exchange.kept.append(chunk)
            elif exchange.writes is not None:  # a stream's events beyond what is kept are counted as they pass,
                if exchange.writer is False:  # unless its writer counts them
                    exchange.writer = self._counting_writer()
                if exchange.writer is None:
                    exchange.events += count_events(chunk)
            exchange.size += len(chunk)
            exchange.last = chunk
            if exchange.writes is not None:  # a stream: when each write went out
                now = monotonic()
                if exchange.first_at is None:
                    exchange.first_at = now
                exchange.writes.append(now)  # the time and the bytes sent by then, in one flat array
                exchange.writes.append(exchange.size)
                if chunk.endswith(exchange.end):
                    self._done(None)
            elif exchange.length is not None and exchange.size >= exchange.length:
                self._done(None)
            # The last chunk is entered before the server sends it: a client that reads the journal the moment
            # its response arrives (from another worker, even) finds the entry there.
        return chunk

    def close(self):
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self._done("client_gone")  # closed before the end: the client left (or a write failed)

    def _counting_writer(self):
        """The stream's writer, if it counts the events it sends; else None."""
        writer = self.paced
        return writer if writer is not None and writer.events_a_step is not None else None

    def _done(self, ending):
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            self.journal._finish(exchange, None if exchange.stream else ending)


_SHORT_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
                "localityName": "L", "stateOrProvinceName": "ST", "emailAddress": "E"}  # fmt: skip


def _peer_subject(sock) -> str | None:
    """The client certificate's subject under mutual TLS, as RFC 4514 writes it (``CN=...,O=...``)."""
    try:
        cert = sock.getpeercert() if sock is not None else None
    except (AttributeError, ValueError, OSError):
        return None
    if not cert:
        return None
    parts = [f"{_SHORT_NAMES.get(k, k)}={v}" for rdn in cert.get("subject", ()) for k, v in rdn]
    return ",".join(reversed(parts))
