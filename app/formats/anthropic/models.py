"""The Claude models this format answers as, with their limits, and ``/v1/models`` in Anthropic's shape.

Which models exist, and their context windows and output limits, follow Anthropic's models overview (the
official SDK's ``Model`` literal lists the same ids). An unknown name is Anthropic's 404, unless unknown models
are allowed (``--any-model``), when any name is answered as itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.config import ModelSpec
from app.errors import OpenAIError


@dataclass(frozen=True, slots=True)
class Claude:
    id: str
    display_name: str
    created_at: str  # RFC 3339, as Anthropic lists it
    max_input_tokens: int
    max_tokens: int
    min_cache_tokens: int = 1024  # the shortest prompt prefix a cache_control breakpoint caches

    def spec(self) -> ModelSpec:
        return ModelSpec(id=self.id, max_output_tokens=self.max_tokens, context_window=self.max_input_tokens)

    def info(self) -> dict:
        return {
            "type": "model",
            "id": self.id,
            "display_name": self.display_name,
            "created_at": self.created_at,
            "max_input_tokens": self.max_input_tokens,
            "max_tokens": self.max_tokens,
            "lifecycle": "active",
            "line": self.id.split("-")[1],
            "deprecated_at": None,
            "retires_at": None,
        }


M = 1_000_000
CLAUDE = (  # newest first, as Anthropic lists them
    Claude("claude-opus-5-5", "Claude Opus 5.5", "2026-11-05T00:00:00Z", M, 128000),
    Claude("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-11-05T00:00:00Z", M, 128000),
    Claude("claude-haiku-5-5", "Claude Haiku 5.5", "2026-11-05T00:00:00Z", 200000, 64000, 4096),
    Claude("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", M, 128000),
    Claude("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", M, 128000),
    Claude("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24T00:00:00Z", 200000, 64000, 4096),
    Claude("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z", 200000, 64000, 4096),
    Claude("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", 200000, 64000),
)
# Aliases answer as their dated model, as the API reports it in ``model``.
ALIASES = {
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
}
BY_ID = {m.id: m for m in CLAUDE}
SPECS = {m.id: m.spec() for m in CLAUDE}  # (frozen: one for every request that names the model)


def find(model_id: str) -> Claude | None:
    return BY_ID.get(ALIASES.get(model_id, model_id))


def not_found(model_id: str) -> OpenAIError:
    return OpenAIError(404, f"model: {model_id}", "not_found_error")


def resolve(model_id: str | None, allow_unknown: bool) -> ModelSpec:
    """The model to answer as: a Claude model by id or alias; any name with ``--any-model``."""
    model = find(model_id or CLAUDE[1].id)
    if model is not None:
        return SPECS[model.id]
    if allow_unknown:
        return ModelSpec(id=model_id, max_output_tokens=CLAUDE[1].max_tokens)
    raise not_found(model_id)


def page(after_id: str | None, before_id: str | None, limit: int) -> dict:
    """A page of the list, as Anthropic pages it (``after_id`` / ``before_id``, ``has_more``)."""
    ids = [m.id for m in CLAUDE]
    start, end = 0, len(ids)
    if after_id:
        start = ids.index(after_id) + 1 if after_id in ids else len(ids)
    if before_id:
        end = ids.index(before_id) if before_id in ids else 0
        start = max(start, end - limit)
    chosen = CLAUDE[start:end][:limit]
    return {
        "data": [m.info() for m in chosen],
        "has_more": (start + len(chosen) < end) if not before_id else start > 0,
        "first_id": chosen[0].id if chosen else None,
        "last_id": chosen[-1].id if chosen else None,
    }
