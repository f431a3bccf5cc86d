"""The bodies and SSE chunks a client receives, in the real API's field order and formatting.

Non-streaming bodies are indented by two spaces and stream chunks are compact, as the real API sends them.
The per-token part of every stream chunk is built once per corpus (:class:`TokenChunks`); a request only
adds its own prefix (id, created, model), so the per-token path is one concatenation.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import string
import time
from dataclasses import dataclass

from app.replies import ReplyText
from app.streaming import DONE, sse_event
from app.textgen import Corpus

SERVICE_TIER = "default"
_ID_ALPHABET = string.ascii_letters + string.digits
_COMPACT = (",", ":")


def new_id(prefix: str) -> str:
    """``chatcmpl-`` or ``cmpl-`` and 29 letters and digits, like the real ids."""
    return prefix + "".join(random.choices(_ID_ALPHABET, k=29))


@functools.lru_cache(maxsize=1024)
def system_fingerprint(model: str) -> str:
    """A stable ``fp_`` and ten hex digits per model, as a real backend configuration would have."""
    return "fp_" + hashlib.sha1(model.encode()).hexdigest()[:10]


def chat_usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def legacy_usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def pretty(body: dict) -> str:
    return json.dumps(body, indent=2, ensure_ascii=False)


class PrettyTemplate:
    """A body of fixed shape, indented exactly as :func:`pretty` would, built once; a request only fills in
    its values. (``json.dumps`` with ``indent`` runs in pure Python and is the costliest step otherwise.)"""

    def __init__(self, shape: dict):
        text = pretty(shape).replace("%", "%%")
        self.text = re.sub(r'"@(\w+)@"', r"%(\1)s", text)

    def render(self, **values) -> str:
        """Strings are JSON-encoded here; numbers are written as they are."""
        return self.text % {
            key: json.dumps(value, ensure_ascii=False) if isinstance(value, str) else value
            for key, value in values.items()
        }


def compact(body: dict) -> bytes:
    return json.dumps(body, separators=_COMPACT, ensure_ascii=False).encode()


@dataclass(slots=True)
class Reply:
    """What a completion says (its text, see :mod:`app.replies`), as which model, and what to add."""

    model: str
    text: ReplyText
    prompt_tokens: int
    include_usage: bool = False
    include_obfuscation: bool = True


class TokenChunks:
    """Per corpus token, the bytes that follow the request's prefix in its stream chunk.

    The real API pads every chat chunk with an ``obfuscation`` string of random length (a side-channel
    defence, on unless ``stream_options.include_obfuscation`` is false). The pads are drawn once here,
    one per token, so streaming does no random work.
    """

    def __init__(self, corpus: Corpus, seed: int = 0x5EED):
        rng = random.Random(seed)
        pads = ["".join(rng.choices(_ID_ALPHABET, k=rng.randint(1, 16))) for _ in corpus.tokens]
        close = b'},"logprobs":null,"finish_reason":null}]'
        # What follows a token in its chunk, one per pad: for text that is not the corpus's (other modes).
        self.suffixes = {}
        self.chat = {}  # the corpus's tokens with their suffixes, whole
        for include_usage in (False, True):
            for include_obfuscation in (False, True):
                options = include_usage, include_obfuscation
                self.suffixes[options] = [
                    close
                    + (b',"usage":null' if include_usage else b"")
                    + (b',"obfuscation":"' + pad.encode() + b'"' if include_obfuscation else b"")
                    + b"}\n\n"
                    for pad in pads
                ]
                self.chat[options] = [
                    token + suffix for token, suffix in zip(corpus.json_tokens, self.suffixes[options], strict=True)
                ]
        self.pads = pads
        self.json_tokens = corpus.json_tokens


class ChatRenderer:
    """``chat.completion`` bodies and ``chat.completion.chunk`` streams."""

    def __init__(self, corpus: Corpus, chunks: TokenChunks):
        self.corpus, self.chunks = corpus, chunks

    BODY = PrettyTemplate(
        {
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
            "usage": chat_usage("@prompt_tokens@", "@completion_tokens@") | {"total_tokens": "@total_tokens@"},
            "service_tier": SERVICE_TIER,
            "system_fingerprint": "@system_fingerprint@",
        }
    )

    def body(self, reply: Reply) -> str:
        text = reply.text
        return self.BODY.render(
            id=new_id("chatcmpl-"),
            created=int(time.time()),
            model=reply.model,
            content=text.text(),
            finish_reason=text.finish_reason,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=text.count,
            total_tokens=reply.prompt_tokens + text.count,
            system_fingerprint=system_fingerprint(reply.model),
        )

    def stream(self, reply: Reply):
        """``(head, event_at, tail)`` for :func:`app.streaming.paced_events`."""
        envelope = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model,
            "service_tier": SERVICE_TIER,
            "system_fingerprint": system_fingerprint(reply.model),
        }
        prefix = b"data: " + compact(envelope)[:-1] + b',"choices":[{"index":0,"delta":{"content":'
        text = reply.text
        options = reply.include_usage, reply.include_obfuscation
        start, count = text.start, text.count
        if text.corpus is not None:
            tails = self.chunks.chat[options]
            size = len(tails)

            def event_at(k: int) -> bytes:
                return prefix + tails[(start + k) % size]

        else:
            tokens, suffixes = text.json_tokens, self.chunks.suffixes[options]
            size = len(suffixes)

            def event_at(k: int) -> bytes:
                return prefix + tokens[k] + suffixes[k % size]

        def chunk(choices: list, usage=None, pad: str = "") -> bytes:
            body = dict(envelope, choices=choices)
            if reply.include_usage:
                body["usage"] = usage
            if reply.include_obfuscation:
                body["obfuscation"] = pad
            return sse_event(compact(body))

        def choice(delta: dict, finish_reason=None) -> list:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

        pads = self.chunks.pads
        head = chunk(choice({"role": "assistant", "content": "", "refusal": None}), pad=pads[start - 1])
        tail = chunk(choice({}, text.finish_reason), pad=pads[(start + count) % size])
        if reply.include_usage:
            usage = chat_usage(reply.prompt_tokens, count)
            tail += chunk([], usage, pad=pads[(start + count + 1) % size])
        return head, event_at, tail + DONE


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
        text = reply.text
        return self.BODY.render(
            id=new_id("cmpl-"),
            created=int(time.time()),
            model=reply.model,
            text=text.text(),
            finish_reason=text.finish_reason,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=text.count,
            total_tokens=reply.prompt_tokens + text.count,
        )

    def stream(self, reply: Reply):
        completion_id, created = new_id("cmpl-"), int(time.time())
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
        tokens, size, start, last = text.json_tokens, len(text.json_tokens), text.start, text.count - 1

        def event_at(k: int) -> bytes:
            return prefix + tokens[(start + k) % size] + (last_middle if k == last else middle)

        head = tail = b""
        if text.count == 0:  # nothing to say still ends the choice
            tail = prefix + b'""' + last_middle
        if reply.include_usage:
            usage = {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": reply.model,
                "choices": [],
                "usage": legacy_usage(reply.prompt_tokens, text.count),
            }
            tail += sse_event(compact(usage))
        return head, event_at, tail + DONE
