"""The worker's HTTP/1.1 connection loop for the common request, lean enough not to be the load test's bottleneck.

gunicorn's own loop builds a parser, a request, a response and an environ out of many Python objects per
request, formats the date each time, and sends the head and the body apart; under a load test that is
about half of the worker's time. This loop reads a request head into one buffer, parses it with gunicorn's
own C parser (``gunicorn_h1c``, picohttpparser), builds the WSGI environ in one dict, and sends a whole
body together with its head in one ``send`` (and a stream's end with its last write, :class:`LastWrite`).

With gunicorn's access log on (``accesslog``, a ``logconfig``, syslog), each request it serves is logged through
gunicorn's own logger, as gunicorn's loop logs it: the same ``access_log_format`` and atoms, written when the
response has ended (:class:`LoggedResponse`).

It serves what clients of this API send: a request line with an origin-form path, ordinary headers and a
``Content-Length`` body. Anything else (chunked or ``Expect: 100-continue`` bodies, upgrades, forwarded
scheme headers, a head it cannot parse or that breaks a limit) goes back, with the bytes already read, to
gunicorn's loop, which answers it exactly as it always has: one implementation of the corners of HTTP, and
errors worded as gunicorn words them.

Fairness: a kept-alive client whose next request is already in the buffer would otherwise be served again
and again while other connections wait (wrk at 64 connections saw a p99 of seconds with a p50 under a
millisecond). After each response the connection yields to the others, until after the next poll of the
sockets, before it reads on (:class:`Turns`).
"""

from __future__ import annotations

import io
import socket
from datetime import datetime
from time import gmtime, time
from urllib.parse import unquote_to_bytes

import gevent
from gevent import get_hub, getcurrent

try:
    import gunicorn_h1c
except ImportError:  # a dependency, built from source: where it could not be, gunicorn's own loop serves all
    gunicorn_h1c = None
from gunicorn import SERVER, SERVER_SOFTWARE
from gunicorn.http.wsgi import FileWrapper, WSGIErrorsWrapper

from app.server import memory
from app.server.pacing import paced_stream, send_paced
from app.streaming import LastWrite

HEAD_END = b"\r\n\r\n"
YIELD_S = 1e-6  # the fairness yield after each response (see serve())
LARGE_BODY = 1 << 20  # a request body above this is freed (a garbage collection) right after its response
LINGER_S = 2.0  # how long a connection whose body was refused unread drains what its client still sends
# Headers this loop does not interpret: their requests go to gunicorn's loop (see the module's docstring).
GENERAL_PATH_HEADERS = frozenset((b"transfer-encoding", b"expect", b"upgrade", b"http2-settings", b"te", b"trailer"))
# Fields that may appear once (RFC 9110 5.3, as gunicorn enforces it); a repeat goes to gunicorn's loop.
SINGLETONS = frozenset((b"content-length", b"host", b"content-type"))
OWN_KEYS = {b"content-length": "CONTENT_LENGTH", b"content-type": "CONTENT_TYPE"}  # WSGI keys without HTTP_
GENERAL_PATH = ("", False, False)  # a header name whose request goes to gunicorn's loop
HEADER_NAMES = 512  # header names whose reading is kept (clients choose them: the cache must stay bounded)
# Hop-by-hop response headers the application must not set (gunicorn drops them too); this loop sets them.
HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers")
    + ("transfer-encoding", "upgrade", "server", "date")
)
NO_BODY_STATUSES = frozenset((204, 304))
LAST_CHUNK = b"0\r\n\r\n"  # a chunked body's end: sent with a stream's last write when it says it is the last


AVAILABLE = gunicorn_h1c is not None


class NeedsGeneralPath(Exception):
    """This request is for gunicorn's loop; ``pending`` holds every byte read and not yet served."""

    def __init__(self, pending: bytes):
        self.pending = pending


class HttpDate:
    """The ``Date`` header, formatted once a second rather than once a response."""

    def __init__(self):
        self.second = 0
        self.line = ""

    def __call__(self) -> str:
        now = int(time())
        if now != self.second:
            self.second = now
            self.line = "Date: " + _http_date(now) + "\r\n"
        return self.line


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _http_date(seconds: int) -> str:
    t = gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class Turns:
    """The connections of one worker that have yielded their turn (see the module's docstring), woken in the
    order they yielded once the worker has polled its sockets again: by one timer for all of them, where
    ``gevent.sleep`` makes, starts and disposes of a timer and a waiter for each (~4 % of a kept-alive
    request's time)."""

    def __init__(self):
        self.hub = None
        self.timer = None
        self.waiting: list = []

    def yield_turn(self) -> None:
        hub = get_hub()
        if self.hub is not hub:  # the first use in this worker (after the fork)
            self.hub, self.waiting = hub, []
            self.timer = hub.loop.timer(YIELD_S)
        current = getcurrent()
        self.waiting.append(current)
        if not self.timer.active:
            # due at once, and a timer is run only after the poll: the connections that were ready go first
            self.timer.start(self._wake)
        try:
            hub.switch()
        except BaseException:  # woken by something else (a kill as the worker stops): never by the timer now
            if current in self.waiting:
                self.waiting.remove(current)
            raise

    def _wake(self) -> None:
        waiting, self.waiting = self.waiting, []
        for connection in waiting:
            if not connection.dead:
                connection.switch()  # it runs until it waits again, for its socket or its next turn


class Http1Server:
    """What every connection of one worker shares: the app, the limits, the constant parts of the environ."""

    def __init__(self, worker, max_body_bytes: int):
        cfg = worker.cfg
        self.worker = worker
        self.app = worker.wsgi
        self.max_body_bytes = max_body_bytes
        self.limits = {
            "limit_request_line": cfg.limit_request_line or 8190,
            "limit_request_fields": cfg.limit_request_fields,
            "limit_request_field_size": cfg.limit_request_field_size or 8190,
        }
        self.max_head = self.limits["limit_request_line"] + (
            self.limits["limit_request_fields"] * (self.limits["limit_request_field_size"] + 2)
        )
        self.scheme_headers = frozenset(name.lower().encode() for name in cfg.secure_scheme_headers)
        self.server_line = f"Server: {SERVER}\r\n"
        self.date = HttpDate()
        self.turns = Turns()
        self.header_names: dict[bytes, tuple] = {}  # see _header()
        # gunicorn's logger, where it writes an access log (Logger.access returns at once where it does not)
        self.access_log = worker.log if getattr(worker.log, "access_log_enabled", True) else None
        self.base_environ = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": cfg.workers > 1,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
            "wsgi.errors": WSGIErrorsWrapper(cfg),
            "SCRIPT_NAME": "",
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
        }

    def serve(self, client, addr, listener_name, scheme: str) -> None:
        """Serve requests on ``client`` until it closes or must close; raises :class:`NeedsGeneralPath`."""
        worker = self.worker
        base = dict(self.base_environ)
        base["wsgi.url_scheme"] = scheme
        base["gunicorn.socket"] = client
        if isinstance(listener_name, tuple):
            base["SERVER_NAME"], base["SERVER_PORT"] = str(listener_name[0]), str(listener_name[1])
        else:
            base["SERVER_NAME"], base["SERVER_PORT"] = str(listener_name), ""
        if isinstance(addr, tuple):
            base["REMOTE_ADDR"], base["REMOTE_PORT"] = addr[0], str(addr[1])
        else:
            base["REMOTE_ADDR"] = str(addr or "")
        timeout = worker.client_request_timeout
        connection = gevent.getcurrent()
        established = False
        pending = b""  # bytes read and not yet served
        while True:
            pending, head, consumed = self._read_head(client, connection, pending, timeout)
            if head is None:
                return
            if not established:  # the first request head of this connection
                established = True
                timeout = worker.cfg.keepalive
                connection.served_first_request = True  # gunicorn's loop, if it takes over, times the rest so
                worker.first_request_read()
            environ, keep_alive, length = self._environ(base, head, pending)
            if length is None:  # a body past max_body_bytes: refused (413) unread, then the connection ends
                environ["wsgi.input"] = io.BytesIO()
                self._respond(client, environ, False, head)
                linger(client)
                return
            body_end = consumed + length
            if len(pending) < body_end:  # the rest of the body: gathered in one buffer, not copied per read
                buffer = bytearray(pending)
                while len(buffer) < body_end:
                    data = client.recv(max(65536, body_end - len(buffer)))
                    if not data:
                        return
                    buffer += data
                pending = bytes(buffer)
            environ["wsgi.input"] = io.BytesIO(pending[consumed:body_end])
            pending = pending[body_end:]
            worker.nr += 1
            if worker.nr >= worker.max_requests and worker.alive:
                worker.log.info("Autorestarting worker after current request.")
                worker.alive = False
            if not self._respond(client, environ, keep_alive and worker.alive, head):
                return
            if length > LARGE_BODY:  # memory back to its baseline now (app/server/memory.py)
                environ = None
                memory.release()
            # Fairness: the others' turn before this connection's next request. A timer, not sleep(0): gevent
            # runs up to 50 sleep(0) wake-ups before it polls the sockets, so busy pipelined connections would
            # still keep a new connection's accept and read waiting; a timer is due only after the next poll.
            self.turns.yield_turn()
            if not worker.alive:
                return

    def _read_head(self, client, connection, pending: bytes, timeout: float):
        """(pending, parsed head or None at the end of the connection, bytes the head took)."""
        worker = self.worker
        while True:
            if pending:
                try:
                    head = gunicorn_h1c.parse_request(pending, **self.limits)
                    return pending, head, head["consumed"]
                except gunicorn_h1c.IncompleteError:
                    if len(pending) > self.max_head:
                        raise NeedsGeneralPath(pending) from None
                except gunicorn_h1c.ParseError:
                    raise NeedsGeneralPath(pending) from None
            worker.awaiting_request.add(connection)
            client.settimeout(timeout)
            try:
                data = client.recv(65536)
            except TimeoutError:
                return pending, None, 0
            finally:
                client.settimeout(None)
                worker.awaiting_request.discard(connection)
            if not data:
                return pending, None, 0
            pending += data

    def _environ(self, base: dict, head: dict, pending: bytes):
        """(environ, keep-alive asked for, body length, or None for a body past ``max_body_bytes``); raises
        NeedsGeneralPath for the unusual request."""
        raw_path = head["path"]
        if raw_path[:1] != b"/" or b"#" in raw_path:
            raise NeedsGeneralPath(pending)
        environ = dict(base)
        path, _, query = raw_path.partition(b"?")
        environ["REQUEST_METHOD"] = head["method"].decode("latin-1")
        environ["RAW_URI"] = raw_path.decode("latin-1")
        environ["PATH_INFO"] = (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        minor = head["minor_version"]
        environ["SERVER_PROTOCOL"] = "HTTP/1.1" if minor == 1 else "HTTP/1.0"
        keep_alive = minor == 1
        length = 0
        seen = set()
        known = self.header_names
        for name, value in head["headers"]:
            header = known.get(name) or self._header(name)
            if header is GENERAL_PATH:
                raise NeedsGeneralPath(pending)
            key, singleton, connection = header
            if singleton:
                if key in seen:
                    raise NeedsGeneralPath(pending)
                seen.add(key)
            text = value.decode("latin-1")
            if key == "CONTENT_LENGTH":
                if not value.isdigit():
                    raise NeedsGeneralPath(pending)
                length = int(value)
                environ[key] = text
                continue
            if connection:
                tokens = text.lower()
                if "close" in tokens:
                    keep_alive = False
                elif "keep-alive" in tokens:
                    keep_alive = True
            environ[key] = environ[key] + "," + text if key in environ else text
        if length > self.max_body_bytes:
            return environ, False, None  # the app answers 413 from the length alone
        return environ, keep_alive, length

    def _header(self, name: bytes) -> tuple:
        """What a header name is to this loop: its environ key, whether it may appear once, whether it is
        ``Connection``; or GENERAL_PATH. Worked out once per name a client sends (a few hundred at most)."""
        lower = name.lower()
        if lower in GENERAL_PATH_HEADERS or lower in self.scheme_headers or b"_" in name:
            header = GENERAL_PATH
        else:
            key = OWN_KEYS.get(lower) or "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            header = (key, lower in SINGLETONS, lower == b"connection")
        if len(self.header_names) < HEADER_NAMES:
            self.header_names[name] = header
        return header

    def _respond(self, client, environ: dict, keep_alive: bool, request_head: dict) -> bool:
        """Run the app and send what it returns; whether the connection can carry another request."""
        started = []
        logged = LoggedResponse() if self.access_log is not None else None

        def start_response(status, headers, exc_info=None):
            if exc_info and started and started[0] is None:  # headers already sent: nothing can be fixed
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            if logged is not None:
                logged.begin(status, headers)
            return _no_write

        body = self.app(environ, start_response)
        try:
            chunks = iter(body) if logged is None else logged.counting(iter(body))
            first = next(chunks, b"")  # an empty first chunk asks for the head to go out now, alone
            status, headers = started
            code = int(status[:3])
            length = None
            lines = []
            for name, value in headers:
                lower = name.lower()
                if lower in HOP_BY_HOP:
                    if lower == "connection" and "close" in value.lower():
                        keep_alive = False
                    continue
                if lower == "content-length":
                    length = int(value)
                lines.append(f"{name}: {value}\r\n")
            bodiless = environ["REQUEST_METHOD"] == "HEAD" or code < 200 or code in NO_BODY_STATUSES
            http11 = environ["SERVER_PROTOCOL"] == "HTTP/1.1"
            chunked = length is None and not bodiless and http11
            if length is None and not bodiless and not http11:
                keep_alive = False  # an HTTP/1.0 body without a length ends when the connection closes
            connection = "keep-alive" if keep_alive else "close"
            head = "".join(
                [
                    f"{environ['SERVER_PROTOCOL']} {status}\r\n",
                    self.server_line,
                    self.date(),
                    f"Connection: {connection}\r\n",
                    "Transfer-Encoding: chunked\r\n" if chunked else "",
                    *lines,
                    "\r\n",
                ]
            )
            if head.count("\n") != len(lines) + 5 + chunked or head.count("\r") != head.count("\n"):
                raise ValueError("a response header holds a line break")  # header injection, as gunicorn refuses
            out = head.encode("latin-1")
            started[0] = None  # the head is going out
            if logged is not None:
                logged.length, logged.bodiless = length, bodiless
            if bodiless:
                _send(client, out)
                return keep_alive
            if chunked:
                ended = False
                if first:
                    ended = type(first) is LastWrite
                    out += b"%x\r\n%s\r\n%s" % (len(first), first, LAST_CHUNK if ended else b"")
                _send(client, out)
                paced = None if ended else paced_stream(body, client)
                if paced is not None:  # the timer sends what it can (app/server/pacing.py), this loop the rest
                    send_paced(chunks, paced, client, chunked=True)
                for chunk in chunks:
                    if chunk and not ended:  # (nothing follows a last write)
                        ended = type(chunk) is LastWrite
                        _send(client, b"%x\r\n%s\r\n%s" % (len(chunk), chunk, LAST_CHUNK if ended else b""))
                if not ended:
                    _send(client, LAST_CHUNK)
                return keep_alive
            _send(client, out + first)  # a whole body goes out with its head, in one send
            sent = len(first)
            paced = paced_stream(body, client) if length is None and type(first) is not LastWrite else None
            if paced is not None:  # (an HTTP/1.0 stream)
                send_paced(chunks, paced, client, chunked=False)
            for chunk in chunks:
                if chunk:
                    if length is not None and sent + len(chunk) > length:
                        chunk = chunk[: length - sent]
                    _send(client, chunk)
                    sent += len(chunk)
            return keep_alive and (length is None or sent == length)
        except OSError:  # the client is gone: nothing to answer, nothing to log
            raise
        except Exception:
            if started and started[0] is None:  # part of a response is out: the connection cannot be saved
                self.worker.log.exception("Error handling request")
                return False
            raise
        finally:
            if logged is not None:
                request_time = datetime.now() - logged.started
                self.access_log.access(logged, LoggedRequest(environ, request_head), environ, request_time)
            close = getattr(body, "close", None)
            if close is not None:
                close()


class LoggedRequest:
    """What gunicorn's access log reads of a request this loop served (its ``req``): the request's headers as
    gunicorn's parser keeps them (names in capitals, in the order sent), and the rest for a logger class of
    one's own. Made only where an access log is written."""

    def __init__(self, environ: dict, head: dict):
        self.method, self.uri = environ["REQUEST_METHOD"], environ["RAW_URI"]
        self.path, self.query = environ["PATH_INFO"], environ["QUERY_STRING"]
        self.version = (1, 1) if environ["SERVER_PROTOCOL"] == "HTTP/1.1" else (1, 0)
        self.headers = [(name.decode("latin-1").upper(), value.decode("latin-1")) for name, value in head["headers"]]


class LoggedResponse:
    """... and of its response (its ``resp``): the status, the app's headers less the hop-by-hop ones, and
    ``sent``, the body's bytes as the app wrote them, no more than its ``Content-Length`` and none for a
    response without a body, as gunicorn counts them."""

    def __init__(self):
        self.started = datetime.now()
        self.status, self.headers = None, []
        self.length, self.bodiless, self.written = None, False, 0

    def begin(self, status: str, headers: list) -> None:
        self.status = status
        self.headers = [(name, value) for name, value in headers if name.lower() not in HOP_BY_HOP]

    @property
    def status_code(self) -> int | None:
        return int(self.status[:3]) if self.status else None

    @property
    def sent(self) -> int:
        if self.bodiless:
            return 0
        return self.written if self.length is None else min(self.written, self.length)

    def counting(self, chunks):
        """``chunks``, each counted into ``sent`` as it is taken (by this loop, or by the timer's sends)."""
        for chunk in chunks:
            self.written += len(chunk)
            yield chunk


def _send(client, data: bytes) -> None:
    """``sendall``, one syscall for what fits the socket's buffer: gevent's own ``sendall`` first asks the
    kernel for the buffer's size, on every call (a second syscall per stream chunk)."""
    sent = client.send(data)
    if sent < len(data):
        client.sendall(memoryview(data)[sent:])


def linger(client, seconds: float = LINGER_S) -> None:
    """End a connection whose client may still be sending a body nobody will read: closing with unread bytes
    makes the kernel reset the connection, and the client may lose the response it was sent. So: stop
    writing, read and drop what still comes for a moment (64 KB at a time: memory stays flat), then close."""
    try:
        client.shutdown(socket.SHUT_WR)
        deadline = time() + seconds
        while (left := deadline - time()) > 0:
            client.settimeout(left)
            if not client.recv(65536):
                return
    except OSError:  # timed out, or the client is gone
        pass


def _no_write(data):
    raise NotImplementedError("the WSGI write() callable is not supported; return an iterable")
