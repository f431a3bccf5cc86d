"""The SSE writer's pacing: absolute deadlines, no drift, coalescing when tokens are already due."""

from __future__ import annotations

from time import monotonic

import pytest

from app.simulation.faults import StreamFault
from app.streaming import JoinedEvents, LastWrite, paced_events


def run(count, first_token_at, itl):
    times, writes = [], []
    for write in paced_events(b"H", lambda k: b"%d," % k, count, b"T", first_token_at, itl):
        times.append(monotonic())
        writes.append(write)
    return times, writes


def test_no_pacing_is_one_write():
    _, writes = run(100, monotonic(), 0)
    assert writes == [b"H" + b"".join(b"%d," % k for k in range(100)) + b"T"]


def test_only_the_write_that_ends_the_stream_says_it_is_the_last():
    """The server sends a chunked body's end in the same packet as a LastWrite (app/server/http1.py)."""
    for itl, count in ((0, 100), (0.002, 5), (0, 0)):
        _, writes = run(count, monotonic(), itl)
        assert [type(w) is LastWrite for w in writes] == [False] * (len(writes) - 1) + [True], (itl, count)
        assert writes[-1].endswith(b"T")
    cut = list(
        paced_events(b"H", lambda k: b"%d," % k, 5, b"T", monotonic(), 0, None, [StreamFault("stream_error", 2)], b"E")
    )
    assert b"".join(cut) == b"H0,1,E" and not any(type(w) is LastWrite for w in cut)  # cut short: not as planned


@pytest.mark.parametrize("suffix", [b"", b"S"])
def test_joined_events_are_the_events_one_by_one_wherever_they_start_and_however_many(suffix):
    tails = [b"t%d;" % i for i in range(7)]
    for start in (0, 3, 6):
        events = JoinedEvents(b"P", tails, start, suffix)
        one_by_one = [b"P" + tails[(start + k) % 7] + suffix for k in range(40)]
        assert [events(k) for k in range(40)] == one_by_one
        for first in range(0, 12):
            for end in range(first + 1, 40):  # within the tails, wrapping around them, and more than all of them
                assert events.between(first, end) == b"".join(one_by_one[first:end]), (start, first, end)
    # the writer sends the same bytes with them as with a function
    as_function = lambda k: b"P" + tails[(2 + k) % 7]  # noqa: E731
    for itl in (0, 0.001):
        joined = b"".join(paced_events(b"H", JoinedEvents(b"P", tails, 2), 30, b"T", monotonic(), itl))
        assert joined == b"".join(paced_events(b"H", as_function, 30, b"T", monotonic(), itl))


def test_headers_go_first_when_the_first_token_is_late():
    start = monotonic()
    times, writes = run(2, start + 0.05, 0.01)
    assert writes[0] == b"" and times[0] - start < 0.03
    assert b"".join(writes) == b"H0,1,T"


def test_tokens_arrive_on_their_deadlines_without_drift():
    start = monotonic()
    ttft, itl, count = 0.02, 0.005, 60
    times, writes = run(count, start + ttft, itl)
    assert b"".join(writes) == b"H" + b"".join(b"%d," % k for k in range(count)) + b"T"
    sent = 0
    for at, write in zip(times, writes, strict=True):
        sent += write.count(b",")
        if sent:  # never early: the write that carries token k leaves at or after its deadline
            assert at >= start + ttft + (sent - 1) * itl
    total = times[-1] - start
    expected = ttft + (count - 1) * itl  # 0.315 s
    # Deadlines are absolute: the whole stream is late only by the last wake-up, not by 60 of them.
    assert expected <= total < expected + 0.08


def test_a_late_wake_up_sends_every_due_token_at_once():
    start = monotonic() - 0.1  # as if the worker had been busy for 100 ms
    _, writes = run(30, start, 0.01)
    assert writes[0].startswith(b"H0,1,2,3,4,5,6,7,8,9,")


# --- jitter, faults and trickle in the writer ------------------------------------------------------------


def _events(count):
    return lambda k: f"data: {k}\n\n".encode()


def test_jittered_offsets_are_kept_in_order():
    from time import monotonic

    from app.streaming import paced_events

    offsets = [0.0, 0.001, 0.001, 0.004]
    out = b"".join(paced_events(b"H", _events(4), 4, b"T", monotonic(), 0.0, offsets))
    assert out == b"Hdata: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\nT"


def test_faults_strike_after_k_tokens():
    from time import monotonic

    from app.simulation.faults import StreamFault
    from app.streaming import paced_events

    dropped = []
    faults = [StreamFault("malformed", 1), StreamFault("stall", 2, 0.01), StreamFault("disconnect", 3)]
    started = monotonic()
    out = b"".join(
        paced_events(b"H", _events(5), 5, b"T", monotonic(), 0.0, None, faults, b"E", lambda: dropped.append(1))
    )
    malformed = b"data: 1\n" + b"\n\n"  # token 1's event cut short (a real event is cut inside its JSON)
    assert out == b"Hdata: 0\n\n" + malformed + b"data: 1\n\ndata: 2\n\n"
    assert dropped == [1]
    assert monotonic() - started >= 0.01
    error = b"".join(
        paced_events(b"H", _events(5), 5, b"T", monotonic(), 0.0, None, [StreamFault("stream_error", 0)], b"E")
    )
    assert error == b"HE"


def test_trickle_keeps_the_bytes_and_the_rate():
    from time import monotonic

    from app.streaming import trickle

    started = monotonic()
    pieces = list(trickle([b"", b"x" * 300, b"y" * 100], 2000))
    assert pieces[0] == b"" and b"".join(pieces) == b"x" * 300 + b"y" * 100
    assert max(len(p) for p in pieces) == 100 and 0.15 <= monotonic() - started < 0.3


def test_a_stopping_worker_ends_its_streams_at_the_deadline_with_an_error_and_done():
    from app import streaming

    started = monotonic()
    streaming.end_streams_at(started + 0.1)
    try:
        writes = list(paced_events(b"H", lambda k: b"%d," % k, 1000, b"T", started, 0.01))
    finally:
        streaming.end_streams_at(float("inf"))
    assert writes[-1] == streaming.STOPPED and writes[-1].endswith(b"data: [DONE]\n\n")
    sent = b"".join(writes[:-1])
    assert sent.startswith(b"H0,") and b"T" not in sent and 5 <= sent.count(b",") < 20  # 0.1 s of 10 ms tokens
    assert monotonic() - started < 0.3


@pytest.mark.parametrize(
    "count, itl, faults",
    [
        (40, 0, []),  # one write
        (12, 0.001, []),  # a write a token
        (0, 0, []),  # nothing to say: the head and the tail
        (12, 0, [StreamFault("malformed", 1), StreamFault("stall", 2, 0.001), StreamFault("disconnect", 3)]),
        (12, 0.001, [StreamFault("stream_error", 2)]),
        (12, 0, [StreamFault("stream_error", 0)]),
        (500, 0.001, "stop"),  # still running when its worker stops
    ],
)
def test_a_writer_of_joined_events_counts_the_events_it_sent_as_a_scan_of_its_bytes_would(count, itl, faults):
    """The journal asks the writer instead of scanning a long stream's bytes (PacedEvents.events_sent)."""
    from app import streaming
    from app.streaming import count_events

    tails = [b'"t%d"}\n\n' % i for i in range(7)]
    head, tail = b'data: {"head"}\n\n', b'data: {"tail"}\n\n' + streaming.DONE
    error = b"event: error\ndata: {}\n\n"
    started = monotonic()
    if faults == "stop":
        streaming.end_streams_at(started + 0.02)
    try:
        events = paced_events(head, JoinedEvents(b"data: {", tails, 5), count, tail, started, itl, None,
                              faults if faults != "stop" else [], error, lambda: None)  # fmt: skip
        sent = b""
        for write in events:
            sent += write
            assert events.events_sent() == count_events(sent)
    finally:
        streaming.end_streams_at(float("inf"))
    assert events.events_sent() > 0 and (faults != "stop" or sent.endswith(streaming.STOPPED))


def test_a_writer_whose_steps_may_be_several_events_leaves_the_count_to_a_scan():
    events = paced_events(b"H", lambda k: b"data: %d\n\n" % k, 3, b"T", monotonic(), 0)
    assert b"".join(events) and events.events_sent() is None
