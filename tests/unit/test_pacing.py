"""Paced streams sent by the worker's timer (app/server/pacing.py): the same bytes on the same deadlines as a stream
iterated in its greenlet, with that greenlet switched to once, not once a token; and what a slow reader, a client
gone, a kill and the stop deadline do to such a stream. Real sockets (a gevent socket pair), a real gevent hub."""

from __future__ import annotations

import socket as stdlib_socket
from time import monotonic

import gevent
import greenlet
import pytest
from gevent import socket, ssl

from app.server import certs
from app.server.pacing import paced_stream, send_paced
from app.simulation.faults import StreamFault
from app.streaming import STOPPED, end_streams_at, paced_events
from tests.hubs import own_hub

TOKENS, ITL = 40, 0.004


def event(k: int) -> bytes:
    return b"data: %d\n\n" % k


def stream(count=TOKENS, itl=ITL, ttft=0.01, event_at=event):
    first = monotonic() + ttft
    return paced_events(b"H", event_at, count, b"T", first, itl), first


def serve(server_side, events, chunked=False):
    """What the server's loop does with a stream's body (app/server/http1.py): the head's early write, the timer's
    part, then whatever is handed back, iterated and sent from this greenlet."""
    chunks = iter(events)
    first = next(chunks)
    assert first == b""  # the head goes out before the first token, which is not due yet
    paced = paced_stream(events, server_side)
    assert paced is events.paced
    send_paced(chunks, paced, server_side, chunked)
    for chunk in chunks:
        server_side.sendall(chunk)
    server_side.close()


def read_all(client_side, timeout=5.0):
    """Every byte, and when each piece arrived."""
    client_side.settimeout(timeout)
    pieces = []
    while data := client_side.recv(65536):
        pieces.append((monotonic(), data))
    return pieces


def expected(count=TOKENS, event_at=event) -> bytes:
    return b"H" + b"".join(event_at(k) for k in range(count)) + b"T"


def served_and_read(server_side, client_side):
    """Serve a stream on ``server_side`` and read it all on ``client_side``: (the pieces read and when, how often
    the connection's greenlet was switched to, the stream's first token's deadline)."""
    events, first = stream()
    connection = gevent.spawn(serve, server_side, events)
    switches = []

    def trace(kind, origin_target):
        if kind in ("switch", "throw") and origin_target[1] is connection:
            switches.append(kind)

    previous = greenlet.settrace(trace)
    try:
        pieces = read_all(client_side)
    finally:
        greenlet.settrace(previous)
    connection.get(timeout=1)
    assert b"".join(data for _, data in pieces) == expected()
    return pieces, switches, first


@own_hub
def test_the_timer_sends_the_stream_on_its_deadlines_and_switches_to_its_greenlet_once():
    pieces, switches, first = served_and_read(*socket.socketpair())
    # Each token arrived at its deadline or after it (the tick rounds up), never before.
    arrivals = {}
    received = b""
    for at, data in pieces:
        received += data
        for k in range(TOKENS):
            if k not in arrivals and event(k) in received:
                arrivals[k] = at
    assert all(arrivals[k] >= first + k * ITL - 0.0005 for k in range(TOKENS)), arrivals
    # Iterated in its greenlet, the stream would switch to it about twice a token; from the timer, once for the
    # hand-back before the last write, and for the last token's wait.
    assert len(switches) <= 4, switches


class Recording:
    """A wrapper between the server and the stream, as the journal's capture is: which greenlet asked for what."""

    def __init__(self, events):
        self.events, self.asked = events, []

    @property
    def paced(self):
        return self.events.paced

    def __iter__(self):
        return self

    def __next__(self):
        chunk = next(self.events)
        self.asked.append((chunk, gevent.getcurrent()))
        return chunk


@own_hub
def test_the_timer_asks_for_plain_writes_only_and_the_greenlet_for_the_last():
    """What ends a stream (the journal's entry, the running sequence given back) may wait, for a lock or for Redis:
    it runs in the connection's greenlet, never in the hub."""
    server_side, client_side = socket.socketpair()
    events, _ = stream(count=10)
    body = Recording(events)
    connection = gevent.spawn(serve, server_side, body)
    read_all(client_side)
    connection.get(timeout=1)
    written = [(chunk, where) for chunk, where in body.asked if chunk]
    assert b"".join(chunk for chunk, _ in written) == expected(count=10)
    from_hub = [chunk for chunk, where in written if where is connection.parent]
    assert from_hub and written[-1][1] is connection
    assert all(type(chunk) is bytes for chunk in from_hub)  # not the LastWrite that ends the stream


class Ended(Exception):
    pass


class Watching(Recording):
    """... and which greenlet met the end of the stream."""

    def __next__(self):
        try:
            return super().__next__()
        except StopIteration:
            self.asked.append((Ended, gevent.getcurrent()))
            raise


@pytest.mark.parametrize(
    "faults",
    [
        [StreamFault("stream_error", 0)],
        [StreamFault("stream_error", 3)],
        [StreamFault("disconnect", 3)],
        [StreamFault("malformed", 2)],
        [StreamFault("stall", 2, 0.01)],
        [StreamFault("malformed", 2), StreamFault("stream_error", 2)],
    ],
    ids=lambda faults: "+".join(f"{f.kind}@{f.after}" for f in faults),
)
@own_hub
def test_faults_strike_from_the_greenlet(faults):
    """A fault's write (an error event, a cut chunk), a stall and a stream's end are asked for by the connection's
    greenlet: the timer sends plain token writes only, whatever the faults and wherever they strike."""
    server_side, client_side = socket.socketpair()
    first = monotonic() + 0.01
    events = paced_events(b"H", event, 10, b"T", first, ITL, None, faults, b"E", lambda: None)
    body = Watching(events)
    connection = gevent.spawn(serve, server_side, body)
    read_all(client_side)
    connection.get(timeout=1)
    tokens = {event(k)[:-2] for k in range(10)}
    for chunk, where in body.asked:
        if where is connection.parent and chunk:
            plain = chunk.removeprefix(b"H")  # (the head goes with token 0)
            assert type(chunk) is bytes and set(plain.split(b"\n\n")[:-1]) <= tokens, chunk
    assert (Ended, connection) in body.asked


@own_hub
def test_a_chunked_response_gets_each_write_as_a_chunk():
    server_side, client_side = socket.socketpair()
    events, _ = stream(count=5)
    connection = gevent.spawn(serve, server_side, events, True)
    body = b"".join(data for _, data in read_all(client_side))
    connection.get(timeout=1)
    # The timer's writes are chunks; what the greenlet sends after the hand-back is as the caller sent it.
    assert body.startswith(b"%x\r\n%s\r\n" % (len(b"H" + event(0)), b"H" + event(0)))
    assert b"%x\r\n%s\r\n" % (len(event(1)), event(1)) in body


@own_hub
def test_a_write_the_socket_cannot_take_goes_back_to_the_greenlet_with_the_rest():
    server_side, client_side = socket.socketpair()
    server_side.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, 4096)
    big = [b"data: %d %s\n\n" % (k, b"x" * 60000) for k in range(8)]
    events, _ = stream(count=8, itl=0.002, event_at=lambda k: big[k])
    connection = gevent.spawn(serve, server_side, events)
    gevent.sleep(0.05)  # the reader is away: the socket's buffer fills at the first token
    assert not connection.dead
    body = b"".join(data for _, data in read_all(client_side))
    connection.get(timeout=1)
    assert body == expected(count=8, event_at=lambda k: big[k])


def under_way():
    """A long stream being sent, its first bytes read: (the client's side, the stream, its greenlet)."""
    server_side, client_side = socket.socketpair()
    events, _ = stream(count=1000)
    connection = gevent.spawn(serve, server_side, events)
    client_side.settimeout(5)
    assert client_side.recv(65536)
    return client_side, events, connection


@own_hub
def test_a_client_gone_is_an_error_in_the_greenlet():
    client_side, _, connection = under_way()
    client_side.close()
    connection.join(timeout=5)
    assert isinstance(connection.exception, OSError)  # (EPIPE or ECONNRESET), raised where the server handles it


@own_hub
def test_a_killed_connection_is_sent_no_more():
    client_side, events, connection = under_way()
    connection.kill(timeout=1)
    client_side.setblocking(False)
    try:  # what was sent before the kill
        while client_side.recv(65536):
            pass
    except BlockingIOError:
        pass
    gevent.sleep(5 * ITL)  # the timer's next ticks for this stream come and go
    with pytest.raises(BlockingIOError):  # nothing more came, and the socket is still open (the server closes it)
        client_side.recv(65536)
    assert events.driven is False


@own_hub
def test_the_stop_deadline_hands_the_stream_back_and_it_ends_as_a_stopped_one():
    server_side, client_side = socket.socketpair()
    events, _ = stream(count=1000)
    connection = gevent.spawn(serve, server_side, events)
    try:
        end_streams_at(monotonic() + 0.03)
        body = b"".join(data for _, data in read_all(client_side))
    finally:
        end_streams_at(float("inf"))
    connection.get(timeout=1)
    assert body.endswith(STOPPED)
    assert body.startswith(b"H" + event(0))


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA and a server certificate for localhost, made as ``mock-openai certs`` makes them."""
    folder = tmp_path_factory.mktemp("pacing-tls")
    ca = certs.make_ca()
    certs.write_pair(ca, folder / "ca.crt", folder / "ca.key")
    certs.write_pair(certs.issue(ca, "localhost", "server", ("localhost",)), folder / "server.crt", folder / "s.key")
    return folder


def tls_pair(folder, send_buffer=None):
    """Both ends of a socket pair with TLS between them, the handshake done: (the server's, the client's)."""
    server_side, client_side = socket.socketpair()
    if send_buffer:
        server_side.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, send_buffer)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(folder / "server.crt", folder / "s.key")
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # (gevent's: create_default_context() is the stdlib's)
    client_context.load_verify_locations(folder / "ca.crt")
    server = gevent.spawn(server_context.wrap_socket, server_side, server_side=True)
    client = client_context.wrap_socket(client_side, server_hostname="localhost")
    return server.get(timeout=5), client


def test_over_tls_the_timer_writes_each_record_and_switches_to_the_greenlet_once(tls_files):
    @own_hub
    def run():
        server_side, client_side = tls_pair(tls_files)
        assert type(server_side) is ssl.SSLSocket
        _, switches, _ = served_and_read(server_side, client_side)
        assert len(switches) <= 4, switches

    run()


def test_over_tls_a_record_that_would_wait_goes_back_whole_and_arrives_once(tls_files):
    """OpenSSL asks that a write that could not finish be made again with the same bytes: the greenlet's
    ``sendall`` does, and the client reads every byte once, in order."""

    @own_hub
    def run():
        server_side, client_side = tls_pair(tls_files, send_buffer=4096)
        big = [b"data: %d %s\n\n" % (k, b"x" * 60000) for k in range(8)]
        events, _ = stream(count=8, itl=0.002, event_at=lambda k: big[k])
        connection = gevent.spawn(serve, server_side, events)
        gevent.sleep(0.05)  # the reader is away: the socket's buffer fills at the first token
        assert not connection.dead
        body = b"".join(data for _, data in read_all(client_side))
        connection.get(timeout=1)
        assert body == expected(count=8, event_at=lambda k: big[k])

    run()
