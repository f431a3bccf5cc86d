"""The request journal on one host: a SQLite file in WAL mode that queries read, fed by batches that every
worker appends to a second file beside it.

A worker writes each flush as one row of packed entries in ``<path>.batches``; the first read after it
unpacks them into the ``requests`` table of ``<path>`` that queries run on. Writing is then one insert per
flush however many requests it holds, and the work of indexing entries is done only for entries someone
reads. The batches file keeps a rollback journal, not a WAL: a batch is written once, into pages freed by
the batches unpacked or dropped before it, where a WAL writes it twice (the log, then the checkpoint) and
grows the file as it goes; a flush of 200 streams costs a quarter as much (4 MB: 2.2 ms against 8.4).

Readers never lock (WAL lets them read while a worker writes). Writers take an ``flock`` of their own, tried
without blocking and retried after a short gevent sleep, so a worker waiting for another's batch keeps
serving its streams. Each worker also keeps three counters in a mapped table beside the file, written only
by itself: entries captured, entries committed, and streams open now. A reader waits until every live
worker has committed what it had captured when the read began, so a request that has been answered is in
the journal that a test reads next.
"""

from __future__ import annotations

import fcntl
import marshal
import os
import sqlite3
import struct
import time
from contextlib import suppress

from app.shared import connect, write_transaction
from app.shared.tables import MappedTable, digest

# The stored fields of an entry, in the order rows are given to append().
COLUMNS = (
    "time",
    "method",
    "path",
    "query",
    "status",
    "latency_ms",
    "ttft_ms",
    "model",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "scenario",
    "fault",
    "client",
    "client_cert",
    "test_id",
    "request_headers",
    "request_body",
    "request_size",
    "response_headers",
    "response_body",
    "response_size",
    "events",
    "ending",
    "writes",
    "worker",
    "api",  # the wire format it came in (openai, anthropic, azure, gemini)
    "batch",  # the batch whose line it was (app.batches), or None
)
# Filters of GET /_mock/requests that compare a column for equality.
EQUAL_FILTERS = ("method", "path", "status", "model", "test_id", "stream", "ending", "api", "batch")
# Searched by text (q): bodies are stored as bytes, so they are compared as text.
SEARCHED = ("path", "model", "test_id", "response_headers", "cast(request_body as text)", "cast(response_body as text)",
            "fault", "scenario")  # fmt: skip

_SCHEMA = f"""
create table if not exists requests (
    id integer primary key autoincrement,
    {", ".join(COLUMNS)});
create index if not exists requests_time on requests (time);
"""
# How far each segment has been unpacked, committed with what was unpacked from it.
_READ = "create table if not exists segments_read (name text primary key, offset integer);"
_FRAME = struct.Struct("=II")  # a frame of a segment: the length of its blob, the entries it holds
SEGMENT_BYTES = 8 << 20  # a worker starts a new segment past this, so read ones can go while it writes
_INSERT = f"insert into requests ({', '.join(COLUMNS)}) values ({', '.join('?' * len(COLUMNS))})"
_PROGRESS_SLOTS = 1 << 10  # workers that ever ran against this file, reused once idle and gone


def _add_new_columns(db: sqlite3.Connection) -> None:
    """A journal file written by an older version (``[journal] path`` kept between runs) gains the columns
    added since, empty for its old entries."""
    present = {row[1] for row in db.execute("pragma table_info(requests)")}
    for column in COLUMNS:
        if column not in present:
            db.execute(f"alter table requests add column {column}")


class JournalReader:
    """Queries over a ``requests`` table of :data:`COLUMNS` (plus ``id``), shared by the backends: each brings
    its own ``_db()`` (a SQLite connection holding the table) and ``_unpack()`` (bring the table up to date)."""

    max_entries: int

    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _unpack(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _wait(done, timeout: float) -> bool:
        """Sleep (in gevent) until ``done()``; False if ``timeout`` passes first."""
        from gevent import sleep

        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            sleep(0.002)
        return True

    def attend(self, flush) -> None:
        """This process's entries are about to be written from a greenlet of their own; a backend whose
        readers must ask for them keeps ``flush`` to call when one does."""

    # --- reading ------------------------------------------------------------------------------------------
    def query(self, where: dict, q: str | None, since: float | None, before: tuple | None, limit: int, offset: int):
        """``(rows, total)``: rows as dicts, newest first by the time each request came in (workers write in
        batches, so ids alone do not keep that order), after the ``(time, id)`` of ``before``; ``total``
        counts every match, ignoring the page."""
        clauses, params = [], []
        for column, value in where.items():
            clauses.append(f"{column} = ?")
            params.append(value)
        if since is not None:
            clauses.append("time >= ?")
            params.append(since)
        for term in (q or "").lower().split():
            # Every word somewhere, not the phrase: a stream's reply is stored as events, one token each.
            clauses.append("(" + " or ".join(f"instr(lower({c}), ?) > 0" for c in SEARCHED) + ")")
            params.extend([term] * len(SEARCHED))
        where_sql = (" where " + " and ".join(clauses)) if clauses else ""
        self._unpack()
        db = self._db()
        total = db.execute(f"select count(*) from requests{where_sql}", params).fetchone()[0]  # noqa: S608
        page_sql = where_sql
        if before is not None:
            page_sql += (" and " if clauses else " where ") + "(time < ? or (time = ? and id < ?))"
            params = [*params, before[0], before[0], before[1]]
        cursor = db.execute(
            f"select * from requests{page_sql} order by time desc, id desc limit ? offset ?",  # noqa: S608
            [*params, limit, offset],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor], total

    def get(self, entry_id: int) -> dict | None:
        self._unpack()
        cursor = self._db().execute("select * from requests where id = ?", (entry_id,))
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None

    def columns(self, names: tuple[str, ...], since: float | None = None) -> list[tuple]:
        """Those columns of every entry (since a time), oldest first: what statistics are made of."""
        self._unpack()
        sql = f"select {', '.join(names)} from requests"  # noqa: S608 (names are ours)
        if since is not None:
            return self._db().execute(sql + " where time >= ? order by id", (since,)).fetchall()
        return self._db().execute(sql + " order by id").fetchall()


class JournalStore(JournalReader):
    def __init__(self, path: str, max_entries: int):
        self.path, self.max_entries = path, max_entries
        self.folder = path + ".segments"
        os.makedirs(self.folder, exist_ok=True)
        self._lock = open(path + ".lock", "a+b")  # noqa: SIM115 (held for the life of the worker)
        self._wait_for_lock(blocking=True)
        try:
            # per worker: digest, pid, captured, committed, open streams
            self._progress = MappedTable(path + ".progress", "=16sqqqq", _PROGRESS_SLOTS)
            db = self._db()
            db.executescript(_SCHEMA + _READ)
            _add_new_columns(db)
            _take_old_batches(db, path, max_entries)
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._slot = self._slot_pid = None
        self._mine = [0, 0, 0]  # this process's: captured, committed, open streams
        self._writing = None  # this process's segment: [pid, file descriptor, bytes in it, its number]
        self._written: list[list] = []  # this process's segments, oldest first: [name, entries]

    # --- plumbing -----------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if getattr(self, "_pid", None) != os.getpid():  # a connection must not cross a fork
            # No syncs: an OS crash may lose the last entries, a worker's crash cannot (WAL).
            self._connection = connect(self.path, synchronous="off", page_size=65536)
            self._pid = os.getpid()
        return self._connection

    def _wait_for_lock(self, blocking: bool = False) -> None:
        if blocking:
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            return
        from gevent import sleep

        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                sleep(0.001)  # another reader is unpacking: serve streams meanwhile

    def _transaction(self):
        """A write transaction on the journal file, under the readers' lock (waited for in gevent)."""
        unlock = lambda: fcntl.flock(self._lock, fcntl.LOCK_UN)  # noqa: E731
        return write_transaction(self._db(), self._wait_for_lock, unlock)

    # --- this worker's counters ---------------------------------------------------------------------------
    def _publish(self) -> None:
        pid = _PID[0]
        if self._slot_pid != pid:  # first use in this process: claim a slot
            self._wait_for_lock(blocking=True)
            try:
                key = digest(f"journal\0{pid}")
                self._slot = self._progress.slot(key, lambda record: not _alive(record[1]))
                self._slot_key, self._slot_pid = key, pid
            finally:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._progress.put(self._slot, self._slot_key, pid, *self._mine)

    def captured(self, n: int = 1) -> None:
        self._mine[0] += n
        self._publish()

    def stream_opened(self) -> None:
        self._mine[2] += 1
        self._publish()

    def stream_closed(self) -> None:
        self._mine[2] -= 1
        self._publish()

    def open_streams(self) -> int:
        return sum(max(0, r[4]) for _, r in self._progress.records() if _alive(r[1]))

    def wait_committed(self, timeout: float) -> bool:
        """Wait (sleeping in gevent) until every live worker has committed what it had captured by now."""
        wanted = {r[1]: r[2] for _, r in self._progress.records() if r[2] > r[3]}

        def all_committed():
            nonlocal wanted
            done = {r[1] for _, r in self._progress.records() if r[1] in wanted and r[3] >= wanted[r[1]]}
            wanted = {pid: n for pid, n in wanted.items() if pid not in done and _alive(pid)}
            return not wanted

        return self._wait(all_committed, timeout)

    def forget_process(self, pid: int) -> None:
        for slot, record in list(self._progress.records()):
            if record[1] == pid:
                self._progress.put(slot, record[0], pid, record[2], record[2], 0)

    # --- writing ------------------------------------------------------------------------------------------
    def append(self, rows: list[tuple]) -> None:
        """Write ``rows`` (in :data:`COLUMNS` order) as one frame at the end of this worker's segment: one
        system call, no lock, whatever the other workers do. A read unpacks the frames into the ``requests``
        table first (:meth:`_unpack`)."""
        if not rows:
            return
        blob = marshal.dumps(rows)
        fd = self._segment()
        _write_all(fd, _FRAME.pack(len(blob), len(rows)), blob)
        self._writing[2] += _FRAME.size + len(blob)
        self._written[-1][1] += len(rows)
        self._mine[1] += len(rows)
        self._publish()

    def _segment(self) -> int:
        """This worker's segment, a new one when it has none (a forked child, too) or it has grown past
        :data:`SEGMENT_BYTES`; unread segments beyond the newest ``max_entries`` of this worker go then."""
        writing, pid = self._writing, _PID[0]
        if writing is not None and writing[0] == pid and writing[2] < SEGMENT_BYTES:
            return writing[1]
        if writing is not None and writing[0] == pid:
            os.close(writing[1])
            number = writing[3] + 1
        else:
            self._written, number = [], 0
        # The process's start and a count name the file: a pid reused later never appends to an old one.
        name = f"{pid}-{_STARTED[0]}-{number:08d}"
        fd = os.open(os.path.join(self.folder, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._writing = [pid, fd, 0, number]
        self._written.append([name, 0])
        # Only this worker's newest max_entries can be among the journal's newest: older unread ones go, so a
        # long load test that nobody reads stays bounded.
        while sum(entries for _, entries in self._written[1:]) >= self.max_entries:
            gone, _ = self._written.pop(0)
            with suppress(FileNotFoundError):  # a reader took it first
                os.unlink(os.path.join(self.folder, gone))
        return fd

    def discarded(self, n: int) -> None:
        """``n`` captured entries were given up before they could be written: no reader waits for them."""
        self._mine[1] += n
        self._publish()

    # --- reading the segments -----------------------------------------------------------------------------
    def _unread(self) -> dict[str, tuple[int, int]]:
        """Each segment holding bytes not unpacked yet: ``{name: (offset read to, size)}``."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return {}
        read = dict(self._db().execute("select name, offset from segments_read"))
        unread = {}
        for name in names:
            try:
                size = os.stat(os.path.join(self.folder, name)).st_size
            except FileNotFoundError:
                continue  # its writer dropped it
            if size > read.get(name, 0) or not _writing(name, names):
                unread[name] = (read.get(name, 0), size)
        return unread

    def _unpack(self) -> None:
        """Move what the workers have written into ``requests``, in the order the requests came in, keeping
        the newest ``max_entries``; then remove the segments read to the end that their workers have left.
        Cheap when there is nothing to move (a directory listing and one indexed look, no lock)."""
        if not self._unread():
            return
        with self._transaction() as db:
            unread = self._unread()  # again, under the lock: another reader may have unpacked meanwhile
            rows, offsets = [], []
            for name, (offset, _) in unread.items():
                frames, end = _frames(os.path.join(self.folder, name), offset)
                rows.extend(row for blob in frames for row in marshal.loads(blob))
                offsets.append((name, end))
            rows.sort(key=lambda row: row[0])  # by time
            if rows:
                db.executemany(_INSERT, rows[-self.max_entries :])
                last = db.execute("select last_insert_rowid()").fetchone()[0]
                db.execute("delete from requests where id <= ?", (last - self.max_entries,))
            db.executemany("insert or replace into segments_read (name, offset) values (?, ?)", offsets)
            names = os.listdir(self.folder)
            for name, end in offsets:
                if not _writing(name, names) and end >= unread[name][1]:
                    with suppress(FileNotFoundError):
                        os.unlink(os.path.join(self.folder, name))
                    db.execute("delete from segments_read where name = ?", (name,))
            present = set(names)
            db.executemany(
                "delete from segments_read where name = ?",
                [(name,) for (name,) in db.execute("select name from segments_read") if name not in present],
            )

    def clear(self) -> int:
        """Empty the journal; returns how many entries it held."""
        with self._transaction() as db:
            waiting, offsets = 0, []
            for name, (offset, _) in self._unread().items():
                frames, end = _frames(os.path.join(self.folder, name), offset, counted=True)
                waiting += sum(frames)
                offsets.append((name, end))
            db.executemany("insert or replace into segments_read (name, offset) values (?, ?)", offsets)
            deleted = db.execute("delete from requests").rowcount
        return deleted + waiting

    def close(self) -> None:
        if getattr(self, "_connection", None) is not None and self._pid == os.getpid():
            self._connection.close()
        self._connection, self._pid = None, None
        if self._writing is not None and self._writing[0] == _PID[0]:
            os.close(self._writing[1])
        self._writing = None
        self._progress.close()
        self._lock.close()


def _write_all(fd: int, *parts: bytes) -> None:
    """``os.writev`` until every byte is written (a regular file takes them in one call but for a signal)."""
    remaining = sum(len(part) for part in parts)
    views = [memoryview(part) for part in parts]
    while remaining:
        written = os.writev(fd, views)
        remaining -= written
        while written:
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0], written = views[0][written:], 0


def _frames(path: str, offset: int, counted: bool = False) -> tuple[list, int]:
    """The whole frames of a segment from ``offset`` (their blobs, or with ``counted`` their entry counts),
    and the offset after the last: a frame still being written, or cut by its worker's death, is left."""
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return [], offset
    frames, at = [], 0
    while at + _FRAME.size <= len(data):
        length, count = _FRAME.unpack_from(data, at)
        if at + _FRAME.size + length > len(data):
            break
        frames.append(count if counted else data[at + _FRAME.size : at + _FRAME.size + length])
        at += _FRAME.size + length
    return frames, offset + at


def _writing(name: str, names: list[str]) -> bool:
    """Whether a segment's worker may still append to it: it is alive and this is its newest segment."""
    pid, started, number = name.split("-")
    if not _alive(int(pid)):
        return False
    prefix = f"{pid}-{started}-"
    return not any(other.startswith(prefix) and other > name for other in names)


def _take_old_batches(db: sqlite3.Connection, path: str, max_entries: int) -> None:
    """A journal file written by an older version (``[journal] path`` kept between runs) may have entries
    waiting in a ``batches`` table, in the journal file itself or in ``<path>.batches``: they move into
    ``requests`` now."""
    sources = []
    if db.execute("select 1 from sqlite_master where name = 'batches'").fetchone():
        sources.append((db, True))
    if os.path.exists(path + ".batches"):
        sources.append((sqlite3.connect(path + ".batches"), False))
    for source, inside in sources:
        try:
            if source.execute("select 1 from sqlite_master where name = 'batches'").fetchone():
                blobs = source.execute("select rows from batches order by id").fetchall()
                rows = sorted((row for (blob,) in blobs for row in marshal.loads(blob)), key=lambda row: row[0])
                db.execute("begin immediate")
                db.executemany(_INSERT, rows[-max_entries:])
                last = db.execute("select last_insert_rowid()").fetchone()[0]
                db.execute("delete from requests where id <= ?", (last - max_entries,))
                if inside:
                    db.execute("drop table batches")
                db.execute("commit")
        finally:
            if not inside:
                source.close()
                for leftover in ("", "-journal"):
                    with suppress(FileNotFoundError):
                        os.unlink(path + ".batches" + leftover)


def process_id() -> int:
    """``os.getpid()`` without the system call."""
    return _PID[0]


# This process's id and when it started, kept current across forks: os.getpid() is a system call, and
# _publish runs for every request.
_PID, _STARTED = [os.getpid()], [time.time_ns()]


def _forked() -> None:
    _PID[0], _STARTED[0] = os.getpid(), time.time_ns()


os.register_at_fork(after_in_child=_forked)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
