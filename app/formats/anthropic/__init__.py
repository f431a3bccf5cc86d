"""Anthropic's Messages API: ``POST /v1/messages`` (streaming and not), ``/v1/messages/count_tokens``, and
``GET /v1/models`` in Anthropic's shape for a request that carries ``anthropic-version``.

Auth is ``x-api-key`` (or a bearer token) against the server's one token; errors, headers and stream events
are Anthropic's (:mod:`.errors`, :mod:`.render`). A request goes through the same simulation as an OpenAI one
(latency, faults, rate limits, reply modes, the journal, metrics).
"""

from __future__ import annotations

import json
from dataclasses import replace

from flask import Blueprint, Flask, Response, request

from app.delivery import respond
from app.errors import OpenAIError
from app.formats.anthropic import caching, models, schema
from app.formats.anthropic.errors import AnthropicFormat
from app.formats.anthropic.render import MessagesRenderer
from app.formats.wire import json_body
from app.journal import annotate, request_body
from app.memo import Memo
from app.render import Reply
from app.schemas import PARSED_BODY_BYTES, CompletionRequest
from app.state import current_state
from app.tokens import count_message_tokens

FORMAT = AnthropicFormat()
bp = FORMAT.attach(Blueprint("anthropic", __name__, url_prefix="/v1"))
INVALID_JSON = schema.invalid("There was an error parsing the body of your request: it is not valid JSON.")


def _version_required() -> None:
    # (the environ's key: werkzeug's headers translate the name for every lookup)
    if current_state().settings.server["strict_validation"] and "HTTP_ANTHROPIC_VERSION" not in request.environ:
        raise schema.invalid("anthropic-version: header is required")


@bp.post("/messages")
def create_message():
    """200 ``message`` JSON, or with ``"stream": true`` the Messages event stream. Anthropic's 400 naming the
    first bad field, 404 ``not_found_error`` for an unknown model."""
    _version_required()
    state = current_state()
    strict = state.settings.server["strict_validation"]
    body, parsed = _parsed(strict)
    annotate(model=parsed.model)
    model = models.resolve(parsed.model, state.settings.allow_unknown_models)
    claude = models.find(model.id)
    minimum = claude.min_cache_tokens if claude is not None else models.CLAUDE[1].min_cache_tokens
    breakpoints = caching.breakpoints(body, model.id, minimum)
    if breakpoints:  # (this model's: on a copy, not on what is kept, which has none)
        parsed = replace(parsed, cache_breakpoints=breakpoints)
    if strict and parsed.max_tokens > model.max_output_tokens:
        raise schema.invalid(
            f"max_tokens: {parsed.max_tokens} > {model.max_output_tokens}, which is the maximum allowed number of "
            f"output tokens for {model.id}"
        )
    prompt_tokens = count_message_tokens(parsed.body["messages"], parsed.body.get("tools"), model.id)
    fate = state.simulation.decide(parsed, "chat", model.id, model.max_output_tokens, prompt_tokens)
    reply = Reply(
        model=model.id,
        answer=fate.answer,
        prompt_tokens=prompt_tokens,
        cached_tokens=fate.cached_tokens,
        cache_written=fate.cache_written,
    )
    return respond(fate, reply, state.renderer(MessagesRenderer), parsed.stream)


# A request's JSON and its neutral request, by its bytes (as app.schemas.request_of_body keeps OpenAI's): shared by
# every request that sends the same bytes, read and never changed.
PARSED = Memo(PARSED_BODY_BYTES)  # (strict, the body's bytes) -> (its JSON, its CompletionRequest)


def _parsed(strict: bool) -> tuple[dict, CompletionRequest]:
    def parse():
        body = json_body(INVALID_JSON)
        parsed = schema.parse(body, strict)
        parsed.cache_breakpoints = []  # Anthropic's cache is explicit: none marked, or none long enough
        return body, parsed

    raw = request_body()
    return PARSED.kept((strict, raw), parse, len(raw))


@bp.post("/messages/count_tokens")
def count_tokens():
    """200 ``{"input_tokens": N}``: what the same messages, system prompt and tools would count as input."""
    _version_required()
    state = current_state()
    body = json_body(INVALID_JSON)
    schema.check(schema.COUNT_TOKENS_REQUEST, body, state.settings.server["strict_validation"])
    model = models.resolve(body.get("model"), state.settings.allow_unknown_models)
    neutral = schema.neutral_body(body)
    tokens = count_message_tokens(neutral["messages"], neutral.get("tools"), model.id)
    return Response(f'{{"input_tokens":{tokens}}}', mimetype="application/json")


def list_models():
    """``GET /v1/models`` and ``/v1/models/{id}`` with ``anthropic-version``: the Claude models."""
    if request.path == "/v1/models":
        limit = request.args.get("limit", "20")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise schema.invalid(
                "limit: Input should be less than or equal to 1000"
                if limit.isdigit()
                else "limit: Input should be a valid integer"
            )
        page = models.page(request.args.get("after_id"), request.args.get("before_id"), int(limit))
        return Response(_compact(page), mimetype="application/json")
    model_id = request.path[len("/v1/models/") :]
    model = models.find(model_id)
    if model is None:
        raise models.not_found(model_id)
    return Response(_compact(model.info()), mimetype="application/json")


def _compact(body: dict) -> str:
    return json.dumps(body, separators=(",", ":"))


def _asks_for_models() -> bool:
    """``GET /v1/models`` (or one model) from an Anthropic client: it sends ``anthropic-version``."""
    path = request.path
    if request.method != "GET" or not (path == "/v1/models" or path.startswith("/v1/models/")):
        return False
    return "anthropic-version" in request.headers


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    FORMAT.claim(app, "/v1/models", _asks_for_models, list_models)


__all__ = ["OpenAIError", "bp", "init_app"]
