"""Anthropic's prompt caching: the blocks marked ``cache_control`` are the breakpoints of the prompt.

The prompt is read in Anthropic's order, tools, then system, then messages, and a breakpoint stands for
everything up to and including its block. A top-level ``cache_control`` marks the last block. The core
(:meth:`app.simulation.prompt_cache.PromptCache.explicit`) reads the longest breakpoint cached before, and
writes every one past it. A breakpoint shorter than the model's minimum is not cached, as the API documents:
the request is answered, without caching. At most four blocks may be marked.
"""

from __future__ import annotations

from app.formats.anthropic import schema
from app.tokens import chat_tokens

RETENTION_S = {"5m": 300.0, "1h": 3600.0}
MAX_BREAKPOINTS = 4


def breakpoints(body: dict, model: str, min_tokens: int) -> list[tuple[list, float]]:
    """``(tokens up to the breakpoint, retention_s)`` for each marked block at least ``min_tokens`` long,
    shortest first; 400 for more than four marks."""
    marks = list(_marks(body))
    if len(marks) > MAX_BREAKPOINTS:
        raise schema.invalid(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(marks)}."
        )
    found = []
    for prefix, control in marks:
        neutral = schema.neutral_body(prefix)
        tokens = chat_tokens(neutral["messages"], neutral.get("tools"), model, generation_prompt=False)
        if len(tokens) >= min_tokens:
            found.append((tokens, RETENTION_S[control.get("ttl", "5m")]))
    return sorted(found, key=lambda mark: len(mark[0]))


def _marks(body: dict):
    """``(the request cut after a marked block, its cache_control)``, in the prompt's order."""
    tools = [t for t in body.get("tools") or () if isinstance(t, dict)]
    for i, tool in enumerate(tools):
        if tool.get("cache_control"):
            yield {"tools": tools[: i + 1]}, tool["cache_control"]
    system = body.get("system")
    if isinstance(system, list):
        for j, block in enumerate(system):
            if isinstance(block, dict) and block.get("cache_control"):
                yield {"tools": tools, "system": system[: j + 1]}, block["cache_control"]
    messages = body.get("messages") or []
    for m, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for k, block in enumerate(content):
            if isinstance(block, dict) and block.get("cache_control"):
                cut = [*messages[:m], {**message, "content": content[: k + 1]}]
                yield {"tools": tools, "system": system, "messages": cut}, block["cache_control"]
    if body.get("cache_control") and messages:  # automatic: the last block of the last message
        yield {"tools": tools, "system": system, "messages": messages}, body["cache_control"]
