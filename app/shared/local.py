"""One host: a SQLite file in WAL mode for the state, and shared memory for what requests touch often.

- The control file holds two 8-byte counters, mapped into every worker's memory: the runtime-config version
  and the number of pending one-shot faults. Reading them is a memory read.
- Rate-limit buckets, touched by every request while limits are on, live in a mapped hash table beside it
  (open addressing, 16-byte key digests), so a request holds the lock for microseconds, not for a SQLite
  transaction: a cross-process lock blocks a whole gevent worker while another process holds it.
- Everything else (runtime config, faults, sequence counts) is in SQLite.

Writers take an ``flock`` on the control file, so SQLite's own lock is never contended and its busy handler
(which sleeps in whole milliseconds, stalling a gevent worker) never runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import sqlite3
import struct
import time
from contextlib import contextmanager

from app.shared import SharedState

_COUNTERS = struct.Struct("=qq")  # version, pending faults
_SLOT = struct.Struct("=16sd")  # a bucket: key digest, value (a time; one in the past is as good as none)
BUCKET_SLOTS = 1 << 16  # 1.5 MB: keys x models x 2 limits
_EMPTY = bytes(16)
_SCHEMA = """
create table if not exists kv (key text primary key, value text not null);
create table if not exists faults (
    id integer primary key autoincrement, spec text not null, model text, remaining integer not null,
    used integer not null default 0, created real not null);
create table if not exists sequences (
    model text not null, pid integer not null, running integer not null, queued integer not null,
    primary key (model, pid));
"""


class LocalSharedState(SharedState):
    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._control = open(path + ".ctl", "a+b")  # noqa: SIM115 (held for the life of the worker)
        with self._locked():
            if os.fstat(self._control.fileno()).st_size < _COUNTERS.size:
                self._control.truncate(_COUNTERS.size)
        self._counters = mmap.mmap(self._control.fileno(), _COUNTERS.size)
        self._bucket_file = open(path + ".buckets", "a+b")  # noqa: SIM115
        with self._locked():
            if os.fstat(self._bucket_file.fileno()).st_size < BUCKET_SLOTS * _SLOT.size:
                self._bucket_file.truncate(BUCKET_SLOTS * _SLOT.size)
        self._buckets = mmap.mmap(self._bucket_file.fileno(), BUCKET_SLOTS * _SLOT.size)
        self._pid = None
        self._connection = None
        with self._locked():
            self._db().executescript(_SCHEMA)

    # --- plumbing -----------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # a connection must not cross a fork
            self._connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._connection.execute("pragma journal_mode=wal")
            self._connection.execute("pragma synchronous=normal")
            self._connection.execute("pragma busy_timeout=5000")
            self._pid = os.getpid()
        return self._connection

    @contextmanager
    def _locked(self):
        fcntl.flock(self._control, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._control, fcntl.LOCK_UN)

    @contextmanager
    def _write(self):
        with self._locked():
            db = self._db()
            db.execute("begin immediate")
            try:
                yield db
            except BaseException:
                db.execute("rollback")
                raise
            db.execute("commit")

    def _set_counters(self, version_step: int = 0, pending: int | None = None) -> int:
        """Only under the lock."""
        version, old_pending = _COUNTERS.unpack_from(self._counters, 0)
        version += version_step
        _COUNTERS.pack_into(self._counters, 0, version, old_pending if pending is None else pending)
        return version

    # --- what changed -------------------------------------------------------------------------------------
    def version(self) -> int:
        return _COUNTERS.unpack_from(self._counters, 0)[0]

    def pending_faults(self) -> int:
        return _COUNTERS.unpack_from(self._counters, 0)[1]

    # --- runtime configuration ----------------------------------------------------------------------------
    def runtime_layer(self) -> dict:
        row = self._db().execute("select value from kv where key = 'runtime'").fetchone()
        return json.loads(row[0]) if row else {}

    def set_runtime_layer(self, layer: dict) -> int:
        with self._write() as db:
            db.execute(
                "insert into kv values ('runtime', ?) on conflict(key) do update set value = excluded.value",
                (json.dumps(layer),),
            )
            return self._set_counters(version_step=1)

    # --- one-shot faults ----------------------------------------------------------------------------------
    def add_faults(self, faults: list[dict]) -> list[dict]:
        added = []
        with self._write() as db:
            for fault in faults:
                spec = {k: v for k, v in fault.items() if k not in ("count", "model")}
                cursor = db.execute(
                    "insert into faults (spec, model, remaining, created) values (?, ?, ?, ?)",
                    (json.dumps(spec), fault.get("model"), fault["count"], time.time()),
                )
                added.append({"id": cursor.lastrowid, **fault})
            self._set_counters(pending=self._pending(db))
        return added

    def take_fault(self, model: str) -> dict | None:
        with self._write() as db:
            row = db.execute(
                "select id, spec, model, remaining from faults where remaining > 0 and (model is null or model = ?)"
                " order by id limit 1",
                (model,),
            ).fetchone()
            if row is None:
                return None
            db.execute("update faults set remaining = remaining - 1, used = used + 1 where id = ?", (row[0],))
            self._set_counters(pending=self._pending(db))
        return {"id": row[0], "model": row[2], **json.loads(row[1])}

    def faults(self) -> list[dict]:
        rows = self._db().execute("select id, spec, model, remaining, used, created from faults order by id")
        return [
            {
                "id": i,
                "model": m,
                **json.loads(spec),
                "count": left + used,
                "remaining": left,
                "used": used,
                "created": int(created),
            }
            for i, spec, m, left, used, created in rows
        ]

    def clear_faults(self) -> int:
        with self._write() as db:
            pending = self._pending(db)
            db.execute("delete from faults")
            self._set_counters(pending=0)
        return pending

    @staticmethod
    def _pending(db) -> int:
        return db.execute("select coalesce(sum(remaining), 0) from faults").fetchone()[0]

    # --- rate-limit buckets -------------------------------------------------------------------------------
    def update_buckets(self, keys, update):
        digests = [hashlib.blake2b(key.encode(), digest_size=16).digest() for key in keys]
        with self._locked():
            now = time.time()
            slots = [self._slot(digest, now) for digest in digests]
            values = []
            for slot in slots:
                digest, value = _SLOT.unpack_from(self._buckets, slot * _SLOT.size)
                values.append(value if digest != _EMPTY and value > now else None)
            new_values, result = update(values)
            if new_values is not None:
                for slot, digest, value in zip(slots, digests, new_values, strict=True):
                    _SLOT.pack_into(self._buckets, slot * _SLOT.size, digest, value)
        return result

    def _slot(self, digest: bytes, now: float) -> int:
        """The slot of ``digest``: its own, else the first free or expired one on its probe path."""
        start = int.from_bytes(digest[:8], "little") % BUCKET_SLOTS
        reusable = None
        for step in range(BUCKET_SLOTS):
            slot = (start + step) % BUCKET_SLOTS
            found, value = _SLOT.unpack_from(self._buckets, slot * _SLOT.size)
            if found == digest:
                return slot
            if found == _EMPTY:
                return slot if reusable is None else reusable
            if reusable is None and value <= now:  # expired: a full bucket, which needs no slot
                reusable = slot
        if reusable is None:
            raise RuntimeError("rate-limit table full: more than 65536 live buckets")
        return reusable

    # --- running sequences --------------------------------------------------------------------------------
    def acquire_sequence(self, model, limit, queue_limit):
        pid = os.getpid()
        with self._write() as db:
            running, queued = db.execute(
                "select coalesce(sum(running), 0), coalesce(sum(queued), 0) from sequences where model = ?",
                (model,),
            ).fetchone()
            if running < limit and queued == 0:
                status, column = "running", "running"
            elif queued < queue_limit:
                status, column = "queued", "queued"
            else:
                return "full", running
            db.execute("insert or ignore into sequences values (?, ?, 0, 0)", (model, pid))
            db.execute(f"update sequences set {column} = {column} + 1 where model = ? and pid = ?", (model, pid))
        return status, running + (status == "running")

    def promote_queued(self, model, wanted, limit):
        pid = os.getpid()
        with self._write() as db:
            running = db.execute(
                "select coalesce(sum(running), 0) from sequences where model = ?", (model,)
            ).fetchone()[0]
            moved = max(0, min(wanted, limit - running))
            if moved:
                db.execute(
                    "update sequences set running = running + ?, queued = queued - ? where model = ? and pid = ?",
                    (moved, moved, model, pid),
                )
        return moved, running + moved

    def release_sequence(self, model, queued=False):
        column = "queued" if queued else "running"
        with self._write() as db:
            db.execute(
                f"update sequences set {column} = max(0, {column} - 1) where model = ? and pid = ?",
                (model, os.getpid()),
            )

    def running_sequences(self, model):
        row = self._db().execute("select coalesce(sum(running), 0) from sequences where model = ?", (model,))
        return row.fetchone()[0]

    def forget_process(self, pid):
        with self._write() as db:
            db.execute("delete from sequences where pid = ?", (pid,))

    def close(self) -> None:
        """Let go of the file. A process that forks afterwards must have no connection open: SQLite's lock
        bookkeeping would be inherited, and the child's own connections would fail (disk I/O error)."""
        if self._connection is not None:
            self._connection.close()
            self._connection, self._pid = None, None
        self._counters.close()
        self._control.close()
        self._buckets.close()
        self._bucket_file.close()
