"""Azure OpenAI: ``/openai/deployments/{deployment}/chat/completions``, ``/completions`` and ``/embeddings``
with ``api-version``, and the newer ``/openai/v1/...`` routes, whose ``model`` names the deployment.

Azure runs OpenAI's models behind its own gateway, and so does this format: a request is OpenAI's (the same
schemas, simulation and bodies) sent to the model its deployment serves (``[azure] deployments``; every model
is also a deployment of its own name), and the answer gains what Azure adds: content filter results, the
prompt-filter chunk that opens a stream, keys in Azure's order, its headers and its errors.
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, request

from app.api.completions import complete
from app.api.embeddings import embed
from app.errors import OpenAIError
from app.formats.azure.errors import DEPLOYMENT, AzureFormat, deployment_not_found
from app.formats.azure.render import AzureRenderer, sorted_json
from app.journal import request_body
from app.memo import Memo
from app.render.embeddings import EmbeddingsRenderer
from app.schemas import (
    PARSED_BODY_BYTES,
    ChatCompletionRequestSchema,
    CompletionRequest,
    CompletionRequestSchema,
    json_body,
    parse_request,
)
from app.state import current_state
from app.tokens import count_message_tokens, count_prompt_tokens

FORMAT = AzureFormat()
bp = FORMAT.attach(Blueprint("azure", __name__, url_prefix="/openai"), owned_prefix="/openai/")

# The data-plane API versions Azure serves: the GA ones and every preview since the first.
GA_VERSIONS = frozenset(("2022-12-01", "2023-05-15", "2024-02-01", "2024-06-01", "2024-10-21", "v1"))
_PREVIEW = re.compile(r"^20(2[3-9])-\d\d-\d\d-preview$")


def _api_version(required: bool) -> None:
    version = _asked_version()
    if version is None:
        if required:  # without one Azure's gateway finds no operation to route to
            raise OpenAIError(404, "Resource not found", code="404")
        return
    if version not in GA_VERSIONS and not _PREVIEW.match(version) and version not in ("latest", "preview"):
        raise OpenAIError(400, "API version not supported", code="BadRequest")


def _asked_version() -> str | None:
    """The request's ``api-version``. A client sends the same query string with every request: what it asks
    for is read once per query string (parsing it into ``request.args`` was about 5 % of an Azure body in
    cProfile)."""
    query = request.environ.get("QUERY_STRING", "")
    version = _VERSIONS.get(query, _UNSEEN)
    if version is _UNSEEN:
        version = request.args.get("api-version")
        if len(_VERSIONS) >= 1024:  # (query strings that change with every request: kept no longer)
            _VERSIONS.clear()
        _VERSIONS[query] = version
    return version


_VERSIONS: dict[str, str | None] = {}  # a query string -> the api-version it asks for
_UNSEEN = object()


def _model_of(deployment: str) -> str:
    state = current_state()
    model = state.settings.azure["deployments"].get(deployment)
    if model is not None:
        return model
    if state.settings.model(deployment) is not None or state.settings.allow_unknown_models:
        return deployment
    raise deployment_not_found()


def _body_for(deployment: str | None) -> dict:
    """The request's body, sent to the deployment's model whatever ``model`` it names (Azure ignores it). A v1
    route (``deployment`` None) names the deployment in ``model``."""
    body = json_body()
    if not isinstance(body, dict):
        return body  # the schema refuses it in OpenAI's words
    if deployment is None:
        deployment = body.get("model")
        if deployment is None:
            raise OpenAIError(
                400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
            )
        if not isinstance(deployment, str):
            return body  # the schema refuses its type in OpenAI's words
    request.environ[DEPLOYMENT] = deployment
    return {**body, "model": _model_of(deployment)}


def _parsed(schema, deployment: str | None) -> CompletionRequest:
    """:func:`parse_request` of :func:`_body_for`, as Azure sends it (no obfuscation pads), kept for the next
    request that sends the same bytes to the same model, as OpenAI's routes keep theirs
    (:func:`app.schemas.request_of_body`). The deployment is worked out for every request: it is the
    journal's and the headers', and which model it serves is part of the key."""
    strict = current_state().settings.server["strict_validation"]
    raw = request_body()
    key = None
    if deployment is not None:  # (a v1 route's deployment is in the body: those are parsed every time)
        try:
            key = (schema, strict, _model_of(deployment), raw)
        except OpenAIError:
            pass  # no such deployment: refused below, after the body's own checks, as always
    if key is not None:
        found = PARSED.get(key)
        if found is not None:
            request.environ[DEPLOYMENT] = deployment
            return found
    parsed = parse_request(schema, _body_for(deployment), strict)
    parsed.include_obfuscation = False
    if key is not None:
        PARSED.put(key, parsed, len(raw))
    return parsed


PARSED = Memo(PARSED_BODY_BYTES)  # (schema, strict, the deployment's model, the body's bytes) -> its request


def _chat(deployment: str | None):
    state = current_state()
    parsed = _parsed(ChatCompletionRequestSchema, deployment)
    body = parsed.body
    prompt_tokens = count_message_tokens(body.get("messages") or [], body.get("tools"), parsed.model)
    return complete(state, parsed, "chat", prompt_tokens, state.renderer(AzureRenderer, state.chat))


def _completion(deployment: str | None):
    state = current_state()
    parsed = _parsed(CompletionRequestSchema, deployment)
    prompt_tokens = count_prompt_tokens(parsed.body.get("prompt"), parsed.model)
    return complete(state, parsed, "completions", prompt_tokens, state.renderer(AzureRenderer, state.legacy))


def _embeddings(deployment: str | None):
    return embed(current_state(), _body_for(deployment), EMBEDDINGS)


# OpenAI's embeddings body as Azure writes it (compact, keys sorted), its vectors joined in as written (a
# body rewritten by AzureRenderer cost six times OpenAI's: a 1,536-float vector decoded and encoded again)
EMBEDDINGS = EmbeddingsRenderer(dump=sorted_json, compact=True)


@bp.post("/deployments/<deployment>/chat/completions")
def deployment_chat(deployment: str):
    """OpenAI's ``chat.completion`` (or its stream) with Azure's content filter results; 404
    ``DeploymentNotFound`` for a deployment that does not exist, 404 without an ``api-version``."""
    _api_version(required=True)
    return _chat(deployment)


@bp.post("/deployments/<deployment>/completions")
def deployment_completion(deployment: str):
    """OpenAI's ``text_completion`` (or its stream) with Azure's content filter results."""
    _api_version(required=True)
    return _completion(deployment)


@bp.post("/deployments/<deployment>/embeddings")
def deployment_embeddings(deployment: str):
    """OpenAI's embeddings list, in Azure's key order."""
    _api_version(required=True)
    return _embeddings(deployment)


@bp.post("/v1/chat/completions")
def v1_chat():
    """Azure's v1 API: ``model`` names the deployment; ``api-version`` is optional."""
    _api_version(required=False)
    return _chat(None)


@bp.post("/v1/completions")
def v1_completion():
    """Azure's v1 API for legacy completions."""
    _api_version(required=False)
    return _completion(None)


@bp.post("/v1/embeddings")
def v1_embeddings():
    """Azure's v1 API for embeddings."""
    _api_version(required=False)
    return _embeddings(None)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
