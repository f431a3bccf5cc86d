"""Message bodies and the Messages stream, as Anthropic sends them.

A stream is ``message_start``, then per content block ``content_block_start``, its deltas (``text_delta``,
``input_json_delta``, ``thinking_delta`` and the closing ``signature_delta``) and ``content_block_stop``, with
one ``ping`` after the first block opens; then ``message_delta`` (the stop reason and the usage) and
``message_stop``. Each event is ``event: <type>`` and its JSON. A plain text reply streams from events built
once per token (the request only adds nothing: a text delta carries no id), so the per-token path is one
concatenation, as for OpenAI's chunks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string

from app.errors import OpenAIError
from app.formats.anthropic.errors import error_object
from app.render import Reply, compact
from app.streaming import JoinedEvents
from app.streaming.recipes import EventTable
from app.textgen import Corpus

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_LETTERS = string.ascii_letters + string.digits


# Each random byte to one of the 58 letters (232 = 4 x 58 map evenly; the last 24 make the first 24 letters a
# little likelier, as app.render.new_id's table does)
_BASE58_TABLE = bytes(_BASE58[b % len(_BASE58)].encode()[0] for b in range(256))


def message_id() -> str:
    """``msg_01`` and 22 base58 letters, as the real ids (one translate of random bytes: ``random.choices``
    took 2 µs, about 2 % of a stream's time)."""
    return "msg_01" + random.getrandbits(176).to_bytes(22, "big").translate(_BASE58_TABLE).decode()


def tool_use_id(call_id: str) -> str:
    """``toolu_01`` and 22 characters, taken from the neutral call's id (so a seed keeps it stable)."""
    return "toolu_01" + call_id.removeprefix("call_")[:22]


def signature(thinking: str) -> str:
    """A stable opaque signature for a thinking block, as long as real ones."""
    digest = hashlib.sha512(thinking.encode()).digest()
    return "Eq" + base64.b64encode(digest * 4).decode()


def event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + compact(data) + b"\n\n"


PING = event("ping", {"type": "ping"})
STOP = event("message_stop", {"type": "message_stop"})


def stop_reason(choice) -> tuple[str, str | None]:
    """``(stop_reason, stop_sequence)`` of the neutral choice."""
    if choice.tool_calls:
        return "tool_use", None
    text = choice.text
    if text.finish_reason == "length":
        return "max_tokens", None
    if text.finish_reason == "content_filter":  # Anthropic's safety stop
        return "refusal", None
    if text.stop_sequence is not None:
        return "stop_sequence", text.stop_sequence
    return "end_turn", None


def usage(reply: Reply, output_tokens: int) -> dict:
    """Anthropic's counts: ``input_tokens`` is what was neither read from the cache nor written to it."""
    written = reply.cache_written or {}
    five_minutes, one_hour = int(written.get(300.0, 0)), int(written.get(3600.0, 0))
    return {
        "input_tokens": reply.prompt_tokens - reply.cached_tokens - five_minutes - one_hour,
        "cache_creation_input_tokens": five_minutes + one_hour,
        "cache_read_input_tokens": reply.cached_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": five_minutes, "ephemeral_1h_input_tokens": one_hour},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


class MessagesRenderer:
    def __init__(self, corpus: Corpus):
        prefix = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
        self.text_delta = prefix + b'{"type":"text_delta","text":'  # then a token's JSON, and b"}}\n\n"
        self.text_deltas = EventTable(self.text_delta + token + b"}}\n\n" for token in corpus.json_tokens)

    def _blocks(self, reply: Reply) -> list[tuple[dict, list[dict], list[dict], dict]]:
        """Per content block: its start, its deltas (one per paced token), closing deltas, and its whole form."""
        answer = reply.answer
        blocks = []
        if answer.reasoning is not None:
            thought = answer.reasoning
            text = thought.text()
            blocks.append(
                (
                    {"type": "thinking", "thinking": "", "signature": ""},
                    [{"type": "thinking_delta", "thinking": thought.token(k)} for k in range(thought.count)],
                    [{"type": "signature_delta", "signature": signature(text)}],
                    {"type": "thinking", "thinking": text, "signature": signature(text)},
                )
            )
        choice = answer.choices[0]
        for call in choice.tool_calls:
            identity = {"type": "tool_use", "id": tool_use_id(call.id), "name": call.name}
            blocks.append(
                (
                    identity | {"input": {}},
                    [{"type": "input_json_delta", "partial_json": p} for p in ("", *call.tokens)],
                    [],
                    identity | {"input": json.loads(call.arguments)},
                )
            )
        if not choice.tool_calls:
            text = choice.text
            blocks.append(
                (
                    {"type": "text", "text": ""},
                    [{"type": "text_delta", "text": text.token(k)} for k in range(text.count)],
                    [],
                    {"type": "text", "text": text.text()},
                )
            )
        return blocks

    def body(self, reply: Reply) -> str:
        reason, sequence = stop_reason(reply.answer.choices[0])
        content = [whole for _, _, _, whole in self._blocks(reply)]
        return json.dumps(
            {
                "model": reply.model,
                "id": message_id(),
                "type": "message",
                "role": "assistant",
                "content": content,
                "stop_reason": reason,
                "stop_sequence": sequence,
                "usage": usage(reply, reply.answer.completion_tokens),
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def stream(self, reply: Reply):
        """``(head, event_at, count, tail)`` for :func:`app.streaming.paced_events`."""
        answer = reply.answer
        start = event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "model": reply.model,
                    "id": message_id(),
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage(reply, 1),
                },
            },
        )
        reason, sequence = stop_reason(answer.choices[0])
        ending = event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": {
                    key: value
                    for key, value in usage(reply, answer.completion_tokens).items()
                    if key
                    in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
                },
            },
        )
        if answer.simple:  # one text block: its deltas are bytes joined, not each a dict encoded
            text = answer.text
            if text.corpus is not None:
                deltas = JoinedEvents(b"", self.text_deltas, text.start)
            else:  # another mode's text (realistic, echo, scripted): its own tokens' JSON in the same event
                deltas = JoinedEvents(self.text_delta, text.json_tokens, 0, b"}}\n\n")
            opening, closing = TEXT_BLOCK_OPENING, TEXT_BLOCK_CLOSING
            if text.count == 0:
                return start, deltas, 0, opening + closing + ending + STOP
            return start + opening, deltas, text.count, closing + ending + STOP
        steps, pending = [], b""
        for index, (opening, deltas, closers, _) in enumerate(self._blocks(reply)):
            pending += _block_start(index, opening)
            if index == 0:
                pending += PING
            for delta in deltas:
                steps.append(pending + _delta(index, delta))
                pending = b""
            for delta in closers:
                pending += _delta(index, delta)
            pending += event("content_block_stop", {"type": "content_block_stop", "index": index})
        return start, steps.__getitem__, len(steps), pending + ending + STOP

    @staticmethod
    def error_event(error: OpenAIError) -> bytes:
        """A mid-stream failure, as Anthropic ends a stream with one."""
        return event("error", {"type": "error", "error": error_object(error)})


def _block_start(index: int, block: dict) -> bytes:
    return event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def _delta(index: int, delta: dict) -> bytes:
    return event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


# A one-text-block stream's opening and closing events: the same bytes in every such stream, made once.
TEXT_BLOCK_OPENING = _block_start(0, {"type": "text", "text": ""}) + PING
TEXT_BLOCK_CLOSING = event("content_block_stop", {"type": "content_block_stop", "index": 0})
