"""The wire formats beside OpenAI's: one package each, the only place that knows a provider's shapes.

A format is five parts: its routes (a blueprint), its request schema, which checks a body and turns it into
the neutral request the simulation decides on (:class:`app.schemas.CompletionRequest`, whose ``body`` is in
the chat-completions shape the replies read), its renderer of bodies and stream events, its error shape and
its auth header (:class:`.wire.WireFormat`). The core (simulation, replies, journal, shared state, metrics)
never asks which format it serves; OpenAI's own format is the one in ``app.api``, ``app.schemas`` and
``app.render``.
"""

from __future__ import annotations

import importlib

from flask import Flask

FORMATS = ("anthropic", "azure", "gemini", "vllm")


def init_app(app: Flask) -> None:
    for name in FORMATS:
        importlib.import_module(f"{__name__}.{name}").init_app(app)
