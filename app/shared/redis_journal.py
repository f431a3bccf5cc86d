"""The request journal in Redis: every worker of every instance appends to one stream; readers query a copy.

A flush is one stream entry holding a batch of packed rows, added by a script that also hands the batch its
entry ids (one counter for all instances) and trims the stream to the newest ``max_entries``. Each worker that
reads keeps its own SQLite copy of the stream in a temporary file, brought up to date before each read with the
entries added since the last, so queries run on the same SQL as on one host (:class:`JournalReader`). A clear
empties the stream and bumps a generation number, which tells every copy to start again.

Progress, for reads that must see every answered request: each worker counts in Redis what it has captured and
committed, and marks itself alive for ``ALIVE_S``; its open streams go along with those counts (one round
trip a request, none for a stream's start or end). A reader waits for live workers that have captured more
than they committed; a worker gone without a word (its whole instance killed) stops being waited for when its
mark expires.
"""

from __future__ import annotations

import atexit
import marshal
import os
import tempfile
from contextlib import contextmanager
from time import monotonic

from app.shared import connect
from app.shared.journal_store import COLUMNS, JournalReader

ALIVE_S = 30
STREAMS_PUBLISHED_EVERY_S = 0.1

_APPEND = """
local last = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], last .. '-0', 'n', ARGV[1], 'rows', ARGV[2])
redis.call('XTRIM', KEYS[2], 'MINID', math.max(1, last - tonumber(ARGV[3]) + 1))
redis.call('HINCRBY', KEYS[3], ARGV[4], ARGV[1])
return last
"""
_CLEAR = """
local held = 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do held = held + tonumber(entry[2][2]) end
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
return held
"""
_FORGET = """
redis.call('HSET', KEYS[2], ARGV[1], redis.call('HGET', KEYS[1], ARGV[1]) or 0)
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
"""
_SCHEMA = f"create table if not exists requests (id integer primary key, {', '.join(COLUMNS)});"
_INSERT = f"insert or replace into requests (id, {', '.join(COLUMNS)}) values ({', '.join('?' * (len(COLUMNS) + 1))})"


class RedisJournalStore(JournalReader):
    def __init__(self, client, prefix: str, worker, max_entries: int):
        self.redis, self.prefix, self.worker, self.max_entries = client, prefix, worker, max_entries
        self._append = client.register_script(_APPEND)
        self._clear = client.register_script(_CLEAR)
        self._forget = client.register_script(_FORGET)
        self._copy = self._copy_pid = self._copy_path = None
        self._seen, self._generation = None, None
        self._streams = 0  # this worker's open streams, published with its next capture (or at most 10 a second)
        self._streams_published_at = 0.0

    def _key(self, name: str) -> str:
        return self.prefix + name

    # --- the reader's copy --------------------------------------------------------------------------------
    def _db(self):
        if self._copy_pid != os.getpid():  # a copy per process: a connection must not cross a fork
            folder = tempfile.mkdtemp(prefix="mock-openai-journal-")
            self._copy_path = os.path.join(folder, "copy.sqlite3")
            atexit.register(_remove, folder, os.getpid())
            self._copy = connect(self._copy_path, synchronous="off")
            self._copy.executescript(_SCHEMA + "create index if not exists requests_time on requests (time);")
            self._copy_pid, self._seen, self._generation = os.getpid(), None, None
        return self._copy

    def _unpack(self) -> None:
        db = self._db()
        pipe = self.redis.pipeline(transaction=True)  # the generation and the entries as of one moment
        pipe.get(self._key("generation"))
        pipe.xrange(self._key("stream"), f"({self._seen}" if self._seen else "-", "+")
        generation, batches = pipe.execute()
        if generation != self._generation:  # cleared since the last read (or the first read)
            db.execute("delete from requests")
            self._generation = generation
        if not batches:
            return
        rows = []
        for entry_id, fields in batches:
            last, packed = int(entry_id.split(b"-")[0]), marshal.loads(fields[b"rows"])
            rows += [(last - len(packed) + 1 + i, *row) for i, row in enumerate(packed)]
        with _transaction(db):
            db.executemany(_INSERT, rows)
            db.execute(
                "delete from requests where id in (select id from requests order by time desc, id desc"
                " limit -1 offset ?)",
                (self.max_entries,),
            )
        self._seen = batches[-1][0].decode()

    # --- writing ------------------------------------------------------------------------------------------
    def append(self, rows: list[tuple]) -> None:
        if rows:
            keys = [self._key("next"), self._key("stream"), self._key("committed")]
            self._append(keys=keys, args=[len(rows), marshal.dumps(rows), self.max_entries, self.worker()])

    def clear(self) -> int:
        return int(self._clear(keys=[self._key("stream"), self._key("generation")]))

    # --- progress -----------------------------------------------------------------------------------------
    def _count(self, field: str | None, n: int = 0) -> None:
        """One round trip: ``field`` counted up by ``n``, this worker's open streams as they are now, and its
        mark of life. Best effort: with Redis unreachable the response still goes out (its entry waits to be
        written, and a reader elsewhere may not wait for it)."""
        from redis.exceptions import RedisError

        worker = self.worker()
        pipe = self.redis.pipeline(transaction=False)
        if field is not None:
            pipe.hincrby(self._key(field), worker, n)
        pipe.hset(self._key("streams"), worker, self._streams)
        pipe.set(self._key("alive:" + worker), 1, ex=ALIVE_S)
        self._streams_published_at = monotonic()
        try:
            pipe.execute()
        except RedisError:
            pass

    def captured(self, n: int = 1) -> None:
        """The one round trip a request costs the journal: a reader must know of an answered request at once."""
        self._count("captured", n)

    def discarded(self, n: int) -> None:
        """``n`` captured entries were given up before they could be written: no reader waits for them."""
        self._count("committed", n)

    def stream_opened(self) -> None:
        """Counted here; told to Redis with the next capture, or now if it has not heard for a tenth of a
        second (the open-streams figure of ``/_mock/stats`` lags by that much at most while streams open)."""
        self._streams += 1
        if monotonic() - self._streams_published_at >= STREAMS_PUBLISHED_EVERY_S:
            self._count(None)

    def stream_closed(self) -> None:
        self._streams -= 1  # told to Redis with this stream's capture, which follows at once

    def _alive(self, workers) -> set:
        workers = list(workers)
        if not workers:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for worker in workers:
            pipe.exists(self._key("alive:" + worker.decode()))
        return {worker for worker, alive in zip(workers, pipe.execute(), strict=True) if alive}

    def open_streams(self) -> int:
        counts = {w: int(n) for w, n in self.redis.hgetall(self._key("streams")).items() if int(n) > 0}
        return sum(counts[w] for w in self._alive(counts))

    def _behind(self) -> dict:
        """Live workers that captured more than they committed: ``{worker: captured}``."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self._key("captured"))
        pipe.hgetall(self._key("committed"))
        captured, committed = pipe.execute()
        behind = {w: int(n) for w, n in captured.items() if int(n) > int(committed.get(w, 0))}
        return {w: behind[w] for w in self._alive(behind)}

    def wait_committed(self, timeout: float) -> bool:
        def still_behind(wanted):
            committed = self.redis.hmget(self._key("committed"), list(wanted))
            wanted = {w: n for (w, n), done in zip(wanted.items(), committed, strict=True) if int(done or 0) < n}
            return {w: wanted[w] for w in self._alive(wanted)}

        return self._wait(self._behind(), still_behind, timeout)

    def forget_process(self, pid: int) -> None:
        worker = self.worker(pid)
        keys = [self._key("captured"), self._key("committed"), self._key("streams"), self._key("alive:" + worker)]
        self._forget(keys=keys, args=[worker])

    def close(self) -> None:
        if self._copy is not None and self._copy_pid == os.getpid():
            self._copy.close()
        self._copy = self._copy_pid = None


@contextmanager
def _transaction(db):
    db.execute("begin")
    try:
        yield
    except BaseException:
        db.execute("rollback")
        raise
    db.execute("commit")


def _remove(folder: str, owner: int) -> None:
    if os.getpid() == owner:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
