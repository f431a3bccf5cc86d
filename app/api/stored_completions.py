"""Stored chat completions (``"store": true``): list, retrieve, update metadata, delete, and the messages a
completion was made from, as the real API has them, for every worker of a server."""

from __future__ import annotations

import json
import re

from flask import Blueprint, Response, request

from app.api.listing import list_body, list_params, paged
from app.errors import OpenAIError
from app.render import pretty
from app.schemas import json_body
from app.schemas.fields import METADATA, Invalid, Obj
from app.state import current_state

bp = Blueprint("stored_completions", __name__, url_prefix="/v1")
KIND = "chat_completion"  # stored: {"completion", "model", "metadata", "messages"}
_METADATA_ARG = re.compile(r"^metadata\[(.+)\]$")
_UPDATE = Obj({"metadata": METADATA}, required=("metadata",), nullable=False)


def store_completion(completion_text: str, model: str, body: dict) -> None:
    """Keep a completion made with ``store``: its body, the model asked for, metadata and messages."""
    completion = json.loads(completion_text)
    messages = [
        {"id": f"{completion['id']}-{index}", **message} for index, message in enumerate(body.get("messages") or [])
    ]
    record = {"completion": completion, "model": model, "metadata": body.get("metadata") or {}, "messages": messages}
    current_state().shared.put_object(KIND, completion["id"], record)


def _load(completion_id: str) -> dict:
    record = current_state().shared.get_object(KIND, completion_id)
    if record is None:
        raise OpenAIError(404, f"Chat completion with id '{completion_id}' not found.", param="completion_id")
    return record


def _shown(record: dict) -> dict:
    return dict(record["completion"], metadata=record["metadata"])


def _json(body: dict) -> Response:
    return Response(pretty(body), mimetype="application/json")


@bp.get("/chat/completions")
def list_completions():
    """200 ``ChatCompletionList``, oldest first unless ``order=desc``; filters ``model`` and
    ``metadata[key]=value``; pages with ``limit`` and ``after``."""
    params = list_params(default_order="asc")
    where = {f"metadata.{m.group(1)}": value for key, value in request.args.items() if (m := _METADATA_ARG.match(key))}
    if request.args.get("model"):
        where["model"] = request.args["model"]
    records, has_more = current_state().shared.list_objects(
        KIND, newest_first=params.newest_first, after=params.after, limit=params.limit, where=where
    )
    return _json(list_body([_shown(r) for r in records], has_more))


@bp.get("/chat/completions/<completion_id>")
def retrieve_completion(completion_id: str):
    """200 the stored ``chat.completion``; 404 for an unknown id."""
    return _json(_shown(_load(completion_id)))


@bp.post("/chat/completions/<completion_id>")
def update_completion(completion_id: str):
    """200 the completion with its new ``metadata`` (the only field that can change)."""
    body = json_body()
    try:
        _UPDATE.check(body, "body")
    except Invalid as exc:
        raise OpenAIError(400, exc.message, param=exc.param.removeprefix("body."), code=exc.code) from None
    record = _load(completion_id)
    record["metadata"] = body["metadata"] or {}
    current_state().shared.put_object(KIND, completion_id, record)
    return _json(_shown(record))


@bp.delete("/chat/completions/<completion_id>")
def delete_completion(completion_id: str):
    """200 ``{"object": "chat.completion.deleted", "id", "deleted": true}``; 404 for an unknown id."""
    _load(completion_id)
    current_state().shared.delete_object(KIND, completion_id)
    return _json({"object": "chat.completion.deleted", "id": completion_id, "deleted": True})


@bp.get("/chat/completions/<completion_id>/messages")
def list_messages(completion_id: str):
    """200 ``ChatCompletionMessageList``: the request's messages, each with an ``id``."""
    params = list_params(default_order="asc")
    messages = [_as_listed(m) for m in _load(completion_id)["messages"]]
    page, has_more = paged(messages, params)
    return _json(list_body(page, has_more))


def _as_listed(message: dict) -> dict:
    content = message.get("content")
    parts = content if isinstance(content, list) else None
    text = "".join(p.get("text", "") for p in parts if isinstance(p, dict)) if parts is not None else content
    return {
        "id": message["id"],
        "role": message["role"],
        "content": text,
        "refusal": None,
        "annotations": [],
        "name": message.get("name"),
        "content_parts": parts,
    }
