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
import time
from contextlib import contextmanager

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
_BATCHES = "create table if not exists batches (id integer primary key autoincrement, count integer, rows blob);"
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
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._lock = open(path + ".lock", "a+b")  # noqa: SIM115 (held for the life of the worker)
        self._wait_for_lock(blocking=True)
        try:
            # per worker: digest, pid, captured, committed, open streams
            self._progress = MappedTable(path + ".progress", "=16sqqqq", _PROGRESS_SLOTS)
            db = self._db()
            db.executescript(_SCHEMA)
            _add_new_columns(db)
            self._batches().executescript(_BATCHES)
            _move_old_batches(db, self._batches())
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._slot = self._slot_pid = None
        self._mine = [0, 0, 0]  # this process's: captured, committed, open streams

    # --- plumbing -----------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if getattr(self, "_pid", None) != os.getpid():  # a connection must not cross a fork
            # No syncs: an OS crash may lose the last entries, a worker's crash cannot (WAL). Large pages:
            # a flush is one blob of a few hundred kilobytes, written in a sixteenth of the page writes.
            self._connection = connect(self.path, synchronous="off", page_size=65536)
            self._batches_connection = connect(self.path + ".batches", "off", 65536, journal_mode="truncate")
            self._pid = os.getpid()
        return self._connection

    def _batches(self) -> sqlite3.Connection:
        self._db()
        return self._batches_connection

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
                sleep(0.001)  # another worker is writing its batch: serve streams meanwhile

    def _transaction(self, db: sqlite3.Connection | None = None):
        """A write transaction on the journal (or ``db``: the batches) under the journal's lock (waited for in
        gevent)."""
        unlock = lambda: fcntl.flock(self._lock, fcntl.LOCK_UN)  # noqa: E731
        return write_transaction(db or self._db(), self._wait_for_lock, unlock)

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
        """Commit ``rows`` (in :data:`COLUMNS` order) as one batch: a single row holding them all, so that a
        worker under load pays for one insert per flush, not one per request. A read unpacks the batches
        into the ``requests`` table first (:meth:`_unpack`). Unread batches beyond twice the retention
        limit are dropped, oldest first, so a long load test with nobody reading stays bounded."""
        if not rows:
            return
        blob = marshal.dumps(rows)
        with self._transaction(self._batches()) as db:
            db.execute("insert into batches (count, rows) values (?, ?)", (len(rows), blob))
            if db.execute("select coalesce(sum(count), 0) from batches").fetchone()[0] > 2 * self.max_entries:
                self._drop_unread(db)
        self._mine[1] += len(rows)
        self._publish()

    def discarded(self, n: int) -> None:
        """``n`` captured entries were given up before they could be written: no reader waits for them."""
        self._mine[1] += n
        self._publish()

    def _drop_unread(self, db) -> None:
        kept, oldest_kept = 0, None
        for batch_id, count in db.execute("select id, count from batches order by id desc").fetchall():
            if kept >= self.max_entries:
                break
            kept, oldest_kept = kept + count, batch_id
        db.execute("delete from batches where id < ?", (oldest_kept,))
        self._db().execute("delete from requests")  # all older than any batch, and past the limit now

    def _unpack(self) -> None:
        """Move the written batches into ``requests``, in the order the requests came in, keeping the newest
        ``max_entries``. Cheap when there is nothing to move (one indexed look, no lock)."""
        pending = self._batches()
        if pending.execute("select not exists (select 1 from batches)").fetchone()[0]:
            return
        with self._transaction(pending):
            batches = pending.execute("select id, rows from batches order by id").fetchall()
            if batches:
                rows = [row for _, blob in batches for row in marshal.loads(blob)]
                rows.sort(key=lambda row: row[0])  # by time
                db = self._db()
                with _committed(db):
                    db.executemany(_INSERT, rows[-self.max_entries :])
                    last = db.execute("select last_insert_rowid()").fetchone()[0]
                    db.execute("delete from requests where id <= ?", (last - self.max_entries,))
                # The requests are committed before their batches go: a reader killed between the two leaves
                # them to be read twice, never lost.
                pending.execute("delete from batches where id <= ?", (batches[-1][0],))

    def clear(self) -> int:
        """Empty the journal; returns how many entries it held."""
        pending = self._batches()
        with self._transaction(pending):
            waiting = pending.execute("select coalesce(sum(count), 0) from batches").fetchone()[0]
            pending.execute("delete from batches")
            db = self._db()
            with _committed(db):
                deleted = db.execute("delete from requests").rowcount
        return deleted + waiting

    def close(self) -> None:
        if getattr(self, "_connection", None) is not None and self._pid == os.getpid():
            self._connection.close()
            self._batches_connection.close()
        self._connection, self._batches_connection, self._pid = None, None, None
        self._progress.close()
        self._lock.close()


@contextmanager
def _committed(db: sqlite3.Connection):
    """A transaction of the journal file's own, inside the batches file's (whose lock it is under)."""
    db.execute("begin immediate")
    try:
        yield db
    except BaseException:
        db.execute("rollback")
        raise
    db.execute("commit")


def _move_old_batches(db: sqlite3.Connection, batches: sqlite3.Connection) -> None:
    """A journal file written before the batches had a file of their own: its waiting batches move there."""
    if not db.execute("select 1 from sqlite_master where name = 'batches'").fetchone():
        return
    old = db.execute("select count, rows from batches order by id").fetchall()
    with _committed(batches):
        batches.executemany("insert into batches (count, rows) values (?, ?)", old)
    db.execute("drop table batches")


def process_id() -> int:
    """``os.getpid()`` without the system call."""
    return _PID[0]


# This process's id, kept current across forks: os.getpid() is a system call, and _publish runs for every
# request.
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


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
