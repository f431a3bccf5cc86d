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
        digest = hashlib.blake2b(f"{model}\0{word}".encode(), digest_size=3 * _SPREAD).digest()
        for k in range(_SPREAD):
            slot = int.from_bytes(digest[3 * k : 3 * k + 3], "little")
            values[slot % dimensions] += 1.0 if slot & 0x800000 else -1.0
    return array("f", values)


def shortened(values: array, length: int | None) -> array:
    """The first ``length`` values (or all), scaled to unit length."""
    part = values[:length] if length else values
    norm = math.sqrt(sum(v * v for v in part)) or 1.0
    return array("f", (v / norm for v in part))


class EmbeddingsRenderer:
    """``{"object": "list", "data": [{"object": "embedding", ...}], "model", "usage"}``."""

    def body(self, reply: EmbeddingsReply) -> str:
        data = []
        for index, item in enumerate(reply.inputs):
            values = shortened(vector(reply.model, item, reply.dimensions), reply.shorten_to)
            if reply.encoding_format == "base64":
                raw = array("f", values)
                if sys.byteorder == "big":
                    raw.byteswap()  # little-endian on the wire, as the SDK's decoding expects
                embedding = base64.b64encode(raw.tobytes()).decode()
            else:
                embedding = "@floats@"
            data.append((index, embedding, values))
        # The body is two-space indented like every other; the floats (thousands) are written here at once
        # rather than through json's pure-Python indenting encoder.
        shape = {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": e} for i, e, _ in data],
            "model": reply.model,
            "usage": {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens},
        }
        text = pretty(shape)
        if reply.encoding_format == "base64":
            return text
        for _, _, values in data:
            floats = ",\n        ".join(_float32(v) for v in values)
            text = text.replace('"@floats@"', "[\n        " + floats + "\n      ]", 1)
        return text


def _float32(value: float) -> str:
    """The shortest decimal that reads back as the same float32."""
    for digits in (7, 8, 9):
        text = f"{value:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == value:
            return text if ("." in text or "e" in text) else text + ".0"
    return repr(value)
