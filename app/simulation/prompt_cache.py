"""Prompt caching, as OpenAI reports it: a repeated prefix of a prompt is ``cached_tokens``.

As the real API documents it: a prompt of at least ``min_tokens`` (1,024) tokens is cached, in prefixes that
grow by ``step_tokens`` (128); a later request whose prompt begins with the same tokens, for the same model,
is served that prefix from the cache, and reports it in ``usage``. A cached prefix is forgotten after
``retention_s`` unused (five minutes by default; ``prompt_cache_retention: "24h"`` keeps it a day, and
``prompt_cache_options.ttl`` at least that long). ``prompt_cache_key`` routes requests to their own cache: the
same prefix under another key is not a hit. Cached tokens skip prefill (:mod:`.latency` counts only the rest).

A prompt is read in the order the model reads it: the tools, then each message, then the priming of the
reply; as tokens of the model's vocabulary (or of :mod:`app.tokens`' approximation), so that the prefixes
are counted as ``usage.prompt_tokens`` is. Each prefix is named by a digest that chains the one before it,
and the prefixes live in the shared state, so every worker and instance sees one cache.
"""

from __future__ import annotations

import hashlib
import json
import time

from app.tokens import (
    MAX_TOKEN_CHARS,
    PIECE,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    exact_counter,
    image_tokens,
)

RETENTION_24H_S = 86400.0
TTL_OPTION_S = {"30m": 1800.0}
# Placeholders for what a prompt counts but has no text: a message's framing, a name's, the reply's priming.
FRAME, NAME, PRIMING = -1, -2, -3


class PromptCache:
    def __init__(self, shared):
        self.shared = shared

    def cached_tokens(self, settings: dict, body: dict, model: str, prompt_tokens: int) -> int:
        """How many of this chat prompt's ``prompt_tokens`` the cache serves; the prompt's prefixes are
        cached (again) for the requests after it."""
        if not settings["enabled"] or prompt_tokens < settings["min_tokens"]:
            return 0
        options = body.get("prompt_cache_options") or {}
        if options.get("mode") == "explicit":  # no implicit breakpoint, and breakpoints are not simulated
            return 0
        tokens = chat_prompt_tokens(body, model)
        scope = f"{model}\0{body.get('prompt_cache_key') or ''}"
        digests = prefix_digests(tokens[:prompt_tokens], scope, settings["min_tokens"], settings["step_tokens"])
        if not digests:
            return 0
        hits = self.shared.cache_prefixes(digests, time.time() + retention_s(settings, body))
        return settings["min_tokens"] + (hits - 1) * settings["step_tokens"] if hits else 0


def retention_s(settings: dict, body: dict) -> float:
    retention = settings["retention_s"]
    if body.get("prompt_cache_retention") == "24h":
        retention = max(retention, RETENTION_24H_S)
    ttl = (body.get("prompt_cache_options") or {}).get("ttl")
    return max(retention, TTL_OPTION_S.get(ttl, 0.0))


def prefix_digests(tokens: list, scope: str, min_tokens: int, step: int) -> list[bytes]:
    """The digests of the prefixes of ``min_tokens``, ``min_tokens + step``, ... tokens, shortest first; each
    chains the one before it, so equal digests mean equal prefixes."""
    digests = []
    state = hashlib.blake2b(scope.encode(), digest_size=16)
    start = 0
    for end in range(min_tokens, len(tokens) + 1, step):
        state.update(repr(tokens[start:end]).encode())
        digests.append(state.copy().digest())
        start = end
    return digests


def chat_prompt_tokens(body: dict, model: str) -> list:
    """The prompt of a chat body as the model reads it: tools first (they lead the prompt), then the messages
    as :func:`app.tokens.count_message_tokens` counts them, then the reply's priming."""
    tokens: list = []
    if body.get("tools"):
        tokens += text_tokens(json.dumps(body["tools"], separators=(",", ":")), model)
    for message in body.get("messages") or ():
        tokens += (FRAME,) * TOKENS_PER_MESSAGE
        for key, value in message.items():
            tokens += _value_tokens(value, model)
            if key == "name":
                tokens += (NAME,) * TOKENS_PER_NAME
    tokens += (PRIMING,) * REPLY_PRIMING_TOKENS
    return tokens


def text_tokens(text: str, model: str) -> list:
    encoding = exact_counter(model)
    if encoding is not None:
        try:
            return list(encoding.encode_ordinary(text))
        except ValueError:  # past bpe_openai's size limit: counted by the approximation, as app.tokens does
            pass
    tokens = []
    for piece in PIECE.findall(text):
        tokens.extend(piece[i : i + MAX_TOKEN_CHARS] for i in range(0, len(piece), MAX_TOKEN_CHARS))
    return tokens


def _value_tokens(value, model: str) -> list:
    if isinstance(value, str):
        return text_tokens(value, model)
    if isinstance(value, list):
        tokens = []
        for part in value:
            if isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                # an image counts as its tiles; its tokens are named by the image, so another image differs
                mark = hashlib.blake2b(repr(part).encode(), digest_size=8).hexdigest()
                tokens += [mark] * image_tokens(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                tokens += text_tokens(part["text"], model)
            else:
                tokens += text_tokens(json.dumps(part, separators=(",", ":")), model)
        return tokens
    if isinstance(value, dict):
        return text_tokens(json.dumps(value, separators=(",", ":")), model)
    return []
