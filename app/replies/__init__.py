"""Where a reply's text comes from, by mode: ``corpus``, ``realistic``, ``echo`` or ``scripted``.

:func:`compose` is the one entry point. Every mode gives a :class:`ReplyText`: tokens (cut with the same
function that counts usage, so ``completion_tokens`` is exact) and a ``finish_reason``. The corpus mode serves
exactly the length asked for, as load tests expect; the other modes have a natural length, which a named
``max_tokens`` caps (then ``"length"``). A request's ``seed`` makes every mode deterministic: the same request
and seed give the same text.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from app.replies.realistic import answer as realistic_answer
from app.replies.scripted import Rules
from app.textgen import Corpus
from app.tokens import split_tokens


@dataclass(slots=True)
class ReplyText:
    json_tokens: Sequence[bytes]  # JSON-encoded tokens: the corpus's own list, or this reply's
    start: int  # index of the first token in json_tokens
    count: int
    finish_reason: str
    corpus: Corpus | None = None  # set when the tokens are the corpus's (the precomputed stream path)
    tokens: list[str] | None = None

    def text(self) -> str:
        if self.corpus is not None:
            return self.corpus.text(self.start, self.count)
        return "".join(self.tokens[: self.count])


@dataclass(slots=True)
class Ask:
    """What a reply is composed for."""

    model: str
    body: dict  # the request as sent
    endpoint: str  # "chat" or "completions"
    max_tokens: int | None  # the limit the client named
    default_count: int  # the corpus length when none is named
    temperature: float


def from_text(text: str, max_tokens: int | None) -> ReplyText:
    tokens = split_tokens(text)
    count, finish_reason = len(tokens), "stop"
    if max_tokens is not None and count > max_tokens:
        count, finish_reason = max_tokens, "length"
    encoded = [json.dumps(t, ensure_ascii=False).encode() for t in tokens[:count]]
    return ReplyText(encoded, 0, count, finish_reason, tokens=tokens)


def from_corpus(corpus: Corpus, ask: Ask, rng) -> ReplyText:
    # A named limit is served exactly and reported as cut off; otherwise the configured length ends
    # naturally, so the SDK's .parse() and get_final_completion() (which raise on "length") work.
    if ask.max_tokens is not None:
        count, finish_reason = ask.max_tokens, "length"
    else:
        count, finish_reason = ask.default_count, "stop"
    start = 0 if ask.temperature == 0 else rng.choice(corpus.sentence_starts)
    return ReplyText(corpus.json_tokens, start, count, finish_reason, corpus=corpus)


def seeded_rng(body: dict):
    """With a ``seed``, a generator drawn from the seed and the request itself; else the shared one."""
    seed = body.get("seed")
    if seed is None:
        return random
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return random.Random(hashlib.sha256(canonical.encode()).digest())


def last_user_text(body: dict, endpoint: str) -> str:
    """The last user message's text (its text parts joined), or a legacy prompt."""
    if endpoint == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            prompt = next((p for p in prompt if isinstance(p, str)), "")
        return prompt if isinstance(prompt, str) else ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def system_text(body: dict) -> str:
    return "\n".join(
        content_text(m.get("content"))
        for m in body.get("messages") or []
        if isinstance(m, dict) and m.get("role") in ("system", "developer")
    )


def content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


class Replies:
    """A worker's reply sources, built once."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus
        self.rules: dict[str, Rules] = {}

    def compose(self, mode: str, ask: Ask, rules_path: str) -> ReplyText:
        """The reply text; a scripted rule that answers with an error raises it (an OpenAIError)."""
        rng = seeded_rng(ask.body)
        if mode == "echo":
            return from_text(last_user_text(ask.body, ask.endpoint), ask.max_tokens)
        if mode == "realistic":
            return from_text(realistic_answer(last_user_text(ask.body, ask.endpoint), rng), ask.max_tokens)
        if mode == "scripted":
            rule = self._rules(rules_path).match(
                ask.model, last_user_text(ask.body, ask.endpoint), system_text(ask.body), bool(ask.body.get("tools"))
            )
            if rule is not None:
                return from_text(rule.reply(rng), ask.max_tokens)
        return from_corpus(self.corpus, ask, rng)

    def _rules(self, path: str) -> Rules:
        rules = self.rules.get(path)
        if rules is None:
            rules = self.rules[path] = Rules(path)
        return rules
