"""``GenerateContentResponse`` bodies and streams, as the Gemini API sends them.

A body is indented by two spaces. A stream (``alt=sse``) is one ``data:`` chunk per token, each a whole
response of one text part with the prompt's usage so far, events separated by ``\\r\\n\\r\\n``; the last chunk
names the ``finishReason`` and the whole ``usageMetadata``. A function call arrives whole, once its tokens'
time has passed (Gemini does not stream arguments); thoughts are ``thought: true`` parts when
``includeThoughts`` asks for them, and otherwise only time and ``thoughtsTokenCount``.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

from app.errors import OpenAIError
from app.pretty_json import one_line, pretty
from app.render import interleaved
from app.replies import Answer
from app.streaming import JoinedEvents
from app.textgen import Corpus

FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP"}
END = b"\r\n\r\n"
_SEPARATORS = (",", ": ")  # Google's compact form keeps the space after a colon
_one_line = one_line(_SEPARATORS)
_one_line_ascii = one_line(_SEPARATORS, ensure_ascii=True)


@dataclass(slots=True)
class GeminiReply:
    model: str
    answer: Answer
    prompt_tokens: int
    include_thoughts: bool = False
    cached_tokens: int = 0  # of prompt_tokens, from the (implicit) cache


def response_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(15)).decode().rstrip("=")


def usage(reply: GeminiReply, final: bool) -> dict:
    prompt = reply.prompt_tokens
    details = [{"modality": "TEXT", "tokenCount": prompt}]
    if not final:
        return {"promptTokenCount": prompt, "totalTokenCount": prompt, "promptTokensDetails": details}
    answer = reply.answer
    thoughts = answer.reasoning.count if answer.reasoning is not None else 0
    candidates = answer.completion_tokens - thoughts
    counted = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "promptTokensDetails": details,
    }
    if reply.cached_tokens:  # implicit caching, as Gemini 2.5 reports it
        counted["cachedContentTokenCount"] = reply.cached_tokens
        counted["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.cached_tokens}]
    if thoughts:
        counted["thoughtsTokenCount"] = thoughts
    return counted


def usage_of_blocked() -> dict:
    """What a prompt the content filter blocked reports: its tokens, nothing generated."""
    return {
        "usageMetadata": {"promptTokenCount": 0, "totalTokenCount": 0},
        "modelVersion": "",
        "responseId": response_id(),
    }


def _sse(body: dict) -> bytes:
    return b"data: " + _one_line(body).encode() + END


def _candidate(parts: list, index: int, finish: str | None = None) -> dict:
    candidate = {"content": {"parts": parts, "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    candidate["index"] = index
    return candidate


def _call_part(call) -> dict:
    return {"functionCall": {"name": call.name, "args": json.loads(call.arguments)}}


class GenerateContentRenderer:
    def __init__(self, corpus: Corpus):
        self.text_prefix = b'data: {"candidates": [{"content": {"parts": [{"text": '

    def body(self, reply: GeminiReply) -> str:
        answer = reply.answer
        candidates = []
        for index, choice in enumerate(answer.choices):
            parts = []
            if index == 0 and answer.reasoning is not None and reply.include_thoughts:
                parts.append({"text": answer.reasoning.text(), "thought": True})
            if choice.tool_calls:
                parts += [_call_part(call) for call in choice.tool_calls]
            else:
                parts.append({"text": choice.text.text()})
            candidates.append(_candidate(parts, index, FINISH[choice.finish_reason]))
        body = {
            "candidates": candidates,
            "usageMetadata": usage(reply, final=True),
            "modelVersion": reply.model,
            "responseId": response_id(),
        }
        return pretty(body)

    def stream(self, reply: GeminiReply):
        """``(head, event_at, count, tail)`` for :func:`app.streaming.paced_events`."""
        answer = reply.answer
        envelope = {
            "usageMetadata": usage(reply, final=False),
            "modelVersion": reply.model,
            "responseId": response_id(),
        }
        tail = _sse(
            {
                "candidates": [
                    _candidate([{"text": ""}], i, FINISH[c.finish_reason]) for i, c in enumerate(answer.choices)
                ],
                **envelope,
                "usageMetadata": usage(reply, final=True),
            }
        )
        if answer.simple:
            text = answer.text
            suffix = b'}],"role": "model"},"index": 0}],' + _one_line_ascii(envelope).encode()[1:] + END
            start = text.start if text.corpus is not None else 0  # (another mode's text: its own tokens)
            return b"", JoinedEvents(self.text_prefix, text.json_tokens, start, suffix), text.count, tail

        def chunk(parts: list, index: int) -> bytes:
            return _sse({"candidates": [_candidate(parts, index)], **envelope})

        steps = []
        if answer.reasoning is not None:
            thought = answer.reasoning
            for k in range(thought.count):
                steps.append(chunk([{"text": thought.token(k), "thought": True}], 0) if reply.include_thoughts else b"")
        lanes = []
        for index, choice in enumerate(answer.choices):
            lane = []
            for call in choice.tool_calls:
                lane += [b""] * len(call.tokens)  # the call's time passes; then it arrives whole
                lane.append(chunk([_call_part(call)], index))
            if not choice.tool_calls:
                lane += [chunk([{"text": choice.text.token(k)}], index) for k in range(choice.text.count)]
            lanes.append(lane)
        steps += interleaved(lanes) if any(lanes) else []
        return b"", steps.__getitem__, len(steps), tail

    @staticmethod
    def error_event(error: OpenAIError) -> bytes:
        from app.formats.gemini.errors import google_error  # here: errors.py renders with this module

        return _sse(google_error(error))


class JsonArrayRenderer:
    """``streamGenerateContent`` without ``alt=sse``: the same chunks, paced the same, as the elements of one
    JSON array, as Google streams it by default: ``[`` first, each element followed by ``,\r\n``, the last
    (the finishing chunk, or an error) followed by ``]``."""

    stream_mimetype = "application/json"

    def __init__(self, corpus: Corpus):
        self.inner = GenerateContentRenderer(corpus)

    def stream(self, reply: GeminiReply):
        head, event_at, count, tail = self.inner.stream(reply)
        return b"[" + _elements(head), lambda k: _elements(event_at(k)), count, _elements(tail)[: -len(_NEXT)] + b"]"

    def error_event(self, error: OpenAIError) -> bytes:
        return _elements(self.inner.error_event(error))[: -len(_NEXT)] + b"]"


_NEXT = b",\r\n"


def _elements(events: bytes) -> bytes:
    """SSE events as array elements, each followed by a comma."""
    return b"".join(block[6:] + _NEXT for block in events.split(END) if block.startswith(b"data: "))
