"""What a reply says: its choices, each text (by mode: ``corpus``, ``realistic``, ``echo`` or ``scripted``)
or tool calls, shaped by what the request asked for.

:meth:`Replies.compose` is the one entry point and gives an :class:`Answer`. A choice's text is a
:class:`ReplyText`: tokens (cut with the same function that counts usage, so ``completion_tokens`` is exact)
and a ``finish_reason``. The corpus mode serves exactly the length asked for, as load tests expect; the other
modes have a natural length, which a named ``max_tokens`` caps (then ``"length"``). On top of the mode:
``response_format`` JSON (:mod:`.structured`), tool calls (:mod:`.tools`), ``n`` choices (legacy: per
prompt, and ``best_of``), ``stop`` sequences and legacy ``echo``. A request's ``seed`` makes all of it
deterministic: the same request and seed give the same answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring

from app.replies.realistic import answer as realistic_answer
from app.replies.scripted import Rule, Rules
from app.replies.structured import instance_text, json_object_text
from app.replies.tools import ToolCall, make_calls, wanted_calls
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
    stop_sequence: str | None = None  # the stop sequence that ended it (``finish_reason`` "stop"), if one did

    def text(self) -> str:
        if self.corpus is not None:
            return self.corpus.text(self.start, self.count)
        return "".join(self.tokens[: self.count])

    def token(self, k: int) -> str:
        if self.corpus is not None:
            tokens = self.corpus.tokens
            return tokens[(self.start + k) % len(tokens)]
        return self.tokens[k]


EMPTY = ReplyText((), 0, 0, "stop", tokens=[])


@dataclass(slots=True)
class Choice:
    text: ReplyText
    tool_calls: list[ToolCall] | tuple = ()
    echo: str = ""  # legacy ``echo``: the prompt, sent before the completion

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else self.text.finish_reason

    @property
    def steps(self) -> int:
        """Tokens this choice streams: its text, and per tool call one for its name and its arguments'."""
        return self.text.count + sum(1 + len(call.tokens) for call in self.tool_calls)


@dataclass(slots=True)
class Answer:
    """A reply's choices, and what they add up to (worked out once: every later step reads them)."""

    choices: list[Choice]
    logprobs: int | None = None  # alternatives per token asked for (``top_logprobs``, legacy ``logprobs``)
    extra_tokens: int = 0  # generated but not returned (legacy ``best_of``), still billed
    reasoning: ReplyText | None = None  # thought before the choices (a thinking budget was asked for)
    text: ReplyText = field(init=False)  # the first choice's
    simple: bool = field(init=False)  # one text choice and nothing else: the precomputed fast path renders it
    count: int = field(init=False)  # the stream's length in tokens (choices go side by side): what is paced
    completion_tokens: int = field(init=False)

    def __post_init__(self):
        first = self.choices[0]
        self.text = first.text
        if len(self.choices) == 1 and not first.tool_calls:
            self.simple = self.logprobs is None and not first.echo
            self.count = first.text.count
            self.completion_tokens = self.count + self.extra_tokens
        else:
            self.simple = False
            steps = [c.steps for c in self.choices]
            self.count = max(steps)
            self.completion_tokens = sum(steps) + self.extra_tokens
        if self.reasoning is not None:  # streamed first, and billed as output
            self.simple = False
            self.count += self.reasoning.count
            self.completion_tokens += self.reasoning.count


@dataclass(slots=True)
class Ask:
    """What a reply is composed for."""

    model: str
    body: dict  # the request as sent
    endpoint: str  # "chat" or "completions"
    max_tokens: int | None  # the limit the client named
    default_count: int  # the corpus length when none is named
    temperature: float
    # The corpus fills a named limit exactly (OpenAI's max_tokens is optional, and load tests name the length
    # they want). Where every request must name one (Anthropic's max_tokens), it is only a ceiling.
    fills_max_tokens: bool = True
    reasoning_budget: int = 0  # tokens it may think first (Anthropic's thinking.budget_tokens); 0: none


def from_text(text: str, max_tokens: int | None) -> ReplyText:
    tokens = split_tokens(text)
    count, finish_reason = len(tokens), "stop"
    if max_tokens is not None and count > max_tokens:
        count, finish_reason = max_tokens, "length"
    # encode_basestring is what json.dumps(t, ensure_ascii=False) runs for a string, without making an encoder
    # for every token (a new JSONEncoder a call: most of a realistic reply's making)
    encoded = [encode_basestring(t).encode() for t in tokens[:count]]
    return ReplyText(encoded, 0, count, finish_reason, tokens=tokens)


def from_corpus(corpus: Corpus, ask: Ask, rng) -> ReplyText:
    # A named limit is served exactly and reported as cut off; otherwise the configured length ends
    # naturally, so the SDK's .parse() and get_final_completion() (which raise on "length") work.
    if ask.max_tokens is not None and (ask.fills_max_tokens or ask.max_tokens <= ask.default_count):
        count, finish_reason = ask.max_tokens, "length"
    else:
        count, finish_reason = ask.default_count, "stop"
    start = 0 if ask.temperature == 0 else rng.choice(corpus.sentence_starts)
    return ReplyText(corpus.json_tokens, start, count, finish_reason, corpus=corpus)


# What does not change what a model samples: the same seed with or without these gives the same tokens (a
# stop sequence only cuts them short).
NOT_SAMPLED = frozenset(
    (
        "stop",
        "stream",
        "stream_options",
        "store",
        "metadata",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
        "logprobs",
        "top_logprobs",
    )
)


def seeded_rng(body: dict):
    """With a ``seed``, a generator drawn from the seed and the request itself; else the shared one."""
    seed = body.get("seed")
    if seed is None:
        return random
    sampled = {k: v for k, v in body.items() if k not in NOT_SAMPLED}
    canonical = json.dumps(sampled, sort_keys=True, separators=(",", ":"), default=str)
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

    def compose(self, mode: str, ask: Ask, rules_path: str) -> Answer:
        """The answer; a scripted rule that answers with an error raises it (an OpenAIError)."""
        body = ask.body
        rng = seeded_rng(body)
        rule = self._rule(ask, rules_path) if mode == "scripted" else None
        if rule is not None:
            rule.check_error()
        n = body.get("n") or 1
        if ask.endpoint == "completions":
            return self._legacy(mode, ask, rule, rng, n)
        reasoning = None
        if ask.reasoning_budget:  # the thought comes out of the same max_tokens as the answer
            limit = ask.max_tokens if ask.max_tokens is not None else ask.default_count
            thought = max(1, min(ask.reasoning_budget, ask.default_count // 2, limit - 1))
            start = rng.choice(self.corpus.sentence_starts)
            reasoning = ReplyText(self.corpus.json_tokens, start, thought, "stop", corpus=self.corpus)
            if ask.max_tokens is not None:
                ask = dataclasses.replace(ask, max_tokens=max(1, ask.max_tokens - thought))
        wanted = (
            wanted_calls(body, last_user_text(body, "chat"), rule.tool_calls if rule else None)
            if (body.get("tools"))
            else []
        )
        choices = []
        for _ in range(n):
            if wanted:
                choices.append(Choice(EMPTY, make_calls(wanted, rng, self._words(rng))))
            else:
                choices.append(Choice(self._text(mode, ask, rule, rng)))
        logprobs = (body.get("top_logprobs") or 0) if body.get("logprobs") else None
        return Answer(choices, logprobs, reasoning=reasoning)

    def _legacy(self, mode: str, ask: Ask, rule, rng, n: int) -> Answer:
        body = ask.body
        prompts = body.get("prompt")
        if not isinstance(prompts, list) or not prompts or all(isinstance(p, int) for p in prompts):
            prompts = [prompts]  # one prompt: a string, or one array of token ids
        best_of = max(n, body.get("best_of") or 1)
        choices, extra = [], 0
        for prompt in prompts:
            echo = (prompt if isinstance(prompt, str) else "") if body.get("echo") else ""
            prompt_ask = dataclasses.replace(ask, body={**body, "prompt": prompt})
            drawn = [Choice(self._text(mode, prompt_ask, rule, rng), echo=echo) for _ in range(best_of)]
            choices += drawn[:n]
            extra += sum(c.steps for c in drawn[n:])
        logprobs = body.get("logprobs")
        return Answer(choices, logprobs, extra)

    def _text(self, mode: str, ask: Ask, rule: Rule | None, rng) -> ReplyText:
        body = ask.body
        response_format = body.get("response_format") if ask.endpoint == "chat" else None
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            text = from_text(
                instance_text(spec.get("schema") or {"type": "object"}, rng, self._words(rng)), ask.max_tokens
            )
        elif kind == "json_object":
            text = from_text(json_object_text(rng, self._words(rng)), ask.max_tokens)
        elif mode == "echo":
            text = from_text(last_user_text(body, ask.endpoint), ask.max_tokens)
        elif mode == "realistic":
            text = from_text(realistic_answer(last_user_text(body, ask.endpoint), rng), ask.max_tokens)
        elif rule is not None and rule.content is not None:
            text = from_text(rule.reply(rng), ask.max_tokens)
        else:
            text = from_corpus(self.corpus, ask, rng)
        stop = body.get("stop")
        return cut_at_stop(text, [stop] if isinstance(stop, str) else stop) if stop else text

    def _words(self, rng) -> list[str]:
        """A dozen words of the corpus, for the strings inside generated JSON."""
        return self.corpus.text(rng.choice(self.corpus.sentence_starts), 24).split()

    def _rule(self, ask: Ask, rules_path: str) -> Rule | None:
        rules = self.rules.get(rules_path)
        if rules is None:
            rules = self.rules[rules_path] = Rules(rules_path)
        body = ask.body
        return rules.match(ask.model, last_user_text(body, ask.endpoint), system_text(body), bool(body.get("tools")))


def filtered(answer: Answer, after: int) -> Answer:
    """The answer as a content filter leaves it: each text choice stopped after ``after`` tokens, finishing
    ``"content_filter"`` (tool calls are left whole)."""
    choices = []
    for choice in answer.choices:
        if choice.tool_calls:
            choices.append(choice)
            continue
        text = dataclasses.replace(choice.text, count=min(after, choice.text.count), finish_reason="content_filter")
        choices.append(dataclasses.replace(choice, text=text))
    return Answer(choices, answer.logprobs, answer.extra_tokens, answer.reasoning)


def cut_at_stop(text: ReplyText, stops: list[str]) -> ReplyText:
    """The text up to the first stop sequence (which is not sent), finishing with ``"stop"``."""
    full = text.text()
    found = [(i, s) for i, s in ((full.find(s), s) for s in stops if s) if i >= 0]
    if not found:
        return text
    at, stop = min(found)
    cut = from_text(full[:at], None)
    cut.stop_sequence = stop
    return cut
