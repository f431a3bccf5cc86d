"""The Batch API: create, retrieve, list and cancel, for every worker and every instance of a server. A batch
runs in the background (:mod:`app.batches.runner`) on the server's clock, ``[batch] duration_s``."""

from __future__ import annotations

import os
import time

from flask import Blueprint, Response, current_app

from app.api.files import load_file
from app.api.listing import list_body, list_params
from app.batches import runner
from app.errors import OpenAIError
from app.render import pretty
from app.schemas import json_body
from app.schemas.fields import METADATA, Int, Invalid, Obj, Str
from app.state import current_state

bp = Blueprint("batches", __name__, url_prefix="/v1")
ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions")
_CREATE = Obj(
    {
        "input_file_id": Str(nullable=False),
        "endpoint": Str(choices=ENDPOINTS, nullable=False),
        "completion_window": Str(choices=("24h",), nullable=False),
        "metadata": METADATA,
        "output_expires_after": Obj(
            {"anchor": Str(choices=("created_at",), nullable=False), "seconds": Int(minimum=3600, maximum=2592000)},
            required=("anchor", "seconds"),
        ),
    },
    required=("input_file_id", "endpoint", "completion_window"),
    nullable=False,
)


def _json(body: dict) -> Response:
    return Response(pretty(body), mimetype="application/json")


@bp.post("/batches")
def create_batch():
    """200 the new ``batch``, ``validating``: its input file must exist and have been uploaded for ``batch``."""
    body = json_body()
    try:
        _CREATE.check(body, "body")
    except Invalid as exc:
        raise OpenAIError(400, exc.message, param=exc.param.removeprefix("body."), code=exc.code) from None
    unknown = [name for name in body if name not in _CREATE.props]
    if unknown:
        raise OpenAIError(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
    file = load_file(body["input_file_id"], param="input_file_id")
    if file["purpose"] != "batch":
        raise OpenAIError(
            400,
            f"The input file {file['id']} was uploaded with purpose '{file['purpose']}'; a batch's input file must "
            "be uploaded with purpose 'batch'.",
            param="input_file_id",
        )
    created = time.time()
    settings = current_state().settings
    batch = {
        "id": "batch_" + os.urandom(16).hex(),
        "object": "batch",
        "endpoint": body["endpoint"],
        "model": None,
        "errors": None,
        "input_file_id": file["id"],
        "completion_window": body["completion_window"],
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": int(created),
        "in_progress_at": None,
        "expires_at": int(created + settings.batch["window_s"]),
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "usage": None,
        "metadata": body.get("metadata"),
    }
    if body.get("output_expires_after"):
        batch["output_expires_after"] = body["output_expires_after"]
    shared = current_state().shared
    shared.put_object(runner.KIND, batch["id"], {"batch": batch, "created": created})
    if runner.claim(shared, batch["id"]):
        runner.start(current_app._get_current_object(), batch["id"])
    return _json(_shown(batch))


def _load(batch_id: str) -> dict:
    """The batch, taken over by this worker if it should be running and the worker running it is gone."""
    shared = current_state().shared
    record = shared.get_object(runner.KIND, batch_id)
    if record is None:
        raise OpenAIError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
    if record["batch"]["status"] in runner.ACTIVE and runner.claim(shared, batch_id):
        runner.start(current_app._get_current_object(), batch_id)
    return record["batch"]


def _shown(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k != "output_expires_after"}


@bp.get("/batches/<batch_id>")
def retrieve_batch(batch_id: str):
    """200 the ``batch`` as it stands; 404 for an unknown id."""
    return _json(_shown(_load(batch_id)))


@bp.get("/batches")
def list_batches():
    """200 a list of ``batch`` objects, newest first; pages with ``limit`` (1 to 100, default 20) and
    ``after``."""
    params = list_params(default_order="desc", max_limit=100, default_limit=20)
    records, has_more = current_state().shared.list_objects(
        runner.KIND, newest_first=True, after=params.after, limit=params.limit
    )
    return _json(list_body([_shown(r["batch"]) for r in records], has_more))


@bp.post("/batches/<batch_id>/cancel")
def cancel_batch(batch_id: str):
    """200 the batch, ``cancelling``: it stops before its next line and ends ``cancelled``; 400 for a batch
    that has already ended."""
    shared = current_state().shared
    batch = _load(batch_id)
    asked = shared.get_object(runner.CANCELS, batch_id)
    if batch["status"] in runner.ACTIVE and asked is not None:  # asked before, and still under way
        return _json(_shown(dict(batch, status="cancelling", cancelling_at=asked["at"])))
    if batch["status"] not in ("validating", "in_progress"):
        if batch["status"] == "cancelled":
            return _json(_shown(batch))
        raise OpenAIError(400, f"Cannot cancel a batch with status '{batch['status']}'.", param="batch_id")
    at = int(time.time())
    shared.put_object(runner.CANCELS, batch_id, {"at": at})  # the run sees it before its next line
    return _json(_shown(dict(batch, status="cancelling", cancelling_at=at)))
