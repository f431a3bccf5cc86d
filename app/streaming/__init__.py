"""The one SSE writer: events paced on absolute deadlines (one timer for all, in .deadlines), then ``[DONE]``.

Token ``k`` is due at ``first_token_at + k * inter_token_latency`` (or ``+ offsets[k]`` when the gaps are
jittered). The writer never sleeps "one interval after each write": a late wake-up is absorbed by the next
deadline instead of pushing every later token back. When it wakes and several tokens are already due (a busy
worker, or no pacing at all), it sends them in one write; the bytes on the wire are the same events, in the
same order.

The writer is a plan that never sleeps (it yields a write, or an empty one with the deadline it waits for),
inside :class:`PacedEvents`, which sleeps in the iterating greenlet for any WSGI server, or lets this
project's server send the plain writes from its timer (:mod:`app.server.pacing`).

Mid-stream faults strike once their number of content tokens has gone out: the connection drops, an error
event ends the stream, one malformed chunk goes out, or the stream stalls and then goes on.

A stopping worker (SIGTERM, or the old workers of a SIGHUP) lets its streams run until shortly before
``graceful_timeout`` (:func:`end_streams_at`); a stream still running then ends cleanly with
:data:`STOPPED`, an error event and ``[DONE]``, rather than being cut when gunicorn kills the worker.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from time import monotonic

from gevent import sleep

from app.streaming.deadlines import sleep_until

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"  # a comment line; a bare "event:" line would crash the SDK's decoder


class LastWrite(bytes):
    """A stream's last write, when it ends as planned: the server may end the response in the same send (for a
    chunked response, its terminator in the same packet, not one more). Nothing follows it; to any other
    server it is bytes."""


class JoinedEvents:
    """``event_at`` for events that are one prefix, a tail of their own and one suffix: event ``k`` is
    ``prefix + tails[(start + k) % len(tails)] + suffix``. Several due at once are one join with the suffix and
    the prefix between them, not a concatenation each (a 64-token write: about 1 us against 7)."""

    __slots__ = ("prefix", "tails", "start", "suffix")
    events_a_step = 1  # (see PacedEvents.events_sent)

    def __init__(self, prefix: bytes, tails: Sequence[bytes], start: int, suffix: bytes = b""):
        self.prefix, self.tails, self.start, self.suffix = prefix, tails, start, suffix

    def __call__(self, k: int) -> bytes:
        tails = self.tails
        return self.prefix + tails[(self.start + k) % len(tails)] + self.suffix

    def between(self, first: int, end: int) -> bytes:
        """Events ``first`` to ``end - 1`` (at least one), as one write."""
        tails, prefix, suffix = self.tails, self.prefix, self.suffix
        size = len(tails)
        at = (self.start + first) % size
        if at + end - first <= size:
            return prefix + (suffix + prefix).join(tails[at : at + end - first]) + suffix
        # Past the end of the tails it goes on from their start: the same join over the tails' list taken that
        # many times (a stream longer than the corpus wraps in every write; event by event, a 2,048-token
        # write took 1 ms, as long as the rest of its stream).
        laps, rest = divmod(at + end - first, size)
        return prefix + (suffix + prefix).join(tails[at:] + tails * (laps - 1) + tails[:rest]) + suffix


class EndedEvents(JoinedEvents):
    """:class:`JoinedEvents` whose event ``last`` ends with a suffix of its own (a legacy completion's last
    text chunk, which carries its ``finish_reason``)."""

    __slots__ = ("last", "last_suffix")

    def __init__(self, prefix: bytes, tails: Sequence[bytes], start: int, suffix: bytes, last: int, last_suffix: bytes):
        super().__init__(prefix, tails, start, suffix)
        self.last, self.last_suffix = last, last_suffix

    def __call__(self, k: int) -> bytes:
        if k != self.last:
            return super().__call__(k)
        return self.prefix + self.tails[(self.start + k) % len(self.tails)] + self.last_suffix

    def between(self, first: int, end: int) -> bytes:
        if end <= self.last:
            return super().between(first, end)
        return (super().between(first, self.last) if first < self.last else b"") + self(self.last)


_NUMBERED_LEADS: dict[bytes, list[bytes]] = {}  # a lead -> the lead with each number after it, from 0
NUMBERED_KEPT = 4096  # numbers kept after each lead, about 560 KB (a longer stream writes the rest as it goes)
NUMBERED_LEADS = 8  # leads kept (a format's constant each: the Responses API's text delta is the one today)


def _numbered_leads(lead: bytes, first: int, count: int) -> list[bytes]:
    """``lead + b"%d" % n`` for the ``count`` numbers from ``first``: the same for every stream, made once."""
    kept = _NUMBERED_LEADS.get(lead)
    if kept is None:
        if len(_NUMBERED_LEADS) >= NUMBERED_LEADS:
            return [lead + b"%d" % n for n in range(first, first + count)]
        kept = _NUMBERED_LEADS[lead] = [lead + b"%d" % n for n in range(NUMBERED_KEPT)]
    if first + count <= NUMBERED_KEPT:
        return kept[first : first + count]
    return kept[first:] + [lead + b"%d" % n for n in range(max(first, NUMBERED_KEPT), first + count)]


class NumberedEvents(list):
    """``count`` events that each carry their number (the Responses API's ``sequence_number``): event ``k`` is
    ``lead + b"%d" % (first + k) + middle + tokens[(start + k) % len(tokens)] + ends[k % len(ends)]``. They are
    made in one pass when the stream starts, each lead with its number made once for every stream: a
    2,048-token stream's took 840 µs made one at a time, 470 so, 180 with the numbers made once.
    Called with ``k``, event ``k``; ``between`` joins several due at once."""

    __slots__ = ("lead", "first", "middle", "tokens", "start", "ends")
    events_a_step = 1  # (see PacedEvents.events_sent)
    __call__ = list.__getitem__

    def __init__(self, lead: bytes, first: int, middle: bytes, tokens: Sequence[bytes], start: int, count: int,
                 ends: Sequence[bytes]):  # fmt: skip
        self.lead, self.first, self.middle = lead, first, middle
        self.tokens, self.start, self.ends = tokens, start, ends
        if not count:
            super().__init__()
            return
        size = len(tokens)
        at = start % size
        laps = (at + count) // size
        in_order = tokens[at : at + count] if at + count <= size else (tokens[at:] + tokens * laps)[:count]
        ends = ends[:count] if count <= len(ends) else (ends * (count // len(ends) + 1))[:count]
        join = b"".join
        numbered = _numbered_leads(lead, first, count)
        made = zip(numbered, in_order, ends, strict=True)
        super().__init__([join((head, middle, token, end)) for head, token, end in made])

    def between(self, first: int, end: int) -> bytes:
        return b"".join(self[first:end])


def sse_event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def count_events(data: bytes) -> int:
    """Server-sent events in ``data``: each ends with a blank line (LF LF, or Gemini's CRLF CRLF); keep-alive
    comments are not events. This is a scan of every byte: where the writer can say how many events it sent
    (:meth:`PacedEvents.events_sent`), ask it instead.

    The scan is one split at each LF, then the blank lines counted in the list. ``bytes.count`` of a
    two-byte pattern costs about 0.8 ns a byte here, and the three counts it took 1.4 ns: more than making
    the stream's bytes. The split costs about 0.45."""
    lines = data.split(b"\n")
    blank = lines.count(b"")
    if b"\r" in data:  # (memchr: all but free) a CRLF blank line is a lone CR between two LFs
        blank += lines.count(b"\r")
    # The piece before the first LF and the one after the last are not lines that a blank line ends.
    blank -= (lines[0] == b"") + (len(lines) > 1 and lines[-1] == b"")
    return blank - lines.count(_KEEPALIVE_LINE)


_KEEPALIVE_LINE = KEEPALIVE.split(b"\n")[0]


# What a stream still running at the stop deadline gets, as the SDK raises it (APIError, server_error); [DONE]
# after it lets a reader that waits for [DONE] finish too.
STOPPED = (
    sse_event(
        json.dumps(
            {
                "error": {
                    "message": "The server is restarting and could not finish this response. Please retry.",
                    "type": "server_error",
                    "param": None,
                    "code": "server_shutting_down",
                }
            }
        ).encode()
    )
    + DONE
)
_STOP_AT = [float("inf")]  # monotonic(): streams running then end with STOPPED


class _Stopped(Exception):
    pass


def end_streams_at(when: float) -> None:
    """This worker is stopping: streams still running at ``when`` end with :data:`STOPPED`. Each stream looks
    at its next token (or sooner, if it was going to sleep past ``when``)."""
    _STOP_AT[0] = when


class Schedule:
    """When each token is due."""

    __slots__ = ("first", "interval", "offsets")

    def __init__(self, first_token_at: float, interval: float, offsets: Sequence[float] | None):
        self.first, self.interval, self.offsets = first_token_at, interval, offsets

    def due(self, k: int) -> float:
        return self.first + (self.offsets[k] if self.offsets is not None else k * self.interval)

    def due_by(self, now: float, count: int) -> int:
        """How many tokens are due at ``now``."""
        if self.offsets is not None:
            return bisect_right(self.offsets, now - self.first)
        if self.interval > 0:
            return int((now - self.first) / self.interval) + 1
        return count


class PacedEvents:
    """A stream's writes, each when it is due. Iterated, it sleeps until each is due in the greenlet that
    iterates it, as any WSGI server expects of a body.

    A server that can send writes from its timer (:mod:`app.server.pacing`) sets ``driven``: a wait then comes
    back as an empty write, with its deadline in ``due``, and the server asks for the next write when that
    comes. Only a stream's plain writes go out so: before its last write, a fault, a KV cache step or the stop
    deadline, an empty write comes back with ``handback`` set, and the stream goes on as an iterated one, in
    its connection's greenlet (where what ends a stream may wait: for a lock, for Redis).

    The writes come from one generator, the plan, which never sleeps: it yields the next write, or an empty one
    once it has set ``due``."""

    __slots__ = ("plan", "due", "driven", "handback", "started", "asleep", "events_a_step", "steps", "whole", "parts")

    def __init__(self, events_a_step: int | None = None):
        self.plan: Iterator[bytes] = iter(())
        self.due = 0.0
        self.driven = self.handback = False
        self.started = False  # something has been returned (the head goes out with the first return)
        self.asleep = False  # a wait was returned as an empty write, not slept yet
        # What went out, for events_sent(): the token steps, and the writes made whole (head, tail, faults)
        self.events_a_step, self.steps, self.whole = events_a_step, 0, []
        self.parts: tuple = (b"", None, 0, b"")  # (head, event_at, count, tail), for a recipe (.recipes)

    def events_sent(self) -> int | None:
        """How many server-sent events the writes returned so far hold, where the renderer says how many
        events each token step is (:class:`JoinedEvents`: one); else None, and whoever needs it counts the
        bytes (:func:`count_events`). Asked once, when the stream has ended: a 2,048-token stream's bytes
        took 0.3 ms to count, as long as making them."""
        if self.events_a_step is None:
            return None
        return self.steps * self.events_a_step + sum(count_events(write) for write in self.whole)

    @property
    def paced(self) -> PacedEvents:
        """What a server that sends from its timer drives (the journal's capture and others pass it on)."""
        return self

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self.asleep:
            self.asleep = False
            sleep_until(self.due)
        chunk = next(self.plan)
        while not chunk and not self.driven:
            if not self.started:  # the status line and headers go out now, as the real API sends them
                self.started = self.asleep = True
                return chunk
            sleep_until(self.due)
            chunk = next(self.plan)
        self.started = True
        return chunk

    def close(self) -> None:
        self.plan.close()


def paced_events(
    head: bytes,
    event_at: Callable[[int], bytes],
    count: int,
    tail: bytes,
    first_token_at: float,
    inter_token_latency: float,
    offsets: Sequence[float] | None = None,
    faults: Sequence = (),
    error_event: bytes = b"",
    drop: Callable[[], None] | None = None,
    stopped: bytes = STOPPED,
    grow: Callable[[int], float] | None = None,
) -> PacedEvents:
    """The stream: ``head`` with token 0 at ``first_token_at`` (a ``monotonic()`` time), token ``k`` at
    its deadline, ``tail`` right after the last token. ``event_at(k)`` renders token ``k``'s event.

    ``faults`` (each with ``kind``, ``after`` and ``stall_s``, in order) strike after that many tokens;
    ``error_event`` is what a ``stream_error`` sends, ``drop`` what a ``disconnect`` calls, ``stopped`` what
    ends a stream still running when its worker stops (another wire format's own error event). ``grow(n)``,
    called before tokens up to ``n`` go out, returns how long the stream was held back (a KV cache
    preemption, :mod:`app.simulation.kv_cache`): the tokens after it keep their spacing, that much later."""
    events = PacedEvents(getattr(event_at, "events_a_step", None))
    events.parts = head, event_at, count, tail
    schedule = Schedule(first_token_at, inter_token_latency, offsets)
    events.plan = _plan(events, head, event_at, count, tail, schedule, faults, error_event, drop, stopped, grow)
    return events


def _plan(events, head, event_at, count, tail, schedule, faults, error_event, drop, stopped, grow):
    try:  # inline, not a generator of its own: one frame less for every write of every stream
        sent, prefix = 0, head
        for fault in faults:
            stop = min(fault.after, count)
            sent = yield from _tokens(events, event_at, sent, stop, count, schedule, prefix, b"", grow)
            prefix = b""
            if events.driven:  # a fault strikes from the connection's greenlet
                yield from _hand_back(events, monotonic())
            if fault.kind == "disconnect":
                if drop is not None:
                    drop()
                return
            if fault.kind == "stream_error":
                events.whole.append(error_event)
                yield error_event
                return
            if fault.kind == "malformed":
                event = event_at(sent) if sent < count else tail
                cut = event[: max(8, len(event) // 2)] + b"\n\n"  # a cut JSON object, then the stream goes on
                events.whole.append(cut)
                yield cut
            elif fault.kind == "stall":
                yield from _wait(events, monotonic() + fault.stall_s)
                schedule.first += fault.stall_s  # the rest keeps its spacing
        yield from _tokens(events, event_at, sent, count, count, schedule, prefix, tail, grow)
    except _Stopped:
        events.whole.append(stopped)
        yield stopped


def _wait(events: PacedEvents, due: float):
    """Wait until ``due`` (an empty write, see :class:`PacedEvents`); past the stop deadline, until then, and
    the stream ends with its ``stopped`` event."""
    if events.driven:
        yield from _hand_back(events, monotonic())
    stop_at = _STOP_AT[0]
    if due >= stop_at:
        events.due = stop_at
        yield b""
        raise _Stopped
    if due > monotonic():
        events.due = due
        yield b""
        if events.driven:  # (driven since: the head's early send was this wait) what follows is not a token
            yield from _hand_back(events, monotonic())


def _hand_back(events: PacedEvents, now: float):
    """Back to the connection's greenlet (see :class:`PacedEvents`); it goes on from here."""
    events.handback, events.due = True, now
    yield b""


def _tokens(events, event_at, sent, stop, count, schedule, prefix, suffix, grow=None):
    """Send tokens ``sent`` to ``stop`` on their deadlines, ``prefix`` with the first write and ``suffix``
    with the last; returns the number sent."""
    between = getattr(event_at, "between", None)  # (JoinedEvents: several events in one join)
    if sent >= stop:
        if prefix or suffix:
            if events.driven:
                yield from _hand_back(events, monotonic())
            if prefix:
                yield from _wait(events, schedule.first)
            events.whole += (prefix, suffix)
            yield LastWrite(prefix + suffix) if suffix else prefix
        return sent
    while True:
        due = schedule.due(sent)
        now = monotonic()
        if due > now:
            if due < _STOP_AT[0]:  # (_wait(), inline: this runs for every token of every paced stream)
                events.due = due
                yield b""
                continue
            if events.driven:
                yield from _hand_back(events, now)
                continue
            events.due = _STOP_AT[0]
            yield b""
            raise _Stopped
        # max(): float rounding must never leave a due token unsent
        upto = min(stop, max(sent + 1, schedule.due_by(now, count)))
        if events.driven and (upto >= stop or grow is not None):
            yield from _hand_back(events, now)
            continue
        if grow is not None:
            held_back = grow(upto)
            if held_back:
                schedule.first += held_back
                continue
        if between is not None:
            parts = [between(sent, upto)]
        else:
            parts = [event_at(k) for k in range(sent, upto)]
        if prefix:
            parts.insert(0, prefix)
            events.whole.append(prefix)
            prefix = b""
        sent = events.steps = upto
        if sent >= stop and suffix:
            parts.append(suffix)
            events.whole.append(suffix)
            yield LastWrite(b"".join(parts))
            return sent
        if sent < stop:  # when the next write is due: a server's timer asks again then, not now (PacedEvents)
            events.due = min(schedule.due(sent), _STOP_AT[0])
        yield parts[0] if len(parts) == 1 else b"".join(parts)
        if sent >= stop:
            return sent


def trickle(chunks: Iterable[bytes], bytes_per_s: int) -> Iterator[bytes]:
    """The same bytes at ``bytes_per_s``: small pieces, twenty a second, on absolute deadlines."""
    piece = max(1, bytes_per_s // 20)
    started, sent = None, 0
    for chunk in chunks:
        if not chunk:
            yield chunk  # the empty write that sends the headers early
            continue
        if started is None:
            started = monotonic()
        for i in range(0, len(chunk), piece):
            wait = started + sent / bytes_per_s - monotonic()
            if wait > 0:
                sleep(wait)
            part = chunk[i : i + piece]
            sent += len(part)
            yield part
