"""Google's Gemini API: ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent``
(``alt=sse``), ``:countTokens``, ``:embedContent`` and ``:batchEmbedContents``, also under ``/v1/``; and
``GET /v1beta/models`` and ``/v1beta/models/{model}``.

Auth is ``x-goog-api-key`` or ``?key=`` against the server's one token; errors are Google's
(:mod:`.errors`), bodies and stream chunks Gemini's (:mod:`.render`). A request goes through the same
simulation as any other (latency, faults, rate limits, reply modes, the journal, metrics).
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request

from app.delivery import respond
from app.errors import OpenAIError
from app.formats.gemini import models, schema
from app.formats.gemini.errors import GeminiFormat
from app.formats.gemini.render import GeminiReply, GenerateContentRenderer, JsonArrayRenderer
from app.formats.gemini.vectors import EmbeddingsRenderer, EmbeddingsReply
from app.formats.wire import json_body
from app.journal import annotate
from app.pretty_json import pretty
from app.schemas import CompletionRequest
from app.state import current_state
from app.tokens import count_message_tokens, count_tokens

FORMAT = GeminiFormat()
bp = FORMAT.attach(Blueprint("gemini", __name__), owned_prefix="/v1beta/")
EMBEDDINGS = EmbeddingsRenderer()


def _invalid_json():
    return schema.invalid("Invalid JSON payload received. Unexpected token.")


@bp.post("/v1beta/models/<path:target>")
@bp.post("/v1/models/<path:target>")
def call_model(target: str):
    """``{model}:{method}``: generateContent (a ``GenerateContentResponse``), streamGenerateContent (its
    chunks, ``alt=sse``), countTokens, embedContent, batchEmbedContents. Google's 400 naming the first bad
    field; 404 ``NOT_FOUND`` for an unknown model or method."""
    name, _, method = target.rpartition(":")
    handler = METHODS.get(method)
    body = json_body(_invalid_json())
    if not name or handler is None:
        raise _not_found()
    state = current_state()
    annotate(model=name)
    model = models.resolve(name, method, state.settings.allow_unknown_models)
    return handler(state, model, body, state.settings.server["strict_validation"])


def _not_found() -> OpenAIError:
    return OpenAIError(404, "Requested entity was not found.", "NOT_FOUND")


def generate(state, model, body, strict, stream=False, renderer=None):
    checked = schema.check(schema.GENERATE_CONTENT_REQUEST, body, strict)
    if strict:
        schema.check_contents(checked)
    config = checked.get("generation_config") or {}
    limit = config.get("max_output_tokens")
    if strict and limit is not None and not 1 <= limit <= model.output_limit:
        raise schema.invalid(
            f"The requested maxOutputTokens ({limit}) is outside the supported range: 1 to {model.output_limit}.",
            "generation_config.max_output_tokens",
        )
    neutral = schema.neutral_body(checked)
    thinking = config.get("thinking_config") or {}
    budget = thinking.get("thinking_budget") or 0
    if budget < 0:  # -1: the model decides how much to think
        budget = 1024
    parsed = CompletionRequest(
        model=model.id,
        stream=stream,
        include_usage=True,
        include_obfuscation=False,
        max_tokens=limit,
        max_tokens_param="maxOutputTokens",
        temperature=config.get("temperature"),
        body=neutral,
        reasoning_budget=budget if model.thinking else 0,
    )
    prompt_tokens = count_message_tokens(neutral["messages"], neutral.get("tools"), model.id)
    spec = model.spec()
    fate = state.simulation.decide(parsed, "chat", model.id, spec.max_output_tokens, prompt_tokens)
    reply = GeminiReply(
        model.id, fate.answer, prompt_tokens, bool(thinking.get("include_thoughts")), fate.cached_tokens
    )
    return respond(fate, reply, state.renderer(renderer or GenerateContentRenderer), stream)


def stream_generate(state, model, body, strict):
    """``alt=sse``: server-sent events, as the SDK asks for them; otherwise one JSON array, streamed."""
    array = request.args.get("alt") != "sse"
    return generate(state, model, body, strict, stream=True, renderer=JsonArrayRenderer if array else None)


def count(state, model, body, strict):
    checked = schema.check(schema.COUNT_TOKENS_REQUEST, body, strict)
    request_body = checked.get("generate_content_request") or checked
    if strict and not request_body.get("contents"):
        raise schema.invalid("* CountTokensRequest.contents: contents is not specified\n")
    neutral = schema.neutral_body(request_body)
    total = count_message_tokens(neutral["messages"], neutral.get("tools"), model.id)
    body = {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
    return Response(pretty(body, ensure_ascii=True), mimetype="application/json")


def embed_one(state, model, body, strict):
    checked = schema.check(schema.EMBED_CONTENT_REQUEST, body, strict)
    return _embed(state, model, [checked], batch=False)


def embed_batch(state, model, body, strict):
    checked = schema.check(schema.BATCH_EMBED_REQUEST, body, strict)
    requests_ = checked.get("requests") or []
    if strict and not requests_:
        raise schema.invalid("* BatchEmbedContentsRequest.requests: requests is not specified\n")
    for i, item in enumerate(requests_):
        named = (item.get("model") or f"models/{model.id}").removeprefix("models/")
        if strict and named != model.id:
            raise schema.invalid(
                f"Model '{item.get('model')}' in requests[{i}] differs from the request's model 'models/{model.id}'."
            )
    return _embed(state, model, requests_, batch=True)


def _embed(state, model, items, batch):
    if not model.dimensions:
        raise schema.invalid(f"models/{model.id} does not support embedding; use an embedding model.")
    texts = [schema.text_of(item.get("content")) for item in items]
    if any(not item.get("content") for item in items):
        raise schema.invalid("* EmbedContentRequest.content: content is not specified\n")
    prompt_tokens = sum(count_tokens(t, model.id) for t in texts)
    parsed = CompletionRequest(model.id, False, False, False, None, "max_tokens", None, {"input": texts})
    fate = state.simulation.decide(parsed, "embeddings", model.id, 1, prompt_tokens)
    dims = [item.get("output_dimensionality") for item in items]
    for size in dims:
        if size is not None and not 1 <= size <= model.dimensions:
            raise schema.invalid(
                f"* EmbedContentRequest.output_dimensionality: must be between 1 and {model.dimensions}, got {size}.\n",
                "output_dimensionality",
            )
    reply = EmbeddingsReply(model.id, texts, model.dimensions, dims, batch)
    return respond(fate, reply, EMBEDDINGS, stream=False)


METHODS = {
    "generateContent": generate,
    "streamGenerateContent": stream_generate,
    "countTokens": count,
    "embedContent": embed_one,
    "batchEmbedContents": embed_batch,
}


@bp.get("/v1beta/models")
def list_models():
    """200 ``{"models": [...], "nextPageToken"}``: the Gemini models, ``pageSize`` at a time (50 by default)."""
    size = request.args.get("pageSize", "50")
    if not size.isdigit() or int(size) < 1:
        raise schema.invalid(f"Invalid value at 'page_size' (TYPE_INT32), \"{size}\"", "page_size")
    listed = models.page(min(int(size), 1000), request.args.get("pageToken"))
    return Response(pretty(listed, ensure_ascii=True), mimetype="application/json")


@bp.get("/v1beta/models/<path:name>")
def get_model(name: str):
    """200 with the model; 404 ``NOT_FOUND`` for one that does not exist."""
    model = models.find(name)
    if model is None:
        raise _not_found()
    return Response(pretty(model.info(), ensure_ascii=True), mimetype="application/json")


def _asks_v1_models() -> bool:
    """``GET /v1/models`` (or one model) from a Gemini client: it presents its key as Google's clients do."""
    path = request.path
    if request.method != "GET" or not (path == "/v1/models" or path.startswith("/v1/models/")):
        return False
    return "x-goog-api-key" in request.headers or "key" in request.args


def _v1_models() -> Response:
    return list_models() if request.path == "/v1/models" else get_model(request.path[len("/v1/models/") :])


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    FORMAT.claim(app, "/v1/models", _asks_v1_models, _v1_models)
