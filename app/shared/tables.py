"""A fixed-size hash table in a mapped file, for counters that every worker of a host updates often.

Records are fixed-size structs whose first field is a 16-byte digest of their key. Slots are found by
open addressing; a slot whose record no longer matters (``reusable``: an expired bucket, a count back at
zero) is taken over by a new key, so the table never needs deleting. Callers hold the shared lock around
every read-modify-write whose result must be exact (a count, a limit); a table that may lose a record to a
race (the prompt cache's) is used without it, and is read only a few slots deep, where a new key evicts the
record kept the least long (:meth:`MappedTable.find_near`).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from collections.abc import Callable, Iterator

EMPTY = bytes(16)


def digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


class MappedTable:
    def __init__(self, path: str, record: str, slots: int):
        self.record = struct.Struct(record)
        self.slots = slots
        size = slots * self.record.size
        self._file = open(path, "a+b")  # noqa: SIM115 (held for the life of the process)
        if os.fstat(self._file.fileno()).st_size < size:
            self._file.truncate(size)  # sparse: pages are only made when written
        self._map = mmap.mmap(self._file.fileno(), size)
        self._zero = tuple(0 for _ in self.record.unpack(bytes(self.record.size))[1:])

    def slot(self, key: bytes, reusable: Callable[[tuple], bool]) -> int:
        """The slot of ``key``: its own, else the first free or reusable one on its probe path."""
        return self.find(key, reusable)[0]

    def find(self, key: bytes, reusable: Callable[[tuple], bool]) -> tuple[int, tuple]:
        """:meth:`slot` and :meth:`get` in one probe (what a caller under the lock does for every key)."""
        start = int.from_bytes(key[:8], "little") % self.slots
        taken = None
        for step in range(self.slots):
            slot = (start + step) % self.slots
            record = self.record.unpack_from(self._map, slot * self.record.size)
            if record[0] == key:
                return slot, record[1:]
            if record[0] == EMPTY:
                return (slot, self._zero) if taken is None else (taken, self._zero)
            if taken is None and reusable(record):
                taken = slot
        if taken is None:
            raise RuntimeError(f"shared table full: more than {self.slots} live entries")
        return taken, self._zero

    def find_near(self, key: bytes, ways: int, kept_until: Callable[[tuple], float]) -> tuple[int, tuple]:
        """For a cache, whose records may be evicted: the slot of ``key`` among the ``ways`` slots from its start,
        else the first free one there, else the one kept the least long (``kept_until``, which is in the past
        for a record that has expired). A full table of open addressing has every probe path as long as the
        table: a lookup here reads at most ``ways`` records however many keys the table holds."""
        start = int.from_bytes(key[:8], "little") % self.slots
        oldest, oldest_until = None, None
        for step in range(ways):
            slot = (start + step) % self.slots
            record = self.record.unpack_from(self._map, slot * self.record.size)
            if record[0] == key:
                return slot, record[1:]
            if record[0] == EMPTY:  # (slots are overwritten, never emptied: the key is not further on)
                return slot, self._zero
            until = kept_until(record)
            if oldest is None or until < oldest_until:
                oldest, oldest_until = slot, until
        return oldest, self._zero

    def get(self, slot: int, key: bytes) -> tuple:
        """The fields after the digest; zeros when the slot holds another (reusable) key or none."""
        record = self.record.unpack_from(self._map, slot * self.record.size)
        return record[1:] if record[0] == key else self._zero

    def put(self, slot: int, key: bytes, *fields) -> None:
        self.record.pack_into(self._map, slot * self.record.size, key, *fields)

    def ints(self, slot: int, first: int, count: int) -> memoryview:
        """``count`` 8-byte integers of a slot's record from byte ``first`` on (aligned there), to read and
        change in place: a counter that only one process writes needs no record packed again, nor a lock. The
        view is released before :meth:`close`."""
        start = slot * self.record.size + first
        return memoryview(self._map)[start : start + 8 * count].cast("q")

    def records(self) -> Iterator[tuple[int, tuple]]:
        """Every slot in use, with its record (for rare scans)."""
        for slot in range(self.slots):
            record = self.record.unpack_from(self._map, slot * self.record.size)
            if record[0] != EMPTY:
                yield slot, record

    def close(self) -> None:
        self._map.close()
        self._file.close()
