"""The bodies and SSE chunks a client receives, in the real API's field order and formatting: one module
per wire format (:mod:`.chat`, :mod:`.legacy`, :mod:`.responses`, :mod:`.embeddings`) on these helpers.

Non-streaming bodies are indented by two spaces and stream chunks are compact, as the real API sends them.
The per-token part of every stream chunk is built once per corpus (:class:`TokenChunks`); a request only
adds its own prefix (id, created, model), so the per-token path is one concatenation. An answer that is more
than one plain text (several choices, tool calls, log probabilities, an echo) is rendered whole instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import string
from dataclasses import dataclass
from json.encoder import encode_basestring

from app.pretty_json import one_line
from app.pretty_json import pretty as pretty  # noqa: PLC0414 (the renderers' one way to indent a body)
from app.replies import Answer, ReplyText
from app.streaming.recipes import EventTable
from app.textgen import Corpus

SERVICE_TIER = "default"
_ID_ALPHABET = string.ascii_letters + string.digits
_COMPACT = (",", ":")


def answered_tier(asked: str | None) -> str:
    """The ``service_tier`` a response reports: ``auto`` (or none) is served at ``default``."""
    return SERVICE_TIER if asked in (None, "auto") else asked


class Encoded:
    """A value already written as JSON, for :meth:`PrettyTemplate.render`."""

    __slots__ = ("json",)

    def __init__(self, value):
        self.json = json.dumps(value, ensure_ascii=False)

    def __str__(self) -> str:
        return self.json

    @classmethod
    def written(cls, json_text: str) -> Encoded:
        """A value whose JSON is ``json_text`` already."""
        encoded = cls.__new__(cls)
        encoded.json = json_text
        return encoded


def json_text(text: ReplyText) -> Encoded:
    """A reply's text as a body writes it: corpus text from its tokens' escapes (made once per corpus), where
    the encoder would scan every character again (about 40 µs for 2,048 tokens); other text encoded here."""
    if text.corpus is not None:
        return Encoded.written(text.corpus.json_text(text.start, text.count))
    return Encoded.written(encode_basestring(text.text()))


_TIERS: dict[str, Encoded] = {}


def encoded_tier(tier: str) -> Encoded:
    found = _TIERS.get(tier)
    if found is None:
        found = _TIERS[tier] = Encoded(tier)
    return found


# Each random byte to one of the 62 letters and digits (248 = 4 x 62 bytes map evenly; the last 8 make the
# first 8 letters a little likelier, 5/256 against 4/256: no client can tell, and the id keeps ~170 bits).
_ID_TABLE = bytes(_ID_ALPHABET[b % len(_ID_ALPHABET)].encode()[0] for b in range(256))


def new_id(prefix: str) -> str:
    """``chatcmpl-`` or ``cmpl-`` and 29 letters and digits, like the real ids. (One translate of random
    bytes: ``random.choices`` took ~5 % of a streamed completion's time.)"""
    return prefix + random.getrandbits(232).to_bytes(29, "big").translate(_ID_TABLE).decode()


@functools.lru_cache(maxsize=1024)
def system_fingerprint(model: str) -> str:
    """A stable ``fp_`` and ten hex digits per model, as a real backend configuration would have."""
    return "fp_" + hashlib.sha1(model.encode()).hexdigest()[:10]


def chat_usage(prompt_tokens: int, completion_tokens: int, cached_tokens=0) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
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


class PrettyTemplate:
    """A body of fixed shape, indented exactly as :func:`pretty` would (or written by another format's
    ``dump``), built once; a request only fills in its values. (``json.dumps`` with ``indent`` runs in pure
    Python and is the costliest step otherwise.)"""

    def __init__(self, shape: dict, dump=pretty):
        text = dump(shape).replace("%", "%%")
        self.text = re.sub(r'"@(\w+)@"', r"%(\1)s", text)

    def render(self, **values) -> str:
        """Strings are JSON-encoded here; numbers (and :class:`Encoded` values) are written as they are."""
        # encode_basestring is what json.dumps(value, ensure_ascii=False) calls for a string, without building
        # a JSONEncoder on every call (ensure_ascii=False is not the default encoder's setting).
        return self.text % {
            key: encode_basestring(value) if isinstance(value, str) else value for key, value in values.items()
        }


def interleaved(lanes: list[list[bytes]]) -> list[bytes]:
    """Several choices' events side by side: step ``k`` is the ``k``-th event of every choice that has one,
    in choice order, as the real API interleaves ``n`` choices."""
    return [b"".join(lane[k] for lane in lanes if k < len(lane)) for k in range(max(map(len, lanes)))]


_compact_text = one_line(_COMPACT)


def compact(body: dict) -> bytes:
    """``json.dumps(body, separators=(",", ":"), ensure_ascii=False)``, with one encoder for every call."""
    return _compact_text(body).encode()


def compact_text(body: dict) -> str:
    """:func:`compact` as text (a :class:`PrettyTemplate`'s ``dump`` for the compact JSON of a stream)."""
    return _compact_text(body)


@dataclass(slots=True)
class Reply:
    """What a completion says (its answer, see :mod:`app.replies`), as which model, and what to add."""

    model: str
    answer: Answer
    prompt_tokens: int
    include_usage: bool = False
    include_obfuscation: bool = True
    service_tier: str = SERVICE_TIER
    completion_id: str | None = None  # fixed beforehand when the completion is stored
    cached_tokens: int = 0  # of prompt_tokens, served by the prompt cache
    cache_written: dict | None = None  # explicit breakpoints: {retention_s: tokens of prompt_tokens written}

    @property
    def text(self) -> ReplyText:
        return self.answer.text


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
        self.chat = {}  # the corpus's tokens with their suffixes, whole (tables of events: app.streaming.recipes)
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
                self.chat[options] = EventTable(
                    token + suffix for token, suffix in zip(corpus.json_tokens, self.suffixes[options], strict=True)
                )
        self.pads = pads
        self.json_tokens = corpus.json_tokens
