"""A KV cache of fixed size per model, paged as vLLM's: running sequences fill it block by block, and a
sequence that needs a block the full cache does not have is preempted.

With ``[latency] kv_cache_blocks`` set (per model, across all workers and instances; ``block_size`` tokens a
block), a request:

1. is admitted once the blocks of its uncached prompt and its first token are free (cached prefix blocks
   are shared, as vLLM's prefix cache shares them), waiting until then;
2. takes one more block each time its prompt and what it generated pass a block boundary;
3. when that block is not there, the newest running sequence of the model in this worker is preempted, as
   vLLM preempts its newest (recompute); it is this one when none is newer. A sequence preempted gives back its
   blocks and its sequence at its next token, waits at the head of the queue, takes blocks for its prompt and
   everything it generated, and prefills all of it again (``prefill_ms_per_1k_prompt_tokens``) before its
   next token: the client sees the stream pause. The one that needed the block waits for them meanwhile;
4. gives its blocks back when it ends, however it ends.

Newest is counted within a worker, so that no worker reaches into another's streams. Blocks are taken from the
shared state (:meth:`SharedState.take_blocks`) once per ``block_size`` tokens of each sequence, never per
token.
"""

from __future__ import annotations

from time import monotonic

from gevent import sleep

from app.errors import OpenAIError

POLL_S = 0.005  # how often a sequence waiting for blocks looks again (blocks free up in other workers too)
REQUEUED = 1 << 30  # a preempted sequence always has a place in the queue: it was admitted once


class KvSequence:
    """One request's blocks of its model's KV cache."""

    __slots__ = (
        "simulation", "model", "capacity", "size", "prompt", "held", "latency", "generated", "sequence", "evicted"
    )  # fmt: skip

    def __init__(self, simulation, model: str, latency: dict, prompt_tokens: int):
        self.simulation, self.model, self.latency = simulation, model, latency
        self.capacity, self.size = latency["kv_cache_blocks"], latency["block_size"]
        self.prompt = prompt_tokens  # the tokens it prefills (its uncached prompt)
        self.held = 0
        self.generated = 0
        self.sequence = bool(latency["max_concurrent_sequences"])  # holds one of the model's sequences now
        self.evicted = False  # chosen for preemption by a sequence that needs its blocks

    def blocks_for(self, generated: int) -> int:
        return -(-(self.prompt + generated) // self.size)

    def admit(self) -> float:
        """Wait for the blocks of the prompt and the first token; the seconds waited."""
        need = self.blocks_for(1)
        if need > self.capacity:
            raise OpenAIError(
                400,
                f"This request's prompt needs {need} KV cache blocks, more than the {self.capacity} the model has "
                "([latency] kv_cache_blocks). Please reduce the length of the messages.",
                param="messages",
                code="context_length_exceeded",
            )
        waited = self._take_until(need)
        self._running().append(self)
        return waited

    def grow(self, generated: int) -> float:
        """Before token ``generated`` goes out: the blocks it needs. The seconds paused: 0, unless the cache was
        full and this sequence was preempted and had to come back."""
        if self.evicted:  # chosen by an older sequence: preempted before this token, with what it has generated
            self.generated = max(generated, self.generated)
            return self._preempted(self.blocks_for(self.generated))
        if generated <= self.generated:
            return 0.0
        self.generated = generated
        need = self.blocks_for(generated)
        if need <= self.held:
            return 0.0
        if self.simulation.shared.take_blocks(self.model, need - self.held, self.capacity):
            self.held = need
            return 0.0
        victim = self._newest_other()
        if victim is None:
            return self._preempted(need)
        victim.evicted = True  # it gives its blocks back at its next token; this one, running, waits for them
        stalled = self.simulation.kv_stalled
        stalled[self.model] = stalled.get(self.model, 0) + 1
        try:
            return self._take_until(need, waiting=False)
        finally:
            stalled[self.model] -= 1

    def boundaries(self, count: int) -> range:
        """The tokens (of ``count``) whose sending needs a block more than the one before: a body's steps."""
        first = -self.prompt % self.size or self.size  # token k is the (prompt + k + 1)-th: a new block at 1 mod size
        return range(first, count, self.size)

    def release(self) -> None:
        running = self._running()
        if self in running:
            running.remove(self)
        if self.held:
            self.simulation.shared.take_blocks(self.model, -self.held, self.capacity)
            self.held = 0

    def _running(self) -> list:
        """This worker's sequences of the model that hold blocks, oldest first."""
        return self.simulation.kv_running.setdefault(self.model, [])

    def _newest_other(self):
        """The newest running sequence newer than this one and not already chosen, or None."""
        for sequence in reversed(self._running()):
            if sequence is self:
                return None
            if not sequence.evicted:
                return sequence
        return None

    def _preempted(self, need: int) -> float:
        started = monotonic()
        simulation, model = self.simulation, self.model
        self.evicted = False
        self.release()
        simulation.preempted(model)
        try:
            limit = self.latency["max_concurrent_sequences"]
            if limit:  # its sequence goes back, and it waits for one at the head of the queue
                self.sequence = False
                simulation.gate.leave(model)
                simulation.gate.enter(model, limit, REQUEUED, front=True)
                self.sequence = True
            self._take_until(min(need, self.capacity))
            self._running().append(self)  # running again, now the newest
            # recompute: the prompt and everything generated so far are prefilled again
            sleep(self.latency["prefill_ms_per_1k_prompt_tokens"] * (self.prompt + self.generated) / 1e6)
        finally:  # resumed, or ended while preempted (the client left): it counts as running until it ends
            simulation.resumed(model)
        return monotonic() - started

    def _take_until(self, need: int, waiting: bool = True) -> float:
        """Wait for ``need`` blocks in all; ``waiting``: counted as waiting meanwhile, as vLLM counts a request
        it cannot schedule (a running one waiting for a preempted one's blocks is not)."""
        started = monotonic()
        shared, counted, stalled = self.simulation.shared, None, self.simulation.kv_stalled
        try:
            # a running sequence waiting for the blocks of the one it preempted takes them first
            while (waiting and stalled.get(self.model)) or not shared.take_blocks(
                self.model, need - self.held, self.capacity
            ):
                if counted is None and waiting:
                    counted = self.simulation.kv_waiting
                    counted[self.model] = counted.get(self.model, 0) + 1
                sleep(POLL_S)
        finally:
            if counted is not None:
                counted[self.model] -= 1
        self.held = need
        return monotonic() - started
