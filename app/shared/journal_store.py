"""The request journal on one host: a SQLite file in WAL mode that queries read, fed by batches that each
worker writes to a file of its own beside it.

A worker writes each flush as one row of packed entries in its batches file (``<path>.workers/<pid>-<start>``);
the first read after it unpacks them into the ``requests`` table of ``<path>`` that queries run on. Writing
is then one insert per flush however many requests it holds, into a file no other worker writes: workers
never wait for each other, however many there are. The work of indexing entries is done only for entries
someone reads. A batches file keeps a rollback journal, not a WAL: a batch is written once, into pages freed
by the batches unpacked before it, which the operating system still holds, where a WAL writes it twice (the
log, then the checkpoint) and a file of appended frames takes new pages for every write; a flush of 200
streams (4 MB, before batches were compressed) cost 2.2 ms this way, 6.6 ms appended to new files, 8.4 ms
through a WAL.

Readers never lock the journal file (WAL lets them read while another unpacks). A worker and a reader
take a batches file's ``flock`` around a transaction on it (tried without blocking and retried after a
short gevent sleep, so a worker waiting keeps serving its streams); readers also take the journal's own,
one unpacking at a time. Each worker also keeps three counters in a mapped table beside the file, written
only by itself: entries captured, entries committed, and streams open now. A reader waits until every live
worker has committed what it had captured when the read began, so a request that has been answered is in
the journal that a test reads next.
"""

from __future__ import annotations

import fcntl
import logging
import marshal
import os
import re
import sqlite3
import time
import zlib
from contextlib import suppress

import zstandard

from app.shared import connect, process_id, write_transaction
from app.shared.tables import MappedTable, digest
from app.streaming import recipes

log = logging.getLogger(__name__)

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
_BATCHES_FILE = re.compile(r"\d+-\d+")  # a worker's batches file: its pid and when it started (ns)
_BATCHES = """
create table if not exists batches (id integer primary key autoincrement, count integer, rows blob);
create table if not exists event_tables (digest blob primary key, data blob);
"""
_INSERT = f"insert into requests ({', '.join(COLUMNS)}) values ({', '.join('?' * len(COLUMNS))})"
_BODIES = (COLUMNS.index("request_body"), COLUMNS.index("response_body"))
_RESPONSE_BODY = COLUMNS.index("response_body")
_PROGRESS_SLOTS = 1 << 10  # workers that ever ran against this file, reused once idle and gone
# A worker's record there: its digest, pid, then the counts it changes in place, from byte 24 on: entries captured,
# entries committed, streams open now
_PROGRESS, _COUNTS_AT = "=16sqqqq", 24


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
        self.folder = path + ".workers"
        os.makedirs(self.folder, exist_ok=True)
        self._lock = open(path + ".lock", "a+b")  # noqa: SIM115 (held for the life of the worker)
        _flock(self._lock, blocking=True)
        try:
            self._progress = MappedTable(path + ".progress", _PROGRESS, _PROGRESS_SLOTS)
            db = self._db()
            db.executescript(_SCHEMA)
            _add_new_columns(db)
            _take_old_batches(db, path, max_entries)
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._slot_pid = None
        self._mine: memoryview | None = None  # this process's counters (:meth:`_counts`)
        self._own: _Batches | None = None  # this process's batches file
        self._others: dict[str, _Batches] = {}  # every worker's, as this process reads them

    # --- plumbing -----------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if getattr(self, "_pid", None) != os.getpid():  # a connection must not cross a fork
            # No syncs: an OS crash may lose the last entries, a worker's crash cannot (WAL). Large pages:
            # a flush is one blob of a few hundred kilobytes, written in a sixteenth of the page writes.
            self._connection = connect(self.path, synchronous="off", page_size=65536)
            self._pid, self._own, self._others = os.getpid(), None, {}
        return self._connection

    # --- this worker's counters ---------------------------------------------------------------------------
    def _counts(self) -> memoryview:
        """This process's counters in the mapped table (captured, committed, open streams), changed in place:
        a count is one store into shared memory, where packing the whole record again cost about a
        microsecond, three times a stream. The first use in a process claims its slot."""
        pid = process_id()
        if self._slot_pid != pid:
            carried = tuple(self._mine) if self._mine is not None else (0, 0, 0)  # (a fork's parent's view)
            _flock(self._lock, blocking=True)
            try:
                key = digest(f"journal\0{pid}")
                slot = self._progress.slot(key, lambda record: not _alive(record[1]))
                self._progress.put(slot, key, pid, *carried)
                self._slot_pid = pid
            finally:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._mine = self._progress.ints(slot, _COUNTS_AT, 3)
        return self._mine

    def captured(self, n: int = 1) -> None:
        self._counts()[0] += n

    def stream_opened(self) -> None:
        self._counts()[2] += 1

    def stream_closed(self) -> None:
        self._counts()[2] -= 1

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
        """Commit ``rows`` (in :data:`COLUMNS` order) as one batch in this worker's file: a single row holding
        them all, so that a worker under load pays for one insert per flush, not one per request. A read
        unpacks the batches into the ``requests`` table first (:meth:`_unpack`). Once this worker holds an
        eighth more than ``max_entries`` unread, all but its newest ``max_entries`` are dropped (only those can
        be among the journal's newest), so a long load test with nobody reading stays bounded. An eighth at a
        time: the drop runs in the writer, and the worker serves nobody meanwhile (dropping 10,000 entries of
        2,048-token bodies at once took 88 ms; the same work in eighths, 11 ms each)."""
        if not rows:
            return
        tables: set[bytes] = set()
        blob = pack(rows, tables)
        own = self._own_batches()
        with own.transaction() as db:
            for table in tables - own.tables:  # (once a table a file: its batches' recipes name it)
                db.execute("insert or ignore into event_tables values (?, ?)", (table, recipes.table_bytes(table)))
            db.execute("insert into batches (count, rows) values (?, ?)", (len(rows), blob))
            own.unread += len(rows)
            if own.unread > self.max_entries + max(1, self.max_entries // 8):
                own.unread = _drop_unread(db, self.max_entries)
        own.tables |= tables
        self._counts()[1] += len(rows)

    def _own_batches(self) -> _Batches:
        self._db()  # (a forked child starts a file of its own)
        if self._own is None:
            # The process's start names the file with its pid: a pid reused later never writes to an old one.
            self._own = _Batches(os.path.join(self.folder, f"{process_id()}-{_STARTED[0]}"))
            self._own.unread = self._own.count()
        return self._own

    def discarded(self, n: int) -> None:
        """``n`` captured entries were given up before they could be written: no reader waits for them."""
        self._counts()[1] += n

    # --- reading ------------------------------------------------------------------------------------------
    def _files(self) -> list[_Batches]:
        """Every worker's batches file (opened once in this process; those removed since are let go)."""
        self._db()
        try:
            names = {name for name in os.listdir(self.folder) if _BATCHES_FILE.fullmatch(name)}
        except FileNotFoundError:
            names = set()
        for name in set(self._others) - names:
            self._others.pop(name).close()
        for name in names - set(self._others):
            self._others[name] = _Batches(os.path.join(self.folder, name))
        return list(self._others.values())

    def _unpack(self) -> None:
        """Move the written batches into ``requests``, in the order the requests came in, keeping the newest
        ``max_entries``; remove the files of workers that are gone, once read. Cheap when there is nothing
        to move (one indexed look a worker)."""
        files = [batches for batches in self._files() if batches.waiting() or not batches.writer_alive()]
        if not files:
            return
        _flock(self._lock)
        try:
            for batches in files:
                with batches.transaction() as pending:
                    taken = pending.execute("select id, rows from batches order by id").fetchall()
                    if taken:
                        rows = [row for _, blob in taken for row in unpack(blob, batches.event_table)]
                        rows.sort(key=lambda row: row[0])  # by time
                        db = self._db()
                        with _committed(db):
                            db.executemany(_INSERT, rows[-self.max_entries :])
                            last = db.execute("select last_insert_rowid()").fetchone()[0]
                            db.execute("delete from requests where id <= ?", (last - self.max_entries,))
                        # The requests are committed before their batches go: a reader killed between the two
                        # leaves them to be read twice, never lost.
                        pending.execute("delete from batches where id <= ?", (taken[-1][0],))
                if not batches.writer_alive():
                    self._others.pop(batches.name).remove()
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def clear(self) -> int:
        """Empty the journal; returns how many entries it held."""
        _flock(self._lock)
        try:
            waiting = 0
            for batches in self._files():
                with batches.transaction() as pending:
                    waiting += pending.execute("select coalesce(sum(count), 0) from batches").fetchone()[0]
                    pending.execute("delete from batches")
            db = self._db()
            with _committed(db):
                deleted = db.execute("delete from requests").rowcount
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        return deleted + waiting

    def close(self) -> None:
        if getattr(self, "_connection", None) is not None and self._pid == os.getpid():
            self._connection.close()
            for batches in self._others.values():
                batches.close()
            if self._own is not None:
                self._own.close()
        self._connection, self._pid, self._own, self._others = None, None, None, {}
        if self._mine is not None:
            self._mine.release()
            self._mine, self._slot_pid = None, None
        self._progress.close()
        self._lock.close()


class _Batches:
    """One worker's batches: a SQLite file with a rollback journal, and the ``flock`` that its worker and a
    reader take around a transaction on it."""

    def __init__(self, path: str):
        self.path, self.name = path, os.path.basename(path)
        self.pid = int(self.name.split("-")[0])
        self.lock = open(path + ".lock", "a+b")  # noqa: SIM115 (held while the file is in use)
        self.db = connect(path, "off", 65536, journal_mode="truncate")
        self.db.executescript(_BATCHES)
        self.unread = 0  # (its worker's count of what it holds, kept between flushes)
        self.tables: set[bytes] = set()  # (its worker's: the event tables it has written here)

    def event_table(self, digest: bytes) -> list[bytes] | None:
        """A table that recipes in this file name: this process's own, or the one the file keeps."""
        return recipes.find_table(digest, self._stored_table)

    def _stored_table(self, digest: bytes) -> bytes | None:
        found = self.db.execute("select data from event_tables where digest = ?", (digest,)).fetchone()
        return found[0] if found is not None else None

    def transaction(self):
        """A write transaction on this file, under its lock (waited for in gevent)."""
        return write_transaction(self.db, lambda: _flock(self.lock), lambda: fcntl.flock(self.lock, fcntl.LOCK_UN))

    def waiting(self) -> bool:
        # Under the lock too: a reader's shared lock met by the worker's commit would put the worker into
        # SQLite's busy handler, which sleeps the whole process.
        _flock(self.lock)
        try:
            return bool(self.db.execute("select exists (select 1 from batches)").fetchone()[0])
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)

    def count(self) -> int:
        return self.db.execute("select coalesce(sum(count), 0) from batches").fetchone()[0]

    def writer_alive(self) -> bool:
        return _alive(self.pid)

    def close(self) -> None:
        self.db.close()
        self.lock.close()

    def remove(self) -> None:
        self.close()
        for suffix in ("", ".lock", "-journal"):
            with suppress(FileNotFoundError):
                os.unlink(self.path + suffix)


def _flock(file, blocking: bool = False) -> None:
    if blocking:
        fcntl.flock(file, fcntl.LOCK_EX)
        return
    from gevent import sleep

    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            sleep(0.001)  # a reader holds it: serve streams meanwhile


# A batch is one zstd frame at a very fast level. The entries of a load test repeat one another (headers,
# bodies, a stream's recipe): 1,800 streams' 3.8 MB become 230 KB in 0.45 µs an entry, and a worker under
# 1,000 streams spent 4.1-4.4 µs an entry packing and writing, against 6.8-7.0 uncompressed; 3.2-3.4 against
# 4.4-4.9 under bodies. Text that repeats nothing costs 0.6 ns a byte and saves little.
_BATCH_LEVEL = -5
_ZSTD_FRAME = b"\x28\xb5\x2f\xfd"  # how a zstd frame begins; marshal's data never does
_ZSTD = "zstd"  # a body compressed on its own, in batches written before 2026-12-07


def pack(rows: list[tuple], tables: set | None = None) -> bytes:
    """A batch of rows as one compressed blob (:func:`unpack`). A stream kept as its recipe is ``(recipe,
    codec)`` already; the digests of the tables such rows name are added to ``tables``: the store keeps
    each table once (:mod:`app.streaming.recipes`)."""
    if tables is not None:
        for row in rows:
            body = row[_RESPONSE_BODY]
            if type(body) is tuple:
                tables.update(recipes.digests(*body))
    # (a compressor a batch: making one costs about 10 µs, and a batch may be written from another thread)
    return zstandard.ZstdCompressor(level=_BATCH_LEVEL).compress(marshal.dumps(rows))


def unpack(blob: bytes, table=recipes.known) -> list[tuple]:
    """The rows of a batch, every body as bytes; ``table(digest)`` is the table a recipe names, or None if the
    store has lost it (then that body is empty)."""
    if blob[:4] == _ZSTD_FRAME:  # (batches written before 2026-12-07 are marshal's bytes as they are)
        blob = zstandard.ZstdDecompressor().decompress(blob)
    rows, decompressor = marshal.loads(blob), None
    for position, row in enumerate(rows):
        for index in _BODIES:
            if type(row[index]) is tuple:
                # (recipe, "events" or "numbered"); in batches written before: (data, "zstd"), (data, wbits)
                # raw deflate, or a 1-tuple in zlib's format
                compressed, *codec = row[index]
                if codec == [_ZSTD]:
                    decompressor = decompressor or zstandard.ZstdDecompressor()
                    body = decompressor.decompress(compressed)
                elif codec and codec[0] in recipes.CODECS:
                    body = recipes.expand(compressed, codec[0], table)
                    if body is None:
                        log.warning("a journal entry's stream names an event table its store does not hold")
                        body = b""
                else:
                    body = zlib.decompress(compressed, *codec)
                row = rows[position] = (*row[:index], body, *row[index + 1 :])
    return rows


def _drop_unread(db: sqlite3.Connection, keep: int) -> int:
    """Drop a worker's unread batches older than its newest ``keep`` entries; returns how many are left."""
    kept, oldest_kept = 0, None
    for batch_id, count in db.execute("select id, count from batches order by id desc").fetchall():
        if kept >= keep:
            break
        kept, oldest_kept = kept + count, batch_id
    db.execute("delete from batches where id < ?", (oldest_kept,))
    return kept


def _committed(db: sqlite3.Connection):
    """A transaction of the journal file's own, inside a batches file's (whose lock it is under)."""
    return write_transaction(db, _nothing, _nothing)


def _nothing() -> None:
    pass


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


# When this process started, kept current across forks: it names the process's batches file with its pid.
_STARTED = [time.time_ns()]
os.register_at_fork(after_in_child=lambda: _STARTED.__setitem__(0, time.time_ns()))


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
