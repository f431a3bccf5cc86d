"""The request journal in Redis: every worker of every instance appends to one stream; readers query a copy.

A flush is one stream entry holding a batch of packed rows (compressed whole, as on one host),
added by a script that also hands the batch its entry ids (one counter for all instances) and trims the stream to
the newest ``max_entries``. Each worker that reads keeps its own SQLite copy of the stream in a temporary file,
brought up to date before each read with the entries added since the last, so queries run on the same SQL as on
one host (:class:`JournalReader`). A clear empties the stream and bumps a generation number, which tells every
copy to start again.

Reads that must see every answered request ask for it: the reader publishes a sync on a channel every
worker listens to, and Redis answers with how many listeners got it; each listener writes what it holds
(waiting for a write already under way) and acknowledges. When all have, every request answered before the
read is in the stream. So the request path costs the journal no round trip of its own, only a flush's now
and then; a worker gone without a word (its whole instance killed) is simply not a listener any more.

A worker's open streams go to Redis with each flush, and while they open at most ten times a second, with
a mark of life for ``ALIVE_S`` that a count from a vanished instance expires with.
"""

from __future__ import annotations

import atexit
import logging
import os
import tempfile
import uuid
from contextlib import contextmanager
from time import monotonic

from app.shared import connect, process_id
from app.shared.journal_store import COLUMNS, JournalReader, pack, unpack
from app.streaming import recipes

log = logging.getLogger(__name__)
ALIVE_S = 30
STREAMS_PUBLISHED_EVERY_S = 0.1
SYNC_TIMEOUT_S = 5  # for Redis to confirm a subscription; acknowledgements are kept ten times as long

# ARGV after the batch: each event table its recipes name (app.streaming.recipes), a digest and its data, the
# data empty where this process has stored it already. A table missing then (Redis restarted empty) appends
# nothing and returns -1: the caller sends every table again, so no entry ever names one Redis lacks.
_APPEND = """
for i = 4, #ARGV, 2 do
  if ARGV[i + 1] ~= '' then
    redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1])
  elseif redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then
    return -1
  end
end
local last = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], last .. '-0', 'n', ARGV[1], 'rows', ARGV[2])
redis.call('XTRIM', KEYS[2], 'MINID', math.max(1, last - tonumber(ARGV[3]) + 1))
return last
"""
_CLEAR = """
local held = 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do held = held + tonumber(entry[2][2]) end
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
return held
"""
_SCHEMA = f"create table if not exists requests (id integer primary key, {', '.join(COLUMNS)});"
_INSERT = f"insert or replace into requests (id, {', '.join(COLUMNS)}) values ({', '.join('?' * (len(COLUMNS) + 1))})"


class RedisJournalStore(JournalReader):
    def __init__(self, client, prefix: str, worker, max_entries: int):
        self.redis, self.prefix, self.worker, self.max_entries = client, prefix, worker, max_entries
        self._append = client.register_script(_APPEND)
        self._clear = client.register_script(_CLEAR)
        self._copy = self._copy_pid = self._copy_path = None
        self._seen, self._generation = None, None
        self._streams = 0  # this worker's open streams, published with its next capture (or at most 10 a second)
        self._streams_published_at = 0.0
        self._listening = None  # the process whose listener answers syncs
        self._tables: set[bytes] = set()  # the event tables this process has written (app.streaming.recipes)
        self._append_keys = [self._key("next"), self._key("stream"), self._key("event_tables")]

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
            last, packed = int(entry_id.split(b"-")[0]), unpack(fields[b"rows"], self._event_table)
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
        """One round trip: the batch, and this worker's open streams and mark of life along with it (and one more
        after Redis has lost an event table this process stored: it restarted empty)."""
        if rows:
            tables: set[bytes] = set()
            args = [len(rows), pack(rows, tables), self.max_entries]
            pipe = self.redis.pipeline(transaction=False)
            self._append(keys=self._append_keys, args=args + self._tables_args(tables), client=pipe)
            self._streams_into(pipe)
            if pipe.execute()[0] == -1:  # a table Redis lost: every one again (once a table, as a rule)
                self._tables.clear()
                self._append(keys=self._append_keys, args=args + self._tables_args(tables))
            self._tables |= tables

    def _tables_args(self, tables: set[bytes]) -> list[bytes]:
        """The event tables a batch names, as _APPEND takes them: each with its data, or none once stored."""
        return [part for table in tables for part in
                (table, b"" if table in self._tables else recipes.table_bytes(table))]  # fmt: skip

    def _event_table(self, digest: bytes) -> list[bytes] | None:
        """A table that recipes name: this process's own, or the one Redis keeps."""
        return recipes.find_table(digest, lambda wanted: self.redis.hget(self._key("event_tables"), wanted))

    def clear(self) -> int:
        return int(self._clear(keys=[self._key("stream"), self._key("generation")]))

    # --- syncs: what a reader waits for -------------------------------------------------------------------
    def attend(self, flush) -> None:
        """From now on this process answers readers' syncs with ``flush()`` (which writes what it holds, or
        waits for the write under way). Called before its first entry is captured; returns once Redis has the
        subscription, so no sync after that can miss this worker."""
        if self._listening == process_id():
            return
        self._listening = process_id()
        import gevent

        try:
            pubsub = self._subscribe()
        except Exception as exc:  # noqa: BLE001 (Redis is away: keep trying; its readers are away too)
            log.warning("the journal could not listen for syncs yet, trying again: %r", exc)
            gevent.spawn(self._answer_syncs, None, flush)
        else:
            gevent.spawn(self._answer_syncs, pubsub, flush)

    def _subscribe(self):
        pubsub = self.redis.pubsub()
        try:
            pubsub.subscribe(self._key("sync"))
            confirmed = pubsub.get_message(timeout=SYNC_TIMEOUT_S)  # the subscription, as Redis confirms it
            if not confirmed or confirmed["type"] != "subscribe":
                raise ConnectionError("Redis did not confirm the journal's sync subscription")
        except BaseException:
            pubsub.close()
            raise
        return pubsub

    def _answer_syncs(self, pubsub, flush) -> None:
        from gevent import sleep
        from redis.exceptions import RedisError

        while True:
            try:
                if pubsub is None:
                    pubsub = self._subscribe()
                message = pubsub.get_message(ignore_subscribe_messages=True, timeout=ALIVE_S / 3)
                if message is not None:
                    flush()
                    pipe = self.redis.pipeline(transaction=False)
                    acknowledged = self._key("synced:" + message["data"].decode())
                    pipe.incr(acknowledged)
                    pipe.expire(acknowledged, SYNC_TIMEOUT_S * 10)
                    pipe.execute()
                elif self._streams:
                    self._publish_streams()  # long streams with nothing else: keep their count alive
            except RedisError:  # Redis is away: the next read reconnects and subscribes again
                sleep(0.5)
            except Exception:  # noqa: BLE001 (the flush failed; the reader times out, the writer retries)
                sleep(0.5)

    def wait_committed(self, timeout: float) -> bool:
        """Publish a sync and wait (in gevent) until every worker that heard it has written what it held."""
        token = uuid.uuid4().hex
        acknowledged = self._key("synced:" + token)
        listeners = self.redis.publish(self._key("sync"), token)
        return self._wait(lambda: listeners <= int(self.redis.get(acknowledged) or 0), timeout)

    # --- progress -----------------------------------------------------------------------------------------
    def captured(self, n: int = 1) -> None:
        """Nothing to tell Redis: a reader's sync finds the entry wherever it waits."""

    def discarded(self, n: int) -> None:
        """Nothing to tell: no reader counts entries it was not given."""

    def _streams_into(self, pipe) -> None:
        worker = self.worker()
        pipe.hset(self._key("streams"), worker, self._streams)
        pipe.set(self._key("alive:" + worker), 1, ex=ALIVE_S)
        self._streams_published_at = monotonic()

    def _publish_streams(self) -> None:
        """Best effort: with Redis unreachable the stream goes on, and the count is told with the next flush."""
        from redis.exceptions import RedisError

        pipe = self.redis.pipeline(transaction=False)
        self._streams_into(pipe)
        try:
            pipe.execute()
        except RedisError:
            pass

    def stream_opened(self) -> None:
        """Counted here; told to Redis with the next flush, or now if it has not heard for a tenth of a
        second (the open-streams figure of ``/_mock/stats`` lags by that much at most while streams open)."""
        self._streams += 1
        if monotonic() - self._streams_published_at >= STREAMS_PUBLISHED_EVERY_S:
            self._publish_streams()

    def stream_closed(self) -> None:
        self._streams -= 1  # told to Redis with this stream's entry, which is written next

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

    def forget_process(self, pid: int) -> None:
        worker = self.worker(pid)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hdel(self._key("streams"), worker)
        pipe.delete(self._key("alive:" + worker))
        pipe.execute()

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
