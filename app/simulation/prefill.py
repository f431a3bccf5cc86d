"""Prefill in steps of a token budget, as vLLM's chunked prefill schedules it (``[latency]
max_num_batched_tokens``).

Each engine step of a model runs a token for each running sequence and, in what is left of the budget,
chunks of the prompts waiting for prefill, first come first served; a step takes ``inter_token_latency_ms``.
Prefill is so a queue with a throughput of ``budget - running`` tokens a step: a prompt of P uncached tokens
has its first token once the prompts before it and its own P have gone through. A long prompt takes several
steps (it is chunked), and short ones arriving together share one. The queue is one per model, across all
workers and instances: the time its prefills end, kept in the shared state (one atomic update a request).
"""

from __future__ import annotations

import time

QUEUE_WITHOUT_END_S = 1e9  # the queue takes every prompt: no end is too far


def prefill_s(shared, model: str, tokens: int, latency: dict, running: int) -> float:
    """The seconds until ``tokens`` of prompt, queued behind the model's other prefills, are prefilled."""
    step_s = latency["inter_token_latency_ms"] / 1000
    if not tokens or not step_s:
        return 0.0
    per_step = max(1, latency["max_num_batched_tokens"] - running)  # the decodes of running sequences go first
    work_s = tokens / per_step * step_s
    now = time.time()
    _, (ends,) = shared.take_from_buckets([f"prefill:{model}"], [work_s], [QUEUE_WITHOUT_END_S], now)
    return max(step_s, max(ends or now, now) + work_s - now)  # at least the step it ends in
