"""Service endpoints outside the OpenAI API, as the original mock server has them."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.errors import OpenAIError
from app.schemas import json_body
from app.state import current_state

bp = Blueprint("meta", __name__)


@bp.get("/health")
def health():
    """200 ``{"status": "healthy", "service": "mock-openai"}``; never needs a key, for probes."""
    return jsonify(status="healthy", service="mock-openai")


@bp.get("/hello")
def hello():
    """200 ``Hello world!`` as plain text."""
    return Response("Hello world!", mimetype="text/plain")


@bp.get("/tokens")
def tokens():
    """200 ``Max tokens: N``: the length of a reply to a request that names no limit (``[responses]
    max_tokens``)."""
    return Response(f"Max tokens: {current_state().settings.responses['max_tokens']}", mimetype="text/plain")


@bp.get("/metrics")
def metrics():
    """200 Prometheus text exposition, summed over workers (see :mod:`app.metrics`); 404 with
    ``[metrics] enabled = false``."""
    state = current_state()
    if state.metrics is None:
        raise OpenAIError(404, "Metrics are off ([metrics] enabled = false).", code="metrics_disabled")
    from app.api.admin import pins  # gauges a test pinned (app.metric_pins), read by a scrape only

    default_model = next((m.id for m in state.settings.models if m.endpoint == "chat"), "")
    settings = state.simulation.settings()
    kv_usage = {}
    for model in settings.models:  # the KV cache of each model that has one, as all workers fill it
        capacity = settings.for_model("latency", model.id)["kv_cache_blocks"]
        if capacity:
            kv_usage[model.id] = state.shared.used_blocks(model.id) / capacity
    body, content_type = state.metrics.exposition(pins(state.shared), default_model, kv_usage)
    return Response(body, content_type=content_type)


@bp.post("/echo")
def echo():
    """200 with the JSON that was sent; 400 if it is not JSON."""
    return jsonify(json_body())
