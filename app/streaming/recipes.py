"""A stream told by its parts: what the journal keeps of a stream whose events come from a shared table, in place
of its bytes.

A stream of :class:`~app.streaming.JoinedEvents` over an :class:`EventTable` (the corpus's tokens, a renderer's
chunks made from them) is its head, ``count`` events ``prefix + table[(start + k) % len(table)] + suffix`` (the
last one's suffix its own, for :class:`~app.streaming.EndedEvents`), and its tail. About a kilobyte says what
its 22 KB (64 tokens) are. The journal keeps that recipe (:func:`recipe_of`) and makes the bytes again only when
the entry is read (:func:`expand`): compressing the bytes of every stream took about a third of what the journal
cost a stream, and most entries are never read.

A recipe names its table by a digest of the table's content, and the journal's store keeps each table once, so
a reader in another process, or one started later with another corpus, makes the same bytes.
"""

from __future__ import annotations

import hashlib
import marshal
from itertools import accumulate

from app.streaming import EndedEvents, JoinedEvents

CODEC = "events"  # a stored body ``((*recipe, limit), CODEC)`` (app.shared.journal_store)


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
    """``(digest, head, prefix, start, count, suffix, last_suffix, tail)`` of a stream whose writer
    (:class:`~app.streaming.PacedEvents`) sent ``size`` bytes, all of them its plain stream: the head, every
    event, the tail, and nothing else (no fault's event, no stop). None for any other stream."""
    head, event_at, count, tail = writer.parts
    kind = type(event_at)
    if kind is JoinedEvents:
        last_suffix = event_at.suffix
    elif kind is EndedEvents and event_at.last == count - 1:
        last_suffix = event_at.last_suffix
    else:
        return None
    table = event_at.tails
    if type(table) is not EventTable or writer.steps != count:
        return None
    if [w for w in writer.whole if w] != [w for w in (head, tail) if w]:
        return None
    prefix, suffix = event_at.prefix, event_at.suffix
    events = count * (len(prefix) + len(suffix)) + (len(last_suffix) - len(suffix) if count else 0)
    if size != len(head) + events + table.span(event_at.start, count) + len(tail):
        return None  # (changed on the way: never here, and then the bytes are kept)
    return table.digest, head, prefix, event_at.start, count, suffix, last_suffix, tail


def expand(kept: tuple, table: list[bytes]) -> bytes:
    """The bytes that a recipe and the limit of bytes kept, ``(*recipe, limit)``, stand for (``table``: the one
    its digest names)."""
    _, head, prefix, start, count, suffix, last_suffix, tail, limit = kept
    if not count:
        return (head + tail)[:limit]
    events = EndedEvents(prefix, table, start, suffix, count - 1, last_suffix).between(0, count)
    return (head + events + tail)[:limit]
