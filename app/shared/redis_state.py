"""Several hosts: everything workers share lives in one Redis, so instances behind a load balancer act as one.

Each operation that must be atomic is one Lua script (Redis runs a script alone), or, for the rate-limit
buckets whose update is a Python function, an optimistic transaction (``WATCH`` the keys, compute, ``MULTI``;
retried if another worker wrote them meanwhile). Keys start with ``[shared] redis_prefix``, so several servers
(or test runs) can share one Redis without seeing each other.

A worker is named ``<instance>:<pid>``: the instance is made once by the gunicorn master
(``MOCK_OPENAI_INSTANCE``), so pids that repeat on other hosts or in other containers stay apart.

What it costs: the request path's one question (:meth:`changes`) is one ``MGET``, shared by the requests of
a worker that ask while one is out, where the one-host backend reads shared memory; the journal writes a
batch a flush and asks nothing a request; each feature that is on adds its own.
"""

from __future__ import annotations

import json
import os
import socket
import time

from app.shared import MAX_OBJECTS, SharedState, fault_view, under_gevent
from app.shared.group_commit import GroupCommit

INSTANCE_ENV = "MOCK_OPENAI_INSTANCE"

_ACQUIRE = """
local running = tonumber(redis.call('HGET', KEYS[1], 'running') or '0')
local queued = tonumber(redis.call('HGET', KEYS[1], 'queued') or '0')
redis.call('SADD', KEYS[2], ARGV[4])
if running < tonumber(ARGV[2]) and queued == 0 then
  redis.call('HINCRBY', KEYS[1], 'running', 1)
  redis.call('HINCRBY', KEYS[1], 'r:' .. ARGV[1], 1)
  return {'running', running + 1}
end
if queued < tonumber(ARGV[3]) then
  redis.call('HINCRBY', KEYS[1], 'queued', 1)
  redis.call('HINCRBY', KEYS[1], 'q:' .. ARGV[1], 1)
  return {'queued', running}
end
return {'full', running}
"""
_PROMOTE = """
local running = tonumber(redis.call('HGET', KEYS[1], 'running') or '0')
local mine = tonumber(redis.call('HGET', KEYS[1], 'q:' .. ARGV[1]) or '0')
local moved = math.max(0, math.min(tonumber(ARGV[2]), tonumber(ARGV[3]) - running, mine))
if moved > 0 then
  redis.call('HINCRBY', KEYS[1], 'running', moved)
  redis.call('HINCRBY', KEYS[1], 'queued', -moved)
  redis.call('HINCRBY', KEYS[1], 'r:' .. ARGV[1], moved)
  redis.call('HINCRBY', KEYS[1], 'q:' .. ARGV[1], -moved)
end
return {moved, running + moved}
"""
_RELEASE = """
local total = ARGV[2] == 'q' and 'queued' or 'running'
for _, field in ipairs({total, ARGV[2] .. ':' .. ARGV[1]}) do
  if tonumber(redis.call('HGET', KEYS[1], field) or '0') > 0 then redis.call('HINCRBY', KEYS[1], field, -1) end
end
"""
_FORGET = """
for _, model in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. 'seq:' .. model
  for _, kind in ipairs({'running', 'queued', 'blocks'}) do
    local field = string.sub(kind, 1, 1) .. ':' .. ARGV[2]
    local held = tonumber(redis.call('HGET', key, field) or '0')
    if held > 0 then
      local total = tonumber(redis.call('HGET', key, kind) or '0')
      redis.call('HSET', key, kind, math.max(0, total - held))
    end
    redis.call('HDEL', key, field)
  end
end
"""
# KEYS: the model's sequence hash, the set of models; ARGV: worker, blocks (< 0: given back), capacity, model
_TAKE_BLOCKS = """
local n = tonumber(ARGV[2])
local used = tonumber(redis.call('HGET', KEYS[1], 'blocks') or '0')
if n > 0 and used + n > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'blocks', math.max(0, used + n))
local mine = tonumber(redis.call('HGET', KEYS[1], 'b:' .. ARGV[1]) or '0')
redis.call('HSET', KEYS[1], 'b:' .. ARGV[1], math.max(0, mine + n))
redis.call('SADD', KEYS[2], ARGV[4])
return 1
"""
_ADD_FAULTS = """
local added = {}
for i = 3, #ARGV, 4 do
  local id = redis.call('INCR', KEYS[3])
  local key = ARGV[1] .. 'fault:' .. id
  redis.call('HSET', key, 'spec', ARGV[i], 'remaining', ARGV[i + 2], 'used', 0, 'created', ARGV[2])
  if ARGV[i + 1] ~= '' then redis.call('HSET', key, 'model', ARGV[i + 1]) end
  if ARGV[i + 3] ~= '' then redis.call('HSET', key, 'test_id', ARGV[i + 3]) end
  redis.call('RPUSH', KEYS[1], id)
  redis.call('INCRBY', KEYS[2], ARGV[i + 2])
  table.insert(added, id)
end
return added
"""
_TAKE_FAULT = """
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. 'fault:' .. id
  local left = tonumber(redis.call('HGET', key, 'remaining') or '0')
  local model = redis.call('HGET', key, 'model')
  local test = redis.call('HGET', key, 'test_id')
  if left > 0 and (not model or model == ARGV[2]) and (not test or test == ARGV[3]) then
    redis.call('HINCRBY', key, 'remaining', -1)
    redis.call('HINCRBY', key, 'used', 1)
    redis.call('DECR', KEYS[2])
    return {id, redis.call('HGET', key, 'spec'), model or '', test or ''}
  end
end
return false
"""
_CLEAR_FAULTS = """
if ARGV[2] == '' then
  local pending = tonumber(redis.call('GET', KEYS[2]) or '0')
  for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do redis.call('DEL', ARGV[1] .. 'fault:' .. id) end
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], 0)
  return pending
end
local dropped = 0
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. 'fault:' .. id
  if redis.call('HGET', key, 'test_id') == ARGV[2] then
    dropped = dropped + tonumber(redis.call('HGET', key, 'remaining') or '0')
    redis.call('DEL', key)
    redis.call('LREM', KEYS[1], 0, id)
  end
end
redis.call('DECRBY', KEYS[2], dropped)
return dropped
"""
_PUT_OBJECT = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do redis.call('HDEL', KEYS[2], id) end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
end
"""
_DELETE_OBJECT = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('HDEL', KEYS[2], ARGV[1])
"""
# KEYS: the buckets; ARGV: now, then each bucket's cost and within (seconds). The test is the other backend's,
# operation for operation, on the same doubles: a value is written and read back with 17 significant digits.
_TAKE_FROM_BUCKETS = """
local now, before, after = tonumber(ARGV[1]), {}, {}
local taken = 1
for i, key in ipairs(KEYS) do
  local stored = redis.call('GET', key)
  local value = stored and tonumber(stored)
  if value and value <= now then stored, value = false, nil end
  before[i] = stored
  after[i] = math.max(value or now, now) + tonumber(ARGV[2 * i])
  if after[i] > now + tonumber(ARGV[2 * i + 1]) then taken = 0 end
end
if taken == 1 then
  for i, key in ipairs(KEYS) do
    local expires = string.format('%.0f', math.floor(after[i] * 1000) + 1)
    redis.call('SET', key, string.format('%.17g', after[i]), 'PXAT', expires)
  end
end
return {taken, before}
"""
_SCAN_PAGE = 200  # stored objects read per round trip while a list is filtered


def instance_name() -> str:
    """This server's name among the instances sharing one Redis (the master's, inherited by its workers)."""
    return os.environ.get(INSTANCE_ENV) or socket.gethostname()  # without a master: pids are this host's


# Connections a worker keeps to Redis at most. Every greenlet that asks Redis something needs one while it
# waits; beyond this many at once they wait for one to be free (redis-py's own pool refuses the 101st request
# outright, as "Too many connections": a 503 to every stream past the hundredth).
MAX_CONNECTIONS = 64


def connect_redis(url: str):
    import redis

    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=10,  # seconds a greenlet waits for a free connection, as long as a reply may take
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)


class RedisSharedState(SharedState):
    def __init__(self, url: str, prefix: str = "mock-openai", max_entries: int = 10000):
        self.url, self.prefix, self.max_entries = url, prefix.rstrip(":") + ":", max_entries
        self.redis = connect_redis(url)
        self.instance = instance_name()
        self._journal = None
        scripts = (_ACQUIRE, _PROMOTE, _RELEASE, _FORGET, _ADD_FAULTS, _TAKE_FAULT, _CLEAR_FAULTS)
        self._acquire, self._promote, self._release, self._forget, self._add, self._take, self._clear = (
            self.redis.register_script(script) for script in scripts
        )
        self._put = self.redis.register_script(_PUT_OBJECT)
        self._take_blocks = self.redis.register_script(_TAKE_BLOCKS)
        self._delete = self.redis.register_script(_DELETE_OBJECT)
        self._take_from_buckets = self.redis.register_script(_TAKE_FROM_BUCKETS)
        self._stored = GroupCommit(self._put_objects)  # the stored objects a worker's requests make at once
        self._changes = [self._key("version"), self._key("pending")]
        self._reading, self._following = False, None  # a read of the changes out; who waits for the next
        self._coalesced = self._spawn = None  # gevent's AsyncResult and spawn, in a gevent worker
        if under_gevent():
            import gevent
            from gevent.event import AsyncResult

            self._coalesced, self._spawn = AsyncResult, gevent.spawn

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _worker(self, pid: int | None = None) -> str:
        return f"{self.instance}:{pid or os.getpid()}"

    # --- what changed -------------------------------------------------------------------------------------
    def version(self) -> int:
        return int(self.redis.get(self._key("version")) or 0)

    def pending_faults(self) -> int:
        return int(self.redis.get(self._key("pending")) or 0)

    def changes(self) -> tuple[int, int]:
        """Under load many requests of a worker ask at once; they share reads. Each request still gets an
        answer read after it asked (a fault queued before its request was sent is seen): one that asks while a
        read is out waits for the next, which goes as soon as that one is back and serves all who waited."""
        if self._coalesced is None:
            return self._read_changes()
        if not self._reading:
            return self._lead(None)
        following = self._following
        if following is None:
            following = self._following = self._coalesced()
        return following.get()

    def _read_changes(self) -> tuple[int, int]:
        version, pending = self.redis.mget(self._changes)
        return int(version or 0), int(pending or 0)

    def _lead(self, waiting) -> tuple[int, int]:
        """Send a read now, for the caller and for ``waiting`` (those who asked while the last was out)."""
        self._reading = True
        try:
            value = self._read_changes()
        except BaseException as exc:
            if waiting is not None:
                waiting.set_exception(exc)
            raise
        else:
            if waiting is not None:
                waiting.set(value)
            return value
        finally:
            following, self._following = self._following, None
            if following is None:
                self._reading = False
            else:
                self._spawn(self._lead, following)  # their read goes now, after every one of them asked

    # --- runtime configuration ----------------------------------------------------------------------------
    def runtime_layer(self) -> dict:
        value = self.redis.get(self._key("runtime"))
        return json.loads(value) if value else {}

    def set_runtime_layer(self, layer: dict) -> int:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._key("runtime"), json.dumps(layer))
        pipe.incr(self._key("version"))
        return pipe.execute()[1]

    # --- one-shot faults ----------------------------------------------------------------------------------
    def _fault_keys(self) -> list[str]:
        return [self._key("faults"), self._key("pending")]

    def add_faults(self, faults: list[dict]) -> list[dict]:
        args = [self.prefix, str(time.time())]
        for fault in faults:
            spec = {k: v for k, v in fault.items() if k not in ("count", "model", "test_id")}
            args += [json.dumps(spec), fault.get("model") or "", fault["count"], fault.get("test_id") or ""]
        ids = self._add(keys=[*self._fault_keys(), self._key("faults", "next")], args=args)
        return [{"id": int(i), **fault} for i, fault in zip(ids, faults, strict=True)]

    def take_fault(self, model: str, test_id: str | None = None) -> dict | None:
        found = self._take(keys=self._fault_keys(), args=[self.prefix, model, test_id or ""])
        if not found:
            return None
        fault_id, spec, fault_model, fault_test = found
        return fault_view(int(fault_id), fault_model.decode() or None, fault_test.decode() or None, json.loads(spec))

    def faults(self) -> list[dict]:
        ids = [int(i) for i in self.redis.lrange(self._key("faults"), 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for fault_id in ids:
            pipe.hgetall(self._key("fault", str(fault_id)))
        listed = []
        for fault_id, record in zip(ids, pipe.execute(), strict=True):
            if not record:
                continue
            left, used = int(record[b"remaining"]), int(record[b"used"])
            model, test_id = record.get(b"model"), record.get(b"test_id")
            listed.append(
                {
                    **fault_view(
                        fault_id,
                        model.decode() if model else None,
                        test_id.decode() if test_id else None,
                        json.loads(record[b"spec"]),
                    ),
                    "count": left + used,
                    "remaining": left,
                    "used": used,
                    "created": int(float(record[b"created"])),
                }
            )
        return listed

    def clear_faults(self, test_id: str | None = None) -> int:
        return int(self._clear(keys=self._fault_keys(), args=[self.prefix, test_id or ""]))

    # --- rate-limit buckets -------------------------------------------------------------------------------
    def take_from_buckets(self, keys, costs_s, within_s, now):
        args = [repr(now)]
        for cost, within in zip(costs_s, within_s, strict=True):
            args += [repr(cost), repr(within)]
        taken, before = self._take_from_buckets(keys=[self._key("bucket", key) for key in keys], args=args)
        return bool(taken), [float(value) if value else None for value in before]

    def update_buckets(self, keys, update):
        import redis

        names = [self._key("bucket", key) for key in keys]
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(*names)
                    now = time.time()
                    values = [float(v) if v is not None else None for v in pipe.mget(names)]
                    new_values, result = update([v if v is not None and v > now else None for v in values])
                    pipe.multi()
                    for name, value in zip(names, new_values or (), strict=False):
                        if value > now:  # Redis drops the bucket when its time comes, as the other backend does
                            pipe.set(name, repr(value), pxat=int(value * 1000) + 1)
                        else:
                            pipe.delete(name)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue  # another worker took from these buckets meanwhile: read them again

    # --- the prompt cache: a key a prefix, which Redis lets go when it has been idle too long --------------------
    def cache_prefixes(self, digests, expires_at):
        names = [self._key("prefix", key.hex()) for key in digests]
        with self.redis.pipeline(transaction=False) as pipe:  # one round trip: read, then (re)cache them all
            pipe.mget(names)
            at = int(expires_at * 1000)
            for name in names:
                pipe.set(name, b"1", pxat=at, nx=True)
                pipe.pexpireat(name, at, gt=True)  # later, never sooner: a longer retention given earlier stays
            found = pipe.execute()[0]
        return [value is not None for value in found]

    # --- running sequences --------------------------------------------------------------------------------
    def take_blocks(self, model, blocks, capacity):
        return bool(self._take_blocks(keys=self._sequences(model), args=[self._worker(), blocks, capacity, model]))

    def used_blocks(self, model):
        return int(self.redis.hget(self._key("seq", model), "blocks") or 0)

    def _sequences(self, model: str) -> list[str]:
        return [self._key("seq", model), self._key("seq-models")]

    def acquire_sequence(self, model, limit, queue_limit):
        status, count = self._acquire(keys=self._sequences(model), args=[self._worker(), limit, queue_limit, model])
        return status.decode(), int(count)

    def promote_queued(self, model, wanted, limit):
        moved, running = self._promote(keys=self._sequences(model)[:1], args=[self._worker(), wanted, limit])
        return int(moved), int(running)

    def release_sequence(self, model, queued=False):
        self._release(keys=self._sequences(model)[:1], args=[self._worker(), "q" if queued else "r"])

    def running_sequences(self, model):
        return int(self.redis.hget(self._key("seq", model), "running") or 0)

    def forget_process(self, pid):
        self._forget(keys=[self._key("seq-models")], args=[self.prefix, self._worker(pid)])
        self.journal().forget_process(pid)

    # --- stored objects -----------------------------------------------------------------------------------
    def _objects(self, kind: str) -> list[str]:
        return [self._key("objects", kind, "order"), self._key("objects", kind), self._key("objects", "next")]

    def put_object(self, kind, object_id, body):
        self._stored.submit((kind, object_id, json.dumps(body)))

    def _put_objects(self, rows: list[tuple[str, str, str]]) -> None:
        """The objects that a worker's requests stored at the same time, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for kind, object_id, text in rows:
            self._put(keys=self._objects(kind), args=[object_id, text, MAX_OBJECTS], client=pipe)
        pipe.execute()

    def get_object(self, kind, object_id):
        body = self.redis.hget(self._key("objects", kind), object_id)
        return json.loads(body) if body else None

    def delete_object(self, kind, object_id):
        return bool(self._delete(keys=self._objects(kind)[:2], args=[object_id]))

    def list_objects(self, kind, *, newest_first, after, limit, where=None):
        order_key, bodies_key, _ = self._objects(kind)
        low, high = "-inf", "+inf"
        if after is not None:
            seq = self.redis.zscore(order_key, after)
            if seq is not None:
                low, high = ("-inf", f"({seq}") if newest_first else (f"({seq}", "+inf")
        found, offset = [], 0
        while len(found) <= limit:
            if newest_first:
                ids = self.redis.zrevrangebyscore(order_key, high, low, start=offset, num=_SCAN_PAGE)
            else:
                ids = self.redis.zrangebyscore(order_key, low, high, start=offset, num=_SCAN_PAGE)
            if not ids:
                break
            offset += len(ids)
            for body in self.redis.hmget(bodies_key, ids):
                if body is not None:
                    value = json.loads(body)
                    if all(_at(value, path) == wanted for path, wanted in (where or {}).items()):
                        found.append(value)
        return found[:limit], len(found) > limit

    # --- file contents: a key each ---------------------------------------------------------------------------
    def put_content(self, file_id, data):
        self.redis.set(self._key("content", file_id), data)

    def get_content(self, file_id):
        return self.redis.get(self._key("content", file_id))

    def delete_content(self, file_id):
        self.redis.delete(self._key("content", file_id))

    # --- the request journal ------------------------------------------------------------------------------
    def journal(self):
        if self._journal is None:
            from app.shared.redis_journal import RedisJournalStore

            self._journal = RedisJournalStore(self.redis, self.prefix + "journal:", self._worker, self.max_entries)
        return self._journal

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self.redis.close()


def _at(body: dict, path: str):
    """The value at a dotted path (``metadata.user``), or None."""
    for part in path.split("."):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body
