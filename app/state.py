"""What a worker builds once at start-up and every request reads: settings, corpus, renderers, simulation."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from app.config import Settings
from app.render import ChatRenderer, LegacyRenderer, TokenChunks
from app.replies import Replies
from app.replies.scripted import load_rules
from app.shared import SharedState, open_shared
from app.simulation import Simulation
from app.textgen import Corpus


@dataclass(frozen=True, slots=True)
class MockState:
    settings: Settings
    corpus: Corpus
    chat: ChatRenderer
    legacy: LegacyRenderer
    shared: SharedState
    simulation: Simulation

    @classmethod
    def build(cls, settings: Settings) -> MockState:
        corpus = Corpus.from_file(settings.corpus_path)
        chunks = TokenChunks(corpus)
        if settings.responses["mode"] == "scripted":
            load_rules(settings.responses["rules_path"])  # a bad rules file stops start-up, with its line
        shared = open_shared(settings.shared["path"])
        simulation = Simulation(settings, shared, Replies(corpus))
        return cls(settings, corpus, ChatRenderer(corpus, chunks), LegacyRenderer(corpus, chunks), shared, simulation)


def current_state() -> MockState:
    return current_app.extensions["mock_openai"]
