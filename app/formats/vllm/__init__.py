"""vLLM's own server endpoints, beside the OpenAI API it serves: what routers, autoscalers and their tests call
on a vLLM server.

- ``POST /tokenize`` (a ``prompt``, or chat ``messages``) and ``POST /detokenize``, in vLLM's shapes, with the
  model's own vocabulary (``o200k_base`` or ``cl100k_base``; the ``tokenizer`` extra). A chat prompt is
  tokenized as the completions count it, so ``count`` is the ``prompt_tokens`` a completion of it reports.
- ``GET /version``.
- ``POST /v1/load_lora_adapter`` and ``/v1/unload_lora_adapter``: an adapter appears in ``/v1/models`` with
  its ``parent``, is answered like its base model, and leaves when unloaded (:mod:`app.adapters`).

Errors are vLLM's: ``{"error": {"message", "type", "param", "code"}}`` with a type such as ``BadRequestError``
and the status as the code.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response

from app import adapters
from app.api.models import find_model
from app.errors import OpenAIError
from app.journal import annotate
from app.render import pretty
from app.schemas import json_body
from app.state import current_state
from app.tokens import FRAMING_TEXT, chat_tokens, exact_counter, text_tokens

VERSION = "0.11.0"  # the vLLM release whose endpoints and metrics these follow
bp = Blueprint("vllm", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.before_request
def _label() -> None:
    annotate(api="vllm")


def vllm_error(status: int, message: str, kind: str) -> OpenAIError:
    return OpenAIError(status, message, kind, code=status)


def _json_object() -> dict:
    try:
        body = json_body()
    except OpenAIError:
        raise vllm_error(400, "JSON decode error: the body is not valid JSON", "BadRequestError") from None
    if not isinstance(body, dict):
        raise vllm_error(400, "Input should be a valid dictionary or object to extract fields from", "BadRequestError")
    return body


def _model(body: dict):
    """The model named, else the first chat model (vLLM serves one; ``model`` may be left out)."""
    state = current_state()
    name = body.get("model")
    if name is None:
        return next(m for m in state.settings.models if m.endpoint == "chat")
    if not isinstance(name, str):
        raise vllm_error(400, "model: Input should be a valid string", "BadRequestError")
    model = find_model(name, state)
    if model is None:
        raise vllm_error(404, f"The model `{name}` does not exist.", "NotFoundError")
    return model


def _encoding(model):
    encoding = exact_counter(model.id)
    if encoding is None:
        raise vllm_error(
            501,
            "Token ids need the model's vocabulary, which is not installed: pip install 'mock-openai[tokenizer]'.",
            "NotImplementedError",
        )
    return encoding


@bp.post("/tokenize")
def tokenize():
    """200 ``{"count", "max_model_len", "tokens", "token_strs"}`` for a ``prompt`` or chat ``messages``."""
    body = _json_object()
    model = _model(body)
    encoding = _encoding(model)
    if "messages" in body:
        messages = body["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise vllm_error(400, "messages: Input should be a valid list of messages with a role", "BadRequestError")
        if body.get("continue_final_message") and body.get("add_generation_prompt", True):
            raise vllm_error(
                400,
                "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
                "BadRequestError",
            )
        tokens = chat_tokens(messages, body.get("tools"), model.id, bool(body.get("add_generation_prompt", True)))
    elif isinstance(body.get("prompt"), str):
        tokens = text_tokens(body["prompt"], model.id)
    else:
        raise vllm_error(400, "prompt: Field required (or give messages)", "BadRequestError")
    tokens = [t if isinstance(t, int) else 0 for t in tokens]  # an image's tokens stand for its tiles
    strings = None
    if body.get("return_token_strs"):
        strings = [_token_str(encoding, t) for t in tokens]
    answer = {"count": len(tokens), "max_model_len": model.context_window, "tokens": tokens, "token_strs": strings}
    return Response(pretty(answer), mimetype="application/json")


@bp.post("/detokenize")
def detokenize():
    """200 ``{"prompt"}``: the text of ``tokens``."""
    body = _json_object()
    model = _model(body)
    encoding = _encoding(model)
    tokens = body.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        raise vllm_error(400, "tokens: Input should be a valid list of integers", "BadRequestError")
    framing = FRAMING_TEXT.get(encoding.name, {})
    for token in tokens:
        if not (0 <= token < encoding.n_vocab or token in framing):
            raise vllm_error(400, f"Token id {token} is out of vocabulary", "BadRequestError")
    return Response(pretty({"prompt": "".join(_token_str(encoding, t) for t in tokens)}), mimetype="application/json")


def _token_str(encoding, token: int) -> str:
    framing = FRAMING_TEXT.get(encoding.name, {})
    if token in framing:
        return framing[token]
    try:
        return encoding.decode_single_token_bytes(token).decode("utf-8", errors="replace")
    except (KeyError, ValueError):
        return ""


@bp.get("/version")
def version():
    return Response(pretty({"version": VERSION}), mimetype="application/json")


@bp.post("/v1/load_lora_adapter")
def load_lora_adapter():
    """200 ``Success: LoRA adapter '{name}' added successfully.``; 400 when a name or path is missing or the
    adapter is already loaded. ``base_model_name`` names its base model (else the first chat model)."""
    body = _json_object()
    name, path = body.get("lora_name"), body.get("lora_path")
    if not name or not path or not isinstance(name, str) or not isinstance(path, str):
        raise vllm_error(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput")
    state = current_state()
    if find_model(name, state) is not None:
        raise vllm_error(400, f"The lora adapter '{name}' has already been loaded.", "InvalidUserInput")
    base = body.get("base_model_name")
    parent = state.settings.model(base) if isinstance(base, str) else None
    if parent is None or parent.parent:
        parent = next(m for m in state.settings.models if m.endpoint == "chat")
    adapters.load(state.shared, name, path, parent.id)
    return Response(f"Success: LoRA adapter '{name}' added successfully.", mimetype="text/plain")


@bp.post("/v1/unload_lora_adapter")
def unload_lora_adapter():
    """200 ``Success: LoRA adapter '{name}' removed successfully.``; 404 for one not loaded."""
    body = _json_object()
    name = body.get("lora_name")
    if not name and not body.get("lora_int_id"):
        raise vllm_error(400, "either 'lora_name' and 'lora_int_id' needs to be provided.", "InvalidUserInput")
    if not isinstance(name, str) or not adapters.unload(current_state().shared, name):
        raise vllm_error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
    return Response(f"Success: LoRA adapter '{name}' removed successfully.", mimetype="text/plain")


__all__ = ["init_app"]
