"""One host: a SQLite file in WAL mode for the state, and shared memory for what requests touch often.

- The control file holds two 8-byte counters, mapped into every worker's memory: the runtime-config version
  and the number of pending one-shot faults. Reading them is a memory read.
- Rate-limit buckets and running-sequence counts, touched by every request while those features are on,
  live in mapped hash tables beside it (:mod:`app.shared.tables`), so a request holds the lock for
  microseconds, not for a SQLite transaction: a cross-process lock blocks a whole gevent worker while another
  process holds it. Sequence counts are kept per model and per (model, worker), so that a dead worker's
  share can be given back. The prompt cache's prefixes (on by default, read by every long prompt) are in such
  a table too, read and written without the lock: a cache may forget now and then, a limit may not overshoot.
- What changes rarely (the runtime config, one-shot faults) is in SQLite.

Writers take an ``flock`` on the control file, so SQLite's own lock is never contended and its busy handler
(which sleeps in whole milliseconds, stalling a gevent worker) never runs.
"""

from __future__ import annotations

import fcntl
import functools
import json
import mmap
import os
import re
import sqlite3
import struct
import time
from contextlib import contextmanager

from app.shared import MAX_OBJECTS, SharedState, connect, fault_view, write_transaction
from app.shared.group_commit import GroupCommit
from app.shared.journal_store import JournalStore
from app.shared.tables import MappedTable, digest

_COUNTERS = struct.Struct("=qq")  # version, pending faults
BUCKET_SLOTS = 1 << 20  # keys x models x 2 limits, live for a minute; 24 bytes each, pages made as they are used
MODEL_SLOTS = 1 << 12
SHARE_SLOTS = 1 << 14  # models x workers
PREFIX_SLOTS = 1 << 17  # cached prompt prefixes, one per 128 tokens: 16M tokens of distinct prompts; 3 MB
# A prefix is looked for in this many slots from its own, and evicts the one there that expires first. Searched
# to its end, a table full of live prefixes (a load test's distinct prompts: 20,000 of 1,700 tokens fill it
# within their five minutes) took 0.4 s a request, and the worker was killed for it.
PREFIX_WAYS = 8


@functools.lru_cache(maxsize=1024)
def _keys(model: str, pid: int) -> tuple[bytes, bytes, int]:
    """A model's digest, and its share's in process ``pid``: made once, not each time under the lock."""
    return digest(model), digest(f"{model}\0{pid}"), pid


def _kept_until(record) -> float:
    return record[1]  # a prefix's record: its digest, the time it is forgotten


def _idle(record) -> bool:
    return record[-1] == 0 and record[-2] == 0  # no running, no queued sequences


_SCHEMA = """
create table if not exists kv (key text primary key, value text not null);
create table if not exists faults (
    id integer primary key autoincrement, spec text not null, model text, test_id text,
    remaining integer not null, used integer not null default 0, created real not null);
create table if not exists objects (
    seq integer primary key autoincrement, kind text not null, id text not null, body text not null);
create unique index if not exists objects_by_id on objects (kind, id);
create index if not exists objects_by_kind on objects (kind, seq);
"""
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PRUNE_EVERY = 100  # stored objects: drop the oldest past MAX_OBJECTS once in this many writes
# a replaced object keeps its place in the order (the real API lists by creation)
_PUT = "insert into objects (kind, id, body) values (?, ?, ?) on conflict(kind, id) do update set body = excluded.body"
_PRUNE = (
    "delete from objects where kind = ? and seq <= coalesce((select seq from objects where kind = ?"
    " order by seq desc limit 1 offset ?), -1)"
)


class LocalSharedState(SharedState):
    def __init__(self, path: str, journal_path: str | None = None, max_entries: int = 10000):
        self.path = path
        self.journal_path = journal_path or os.path.join(os.path.dirname(path), "journal.sqlite3")
        self.max_entries = max_entries
        self._journal = None
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._control = open(path + ".ctl", "a+b")  # noqa: SIM115 (held for the life of the worker)
        with self._locked():
            if os.fstat(self._control.fileno()).st_size < _COUNTERS.size:
                self._control.truncate(_COUNTERS.size)
        self._counters = mmap.mmap(self._control.fileno(), _COUNTERS.size)
        with self._locked():
            # a bucket: key digest, value (a time; one in the past is as good as none)
            self._buckets = MappedTable(path + ".buckets", "=16sd", BUCKET_SLOTS)
            # per model: digest, running, queued; per (model, worker): digest, model digest, pid, running, queued
            self._models = MappedTable(path + ".models", "=16sqq", MODEL_SLOTS)
            self._shares = MappedTable(path + ".shares", "=16s16sqqq", SHARE_SLOTS)
            # KV cache blocks in use: per model (digest, blocks) and per (model, worker) (digest, model digest,
            # pid, blocks)
            self._kv = MappedTable(path + ".kv", "=16sq", MODEL_SLOTS)
            self._kv_shares = MappedTable(path + ".kvshares", "=16s16sqq", SHARE_SLOTS)
            # a cached prompt prefix: its digest, and the time it is forgotten
            self._prefixes = MappedTable(path + ".prefixes", "=16sd", PREFIX_SLOTS)
        self._pid = None
        self._connection = None
        with self._locked():
            self._db().executescript(_SCHEMA)
        self._objects = GroupCommit(self._put_objects)  # the stored objects a worker's requests make at once

    # --- plumbing -----------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # a connection must not cross a fork
            self._connection = connect(self.path)
            self._pid = os.getpid()
        return self._connection

    @contextmanager
    def _locked(self):
        fcntl.flock(self._control, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._control, fcntl.LOCK_UN)

    def _write(self):
        return write_transaction(
            self._db(),
            lambda: fcntl.flock(self._control, fcntl.LOCK_EX),
            lambda: fcntl.flock(self._control, fcntl.LOCK_UN),
        )

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

    def changes(self) -> tuple[int, int]:
        version, pending = _COUNTERS.unpack_from(self._counters, 0)[:2]
        return version, pending

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
                spec = {k: v for k, v in fault.items() if k not in ("count", "model", "test_id")}
                cursor = db.execute(
                    "insert into faults (spec, model, test_id, remaining, created) values (?, ?, ?, ?, ?)",
                    (json.dumps(spec), fault.get("model"), fault.get("test_id"), fault["count"], time.time()),
                )
                added.append({"id": cursor.lastrowid, **fault})
            self._set_counters(pending=self._pending(db))
        return added

    def take_fault(self, model: str, test_id: str | None = None) -> dict | None:
        with self._write() as db:
            row = db.execute(
                "select id, spec, model, test_id from faults where remaining > 0 and (model is null or model = ?)"
                " and (test_id is null or test_id = ?) order by id limit 1",
                (model, test_id),
            ).fetchone()
            if row is None:
                return None
            db.execute("update faults set remaining = remaining - 1, used = used + 1 where id = ?", (row[0],))
            self._set_counters(pending=self._pending(db))
        return fault_view(row[0], row[2], row[3], json.loads(row[1]))

    def faults(self) -> list[dict]:
        rows = self._db().execute("select id, spec, model, test_id, remaining, used, created from faults order by id")
        return [
            {
                **fault_view(i, m, t, json.loads(spec)),
                "count": left + used,
                "remaining": left,
                "used": used,
                "created": int(created),
            }
            for i, spec, m, t, left, used, created in rows
        ]

    def clear_faults(self, test_id: str | None = None) -> int:
        with self._write() as db:
            if test_id is None:
                dropped = self._pending(db)
                db.execute("delete from faults")
            else:
                query = "select coalesce(sum(remaining), 0) from faults where test_id = ?"
                dropped = db.execute(query, (test_id,)).fetchone()[0]
                db.execute("delete from faults where test_id = ?", (test_id,))
            self._set_counters(pending=self._pending(db))
        return dropped

    @staticmethod
    def _pending(db) -> int:
        return db.execute("select coalesce(sum(remaining), 0) from faults").fetchone()[0]

    # --- rate-limit buckets -------------------------------------------------------------------------------
    def take_from_buckets(self, keys, costs_s, within_s, now):
        digests = [digest(key) for key in keys]
        expired = lambda record: record[1] <= now  # noqa: E731
        with self._locked():
            found = [self._buckets.find(d, expired) for d in digests]
            before = [value if value > now else None for _, (value,) in found]
            after = [max(value or now, now) + cost for value, cost in zip(before, costs_s, strict=True)]
            taken = all(value <= now + within for value, within in zip(after, within_s, strict=True))
            if taken:
                for (slot, _), d, value in zip(found, digests, after, strict=True):
                    self._buckets.put(slot, d, value)
        return taken, before

    def update_buckets(self, keys, update):
        digests = [digest(key) for key in keys]
        with self._locked():
            now = time.time()
            found = [self._buckets.find(d, lambda record: record[1] <= now) for d in digests]
            slots = [slot for slot, _ in found]
            values = [value if value > now else None for _, (value,) in found]
            new_values, result = update(values)
            if new_values is not None:
                for slot, d, value in zip(slots, digests, new_values, strict=True):
                    self._buckets.put(slot, d, value)
        return result

    # --- the prompt cache -----------------------------------------------------------------------------------
    def cache_prefixes(self, digests, expires_at):
        # Without the lock: every request with a prompt of 1,024 tokens or more comes here, and the workers
        # queued for it (two pinned processes cached 0.47x as many prompts as one; without it, 1.96x). What
        # workers racing on a slot can do: one takes a slot another is filling, and one of the two prefixes is
        # lost (the next prompt that sends it is a miss, and caches it again); or a record is read half-written,
        # and that prefix is a miss, or is seen live for the moment its expiry is being pushed back. A hit still
        # needs the prefix's digest: no prompt is ever told it was cached when nothing sent it.
        table, cached = self._prefixes, []
        now = time.time()
        for key in digests:
            slot, (until,) = table.find_near(key, PREFIX_WAYS, _kept_until)
            cached.append(until > now)
            table.put(slot, key, max(expires_at, until))
        return cached

    # --- running sequences --------------------------------------------------------------------------------
    def _counts(self, model_key: bytes, share_key: bytes, pid: int):
        """Under the lock: the model's slot and counts, and this process's share of them (:func:`_keys`)."""
        model_slot, (running, queued) = self._models.find(model_key, _idle)
        share_slot, (_, _, mine_running, mine_queued) = self._shares.find(share_key, _idle)
        return model_key, model_slot, share_key, share_slot, pid, running, queued, mine_running, mine_queued

    def _store(self, counts, running, queued, mine_running, mine_queued) -> None:
        model_key, model_slot, share_key, share_slot, pid = counts[:5]
        self._models.put(model_slot, model_key, running, queued)
        self._shares.put(share_slot, share_key, model_key, pid, mine_running, mine_queued)

    def acquire_sequence(self, model, limit, queue_limit):
        keys = _keys(model, os.getpid())
        with self._locked():
            counts = self._counts(*keys)
            running, queued, mine_running, mine_queued = counts[5:]
            if running < limit and queued == 0:
                self._store(counts, running + 1, queued, mine_running + 1, mine_queued)
                return "running", running + 1
            if queued < queue_limit:
                self._store(counts, running, queued + 1, mine_running, mine_queued + 1)
                return "queued", running
            return "full", running

    def promote_queued(self, model, wanted, limit):
        keys = _keys(model, os.getpid())
        with self._locked():
            counts = self._counts(*keys)
            running, queued, mine_running, mine_queued = counts[5:]
            moved = max(0, min(wanted, limit - running, mine_queued))
            if moved:
                self._store(counts, running + moved, queued - moved, mine_running + moved, mine_queued - moved)
        return moved, running + moved

    def release_sequence(self, model, queued=False):
        keys = _keys(model, os.getpid())
        with self._locked():
            counts = self._counts(*keys)
            running, waiting, mine_running, mine_queued = counts[5:]
            if queued:
                self._store(counts, running, max(0, waiting - 1), mine_running, max(0, mine_queued - 1))
            else:
                self._store(counts, max(0, running - 1), waiting, max(0, mine_running - 1), mine_queued)

    def running_sequences(self, model):
        model_key = digest(model)
        with self._locked():
            return self._models.get(self._models.slot(model_key, _idle), model_key)[0]

    def take_blocks(self, model, blocks, capacity):
        model_key, share_key, pid = _keys(model, os.getpid())
        with self._locked():
            model_slot = self._kv.slot(model_key, lambda record: record[1] == 0)
            (used,) = self._kv.get(model_slot, model_key)
            if blocks > 0 and used + blocks > capacity:
                return False
            share_slot = self._kv_shares.slot(share_key, lambda record: record[-1] == 0)
            mine = self._kv_shares.get(share_slot, share_key)[-1]
            self._kv.put(model_slot, model_key, max(0, used + blocks))
            self._kv_shares.put(share_slot, share_key, model_key, pid, max(0, mine + blocks))
        return True

    def used_blocks(self, model):
        model_key = digest(model)
        with self._locked():
            return self._kv.get(self._kv.slot(model_key, lambda record: record[1] == 0), model_key)[0]

    def forget_process(self, pid):
        with self._locked():
            for slot, (share_key, model_key, owner, held) in list(self._kv_shares.records()):
                if owner == pid and held:
                    model_slot = self._kv.slot(model_key, lambda record: record[1] == 0)
                    (used,) = self._kv.get(model_slot, model_key)
                    self._kv.put(model_slot, model_key, max(0, used - held))
                    self._kv_shares.put(slot, share_key, model_key, owner, 0)
            for slot, (share_key, model_key, owner, running, queued) in list(self._shares.records()):
                if owner != pid or not (running or queued):
                    continue
                model_slot = self._models.slot(model_key, _idle)
                total_running, total_queued = self._models.get(model_slot, model_key)
                self._models.put(model_slot, model_key, max(0, total_running - running), max(0, total_queued - queued))
                self._shares.put(slot, share_key, model_key, owner, 0, 0)
        self.journal().forget_process(pid)

    # --- stored objects -----------------------------------------------------------------------------------
    def put_object(self, kind, object_id, body):
        self._objects.submit((kind, object_id, json.dumps(body)))

    def _put_objects(self, rows: list[tuple[str, str, str]]) -> None:
        """One transaction for the objects that a worker's requests stored at the same time."""
        with self._write() as db:
            crowded = set()
            for kind, object_id, text in rows:
                cursor = db.execute(_PUT, (kind, object_id, text))
                if cursor.lastrowid and cursor.lastrowid % _PRUNE_EVERY == 0:
                    crowded.add(kind)
            for kind in crowded:
                db.execute(_PRUNE, (kind, kind, MAX_OBJECTS))

    def get_object(self, kind, object_id):
        row = self._db().execute("select body from objects where kind = ? and id = ?", (kind, object_id)).fetchone()
        return json.loads(row[0]) if row else None

    def delete_object(self, kind, object_id):
        with self._write() as db:
            return db.execute("delete from objects where kind = ? and id = ?", (kind, object_id)).rowcount > 0

    def list_objects(self, kind, *, newest_first, after, limit, where=None):
        clauses, values = ["kind = ?"], [kind]
        for path, value in (where or {}).items():
            clauses.append("json_extract(body, ?) = ?")
            values += ["$." + path, value]
        if after is not None:
            row = self._db().execute("select seq from objects where kind = ? and id = ?", (kind, after)).fetchone()
            if row is not None:
                clauses.append("seq < ?" if newest_first else "seq > ?")
                values.append(row[0])
        order = "desc" if newest_first else "asc"
        rows = self._db().execute(
            f"select body from objects where {' and '.join(clauses)} order by seq {order} limit ?",
            (*values, limit + 1),
        )
        bodies = [json.loads(body) for (body,) in rows]
        return bodies[:limit], len(bodies) > limit

    # --- file contents: a folder beside the state file, a file each ----------------------------------------
    def _content_path(self, file_id: str) -> str:
        if not _FILE_ID.fullmatch(file_id):  # ids are ours; anything else never names a path
            raise KeyError(file_id)
        return os.path.join(self.path + ".files", file_id)

    def put_content(self, file_id, data):
        path = self._content_path(file_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.{os.getpid()}.partial"
        with open(partial, "wb") as out:
            out.write(data)
        os.replace(partial, path)  # whole or not at all, for a reader in another worker

    def get_content(self, file_id):
        try:
            with open(self._content_path(file_id), "rb") as source:
                return source.read()
        except (FileNotFoundError, KeyError):
            return None

    def delete_content(self, file_id):
        try:
            os.remove(self._content_path(file_id))
        except (FileNotFoundError, KeyError):
            pass

    # --- the request journal ------------------------------------------------------------------------------
    def journal(self) -> JournalStore:
        if self._journal is None:  # opened on first use: a server with the journal off never makes the file
            self._journal = JournalStore(self.journal_path, self.max_entries)
        return self._journal

    def close(self) -> None:
        """Let go of the file. A process that forks afterwards must have no connection open: SQLite's lock
        bookkeeping would be inherited, and the child's own connections would fail (disk I/O error)."""
        if self._connection is not None:
            self._connection.close()
            self._connection, self._pid = None, None
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        for table in (self._buckets, self._models, self._shares, self._prefixes, self._kv, self._kv_shares):
            table.close()
        self._counters.close()
        self._control.close()
