"""OpenAI's bodies and chunks as Azure sends them: content filter results on the prompt and each choice,
a stream opened by a chunk of prompt filter results with empty ``choices``, keys in alphabetical order, no
``service_tier`` or ``obfuscation``. A wrapper of OpenAI's renderer, rewriting what it renders (on Azure's
routes only)."""

from __future__ import annotations

import copy
import json
import re

from app.memo import Memo
from app.render import PrettyTemplate, Reply
from app.render.chat import ChatRenderer
from app.streaming import JoinedEvents

SAFE = {"filtered": False, "severity": "safe"}
NOT_DETECTED = {"filtered": False, "detected": False}
PROMPT_FILTER = {"hate": SAFE, "jailbreak": NOT_DETECTED, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
PROMPT_FILTERED = PROMPT_FILTER | {"violence": {"filtered": True, "severity": "medium"}}
OUTPUT_FILTER = {
    "hate": SAFE,
    "protected_material_code": NOT_DETECTED,
    "protected_material_text": NOT_DETECTED,
    "self_harm": SAFE,
    "sexual": SAFE,
    "violence": SAFE,
}
OUTPUT_FILTERED = OUTPUT_FILTER | {"violence": {"filtered": True, "severity": "medium"}}
PROMPT_RESULTS = [{"prompt_index": 0, "content_filter_results": PROMPT_FILTER}]
_DROPPED = ("service_tier", "obfuscation")


def _azure(body: dict, stream: bool) -> dict:
    for name in _DROPPED:
        body.pop(name, None)
    choices = body.get("choices")
    if choices is None:  # an error event
        return body
    if not stream:
        body["prompt_filter_results"] = PROMPT_RESULTS
    for choice in choices:
        if choice.get("finish_reason") == FILTERED:
            choice["content_filter_results"] = OUTPUT_FILTERED
        elif not stream or _has_content(choice):
            choice["content_filter_results"] = OUTPUT_FILTER
        else:
            choice["content_filter_results"] = {}
    return body


def _has_content(choice: dict) -> bool:
    delta = choice.get("delta")
    return bool(delta.get("content") if isinstance(delta, dict) else choice.get("text"))


def sorted_json(body: dict) -> str:
    """A body as Azure writes it: compact, its keys in alphabetical order."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _events(data: bytes) -> bytes:
    """Each ``data:`` event of ``data`` rewritten as Azure sends it; ``[DONE]`` and the rest as they are."""
    if not data:
        return data
    out = []
    for block in data.split(b"\n\n"):
        if block.startswith(b"data: {"):
            try:
                block = b"data: " + sorted_json(_azure(json.loads(block[6:]), stream=True)).encode()
            except ValueError:  # a malformed chunk (a fault) stays malformed
                pass
        out.append(block)
    return b"\n\n".join(out)


OPENING = (
    b"data: "
    + sorted_json(
        {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": PROMPT_RESULTS}
    ).encode()
    + b"\n\n"
)


FILTERED = "content_filter"  # (a finish reason whose choice carries other filter results)
# Azure's body of one choice of text, made once from OpenAI's by the same rewrite; a request fills in its values
_CHAT_BODY = PrettyTemplate(_azure(copy.deepcopy(ChatRenderer.BODY_SHAPE), stream=False), dump=sorted_json)


class AzureRenderer:
    def __init__(self, inner):
        self.inner = inner
        self.has_empty: dict[int, bool] = {}  # id() of a corpus's token list (it lives as long as this) -> any ""?
        # (a chunk prefix, its id and time hidden, and its tables' ids, as has_empty) -> Azure's prefix and suffix
        self.joined_parts = Memo(1 << 18)

    def body(self, reply: Reply) -> str:
        if isinstance(self.inner, ChatRenderer) and reply.answer.simple and reply.text.finish_reason != FILTERED:
            # (the values filled into Azure's own shape: rewriting OpenAI's body took a fifth of its time)
            return _CHAT_BODY.render(**self.inner.simple_values(reply))
        return sorted_json(_azure(json.loads(self.inner.body(reply)), stream=False))

    def stream(self, reply: Reply):
        head, event_at, count, tail = self.inner.stream(reply)
        own = _own_marks(head)
        events = self._joined(event_at, reply.text, count, own) if type(event_at) is JoinedEvents else None
        if events is None:
            events = lambda k: _events(event_at(k))  # noqa: E731 (each chunk rewritten)
        return OPENING + _rewritten(head, own), events, count, _rewritten(tail, own)

    def _joined(self, event_at: JoinedEvents, text, count: int, own) -> JoinedEvents | None:
        """A chat stream of the corpus's text, whose chunks OpenAI's renderer makes as one prefix, a token and
        its suffix (JoinedEvents), the way Azure sends it: its first chunk rewritten and split around its
        token's JSON, every chunk is that prefix, its own token and that suffix (Azure drops the obfuscation
        pads, the only other part that differs). Rewriting every chunk took about 13 µs, seven times the rest
        of a 64-token stream. None, and every chunk is rewritten, where that does not hold: an empty token
        (its chunk has no content filter results), or a second chunk that does not come out the same. What a
        prefix gives is kept (:func:`_rewritten`), once its second chunk has checked it."""
        tokens = text.json_tokens
        empty = self.has_empty.get(id(tokens))
        if empty is None:
            empty = self.has_empty[id(tokens)] = b'""' in tokens
        if count < 1 or empty:
            return None
        key = (_hidden(event_at.prefix, own), id(event_at.tails), id(tokens)) if own else None
        kept = self.joined_parts.get(key) if key else None
        if kept is not None:
            prefix, suffix = (_shown(part, own) for part in kept)
            return JoinedEvents(prefix, tokens, text.start, suffix)
        first = _events(event_at(0))
        token = tokens[text.start % len(tokens)]
        at = first.find(_DELTA + token + b"}")
        if at < 0:
            return None
        at += len(_DELTA)
        joined = JoinedEvents(first[:at], tokens, text.start, first[at + len(token) :])
        if count > 1:
            if joined(1) != _events(event_at(1)):
                return None
            if key:
                parts = (_hidden(joined.prefix, own), _hidden(joined.suffix, own))
                self.joined_parts.put(key, parts, len(key[0]) + len(parts[0]) + len(parts[1]))
        return joined


# A stream's chunks differ from another's of the same request in their id and creation time (and their
# tokens, which JoinedEvents puts in): with those two hidden, Azure's rewrite of a stream's opening, end and
# chunk prefix is kept for the next stream (rewriting them took about a fifth of a stream's time).
_OWN = re.compile(rb'^data: \{"id":("[^"\\]*"),"object":"[^"\\]*","created":(\d+),')
_HIDDEN = (b'"id":"@id@"', b'"created":"@created@"')
REWRITTEN = Memo(1 << 20)  # a stream's opening or end, its id and time hidden -> its rewrite (hidden)


def _own_marks(head: bytes) -> tuple[bytes, bytes] | None:
    """``"id":"..."`` and ``"created":...`` as a stream's chunks write them, from its first chunk (OpenAI's
    chunks begin with both); None for a stream that does not."""
    found = _OWN.match(head)
    return (b'"id":' + found[1], b'"created":' + found[2]) if found else None


def _hidden(data: bytes, own) -> bytes:
    return data.replace(own[0], _HIDDEN[0]).replace(own[1], _HIDDEN[1])


def _shown(data: bytes, own) -> bytes:
    return data.replace(_HIDDEN[0], own[0]).replace(_HIDDEN[1], own[1])


def _rewritten(data: bytes, own) -> bytes:
    """:func:`_events` of a stream's part, kept for every stream whose part differs only in its id and time."""
    if own is None:
        return _events(data)
    hidden = _hidden(data, own)
    found = REWRITTEN.get(hidden)
    if found is None:
        found = _events(hidden)
        REWRITTEN.put(hidden, found, len(hidden))
    return _shown(found, own)


_DELTA = b'"delta":{"content":'
