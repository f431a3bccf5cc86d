"""What a worker builds once at start-up and every request reads: settings, corpus, renderers, simulation."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.config import Settings
from app.context import this_app
from app.journal import Journal
from app.logs import configure as configure_logging
from app.logs import request_logger
from app.metrics import Metrics
from app.render import TokenChunks
from app.render.chat import ChatRenderer
from app.render.legacy import LegacyRenderer
from app.render.responses import ResponsesRenderer
from app.replies import Replies
from app.replies.scripted import load_rules
from app.shared import SharedState, open_configured
from app.simulation import Simulation
from app.textgen import Corpus
from app.tokens import load_vocabularies


@dataclass(frozen=True, slots=True)
class MockState:
    settings: Settings
    corpus: Corpus
    chat: ChatRenderer
    legacy: LegacyRenderer
    responses: ResponsesRenderer
    shared: SharedState
    simulation: Simulation
    journal: Journal | None  # the capture: None when the journal, metrics and request log are all off
    metrics: Metrics | None
    format_renderers: dict = field(default_factory=dict)  # the other wire formats' (app.formats), built on first use

    def renderer(self, renderer_class, of=None):
        """A wire format's renderer, built once per worker: of this corpus, or wrapping another renderer
        (``of``: Azure's renderers wrap OpenAI's)."""
        key = (renderer_class, id(of))
        found = self.format_renderers.get(key)
        if found is None:
            found = self.format_renderers[key] = renderer_class(self.corpus if of is None else of)
        return found

    @classmethod
    def build(cls, settings: Settings) -> MockState:
        load_vocabularies()  # exact prompt token counts, where bpe-openai is installed
        corpus = Corpus.from_file(settings.corpus_path)
        chunks = TokenChunks(corpus)
        if settings.responses["mode"] == "scripted":
            load_rules(settings.responses["rules_path"])  # a bad rules file stops start-up, with its line
        shared = open_configured(settings)
        simulation = Simulation(settings, shared, Replies(corpus))
        journal, metrics = _capture(settings, shared)
        if metrics is not None:  # vLLM's scheduler gauges: the replies running and waiting in this worker
            simulation.on_start = metrics.generation_started
            simulation.on_preempt, simulation.on_resume = metrics.preempted, metrics.resumed
            metrics.queued = simulation.waiting
        return cls(
            settings,
            corpus,
            ChatRenderer(corpus, chunks),
            LegacyRenderer(corpus, chunks),
            ResponsesRenderer(chunks.pads),
            shared,
            simulation,
            journal,
            metrics,
        )


def _capture(settings: Settings, shared: SharedState) -> tuple[Journal | None, Metrics | None]:
    """The capture and what it feeds: the journal, the metrics, the request log line."""
    configure_logging(settings)
    metrics = Metrics() if settings.metrics["enabled"] else None
    log_line = request_logger(settings)
    observers = [o for o in (metrics.observe if metrics else None, log_line) if o is not None]
    if not settings.journal["enabled"] and not observers:
        return None, None
    journal = Journal(settings, shared, observers, [metrics.stream_opened] if metrics else [])
    return journal, metrics


def current_state() -> MockState:
    return this_app().extensions["mock_openai"]
