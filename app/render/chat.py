"""``chat.completion`` bodies and ``chat.completion.chunk`` streams."""

from __future__ import annotations

import time
from json.encoder import encode_basestring

from app.render import (
    PrettyTemplate,
    Reply,
    TokenChunks,
    chat_usage,
    compact,
    compact_text,
    encoded_tier,
    interleaved,
    json_text,
    new_id,
    pretty,
    system_fingerprint,
)
from app.render.logprobs import chat_entry, chat_logprobs
from app.streaming import DONE, JoinedEvents, sse_event
from app.textgen import Corpus


def _one_choice(delta: dict, finish_reason) -> bytes:
    return compact([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])


# The one choice of a plain chat stream's first chunk, and of its last (%s: its finish_reason), encoded.
ROLE_CHOICE = _one_choice({"role": "assistant", "content": "", "refusal": None}, None)
FINISH_CHOICE = _one_choice({}, "@").replace(b'"@"', b"%s")


class ChatRenderer:
    """``chat.completion`` bodies and ``chat.completion.chunk`` streams."""

    def __init__(self, corpus: Corpus, chunks: TokenChunks):
        self.corpus, self.chunks = corpus, chunks

    BODY_SHAPE = {  # a reply of one choice of text (``reply.answer.simple``), its values as "@name@"
        "id": "@id@",
        "object": "chat.completion",
        "created": "@created@",
        "model": "@model@",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "@content@",
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "@finish_reason@",
            }
        ],
        "usage": chat_usage("@prompt_tokens@", "@completion_tokens@", "@cached_tokens@")
        | {"total_tokens": "@total_tokens@"},
        "service_tier": "@service_tier@",
        "system_fingerprint": "@system_fingerprint@",
    }
    BODY = PrettyTemplate(BODY_SHAPE)
    # A stream's envelope (every chunk's first fields) and usage, filled in: a small dict's encoding costs
    # more to set up than to run (3.5 µs for the usage in a loop, filled in 0.6).
    ENVELOPE = PrettyTemplate(
        {
            "id": "@id@",
            "object": "chat.completion.chunk",
            "created": "@created@",
            "model": "@model@",
            "service_tier": "@service_tier@",
            "system_fingerprint": "@system_fingerprint@",
        },
        dump=compact_text,
    )
    USAGE = PrettyTemplate(BODY_SHAPE["usage"], dump=compact_text)

    def body(self, reply: Reply) -> str:
        if not reply.answer.simple:
            return self._rich_body(reply)
        return self.BODY.render(**self.simple_values(reply))

    def simple_values(self, reply: Reply) -> dict:
        """The values of :attr:`BODY_SHAPE` for a simple reply (Azure's body fills them into its own shape)."""
        text = reply.text
        return {
            "id": reply.completion_id or new_id("chatcmpl-"),
            "created": int(time.time()),
            "model": reply.model,
            "content": json_text(text),
            "finish_reason": text.finish_reason,
            "prompt_tokens": reply.prompt_tokens,
            "cached_tokens": reply.cached_tokens,
            "completion_tokens": text.count,
            "total_tokens": reply.prompt_tokens + text.count,
            "system_fingerprint": system_fingerprint(reply.model),
            "service_tier": encoded_tier(reply.service_tier),
        }

    def _rich_body(self, reply: Reply) -> str:
        answer = reply.answer
        choices = []
        for index, choice in enumerate(answer.choices):
            message = {"role": "assistant", "content": None if choice.tool_calls else choice.text.text()}
            if choice.tool_calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in choice.tool_calls
                ]
            message |= {"refusal": None, "annotations": []}
            logprobs = None
            if answer.logprobs is not None:
                tokens = [choice.text.token(k) for k in range(choice.text.count)]
                logprobs = chat_logprobs(tokens, answer.logprobs) if not choice.tool_calls else None
            choices.append(
                {"index": index, "message": message, "logprobs": logprobs, "finish_reason": choice.finish_reason}
            )
        return pretty(
            {
                "id": reply.completion_id or new_id("chatcmpl-"),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": reply.model,
                "choices": choices,
                "usage": chat_usage(reply.prompt_tokens, answer.completion_tokens, reply.cached_tokens),
                "service_tier": reply.service_tier,
                "system_fingerprint": system_fingerprint(reply.model),
            }
        )

    def stream(self, reply: Reply):
        """``(head, event_at, count, tail)`` for :func:`app.streaming.paced_events`."""
        envelope = {
            "id": reply.completion_id or new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model,
            "service_tier": reply.service_tier,
            "system_fingerprint": system_fingerprint(reply.model),
        }
        if not reply.answer.simple:
            return self._rich_stream(reply, envelope)
        # The envelope is encoded once: every chunk is it, then its own fields, in the order the real API sends.
        envelope["service_tier"] = encoded_tier(reply.service_tier)  # (as the body writes it: kept per tier)
        opening = b"data: " + self.ENVELOPE.render(**envelope)[:-1].encode() + b',"choices":'
        prefix = opening + b'[{"index":0,"delta":{"content":'
        text = reply.text
        options = reply.include_usage, reply.include_obfuscation
        start, count = text.start, text.count
        if text.corpus is not None:
            tails = self.chunks.chat[options]
            size = len(tails)
            event_at = JoinedEvents(prefix, tails, start)
        else:
            tokens, suffixes = text.json_tokens, self.chunks.suffixes[options]
            size = len(suffixes)

            def event_at(k: int) -> bytes:
                return prefix + tokens[k] + suffixes[k % size]

            event_at.events_a_step = 1  # (PacedEvents.events_sent)

        def chunk(choices: bytes, usage: bytes = b"null", pad: str = "") -> bytes:
            """``compact(dict(envelope, choices=..., usage=..., obfuscation=...))`` as an event, the fields
            already encoded (a stream's three fixed chunks cost three dict encodings otherwise)."""
            parts = [opening, choices]
            if reply.include_usage:
                parts += (b',"usage":', usage)
            if reply.include_obfuscation:
                parts += (b',"obfuscation":', encode_basestring(pad).encode())
            parts.append(b"}\n\n")
            return b"".join(parts)

        pads = self.chunks.pads
        head = chunk(ROLE_CHOICE, pad=pads[start - 1])
        finish = encode_basestring(text.finish_reason) if text.finish_reason is not None else "null"
        tail = chunk(FINISH_CHOICE % finish.encode(), pad=pads[(start + count) % size])
        if reply.include_usage:
            usage = self.USAGE.render(
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=count,
                cached_tokens=reply.cached_tokens,
                total_tokens=reply.prompt_tokens + count,
            ).encode()
            tail += chunk(b"[]", usage, pad=pads[(start + count + 1) % size])
        return head, event_at, count, tail + DONE

    def _rich_stream(self, reply: Reply, envelope: dict):
        """Every choice's chunks, side by side: step ``k`` sends the ``k``-th chunk of each choice that has
        one, each chunk with its choice's ``index``, as the real API interleaves ``n`` choices."""
        answer, pads = reply.answer, self.chunks.pads
        drawn = iter(range(1 << 62))

        def chunk(choices: list, usage=None) -> bytes:
            body = dict(envelope, choices=choices)
            if reply.include_usage:
                body["usage"] = usage
            if reply.include_obfuscation:
                body["obfuscation"] = pads[next(drawn) % len(pads)]
            return sse_event(compact(body))

        def choice(index: int, delta: dict, logprobs=None, finish_reason=None) -> list:
            return [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]

        heads, lanes, finishes = [], [], []
        for index, c in enumerate(answer.choices):
            lane = []
            if c.tool_calls:
                for number, call in enumerate(c.tool_calls):
                    opening = {
                        "index": number,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                    if number == 0:  # the first call opens in the role chunk, as the real API sends it
                        delta = {"role": "assistant", "content": None, "tool_calls": [opening], "refusal": None}
                        heads.append(chunk(choice(index, delta)))
                    else:
                        lane.append(chunk(choice(index, {"tool_calls": [opening]})))
                    for token in call.tokens:
                        part = {"index": number, "function": {"arguments": token}}
                        lane.append(chunk(choice(index, {"tool_calls": [part]})))
            else:
                heads.append(chunk(choice(index, {"role": "assistant", "content": "", "refusal": None})))
                for k in range(c.text.count):
                    token = c.text.token(k)
                    logprobs = None
                    if answer.logprobs is not None:
                        logprobs = {"content": [chat_entry(token, k, answer.logprobs)], "refusal": None}
                    lane.append(chunk(choice(index, {"content": token}, logprobs)))
            lanes.append(lane)
            finishes.append(chunk(choice(index, {}, finish_reason=c.finish_reason)))
        steps = interleaved(lanes)
        tail = b"".join(finishes)
        if reply.include_usage:
            tail += chunk([], chat_usage(reply.prompt_tokens, answer.completion_tokens, reply.cached_tokens))
        return b"".join(heads), steps.__getitem__, len(steps), tail + DONE
