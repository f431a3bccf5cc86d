"""State that every worker of a server shares, behind one interface.

What lives here: the runtime configuration layer (``PATCH /_mock/config``), one-shot faults
(``POST /_mock/faults``), rate-limit buckets, the count of running and queued sequences per model, the
prompt cache's prefixes, stored
objects (chat completions and responses made with ``store``, deleted fine-tunes, files and batches), the
contents of files, and the request journal (:meth:`SharedState.journal`).

The request path asks two questions on every request, :meth:`SharedState.version` and
:meth:`SharedState.pending_faults`, and both are answered from a word of shared memory, without a lock or a
system call. Everything else is touched only by a feature that is on. The one-host backend
(:mod:`app.shared.local`) keeps rate-limit buckets in shared memory too and the rest in a SQLite file in WAL
mode; the backend for several hosts (:mod:`app.shared.redis_state`) keeps it all in one Redis.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import contextmanager

PATH_ENV = "MOCK_OPENAI_SHARED_PATH"  # also the [shared] path setting, through the one config loader
MAX_OBJECTS = 10000  # per kind of stored object: a load test with store=true must not grow the file forever


def process_id() -> int:
    """``os.getpid()`` without the system call: every request asks (the journal's row, this worker's counters)."""
    return _PID[0]


_PID = [os.getpid()]  # kept current across forks
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def under_gevent() -> bool:
    """This process is a gevent worker (its sockets patched): a wait there yields to the other requests, and
    work can be left to a greenlet of its own."""
    from gevent import monkey

    return monkey.is_module_patched("socket")


def fault_view(fault_id: int, model: str | None, test_id: str | None, spec: dict) -> dict:
    """A queued fault as every backend shows it: ``test_id`` only when it is scoped to one test."""
    return {"id": fault_id, "model": model, **({"test_id": test_id} if test_id else {}), **spec}


class SharedState(ABC):
    # --- what changed: read on every request --------------------------------------------------------------
    @abstractmethod
    def version(self) -> int:
        """A number that grows whenever the runtime configuration changes."""

    @abstractmethod
    def pending_faults(self) -> int:
        """How many one-shot faults are queued (0 on the fast path)."""

    @abstractmethod
    def changes(self) -> tuple[int, int]:
        """``(version(), pending_faults())`` in one read: what every request checks first (one round trip on
        Redis, not two)."""

    # --- runtime configuration ----------------------------------------------------------------------------
    @abstractmethod
    def runtime_layer(self) -> dict:
        """The layer ``PATCH /_mock/config`` put over the start-up settings (``{}`` for none)."""

    @abstractmethod
    def set_runtime_layer(self, layer: dict) -> int:
        """Replace the layer for every worker at once; returns the new version."""

    # --- one-shot faults ----------------------------------------------------------------------------------
    @abstractmethod
    def add_faults(self, faults: list[dict]) -> list[dict]:
        """Queue faults (``{"error", "model", "test_id", "count", ...}``), first in, first served; returns them
        with ids. A fault with a ``test_id`` is only for requests tagged with it (``X-Mock-Test-Id``)."""

    @abstractmethod
    def take_fault(self, model: str, test_id: str | None = None) -> dict | None:
        """The first queued fault for ``model`` (or for any model) and for this test (or for any request), used
        up by one; None if there is none."""

    @abstractmethod
    def faults(self) -> list[dict]:
        """Every fault queued since the last clear, with ``remaining`` and ``used`` counts."""

    @abstractmethod
    def clear_faults(self, test_id: str | None = None) -> int:
        """Drop every queued fault, or only those queued for ``test_id``; returns how many uses were still
        pending among those dropped."""

    # --- rate-limit buckets -------------------------------------------------------------------------------
    @abstractmethod
    def take_from_buckets(
        self, keys: list[str], costs_s: list[float], within_s: list[float], now: float
    ) -> tuple[bool, list[float | None]]:
        """GCRA (rate limits, the prefill queue) in one atomic step: each bucket's value (the time it is full
        again, or its queue's end) moves to ``max(value, now) + cost``, for every bucket if each new value is at
        most ``now + within``, else for none. Returns ``(taken, the values before)``; a value that has passed
        reads as None, like a new bucket's. ``max(value or now, now) + cost > now + within`` is the test, to the
        bit, so a caller can tell which bucket refused."""

    @abstractmethod
    def update_buckets(self, keys: list[str], update: Callable[[list[float | None]], tuple[list | None, object]]):
        """Atomically: read each bucket's value, call ``update(values)`` which returns ``(new_values or None to
        leave them, result)``, store the new values; returns ``result``. Values are times (``time.time()``):
        a bucket whose value has passed reads as None, like a new one, and the backend may drop it."""

    # --- running sequences --------------------------------------------------------------------------------
    @abstractmethod
    def acquire_sequence(self, model: str, limit: int, queue_limit: int) -> tuple[str, int]:
        """``("running", n)`` when a sequence is free (n running now, this one included), ``("queued", n)``
        when this request may wait for one, ``("full", n)`` when the queue is full too."""

    @abstractmethod
    def promote_queued(self, model: str, wanted: int, limit: int) -> tuple[int, int]:
        """Move up to ``wanted`` of this process's queued requests to running; ``(moved, running)``."""

    @abstractmethod
    def release_sequence(self, model: str, queued: bool = False) -> None:
        """A running (or, with ``queued``, a still waiting) request of this process is done."""

    @abstractmethod
    def take_blocks(self, model: str, blocks: int, capacity: int) -> bool:
        """The model's KV cache: take ``blocks`` if the blocks in use stay within ``capacity`` (True), or take
        none (False); a negative number gives blocks back, always. Counted per process, for
        :meth:`forget_process`."""

    @abstractmethod
    def used_blocks(self, model: str) -> int:
        """KV cache blocks in use across all workers."""

    @abstractmethod
    def running_sequences(self, model: str) -> int:
        """Running across all workers."""

    @abstractmethod
    def forget_process(self, pid: int) -> None:
        """A worker is gone: drop the sequences and KV cache blocks it held, so they do not leak, and its journal
        counters."""

    # --- the prompt cache -----------------------------------------------------------------------------------
    @abstractmethod
    def cache_prefixes(self, digests: list[bytes], expires_at: float) -> list[bool]:
        """The prompt cache, in one step: which of ``digests`` (each naming a prompt prefix) were cached; then
        every one of them is cached until ``expires_at`` (an idle prefix is forgotten then, a used one kept
        longer)."""

    # --- stored objects: chat completions and responses with ``store``, deleted fine-tunes -----------------
    @abstractmethod
    def put_object(self, kind: str, object_id: str, body: dict) -> None:
        """Store (or replace) a JSON object. Each kind keeps its newest ``MAX_OBJECTS``; older ones are dropped."""

    @abstractmethod
    def get_object(self, kind: str, object_id: str) -> dict | None:
        """The stored object, or None."""

    @abstractmethod
    def delete_object(self, kind: str, object_id: str) -> bool:
        """Drop it; False if there was none."""

    @abstractmethod
    def list_objects(
        self, kind: str, *, newest_first: bool, after: str | None, limit: int, where: dict | None = None
    ) -> tuple[list[dict], bool]:
        """``(objects, has_more)`` in the order they were stored, starting after the object ``after``;
        ``where`` maps a dotted path in the body (``model``, ``metadata.user``) to the value it must have."""

    # --- file contents: uploads (``/v1/files``) and what batches write ---------------------------------------
    @abstractmethod
    def put_content(self, file_id: str, data: bytes) -> None:
        """Keep a file's bytes (its description is a stored object of its own)."""

    @abstractmethod
    def get_content(self, file_id: str) -> bytes | None:
        """The bytes kept for ``file_id``, or None."""

    @abstractmethod
    def delete_content(self, file_id: str) -> None:
        """Let the bytes go (nothing happens if there were none)."""

    # --- the request journal ------------------------------------------------------------------------------
    @abstractmethod
    def journal(self):
        """The journal's store (:class:`app.shared.journal_store.JournalStore` on one host): ``append(rows)``,
        ``query``, ``get``, ``clear``, ``columns``, and the per-worker counters readers wait on."""

    @abstractmethod
    def close(self) -> None:
        """Let go of the backend (gunicorn's master does, before it forks another worker)."""


def connect(
    path: str, synchronous: str = "normal", page_size: int | None = None, journal_mode: str = "wal"
) -> sqlite3.Connection:
    """A connection to one of the shared SQLite files: WAL (readers never wait for a writer), autocommit
    (transactions are begun explicitly), usable from any greenlet. Never carried across a fork.
    ``page_size`` applies to a file made now (SQLite fixes it when the first table is made)."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    if page_size:
        connection.execute(f"pragma page_size={int(page_size)}")
    connection.execute(f"pragma journal_mode={journal_mode}")
    connection.execute(f"pragma synchronous={synchronous}")
    connection.execute("pragma busy_timeout=5000")
    return connection


@contextmanager
def write_transaction(db: sqlite3.Connection, lock, unlock):
    """``begin immediate`` ... ``commit`` (``rollback`` on an error) with ``lock()`` held: writers queue on
    our own lock, so SQLite's busy handler, which sleeps in whole milliseconds, never runs."""
    lock()
    try:
        db.execute("begin immediate")
        try:
            yield db
        except BaseException:
            db.execute("rollback")
            raise
        db.execute("commit")
    finally:
        unlock()


def shared_path(settings_path: str) -> str:
    """The SQLite file: ``[shared] path``, else a new file in a temporary folder removed at exit. gunicorn's
    master calls this before it forks and exports the path, so every worker opens the same file."""
    if settings_path:
        return settings_path
    folder = tempfile.mkdtemp(prefix="mock-openai-")
    owner = os.getpid()
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(folder, ignore_errors=True))
    return os.path.join(folder, "shared.sqlite3")


def open_shared(
    settings_path: str, journal_path: str = "", max_entries: int = 10000, redis_url: str = "", redis_prefix: str = ""
) -> SharedState:
    """The backend for this deployment: with ``[shared] redis_url``, Redis (several hosts as one server);
    else the one-host backend, whose journal sits in its own file (``[journal] path``, else beside the
    shared state), so a path set for it keeps the journal across restarts."""
    if redis_url:
        from app.shared.redis_state import RedisSharedState

        return RedisSharedState(redis_url, redis_prefix or "mock-openai", max_entries)
    from app.shared.local import LocalSharedState

    path = shared_path(settings_path)
    return LocalSharedState(path, journal_path or os.path.join(os.path.dirname(path), "journal.sqlite3"), max_entries)


def open_configured(settings, path: str | None = None) -> SharedState:
    """:func:`open_shared` for these settings (``path`` instead of ``[shared] path``: the master's file)."""
    shared, journal = settings.shared, settings.journal
    return open_shared(
        shared["path"] if path is None else path,
        journal["path"],
        journal["max_entries"],
        shared["redis_url"],
        shared["redis_prefix"],
    )
