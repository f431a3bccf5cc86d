"""``/v1/chat/completions`` and the legacy ``/v1/completions``, streaming and not.

Each request is parsed into a plain object, its fate (settings, fault, text, latency) is decided once by the
simulation, and only then is a reply rendered: a JSON body, or an SSE stream paced on deadlines.
"""

from __future__ import annotations

from flask import Blueprint, Response

from app.api.models import find_model, model_not_found
from app.api.stored_completions import store_completion
from app.config import DEFAULT_MAX_OUTPUT_TOKENS, ModelSpec
from app.delivery import respond
from app.errors import OpenAIError
from app.journal import annotate
from app.render import Reply, answered_tier, new_id
from app.schemas import (
    ChatCompletionRequestSchema,
    CompletionRequest,
    CompletionRequestSchema,
    request_of_body,
)
from app.state import MockState, current_state
from app.tokens import count_message_tokens, count_prompt_tokens

bp = Blueprint("completions", __name__, url_prefix="/v1")


@bp.post("/chat/completions")
def create_chat_completion():
    """200 ``chat.completion`` JSON, or with ``"stream": true`` an SSE stream of ``chat.completion.chunk``
    events ending in ``data: [DONE]``. 400/404 with an OpenAI error body for a bad request or model."""
    state = current_state()
    request = request_of_body(ChatCompletionRequestSchema, state.settings.server["strict_validation"])
    body = request.body
    prompt_tokens = count_message_tokens(body.get("messages") or [], body.get("tools"), request.model)
    return complete(state, request, "chat", prompt_tokens, state.chat)


@bp.post("/completions")
def create_completion():
    """200 ``text_completion`` JSON, or an SSE stream of ``text_completion`` chunks whose last text chunk
    carries the ``finish_reason``. 400/404 with an OpenAI error body for a bad request or model."""
    state = current_state()
    request = request_of_body(CompletionRequestSchema, state.settings.server["strict_validation"])
    return complete(
        state, request, "completions", count_prompt_tokens(request.body.get("prompt"), request.model), state.legacy
    )


def complete(state: MockState, request: CompletionRequest, endpoint: str, prompt_tokens: int, renderer) -> Response:
    """A parsed chat or legacy request, decided and answered by ``renderer`` (Azure's routes wrap OpenAI's)."""
    annotate(model=request.model)  # for the journal and metrics of a request refused below
    model = resolve_model(state, request.model, endpoint)
    model_id, max_output_tokens = model.id, model.max_output_tokens
    if request.max_tokens is not None and request.max_tokens > max_output_tokens:
        raise OpenAIError(
            400,
            f"max_tokens is too large: {request.max_tokens}. This model supports at most {max_output_tokens} "
            f"completion tokens, whereas you provided {request.max_tokens}.",
            param=request.max_tokens_param,
            code="invalid_value",
        )
    refuse_unsupported(model, request.body, state.settings.server["strict_validation"])
    refuse_past_context(model, prompt_tokens, request.max_tokens, endpoint)
    fate = state.simulation.decide(request, endpoint, model_id, max_output_tokens, prompt_tokens)
    answer = fate.answer
    reply = Reply(
        model=model.answers_as,
        answer=answer,
        prompt_tokens=prompt_tokens,
        include_usage=request.include_usage,
        include_obfuscation=request.include_obfuscation,
        service_tier=answered_tier(request.body.get("service_tier")),
        cached_tokens=fate.cached_tokens,
    )
    if endpoint == "chat" and request.body.get("store"):
        reply.completion_id = new_id("chatcmpl-")
        store_completion(renderer.body(reply), model_id, request.body)
    return respond(fate, reply, renderer, request.stream)


SAMPLING = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
LEGACY_DEFAULT_MAX_TOKENS = 16  # what /v1/completions generates when the request names no max_tokens


def refuse_past_context(model: ModelSpec, prompt_tokens: int, max_tokens: int | None, endpoint: str) -> None:
    """The real 400 ``context_length_exceeded`` when the prompt, with the completion asked for, does not fit
    the model's context window; in the chat API's words or the legacy API's."""
    window = model.context_window
    if endpoint == "completions":
        completion = max_tokens if max_tokens is not None else LEGACY_DEFAULT_MAX_TOKENS
        if prompt_tokens + completion > window:
            raise OpenAIError(
                400,
                f"This model's maximum context length is {window} tokens, however you requested "
                f"{prompt_tokens + completion} tokens ({prompt_tokens} in your prompt; {completion} for the "
                "completion). Please reduce your prompt; or completion length.",
                param="prompt",
                code="context_length_exceeded",
            )
        return
    if prompt_tokens + (max_tokens or 0) <= window:
        return
    if max_tokens:
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
            "completion). Please reduce the length of the messages or completion."
        )
    else:
        message = (
            f"This model's maximum context length is {window} tokens. However, your messages resulted in "
            f"{prompt_tokens} tokens. Please reduce the length of the messages."
        )
    raise OpenAIError(400, message, param="messages", code="context_length_exceeded")


def refuse_unsupported(model: ModelSpec, body: dict, strict: bool) -> None:
    """What the model cannot do is a 400, never a wrong success: audio output (no model here speaks), and for a
    reasoning model (o-series, gpt-5) ``max_tokens``, sampling settings other than the default, and logprobs,
    as the real API refuses them. ``--lenient`` lets a reasoning model take them."""
    if "audio" in (body.get("modalities") or ()):
        raise OpenAIError(
            400,
            f"This model does not support the 'audio' modality: {model.id} answers with text only.",
            param="modalities",
            code="unsupported_value",
        )
    if not (model.reasoning and strict):
        return
    if body.get("max_tokens") is not None:
        raise OpenAIError(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
            "instead.",
            param="max_tokens",
            code="unsupported_parameter",
        )
    for name in SAMPLING:
        value = body.get(name)
        default = 1 if name in ("temperature", "top_p") else 0
        if value is not None and value != default:
            raise OpenAIError(
                400,
                f"Unsupported value: '{name}' does not support {value} with this model. Only the default "
                f"({default}) value is supported.",
                param=name,
                code="unsupported_value",
            )
    if body.get("logprobs"):
        raise OpenAIError(
            400,
            "Unsupported parameter: 'logprobs' is not supported with this model.",
            param="logprobs",
            code="unsupported_parameter",
        )


def resolve_model(state: MockState, model_id: str | None, endpoint: str) -> ModelSpec:
    """The model to answer as. Without a model (lenient mode), the first configured one for the endpoint,
    as the original mock answered ``{"max_tokens": 2048}``. An unknown name with ``--any-model`` is answered
    as itself."""
    settings = state.settings
    if model_id is None:
        return next((m for m in settings.models if m.endpoint == endpoint), settings.models[0])
    model = find_model(model_id, state)
    if model is None:
        if settings.allow_unknown_models:
            return ModelSpec(id=model_id, endpoint=endpoint, max_output_tokens=DEFAULT_MAX_OUTPUT_TOKENS)
        raise model_not_found(model_id)
    if model.endpoint != endpoint:
        raise OpenAIError(404, WRONG_ENDPOINT[endpoint, model.endpoint], param="model")
    if model.parent:
        annotate(adapter=True)  # a LoRA adapter: vllm:lora_requests_info names it while it runs
    return model


WRONG_ENDPOINT = {
    ("completions", "chat"): "This is a chat model and not supported in the v1/completions endpoint. "
    "Did you mean to use v1/chat/completions?",
    ("chat", "completions"): "This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
    "Did you mean to use v1/completions?",
    ("chat", "embeddings"): "This is not a chat model and thus not supported in the v1/chat/completions endpoint.",
    ("completions", "embeddings"): "This is not a completions model and thus not supported in the "
    "v1/completions endpoint.",
    ("embeddings", "chat"): "This model does not support embeddings.",
    ("embeddings", "completions"): "This model does not support embeddings.",
}
