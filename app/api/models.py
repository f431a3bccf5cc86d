"""``/v1/models``: the configured model list, as the real API lists it (each alias and its dated snapshot)."""

from __future__ import annotations

from flask import Blueprint, Response

from app import adapters
from app.config import ModelSpec
from app.errors import OpenAIError
from app.render import pretty
from app.state import current_state

bp = Blueprint("models", __name__, url_prefix="/v1")

DELETED_KIND = "deleted_model"  # a fine-tune deleted at run time, for every worker (shared objects)


def model_object(model_id: str, model: ModelSpec) -> dict:
    listed = {"id": model_id, "object": "model", "created": model.created, "owned_by": model.owned_by}
    if model.parent:  # a LoRA adapter, as vLLM lists one
        listed |= {"root": model.root, "parent": model.parent}
    return listed


def model_not_found(model_id: str) -> OpenAIError:
    return OpenAIError(
        404, f"The model `{model_id}` does not exist or you do not have access to it.", code="model_not_found"
    )


def find_model(model_id: str, state=None) -> ModelSpec | None:
    """The configured model by id or snapshot name; None when unknown or (a fine-tune) deleted."""
    state = state or current_state()
    model = state.settings.model(model_id)
    if model is None:  # not configured: a LoRA adapter loaded at run time, or nothing
        return adapters.find(state.shared, model_id, state.settings)
    if model.deletable and state.shared.get_object(DELETED_KIND, model.id) is not None:
        return None
    return model


@bp.get("/models")
def list_models():
    """200 ``{"object": "list", "data": [Model, ...]}``: every model in ``[models] available``, and the dated
    snapshot each alias answers as, as its own entry."""
    data = []
    for model in current_state().settings.models:
        if find_model(model.id) is None:
            continue
        data.append(model_object(model.id, model))
        if model.snapshot and model.snapshot != model.id:
            data.append(model_object(model.snapshot, model))
    data += [
        model_object(adapter.id, adapter)
        for adapter in adapters.loaded(current_state().shared, current_state().settings)
    ]
    return Response(pretty({"object": "list", "data": data}), mimetype="application/json")


@bp.get("/models/<path:model_id>")
def retrieve_model(model_id: str):
    """200 with the Model; 404 ``model_not_found`` for a name not configured, unless unknown models are
    allowed (``--any-model``), when any name is answered."""
    model = find_model(model_id)
    if model is None:
        if not current_state().settings.allow_unknown_models:
            raise model_not_found(model_id)
        model = ModelSpec(id=model_id)
    return Response(pretty(model_object(model_id, model)), mimetype="application/json")


@bp.delete("/models/<path:model_id>")
def delete_model(model_id: str):
    """200 ``{"id", "object": "model", "deleted": true}`` for a configured fine-tune (``ft:...``), which is
    then gone for every worker; 403 for a base model, which only OpenAI can delete; 404 for an unknown one."""
    model = find_model(model_id)
    if model is None:
        raise model_not_found(model_id)
    if not model.deletable:
        raise OpenAIError(
            403,
            f"You do not have permission to delete the model '{model_id}'. Only fine-tuned models owned by "
            "your organization can be deleted.",
            param="model",
            code="model_not_deletable",
        )
    current_state().shared.put_object(DELETED_KIND, model.id, {"id": model.id})
    return Response(pretty({"id": model.id, "object": "model", "deleted": True}), mimetype="application/json")
