"""A stream told by its parts: what the journal keeps of a stream whose events come from shared tables, in place
of its bytes.

A stream of :class:`~app.streaming.JoinedEvents` over an :class:`EventTable` (the corpus's tokens, a renderer's
chunks made from them) is its head, ``count`` events ``prefix + table[(start + k) % len(table)] + suffix`` (the
last one's suffix its own, for :class:`~app.streaming.EndedEvents`), and its tail. About a kilobyte says what
its 22 KB (64 tokens) are. The journal keeps that recipe, planned as the stream starts (:func:`plan_of`) and
checked against what was sent as it ends (:func:`told`; :func:`recipe_of` does both at once), and makes the bytes
again only when the entry is read (:func:`expand`): compressing the bytes of every stream took about a third of
what the journal cost a stream, and most entries are never read.

A stream of :class:`~app.streaming.NumberedEvents` (the Responses API's text deltas, each with its sequence
number) is told the same way, with two tables (the tokens, and what follows each token) and its first number.

A recipe names its tables by a digest of their content, and the journal's store keeps each table once, so a
reader in another process, or one started later with another corpus, makes the same bytes.
"""

from __future__ import annotations

import hashlib
import marshal
from itertools import accumulate

from app.streaming import EndedEvents, JoinedEvents, NumberedEvents

# A stored body is ``((*recipe, limit), codec)`` (app.shared.journal_store): the codec says which kind of recipe
JOINED, NUMBERED = "events", "numbered"
CODECS = (JOINED, NUMBERED)


class EventTable(list):
    """Byte strings that many streams' events are made of, built once and never changed (``JoinedEvents``'
    tails). A list: streams index and slice it as one."""

    __slots__ = ("_digest", "_ends")

    def __init__(self, items=()):
        super().__init__(items)
        self._digest = self._ends = None

    @property
    def digest(self) -> bytes:
        """16 bytes that name this content, in any process (worked out on first use, and known from then)."""
        if self._digest is None:
            self._digest = hashlib.blake2b(marshal.dumps(list(self)), digest_size=16).digest()
            _KNOWN.setdefault(self._digest, self)
        return self._digest

    def span(self, start: int, count: int) -> int:
        """The bytes of items ``start`` to ``start + count - 1``, taken around the end as often as it takes."""
        ends = self._ends
        if ends is None:
            ends = self._ends = [0, *accumulate(map(len, self))]
        size = len(self)
        at = start % size
        laps, rest = divmod(at + count, size)
        return laps * ends[size] + ends[rest] - ends[at]


_KNOWN: dict[bytes, list[bytes]] = {}  # digest -> table, in this process


def known(digest: bytes) -> list[bytes] | None:
    return _KNOWN.get(digest)


def table_bytes(digest: bytes) -> bytes:
    """A table of this process, as a store keeps it."""
    return marshal.dumps(list(_KNOWN[digest]))


def find_table(digest: bytes, stored) -> list[bytes] | None:
    """The table a digest names: this process's own, else what ``stored(digest)`` reads back from a store
    (:func:`table_bytes`, written by a process that made it; known here from then on), else None."""
    table = _KNOWN.get(digest)
    if table is None:
        data = stored(digest)
        if data is not None:
            table = _KNOWN.setdefault(digest, marshal.loads(data))  # noqa: S302 (our own store's)
    return table


def recipe_of(writer, size: int) -> tuple | None:
    """``(recipe, codec)`` of a stream whose writer (:class:`~app.streaming.PacedEvents`) sent ``size`` bytes,
    all of them its plain stream: the head, every event, the tail, and nothing else (no fault's event, no
    stop). None for any other stream. The recipe of joined events is ``(digest, head, prefix, start, count,
    suffix, last_suffix, tail)``; of numbered ones, ``(tokens' digest, ends' digest, head, lead, first, middle,
    start, count, tail)``."""
    return told(plan_of(writer), writer, size)


def plan_of(writer) -> tuple | None:
    """What :func:`told` needs to tell a stream by its recipe, taken when it starts, from what its writer
    plans to send: ``(recipe, codec, size, count, whole)``. None where no recipe can tell it. A worker
    under load ends a stream hundreds of milliseconds after it began, when its parts have left the cache:
    timed in a loaded worker, the recipe took 3.2 µs at the end, and the plan takes 2.3 at the start, its
    check at the end next to nothing (0.7 µs in a loop)."""
    head, event_at, count, tail = writer.parts
    whole = [w for w in (head, tail) if w]
    kind = type(event_at)
    if kind is NumberedEvents:
        numbered = _numbered(event_at, head, count, tail)
        return None if numbered is None else (*numbered, count, whole)
    if kind is JoinedEvents:
        last_suffix = event_at.suffix
    elif kind is EndedEvents and event_at.last == count - 1:
        last_suffix = event_at.last_suffix
    else:
        return None
    table = event_at.tails
    if type(table) is not EventTable:
        return None
    prefix, suffix = event_at.prefix, event_at.suffix
    events = count * (len(prefix) + len(suffix)) + (len(last_suffix) - len(suffix) if count else 0)
    size = len(head) + events + table.span(event_at.start, count) + len(tail)
    return (table.digest, head, prefix, event_at.start, count, suffix, last_suffix, tail), JOINED, size, count, whole


def told(plan: tuple | None, writer, size: int) -> tuple | None:
    """``(recipe, codec)`` of a stream planned as ``plan`` (:func:`plan_of`) that sent just what it planned:
    every event, its head and tail as its only writes made whole, ``size`` bytes. Else None."""
    if plan is None:
        return None
    recipe, codec, planned, count, whole = plan
    if writer.steps != count or size != planned or [w for w in writer.whole if w] != whole:
        return None  # (cut short, a fault's event, a stop; or changed on the way: then the bytes are kept)
    return recipe, codec


def _numbered(events: NumberedEvents, head: bytes, count: int, tail: bytes) -> tuple | None:
    tokens, ends, first, start = events.tokens, events.ends, events.first, events.start
    if type(tokens) is not EventTable or type(ends) is not EventTable or not count:
        return None
    numbers = _digits(first + count) - _digits(first)
    told = count * (len(events.lead) + len(events.middle)) + numbers + tokens.span(start, count) + ends.span(0, count)
    recipe = (tokens.digest, ends.digest, head, events.lead, first, events.middle, start, count, tail)
    return recipe, NUMBERED, len(head) + told + len(tail)


def _digits(end: int) -> int:
    """The decimal digits of the numbers 0 to ``end - 1``, written one after another."""
    total, low, width = 0, 0, 1
    while low < end:
        high = min(end, 10**width)
        total += (high - low) * width
        low, width = high, width + 1
    return total


def digests(kept: tuple, codec: str) -> tuple:
    """The digests of the tables a stored recipe ``(*recipe, limit)`` names."""
    return kept[:2] if codec == NUMBERED else kept[:1]


def expand(kept: tuple, codec: str, table) -> bytes | None:
    """The bytes that a recipe and the limit of bytes kept, ``(*recipe, limit)``, stand for; ``table(digest)`` is
    the table a digest names, or None where it is lost (then so is the body: None)."""
    found = [table(digest) for digest in digests(kept, codec)]
    if None in found:
        return None
    if codec == NUMBERED:
        _, _, head, lead, first, middle, start, count, tail, limit = kept
        events = b"".join(NumberedEvents(lead, first, middle, found[0], start, count, found[1]))
        return (head + events + tail)[:limit]
    _, head, prefix, start, count, suffix, last_suffix, tail, limit = kept
    if not count:
        return (head + tail)[:limit]
    events = EndedEvents(prefix, found[0], start, suffix, count - 1, last_suffix).between(0, count)
    return (head + events + tail)[:limit]
