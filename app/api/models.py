"""``/v1/models``: the configured model list."""

from __future__ import annotations

from flask import Blueprint, Response

from app.config import ModelSpec
from app.errors import OpenAIError
from app.render import pretty
from app.state import current_state

bp = Blueprint("models", __name__, url_prefix="/v1")


def model_object(model: ModelSpec) -> dict:
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": model.owned_by}


def model_not_found(model_id: str) -> OpenAIError:
    return OpenAIError(
        404, f"The model `{model_id}` does not exist or you do not have access to it.", code="model_not_found"
    )


@bp.get("/models")
def list_models():
    """200 ``{"object": "list", "data": [Model, ...]}``: every model in ``[models] available``."""
    models = current_state().settings.models
    return Response(pretty({"object": "list", "data": [model_object(m) for m in models]}), mimetype="application/json")


@bp.get("/models/<path:model_id>")
def retrieve_model(model_id: str):
    """200 with the Model; 404 ``model_not_found`` for a name not configured, unless unknown models are
    allowed (``--any-model``), when any name is answered."""
    settings = current_state().settings
    model = settings.model(model_id)
    if model is None:
        if not settings.allow_unknown_models:
            raise model_not_found(model_id)
        model = ModelSpec(id=model_id)
    return Response(pretty(model_object(model)), mimetype="application/json")
