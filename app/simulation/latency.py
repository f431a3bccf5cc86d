"""How long a reply takes: time to first token, the gaps between tokens, and how load stretches both.

- TTFT is ``ttft_ms`` plus ``prefill_ms_per_1k_prompt_tokens`` for each thousand prompt tokens; with
  ``ttft_jitter_ms`` it is drawn from a normal distribution with that standard deviation, clamped at 0.
- Each gap between two tokens is ``inter_token_latency_ms``; with ``inter_token_jitter_ms`` each one is drawn
  from a normal distribution around it, clamped at 0. Deadlines stay absolute (the sum of the gaps), so
  jitter never accumulates drift.
- Under load, as in an inference server that batches its sequences: with ``max_concurrent_sequences`` set,
  a request holds one of that many sequences of its model (across all workers) while it generates; up to
  ``max_queued_sequences`` more wait for one, and further ones get ``queue_full_error``. Both TTFT and the
  gaps are multiplied by ``1 + load_slowdown * running / max_concurrent_sequences``, the running count
  taken when the request starts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import accumulate

import gevent
from gevent.event import AsyncResult, Event


@dataclass(slots=True)
class Timing:
    ttft_s: float
    inter_token_latency_s: float
    offsets: list[float] | None = None  # token k is due offsets[k] after the first; None: k * ITL

    def generation_s(self, count: int) -> float:
        """From the first token to the last."""
        if count <= 1:
            return 0.0
        if self.offsets is not None:
            return self.offsets[count - 1]
        return (count - 1) * self.inter_token_latency_s


def plan(
    latency: dict,
    prompt_tokens: int,
    count: int,
    load_factor: float,
    rng,
    ttft_ms: float | None = None,
    inter_token_latency_ms: float | None = None,
    prefill_s: float | None = None,
) -> Timing:
    """The timing of one reply of ``count`` tokens. ``ttft_ms`` / ``inter_token_latency_ms`` (from the
    ``X-Mock-TTFT-Ms`` / ``X-Mock-ITL-Ms`` headers) are exact: no prefill, jitter or load on top.
    ``prefill_s``: the prefill's time in steps of the token budget (:mod:`.prefill`), in place of
    ``prefill_ms_per_1k_prompt_tokens``."""
    if ttft_ms is None:
        per_1k = latency["prefill_ms_per_1k_prompt_tokens"] if prefill_s is None else 0
        ttft = latency["ttft_ms"] + per_1k * prompt_tokens / 1000
        if latency["ttft_jitter_ms"]:
            ttft = max(0.0, rng.gauss(ttft, latency["ttft_jitter_ms"]))
        ttft = ttft * load_factor + (prefill_s or 0) * 1000
    else:
        ttft = ttft_ms
    offsets = None
    if inter_token_latency_ms is None:
        itl = latency["inter_token_latency_ms"] * load_factor
        jitter = latency["inter_token_jitter_ms"] * load_factor
        if jitter and count > 1:
            gauss = rng.gauss
            offsets = [0.0, *accumulate(max(0.0, gauss(itl, jitter)) / 1000 for _ in range(count - 1))]
    else:
        itl = inter_token_latency_ms
    return Timing(ttft / 1000, itl / 1000, offsets)


class QueueFull(Exception):
    """No sequence is free and the waiting queue is full."""


class SequenceGate:
    """``max_concurrent_sequences`` per model across all workers, with a waiting queue.

    Counts live in shared state. This worker's waiting requests sit in a local queue per model that one
    greenlet promotes as sequences free up: at once when this worker releases one, and every
    ``POLL_S`` when another worker might have.
    """

    POLL_S = 0.005

    def __init__(self, shared):
        self.shared = shared
        self.waiting: dict[str, deque] = {}
        self.limits: dict[str, int] = {}
        self.released = Event()
        self.promoter = None

    def enter(self, model: str, limit: int, queue_limit: int, front: bool = False) -> int:
        """Wait for a sequence of ``model``; the running count once this request holds one. ``front``: at the
        head of this worker's queue (a preempted sequence, as vLLM requeues it)."""
        status, running = self.shared.acquire_sequence(model, limit, queue_limit)
        if status == "full":
            raise QueueFull
        if status == "running":
            return running
        turn = AsyncResult()
        self.limits[model] = limit
        queue = self.waiting.setdefault(model, deque())
        queue.appendleft(turn) if front else queue.append(turn)
        if self.promoter is None or self.promoter.dead:
            self.promoter = gevent.spawn(self._promote)
        try:
            return turn.get()
        except BaseException:  # the waiting greenlet was killed: give back what it held
            if turn.ready():
                self.leave(model)
            else:
                self.waiting[model].remove(turn)
                self.shared.release_sequence(model, queued=True)
            raise

    def queued(self) -> dict[str, int]:
        """This worker's requests waiting for a sequence, by model."""
        return {model: len(queue) for model, queue in self.waiting.items()}

    def leave(self, model: str) -> None:
        self.shared.release_sequence(model)
        if self.waiting.get(model):
            self.released.set()

    def _promote(self) -> None:
        while any(self.waiting.values()):
            for model, queue in self.waiting.items():
                if not queue:
                    continue
                moved, running = self.shared.promote_queued(model, len(queue), self.limits[model])
                for _ in range(moved):
                    queue.popleft().set(running)
            self.released.clear()
            self.released.wait(self.POLL_S)
