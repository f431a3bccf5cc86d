"""A KV cache of fixed size per model, paged as vLLM's: running sequences fill it block by block, and a
sequence that needs a block the full cache does not have is preempted.

With ``[latency] kv_cache_blocks`` set (per model, across all workers and instances; ``block_size`` tokens a
block), a request:

1. is admitted once the blocks of its uncached prompt and its first token are free (cached prefix blocks
   are shared, as vLLM's prefix cache shares them), waiting until then;
2. takes one more block each time its prompt and what it generated pass a block boundary;
3. when that block is not there, is preempted as vLLM preempts (recompute): it gives back its blocks and its
   sequence, waits at the head of the queue, takes blocks for its prompt and everything it generated, and
   prefills all of it again (``prefill_ms_per_1k_prompt_tokens``) before its next token: the client sees the
   stream pause;
4. gives its blocks back when it ends, however it ends.

vLLM preempts the newest running request; here the one that needs the block is preempted, so that no worker
has to reach into another's streams. Blocks are taken from the shared state (:meth:`SharedState.take_blocks`)
once per ``block_size`` tokens of each sequence, never per token.
"""

from __future__ import annotations

from time import monotonic

from gevent import sleep

from app.errors import OpenAIError

POLL_S = 0.005  # how often a sequence waiting for blocks looks again (blocks free up in other workers too)
REQUEUED = 1 << 30  # a preempted sequence always has a place in the queue: it was admitted once


class KvSequence:
    """One request's blocks of its model's KV cache."""

    __slots__ = ("simulation", "model", "capacity", "size", "prompt", "held", "latency", "generated", "sequence")

    def __init__(self, simulation, model: str, latency: dict, prompt_tokens: int):
        self.simulation, self.model, self.latency = simulation, model, latency
        self.capacity, self.size = latency["kv_cache_blocks"], latency["block_size"]
        self.prompt = prompt_tokens  # the tokens it prefills (its uncached prompt)
        self.held = 0
        self.generated = 0
        self.sequence = bool(latency["max_concurrent_sequences"])  # holds one of the model's sequences now

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
        return self._take_until(need)

    def grow(self, generated: int) -> float:
        """Before token ``generated`` goes out: the blocks it needs. The seconds paused: 0, unless the cache was
        full and this sequence was preempted and had to come back."""
        if generated <= self.generated:
            return 0.0
        self.generated = generated
        need = self.blocks_for(generated)
        if need <= self.held:
            return 0.0
        if self.simulation.shared.take_blocks(self.model, need - self.held, self.capacity):
            self.held = need
            return 0.0
        return self._preempted(need)

    def boundaries(self, count: int) -> range:
        """The tokens (of ``count``) whose sending needs a block more than the one before: a body's steps."""
        first = -self.prompt % self.size or self.size  # token k is the (prompt + k + 1)-th: a new block at 1 mod size
        return range(first, count, self.size)

    def release(self) -> None:
        if self.held:
            self.simulation.shared.take_blocks(self.model, -self.held, self.capacity)
            self.held = 0

    def _preempted(self, need: int) -> float:
        started = monotonic()
        simulation, model = self.simulation, self.model
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
            # recompute: the prompt and everything generated so far are prefilled again
            sleep(self.latency["prefill_ms_per_1k_prompt_tokens"] * (self.prompt + self.generated) / 1e6)
        finally:  # resumed, or ended while preempted (the client left): it counts as running until it ends
            simulation.resumed(model)
        return monotonic() - started

    def _take_until(self, need: int) -> float:
        started = monotonic()
        shared, waiting = self.simulation.shared, None
        try:
            while not shared.take_blocks(self.model, need - self.held, self.capacity):
                if waiting is None:  # counted as waiting, as vLLM counts a request it cannot schedule
                    waiting = self.simulation.kv_waiting
                    waiting[self.model] = waiting.get(self.model, 0) + 1
                sleep(POLL_S)
        finally:
            if waiting is not None:
                waiting[self.model] -= 1
        self.held = need
        return monotonic() - started
