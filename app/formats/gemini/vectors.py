"""``embedContent`` and ``batchEmbedContents`` bodies: the same deterministic unit vectors as every other
format's embeddings (:func:`app.render.embeddings.vector`), as ``{"embedding": {"values"}}`` or
``{"embeddings": [...]}``, each shortened to its ``outputDimensionality``."""

from __future__ import annotations

from dataclasses import dataclass

from app.pretty_json import pretty
from app.render.embeddings import shortened, vector


@dataclass(slots=True)
class EmbeddingsReply:
    model: str
    texts: list[str]
    dimensions: int
    shorten_to: list  # per text: its outputDimensionality, or None
    batch: bool


class EmbeddingsRenderer:
    def body(self, reply: EmbeddingsReply) -> str:
        embeddings = [
            {"values": [float(v) for v in shortened(vector(reply.model, text, reply.dimensions), size)]}
            for text, size in zip(reply.texts, reply.shorten_to, strict=True)
        ]
        body = {"embeddings": embeddings} if reply.batch else {"embedding": embeddings[0]}
        return pretty(body, ensure_ascii=True)
