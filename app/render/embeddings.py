"""Embedding vectors and the ``/v1/embeddings`` body.

A vector is derived from its input alone (and the model), so the same text always gets the same vector, on
every worker and every run. It is unit length, like the real ones, and texts that share words point the same
way: each word adds a signed hash of itself on a few dimensions, over a low dense noise drawn from the whole
text. So a retrieval test finds the passage that shares the question's words. ``dimensions`` shortens a
vector and scales it back to unit length, as the real API does for the text-embedding-3 models.

``encoding_format: "base64"`` (what the official SDK asks for when the caller does not say) is the vector's
little-endian float32 bytes; ``float`` lists the same float32 values.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
import sys
from array import array
from dataclasses import dataclass
from itertools import compress, count
from operator import eq, ne
from time import perf_counter

from gevent import sleep

from app.memo import Memo
from app.render import pretty

_WORD = re.compile(r"\w+")
_NOISE = 0.35  # weight of the text's own dense noise against its words
_SPREAD = 8  # dimensions each word touches


@dataclass(slots=True)
class EmbeddingsReply:
    model: str
    inputs: list  # strings or token arrays
    dimensions: int  # the model's length
    shorten_to: int | None
    encoding_format: str
    prompt_tokens: int


def vector(model: str, item, dimensions: int) -> array:
    """The unit vector of one input (a string, or a list of token ids) as float32s."""
    text = item if isinstance(item, str) else " ".join(f"t{t}" for t in item)
    seed = hashlib.shake_256(f"{model}\0{text}".encode()).digest(2 * dimensions)
    values = [(v - 32767.5) / 32767.5 * _NOISE for v in struct.unpack(f"<{dimensions}H", seed)]
    for word in _WORD.findall(text.lower()):
        key = (model, dimensions, word)
        moves = WORD_MOVES.get(key)
        if moves is None:
            moves = _moves(model, word, dimensions)
            WORD_MOVES.put(key, moves, len(word))
        for move in moves:
            values[move >> 1] += _STEPS[move & 1]
    return array("f", values)


def _moves(model: str, word: str, dimensions: int) -> array:
    """Where a word moves a vector: ``_SPREAD`` dimensions, each by +1 or -1 (``_STEPS``), from a hash of the
    word; each as ``2 * dimension + (1 if +1 else 0)``."""
    digest = hashlib.blake2b(f"{model}\0{word}".encode(), digest_size=3 * _SPREAD).digest()
    moves = array("L")
    for k in range(_SPREAD):
        slot = int.from_bytes(digest[3 * k : 3 * k + 3], "little")
        moves.append(2 * (slot % dimensions) + (1 if slot & 0x800000 else 0))
    return moves


_STEPS = (-1.0, 1.0)
# (model, dimensions, word) -> _moves(): about 9,000 words, 3 MB. A text's words are mostly its language's
# common ones: with each hashed anew, a 300-word text's vector took 0.77 ms; with them kept, 0.31.
WORD_MOVES = Memo(1 << 16)


def shortened(values: array, length: int | None) -> array:
    """The first ``length`` values (or all), scaled to unit length."""
    part = values[:length] if length else values
    norm = math.sqrt(sum(v * v for v in part)) or 1.0
    return array("f", (v / norm for v in part))


def float32_texts(values: array) -> list[str]:
    """Each float32 as the shortest decimal that reads back as the same float32 (``"0.0023064255"``), as the
    real API writes them: 7 significant digits where they read back, else 8, else 9 (which always do). Each
    digit count is tried on the whole vector at once, in C: one value at a time, in Python, this took 1.6 ms of
    a 1,536-dimension vector's 1.75. 8 digits read back for all but about 1 % of the values, 7 for about a
    third."""
    texts = list(map("%.8g".__mod__, values))
    for i in compress(count(), map(ne, array("f", map(float, texts)), values)):
        texts[i] = f"{values[i]:.9g}"
    shorter = list(map("%.7g".__mod__, values))
    for i in compress(count(), map(eq, array("f", map(float, shorter)), values)):
        texts[i] = shorter[i]
    for i in compress(count(), map(float.is_integer, values)):
        if "." not in texts[i] and "e" not in texts[i]:
            texts[i] += ".0"  # 1.0, not 1: a JSON reader sees a float
    return texts


def embedding_json(
    model: str, item, dimensions: int, shorten_to: int | None, encoding_format: str, compact: bool = False
) -> str:
    """One input's ``embedding`` as it stands in the body: its floats as a JSON array, indented as the body is
    (or ``compact``, for a body without indentation), or its base64 as a JSON string. Kept for the next
    request that embeds the same input alike (a load test's one input, a RAG application's repeated queries):
    a repeat costs a lookup, not the vector (about 1.2 ms of floats, 0.3 of base64, for 1,536 dimensions)."""
    key = (model, item if isinstance(item, str) else tuple(item), dimensions, shorten_to, encoding_format, compact)
    found = EMBEDDED.get(key)
    if found is None:
        values = shortened(vector(model, item, dimensions), shorten_to)
        if encoding_format == "base64":
            if sys.byteorder == "big":
                values.byteswap()  # little-endian on the wire, as the SDK's decoding expects
            found = f'"{base64.b64encode(values.tobytes()).decode()}"'
        elif compact:
            found = "[" + ",".join(float32_texts(values)) + "]"
        else:
            found = "[\n        " + ",\n        ".join(float32_texts(values)) + "\n      ]"
        EMBEDDED.put(key, found, len(found) + len(key[1]))
    return found


EMBEDDED = Memo(1 << 22)  # (model, input, dimensions, shorten_to, format, compact) -> its JSON; 4 MB of text


class EmbeddingsRenderer:
    """``{"object": "list", "data": [{"object": "embedding", ...}], "model", "usage"}``, two-space indented like
    every other body; or written by another format's ``dump`` of the same shape, its vectors ``compact`` where
    that dump does not indent."""

    def __init__(self, dump=pretty, compact: bool = False):
        self.dump, self.compact = dump, compact

    def body(self, reply: EmbeddingsReply) -> str:
        # The vectors (thousands of numbers each) are written apart and joined into the body's text once, not
        # passed through the encoder, nor put in by a replace each (which scanned all the text before it: a
        # batch of 1,024 inputs took 20 s, and one of 2,048, the most a request may send, outlasted the
        # worker's timeout).
        shape = {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": _HERE} for i in range(len(reply.inputs))],
            "model": reply.model,
            "usage": {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens},
        }
        parts = self.dump(shape).split(f'"{_HERE}"')
        pieces = [parts[0]]
        turn_ends = perf_counter() + _TURN_S
        for item, after in zip(reply.inputs, parts[1:], strict=True):
            embedding = embedding_json(
                reply.model, item, reply.dimensions, reply.shorten_to, reply.encoding_format, self.compact
            )
            pieces += (embedding, after)
            if perf_counter() > turn_ends:  # a batch of inputs takes seconds: the worker's other clients go too
                sleep(_WAIT_S)
                turn_ends = perf_counter() + _TURN_S
        return "".join(pieces)


_HERE = "@embedding@"  # where each input's embedding goes in the body's text
_TURN_S = 0.02  # at most this long making vectors before the worker's other connections have a turn
# A timer, due only once the worker has polled its sockets (gevent runs many sleep(0) wake-ups before it polls)
_WAIT_S = 0.0005
