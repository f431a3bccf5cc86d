"""``POST /v1/embeddings``: deterministic unit vectors for strings and token arrays."""

from __future__ import annotations

from flask import Blueprint, Response

from app.api.completions import resolve_model
from app.delivery import respond
from app.errors import OpenAIError
from app.journal import annotate
from app.render.embeddings import EmbeddingsRenderer, EmbeddingsReply
from app.schemas import CompletionRequest, json_body, register, validate
from app.schemas.embeddings import MAX_TOTAL_TOKENS, EmbeddingsRequestSchema, check_inputs, inputs_of
from app.state import current_state
from app.tokens import count_tokens

bp = Blueprint("embeddings", __name__, url_prefix="/v1")
register(EmbeddingsRequestSchema, ("model", "input"), check_inputs)
RENDERER = EmbeddingsRenderer()


@bp.post("/embeddings")
def create_embeddings():
    """200 ``{"object": "list", "data": [Embedding, ...], "model", "usage"}``: one vector per input, in
    ``float`` or ``base64``; 400 for a bad input or ``dimensions``, 404 for a model that does not embed.
    Faults, rate limits and latency (the time to the first token) apply as to completions."""
    return embed(current_state(), json_body(), RENDERER)


def embed(state, body, renderer) -> Response:
    """A decoded embeddings request, checked, decided and answered by ``renderer`` (Azure's routes wrap ours)."""
    body = validate(EmbeddingsRequestSchema, body, state.settings.server["strict_validation"])
    annotate(model=body.get("model"))
    model = resolve_model(state, body.get("model"), "embeddings")
    inputs = inputs_of(body.get("input", ""))
    counts = [count_tokens(i, model.id) if isinstance(i, str) else len(i) if isinstance(i, list) else 1 for i in inputs]
    limit = model.context_window
    for count in counts:
        if count > limit:
            raise OpenAIError(
                400,
                f"This model's maximum context length is {limit} tokens, however you requested {count} tokens "
                f"({count} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.",
            )
    if sum(counts) > MAX_TOTAL_TOKENS:
        raise OpenAIError(
            400,
            f"Requested {sum(counts)} tokens, max {MAX_TOTAL_TOKENS} tokens per request",
            param="input",
            code="max_tokens_per_request",
        )
    shorten_to = body.get("dimensions")
    if shorten_to is not None:
        if not model.id.startswith("text-embedding-3") and shorten_to != model.dimensions:
            raise OpenAIError(400, "This model does not support specifying dimensions.", param="dimensions")
        if shorten_to > model.dimensions:
            raise OpenAIError(
                400,
                f"Invalid value for 'dimensions' = {shorten_to}. Must be less than or equal to {model.dimensions}.",
                param="dimensions",
                code="invalid_value",
            )
    prompt_tokens = sum(counts)
    request = CompletionRequest(model.id, False, False, True, None, "max_tokens", None, body)
    fate = state.simulation.decide(request, "embeddings", model.id, 1, prompt_tokens)
    reply = EmbeddingsReply(
        model=model.answers_as,
        inputs=inputs,
        dimensions=model.dimensions,
        shorten_to=shorten_to,
        encoding_format=body.get("encoding_format") or "float",
        prompt_tokens=prompt_tokens,
    )
    return respond(fate, reply, renderer, stream=False)
