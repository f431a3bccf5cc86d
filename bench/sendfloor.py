"""The kernel's part of a paced stream: what one small ``send`` costs on this machine, with nothing else.

    python bench/sendfloor.py [--streams 1200] [--seconds 5]

A sender pinned to CPU 0 (where the suite's server runs) keeps ``streams`` TCP connections on loopback and
writes one event of a chat stream's size to each of them every 10 ms, as a server pacing that many streams at an
inter-token latency of 10 ms does with every token; a reader pinned to CPU 1 (where the suite's load runs)
reads them. The sender does nothing else: no HTTP, no app, one Python loop over the sockets. What it spends a
send is the floor under every paced token of any server on this machine, whatever its language. On loopback
the kernel also delivers the bytes into the reader's socket and wakes the reader, in the sender's ``send``.

From it, the most streams one core could pace at ITL 10 ms if it did nothing but send: the paced rows of the
suite (:mod:`suite`) are read against it.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys
import time

EVENT_BYTES = 330  # a chat completion chunk of one token, as this server sends it (with "usage": null)


def send_floor(streams: int = 1200, itl_ms: float = 10.0, seconds: float = 5.0) -> dict:
    """One run (see the module's docstring): the sender's CPU per send, all of it and the kernel's part, and
    the streams one core could pace at ``itl_ms`` from that alone."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(streams)
    port = listener.getsockname()[1]
    results_read, results_write = os.pipe()
    reader = _fork(lambda: (os.close(results_write), _read(port, streams)), cpu=1)
    sender = _fork(lambda: _send(listener, streams, itl_ms / 1000, seconds, results_write), cpu=0)
    listener.close()
    os.close(results_write)
    with os.fdopen(results_read) as pipe:
        figures = json.loads(pipe.read() or "{}")
    for pid in (sender, reader):
        os.waitpid(pid, 0)
    if not figures:
        raise RuntimeError("the send floor's sender failed")
    sends_a_second_a_stream = 1000 / itl_ms
    figures["streams_one_core"] = 1e6 / (figures["us_per_send"] * sends_a_second_a_stream)
    return figures


def _fork(run, cpu: int) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.sched_setaffinity(0, {cpu})
            run()
            code = 0
        finally:
            os._exit(code)
    return pid


def _read(port: int, streams: int) -> None:
    selector = selectors.DefaultSelector()
    for _ in range(streams):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.setblocking(False)
        selector.register(connection, selectors.EVENT_READ)
    open_connections = streams
    while open_connections:
        for key, _ in selector.select():
            if not key.fileobj.recv(65536):
                selector.unregister(key.fileobj)
                key.fileobj.close()
                open_connections -= 1


def _send(listener: socket.socket, streams: int, interval: float, seconds: float, results: int) -> None:
    connections = [listener.accept()[0] for _ in range(streams)]
    for connection in connections:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as gunicorn's listener sets it
        connection.setblocking(False)
    event = b"data: " + b"x" * (EVENT_BYTES - 8) + b"\n\n"
    sends = late = 0
    started = time.monotonic()
    before = os.times()
    due = started
    while due - started < seconds:
        for connection in connections:
            try:
                connection.send(event)
            except BlockingIOError:  # the reader fell behind: not a send of the shape measured
                late += 1
            sends += 1
        due += interval
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    after = os.times()
    for connection in connections:
        connection.close()
    user, system = after.user - before.user, after.system - before.system
    figures = {
        "streams": streams,
        "sends": sends,
        "refused": late,
        "us_per_send": (user + system) / sends * 1e6,
        "kernel_us_per_send": system / sends * 1e6,
        "sender_cpu": (user + system) / (time.monotonic() - started),
    }
    os.write(results, json.dumps(figures).encode())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1200)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    figures = send_floor(args.streams, 10.0, args.seconds)
    print(
        f"{figures['streams']} connections, a {EVENT_BYTES}-byte send to each every 10 ms: "
        f"{figures['us_per_send']:.2f} µs of CPU a send ({figures['kernel_us_per_send']:.2f} in the kernel), "
        f"the sender at {figures['sender_cpu']:.2f} of its core; sends alone would fill one core at "
        f"{figures['streams_one_core']:.0f} streams"
        + (f" ({figures['refused']} sends refused: the reader fell behind)" if figures["refused"] else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
