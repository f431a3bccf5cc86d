"""The one SSE writer: events paced on absolute deadlines with ``gevent.sleep``, then ``[DONE]``.

Token ``k`` is due at ``first_token_at + k * inter_token_latency``. The writer never sleeps "one interval
after each write": a late wake-up is absorbed by the next deadline instead of pushing every later token back.
When it wakes and several tokens are already due (a busy worker, or no pacing at all), it sends them in one
write; the bytes on the wire are the same events, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from time import monotonic

from gevent import sleep

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"  # a comment line; a bare "event:" line would crash the SDK's decoder


def sse_event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def paced_events(
    head: bytes,
    event_at: Callable[[int], bytes],
    count: int,
    tail: bytes,
    first_token_at: float,
    inter_token_latency: float,
) -> Iterator[bytes]:
    """Yield the stream: ``head`` with token 0 at ``first_token_at`` (a ``monotonic()`` time), token ``k`` at
    its deadline, ``tail`` right after the last token. ``event_at(k)`` renders token ``k``'s event."""
    if first_token_at > monotonic():
        yield b""  # sends the status line and headers now, as the real API does before the first token
    sent = 0
    while True:
        due = first_token_at + sent * inter_token_latency
        now = monotonic()
        if due > now:
            sleep(due - now)
            continue
        if inter_token_latency > 0:
            # max(): float rounding must never leave a due token unsent
            upto = min(count, max(sent + 1, int((now - first_token_at) / inter_token_latency) + 1))
        else:
            upto = count
        parts = [event_at(k) for k in range(sent, upto)]
        if sent == 0:
            parts.insert(0, head)
        if upto >= count:
            parts.append(tail)
            yield b"".join(parts)
            return
        yield parts[0] if len(parts) == 1 else b"".join(parts)
        sent = upto
