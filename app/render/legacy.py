"""``text_completion`` bodies and streams of the legacy ``/v1/completions`` endpoint."""

from __future__ import annotations

import json
import time

from app.render import (
    PrettyTemplate,
    Reply,
    TokenChunks,
    compact,
    interleaved,
    json_text,
    legacy_usage,
    new_id,
    pretty,
)
from app.render.logprobs import legacy_logprobs
from app.streaming import DONE, EndedEvents, sse_event
from app.textgen import Corpus
from app.tokens import split_tokens


class LegacyRenderer:
    """``text_completion`` bodies and streams of the legacy ``/v1/completions`` endpoint.

    Unlike chat, the real legacy stream has no role chunk and no empty final chunk: ``finish_reason``
    rides on the last text chunk, earlier ones carry ``null``.
    """

    def __init__(self, corpus: Corpus, chunks: TokenChunks):
        self.corpus, self.chunks = corpus, chunks

    BODY = PrettyTemplate(
        {
            "id": "@id@",
            "object": "text_completion",
            "created": "@created@",
            "model": "@model@",
            "choices": [{"text": "@text@", "index": 0, "logprobs": None, "finish_reason": "@finish_reason@"}],
            "usage": {
                "prompt_tokens": "@prompt_tokens@",
                "completion_tokens": "@completion_tokens@",
                "total_tokens": "@total_tokens@",
            },
        }
    )

    def body(self, reply: Reply) -> str:
        if not reply.answer.simple:
            return self._rich_body(reply)
        text = reply.text
        return self.BODY.render(
            id=new_id("cmpl-"),
            created=int(time.time()),
            model=reply.model,
            text=json_text(text),
            finish_reason=text.finish_reason,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=text.count,
            total_tokens=reply.prompt_tokens + text.count,
        )

    def _rich_body(self, reply: Reply) -> str:
        answer = reply.answer
        choices = []
        for index, choice in enumerate(answer.choices):
            completion = choice.text.text()
            logprobs = None
            if answer.logprobs is not None:
                echoed = split_tokens(choice.echo) if choice.echo else []
                tokens = echoed + [choice.text.token(k) for k in range(choice.text.count)]
                logprobs = legacy_logprobs(tokens, answer.logprobs, echoed=len(echoed))
            choices.append(
                {
                    "text": choice.echo + completion,
                    "index": index,
                    "logprobs": logprobs,
                    "finish_reason": choice.finish_reason,
                }
            )
        return pretty(
            {
                "id": new_id("cmpl-"),
                "object": "text_completion",
                "created": int(time.time()),
                "model": reply.model,
                "choices": choices,
                "usage": legacy_usage(reply.prompt_tokens, answer.completion_tokens),
            }
        )

    def _rich_stream(self, reply: Reply, completion_id: str, created: int):
        """Every choice's chunks side by side, each with its ``index``; a choice's ``finish_reason`` rides on
        its last chunk. An echoed prompt is its choice's first chunk."""
        answer = reply.answer

        def chunk(index: int, text: str, logprobs, finish_reason) -> bytes:
            body = {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "choices": [{"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish_reason}],
                "model": reply.model,
            }
            return sse_event(compact(body))

        lanes = []
        for index, choice in enumerate(answer.choices):
            pieces = ([choice.echo] if choice.echo else []) + [choice.text.token(k) for k in range(choice.text.count)]
            pieces = pieces or [""]  # nothing to say still ends the choice
            lane, offset, position = [], 0, 0  # position: of the token among the echo's and the reply's
            for k, piece in enumerate(pieces):
                logprobs = None
                tokens = split_tokens(piece) if (k == 0 and choice.echo) else [piece]
                if answer.logprobs is not None:
                    echoed = int(bool(choice.echo))
                    logprobs = legacy_logprobs(tokens, answer.logprobs, offset, echoed=echoed, start=position)
                last = k == len(pieces) - 1
                lane.append(chunk(index, piece, logprobs, choice.finish_reason if last else None))
                offset += len(piece)
                position += len(tokens)
            lanes.append(lane)
        steps = interleaved(lanes)
        tail = _usage_event(reply, completion_id, created, answer.completion_tokens) if reply.include_usage else b""
        return b"", steps.__getitem__, len(steps), tail + DONE

    def stream(self, reply: Reply):
        completion_id, created = new_id("cmpl-"), int(time.time())
        if not reply.answer.simple:
            return self._rich_stream(reply, completion_id, created)
        prefix = (
            b'data: {"id":"'
            + completion_id.encode()
            + b'","object":"text_completion","created":'
            + str(created).encode()
            + b',"choices":[{"text":'
        )
        model = json.dumps(reply.model, ensure_ascii=False).encode()
        # Unlike chat chunks, legacy text chunks carry no "usage": null (the spec's schema has no null usage).
        middle = b',"index":0,"logprobs":null,"finish_reason":null}],"model":' + model + b"}\n\n"
        text = reply.text
        last_middle = middle.replace(b'"finish_reason":null', b'"finish_reason":"' + text.finish_reason.encode() + b'"')
        event_at = EndedEvents(prefix, text.json_tokens, text.start, middle, text.count - 1, last_middle)
        head = tail = b""
        if text.count == 0:  # nothing to say still ends the choice
            tail = prefix + b'""' + last_middle
        if reply.include_usage:
            tail += _usage_event(reply, completion_id, created, text.count)
        return head, event_at, text.count, tail + DONE


def _usage_event(reply: Reply, completion_id: str, created: int, completion_tokens: int) -> bytes:
    """The last chunk of a stream with ``include_usage``: no choices, the usage."""
    usage = {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": reply.model,
        "choices": [],
        "usage": legacy_usage(reply.prompt_tokens, completion_tokens),
    }
    return sse_event(compact(usage))
