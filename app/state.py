"""What a worker builds once at start-up and every request reads: settings, corpus, renderers."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from app.config import Settings
from app.render import ChatRenderer, LegacyRenderer, TokenChunks
from app.textgen import Corpus


@dataclass(frozen=True, slots=True)
class MockState:
    settings: Settings
    corpus: Corpus
    chat: ChatRenderer
    legacy: LegacyRenderer

    @classmethod
    def build(cls, settings: Settings) -> MockState:
        corpus = Corpus.from_file(settings.corpus_path)
        chunks = TokenChunks(corpus)
        return cls(settings, corpus, ChatRenderer(corpus, chunks), LegacyRenderer(corpus, chunks))


def current_state() -> MockState:
    return current_app.extensions["mock_openai"]
