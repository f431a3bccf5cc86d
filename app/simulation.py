"""What happens to a request, decided once before anything is sent: its latency and any injected fault.

Views ask :func:`decide` for a :class:`Fate` and then only act on it. Later simulation features (jitter,
named scenarios, mid-stream faults, rate limits) extend the Fate, not the views.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from app.errors import SERVER_ERROR, SERVER_ERROR_MESSAGE, OpenAIError


@dataclass(frozen=True, slots=True)
class Fate:
    ttft_s: float  # time to first token: the wait before the first token (or the whole body)
    inter_token_latency_s: float  # between two tokens of a stream
    error: OpenAIError | None = None  # answered instead of a completion


def decide(responses: dict) -> Fate:
    """The fate of one completion request under the ``[responses]`` settings."""
    error = None
    rate = responses["error_rate_percent"]
    if rate and random.random() * 100 < rate:
        error = OpenAIError(500, SERVER_ERROR_MESSAGE, SERVER_ERROR)
    return Fate(
        ttft_s=responses["default_delay_ms"] / 1000,
        inter_token_latency_s=responses["inter_token_latency_ms"] / 1000,
        error=error,
    )
