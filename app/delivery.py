"""How a decided :class:`~app.simulation.Fate` reaches the wire, for every endpoint that completes text.

A stream goes out through the one SSE writer, paced and with its mid-stream faults; a body waits as long as
its stream would have taken, then goes out whole, or trickles. Either way the running sequence a request
holds is given back when the WSGI server closes the response, whether it ended, failed or the client left.
"""

from __future__ import annotations

import socket
from time import monotonic

from flask import Response, request
from gevent import sleep

from app.context import this_request
from app.errors import SERVER_ERROR, OpenAIError
from app.flask_app import ApiResponse, add_own_headers
from app.journal import STREAM_END, STREAM_STOPPED
from app.render import Reply, compact
from app.simulation import Fate
from app.simulation.faults import error_for
from app.streaming import STOPPED, paced_events, sse_event, trickle

# What ends a stream still running when its worker stops, for a renderer that words its own errors.
SHUTTING_DOWN = OpenAIError(
    503,
    "The server is restarting and could not finish this response. Please retry.",
    SERVER_ERROR,
    code="server_shutting_down",
)


def respond(fate: Fate, reply: Reply, renderer, stream: bool) -> Response:
    try:
        response = _stream(fate, reply, renderer) if stream else _body(fate, reply, renderer)
    except BaseException:
        if fate.release is not None:
            fate.release()
        raise
    add_own_headers(response, fate.rate_limit_headers)
    if fate.release is not None:
        if stream:  # werkzeug skips close callbacks for direct_passthrough bodies: the iterable releases
            response.response = _Releasing(response.response, fate.release)
        else:
            response.call_on_close(fate.release)
    return response


class _Releasing:
    """The same events; ``release`` (idempotent) runs when they end or fail, or when the WSGI server closes
    them (the client left), even before the first one was asked for."""

    __slots__ = ("events", "release")

    def __init__(self, events, release):
        self.events, self.release = events, release

    @property
    def paced(self):
        """The paced stream inside (app.server.pacing), its writes still asked of :meth:`__next__`."""
        return getattr(self.events, "paced", None)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self.events)
        except BaseException:
            self.release()
            raise

    def close(self):
        try:
            self.events.close()
        finally:
            self.release()


_STOPPED_EVENTS: dict[type, bytes] = {}


def _stopped_event(renderer) -> bytes:
    """How a renderer's format words a stream cut by a stopping worker: one error, worded the same for every
    stream, so made once."""
    found = _STOPPED_EVENTS.get(type(renderer))
    if found is None:
        found = _STOPPED_EVENTS[type(renderer)] = renderer.error_event(SHUTTING_DOWN)
    return found


def _stream(fate: Fate, reply: Reply, renderer) -> Response:
    head, event_at, count, tail = renderer.stream(reply)
    environ = this_request().environ
    environ[STREAM_END] = tail  # how the journal knows the stream ended well, in any format
    timing = fate.timing
    error_event, stopped = b"", STOPPED
    # A renderer of another wire format words a mid-stream error its own way (Anthropic's "event: error").
    own_errors = hasattr(renderer, "error_event")
    if any(f.kind == "stream_error" for f in fate.stream_faults):
        error = error_for("500", reply.model, "", fate.settings.faults, None)
        error_event = renderer.error_event(error) if own_errors else sse_event(compact(error.body()))
    if own_errors:
        stopped = environ[STREAM_STOPPED] = _stopped_event(renderer)
    events = paced_events(
        head,
        event_at,
        count,
        tail,
        monotonic() + timing.ttft_s,
        timing.inter_token_latency_s,
        timing.offsets,
        fate.stream_faults,
        error_event,
        connection_dropper() if fate.stream_faults else None,  # only a faulty stream needs the socket
        stopped,
        fate.kv.grow if fate.kv is not None else None,
    )
    if fate.trickle_bytes_per_s:
        events = trickle(events, fate.trickle_bytes_per_s)
    # A renderer may stream something else than events (Gemini's JSON array without alt=sse).
    mimetype = getattr(renderer, "stream_mimetype", "text/event-stream")
    return ApiResponse.of_stream(events, mimetype)


def _body(fate: Fate, reply: Reply, renderer) -> Response:
    fault = fate.stream_faults[0] if fate.stream_faults else None  # a body has one point where it can fail
    wait = fate.non_stream_wait_s + (fault.stall_s if fault is not None and fault.kind == "stall" else 0)
    if fate.kv is not None:
        wait = _generate(fate, wait)
    if wait:
        sleep(wait)
    if fault is not None and fault.kind == "stream_error":
        raise error_for("500", reply.model, "", fate.settings.faults, None)
    if fault is not None and fault.kind == "disconnect":
        connection_dropper()()
        return ApiResponse.of_json(b"")
    body = renderer.body(reply).encode()
    if fault is not None and fault.kind == "malformed":
        body = body[: len(body) // 2]
    if fate.trickle_bytes_per_s:
        response = Response(trickle([body], fate.trickle_bytes_per_s), mimetype="application/json")
        response.headers["Content-Length"] = str(len(body))
        return response
    return ApiResponse.of_json(body)


def _generate(fate: Fate, wait: float) -> float:
    """A body's tokens take their KV cache blocks at the times they are due, as a stream's do (a preemption
    holds the body back too); what is left of ``wait`` afterwards."""
    kv, timing, count = fate.kv, fate.timing, fate.answer.count
    started = monotonic()
    first, held_back = started + timing.ttft_s, 0.0
    if fate.settings.latency["non_stream"] == "ttft":  # sent at its first token: its blocks are taken at once
        return wait + kv.grow(count)
    for k in kv.boundaries(count):
        due = first + (timing.offsets[k] if timing.offsets is not None else k * timing.inter_token_latency_s)
        pause = due + held_back - monotonic()
        if pause > 0:
            sleep(pause)
        held_back += kv.grow(k + 1)
    return max(0.0, started + wait + held_back - monotonic())


def connection_dropper():
    """A function that cuts this request's connection mid-response, as a failing upstream does: the client
    sees the body end early (``incomplete chunked read``). Where there is no socket (Flask's test client),
    the response just ends there."""
    sock = request.environ.get("gunicorn.socket")

    def drop():
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    return drop
