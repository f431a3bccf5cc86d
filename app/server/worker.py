"""gunicorn's gevent worker, with the connection limits of the original mock server.

- ``[server] client_request_timeout`` (``--client-request-timeout``): how long a new connection may take to
  send its first request head; a connection that sends none in time is closed. Between two requests on a
  kept-alive connection the limit is ``[server] keepalive``.
- ``[server] max_connection_rate`` (``--max-connection-rate``): as in the original (actix-web's setting of the
  name), the most connections each worker has *in the middle of being established* at once: under TLS, from
  accept to the end of the handshake and the first request head; without TLS, accepted connections whose first
  request head has not been read yet. A connection past the limit waits, unread, for a slot (it is a bound on
  handshake CPU and on clients that connect and send nothing, not a count per second). 0 turns it off.
- Under TLS, a client refused in the handshake (no certificate, a wrong or expired one, plain HTTP) costs one
  info line in the log, not a gevent traceback, and a handshake must finish within ``client_request_timeout``.
- On a graceful stop (SIGTERM, and the old workers of a SIGHUP), connections idling between requests are
  closed at once, and a response in flight says ``Connection: close`` if its head is still to go, and ends its
  connection when its body is out: the worker does not wait out ``graceful_timeout`` for pooled clients that
  keep connections alive. Streams in flight finish, and the web UI's live-update streams end.
- A connection's greenlet, once its connection ends, waits to serve the next one (app/server/connections.py)
  rather than ending: a client that opens a connection a request pays no greenlet's making and ending.
- A request gunicorn refuses before the app (a limit passed, a head it cannot parse, a bad ``Content-Length``
  or chunk) is answered with gunicorn's status and wording in the API's JSON error shape, not an HTML page.
"""

from __future__ import annotations

import errno
import gc
import signal
import socket
import ssl
import sys
import time
import warnings
from contextlib import contextmanager

import gevent
from gevent.lock import BoundedSemaphore
from gevent.monkey import MonkeyPatchWarning
from gunicorn import util
from gunicorn.workers import ggevent
from gunicorn.workers.ggevent import GeventWorker

from app import streaming
from app.config import load_settings
from app.errors import write_refusal
from app.server import http1, memory
from app.server.connections import ConnectionPool
from app.server.http1 import Http1Server, NeedsGeneralPath

# gevent's warning, when it patches ssl in a worker, that redis.asyncio.connection (and nothing else) took ssl's
# names before: the master imports redis (its check that Redis answers, and child_exit's), and redis imports
# its asyncio client, which no code here uses. Any other module named there still warns.
_REDIS_ASYNCIO_ONLY = (
    r"Monkey-patching ssl after ssl has already been imported .*\['redis\.asyncio\.connection \([^)]*\)'\]\. $"
)
STREAMS_END_BEFORE_S = 1.5  # before graceful_timeout: streams still running end cleanly
GC_YOUNG_THRESHOLD = 10000  # objects made (net) between two collections of the youngest generation


class Establishing:
    """At most ``limit`` connections of this worker being established at once; the others wait for a slot.
    A connection holds its slot from accept (before a TLS handshake) until its first request head is read,
    or until it ends."""

    def __init__(self, limit: int):
        self.slots = BoundedSemaphore(limit)

    def enter(self) -> None:
        connection = gevent.getcurrent()
        if not getattr(connection, "establishing", False):
            self.slots.acquire()
            connection.establishing = True

    def done(self) -> None:
        connection = gevent.getcurrent()
        if getattr(connection, "establishing", False):
            connection.establishing = False
            self.slots.release()


class _HandshakesCounted:
    """The worker's TLS context, whose handshakes (done by gevent before the worker's handler runs) wait for
    a slot of :class:`Establishing` first."""

    def __init__(self, context, establishing: Establishing):
        self._context, self._establishing = context, establishing

    def wrap_socket(self, sock, *args, **kwargs):
        self._establishing.enter()
        try:
            return self._context.wrap_socket(sock, *args, **kwargs)
        except BaseException:
            self._establishing.done()
            raise

    def __getattr__(self, name):
        return getattr(self._context, name)


class MockOpenAIWorker(GeventWorker):
    def patch(self):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _REDIS_ASYNCIO_ONLY, MonkeyPatchWarning)
            super().patch()

    def init_process(self):
        # Until gunicorn installs its handlers (after monkey-patching and loading settings), a stop signal
        # would reach the master's inherited handler and be lost, leaving a booting worker running.
        for stop in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(stop, self._stop_while_booting)
        server = load_settings().server
        self.client_request_timeout = server["client_request_timeout"]
        limit = server["max_connection_rate"]
        self.establishing = Establishing(limit) if limit else None
        if self.establishing is not None and self.cfg.is_ssl:
            make_context = self.cfg.ssl_context
            establishing = self.establishing
            self.cfg.settings["ssl_context"].set(
                lambda config, factory: _HandshakesCounted(make_context(config, factory), establishing)
            )
        self.awaiting_request: set = set()
        self.max_body_bytes = server["max_body_bytes"]
        # gunicorn's handle_error keeps its statuses and wording and writes through util.write_error, its one
        # writer of an HTML error page; in a worker, that page is the API's JSON error shape instead.
        util.write_error = write_refusal
        memory.fix_mmap_threshold()
        super().init_process()

    def load_wsgi(self):
        super().load_wsgi()
        self.http1 = Http1Server(self, self.max_body_bytes) if self._lean_loop_serves_all() else None
        # What gunicorn's loop serves is what the lean loop hands over (unusual or refused), or everything where
        # the lean loop is off: gunicorn's Python parser, its reference, words each refusal exactly (the C parser
        # calls a head of over 256 headers an invalid request line, where the Python parser answers 431).
        self.cfg.settings["http_parser"].set("python")
        # What the worker loaded (the app, its modules, settings, corpus) lives as long as the worker: out of
        # the collector's sight, a full collection walks only what requests made (bench/compare.py: ~1.05x).
        gc.freeze()
        # A young collection every 10,000 objects made rather than 700: a completion leaves no reference
        # cycle behind (a body json indents, as an embedding's or an error's, about 30 objects), so there is
        # little for it to find, and a stream load ran ~60 of them a second (bench/compare.py: ~1.03).
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    def _lean_loop_serves_all(self) -> bool:
        """app/server/http1.py serves plain HTTP/1.1 (and writes gunicorn's access log); what it does not do (the
        PROXY protocol, HTTP/2, the request hooks ``pre_request`` and ``post_request``), or a missing C parser,
        keeps every connection on gunicorn's own loop."""
        cfg = self.cfg
        return (
            http1.AVAILABLE
            and cfg.proxy_protocol in (None, False, "off")
            and list(cfg.http_protocols) == ["h1"]
            and cfg.http2_cleartext in (None, False, "off")
            and cfg.pre_request is cfg.settings["pre_request"].default
            and cfg.post_request is cfg.settings["post_request"].default
        )

    def run(self):
        if self.cfg.is_ssl:
            # gevent handshakes before gunicorn's handler runs, on an accepted socket whose timeout is the
            # default one: this bounds the handshake. gunicorn makes the socket blocking again afterwards.
            socket.setdefaulttimeout(self.client_request_timeout)
            hub = gevent.get_hub()
            hub.handle_error = self._refused_handshakes_to_log(hub.handle_error)
        # gunicorn's run makes each listener's pool by this module name: the pool that keeps its greenlets.
        ggevent.Pool = ConnectionPool
        super().run()

    def _refused_handshakes_to_log(self, handle_error):
        """A handshake failure ends its greenlet inside gevent's server, and gevent would print a traceback."""

        def handle(context, kind, value, tb):
            # gevent runs each connection as _handle_and_close_when_done(wrap_socket_and_handle, close, args)
            args = getattr(context, "args", ())
            in_handshake = bool(args) and getattr(args[0], "__name__", "") == "wrap_socket_and_handle"
            if in_handshake and kind is not None and issubclass(kind, ssl.SSLError | OSError):
                peer = args[-1][1] if isinstance(args[-1], tuple) and len(args[-1]) > 1 else None
                address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "a client"
                reason = getattr(value, "reason", None) or str(value) or kind.__name__
                self.log.info("TLS handshake with %s refused: %s", address, reason)
                return
            handle_error(context, kind, value, tb)

        return handle

    def handle_quit(self, sig, frame):
        # Ctrl-C in a terminal sends SIGINT to the master and every worker, and the master then sends each
        # worker SIGQUIT: a second quit, whose sys.exit in a greenlet lands in the interpreter's shutdown from
        # the first and prints a traceback. One quit is enough.
        if getattr(self, "_quitting", False):
            return
        self._quitting = True
        super().handle_quit(sig, frame)

    def _stop_while_booting(self, sig, frame):
        self.alive = False  # run() then returns at once

    def timeout_ctx(self):
        """Wraps each wait for a request head (gunicorn's keep-alive loop calls it)."""
        connection = gevent.getcurrent()  # one greenlet per connection
        if getattr(connection, "served_first_request", False):
            if not self.alive:  # stopping: a connection whose response is out ends (gunicorn closes it quietly)
                raise StopIteration("the worker is stopping")
            return self._awaiting_request(connection, self.cfg.keepalive)
        connection.served_first_request = True
        return self._awaiting_request(connection, self.client_request_timeout)

    @contextmanager
    def _awaiting_request(self, connection, seconds):
        self.awaiting_request.add(connection)
        try:
            with gevent.Timeout(seconds, False):  # False: on timeout, no request, and the connection closes
                yield
        finally:
            self.awaiting_request.discard(connection)

    def handle(self, listener, client, addr):
        try:
            if self.establishing is not None:
                self.establishing.enter()  # under TLS, entered before the handshake already
            self._handle(listener, client, addr)
        finally:
            if self.establishing is not None:
                self.establishing.done()

    def first_request_read(self) -> None:
        """The connection is established: its slot goes to the next one."""
        if self.establishing is not None:
            self.establishing.done()

    def handle_request(self, listener_name, req, sock, addr):
        self.first_request_read()  # gunicorn's loop: a request has been read
        # A body past max_body_bytes is refused (413) from its length alone, unread, as the lean loop does: the
        # connection then ends, after a moment's reading of what the client still sends (http1.linger).
        refused_unread = _declared_length(req) > self.max_body_bytes
        if refused_unread:
            req.must_close = True
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            if refused_unread:
                http1.linger(sock)

    def _handle(self, listener, client, addr):
        if self.http1 is None:
            return super().handle(listener, client, addr)
        handed_over = False
        try:
            self.http1.serve(client, addr, listener.getsockname(), "https" if self.cfg.is_ssl else "http")
        except NeedsGeneralPath as general:
            handed_over = True
            super().handle(listener, _Replaying(client, general.pending), addr)
        except ssl.SSLError as exc:  # a TLS client that left uncleanly, as gunicorn's loop treats it
            self.log.debug("TLS connection ended: %s", exc)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF):
                self.log.exception("Socket error processing request.")
        except Exception as exc:  # the app failed before its response began: gunicorn's 500
            self.handle_error(None, client, addr, exc)
        finally:
            if not handed_over:
                util.close(client)

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        # Streams in flight run on, and those still running shortly before graceful_timeout end with an error
        # event and [DONE] (app/streaming), in time for gunicorn's loop (which looks once a second) to
        # see the worker idle and exit before the master kills it.
        grace = self.cfg.graceful_timeout
        streaming.end_streams_at(time.monotonic() + max(grace / 2, grace - STREAMS_END_BEFORE_S))
        # The web UI's live streams end within a second. No import here: a stop signal can arrive while the
        # worker is still importing the app, and importing app.ui from inside that import fails, which made
        # gunicorn halt the whole server (and lose the other workers' unwritten journal entries).
        live = getattr(sys.modules.get("app.ui"), "Live", None)
        if live is not None:
            live.stopping = True
        gevent.spawn(self._close_idle_connections)  # not in the signal handler itself

    def _close_idle_connections(self):
        # ENOTCONN is an error gunicorn's handler expects from a closing connection: it closes it quietly.
        gone = OSError(errno.ENOTCONN, "closed: the worker is stopping")
        for connection in list(self.awaiting_request):
            connection.kill(gone, block=False)


class _Replaying:
    """A client socket that gives back, first, the bytes the lean loop read but did not serve."""

    def __init__(self, sock, pending: bytes):
        self._sock, self._pending = sock, pending

    def recv(self, size, *flags):
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        return self._sock.recv(size, *flags)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _declared_length(req) -> int:
    """The body's length as a request parsed by gunicorn declares it (0 without one, or for a chunked body)."""
    for name, value in req.headers:
        if name == "CONTENT-LENGTH":
            return int(value) if value.isdigit() else 0
    return 0
