"""Files: upload, list, retrieve, delete and download, as the real API has them, for every worker and every
instance of a server (the bytes behind the shared state's ``put_content``, the description a stored object).

What the real API checks is checked here with its wording: the purpose, the expiry policy, a file's size
(512 MB; 200 MB for a batch's input), a batch file's name (``.jsonl``), a purpose whose files cannot be
downloaded (``assistants``), and an id that names no file. Files expire: a batch's input after 30 days unless
``expires_after`` says otherwise, which it may for any purpose; an expired file is gone, as a deleted one.
"""

from __future__ import annotations

import random
import string
import time

from flask import Blueprint, Response, request

from app.api.listing import list_body, list_params
from app.errors import OpenAIError
from app.render import pretty
from app.state import current_state

bp = Blueprint("files", __name__, url_prefix="/v1")
KIND = "file"  # stored: the file object as the API shows it
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
NOT_DOWNLOADABLE = ("assistants",)
MAX_BYTES = 512 * 1024 * 1024
MAX_BATCH_BYTES = 200 * 1024 * 1024
BATCH_INPUT_EXPIRES_S = 30 * 24 * 3600  # a batch's input file, unless expires_after says otherwise
EXPIRY_RANGE_S = (3600, 30 * 24 * 3600)
_ID_ALPHABET = string.ascii_letters + string.digits


def new_file_id() -> str:
    return "file-" + "".join(random.choices(_ID_ALPHABET, k=22))


def _json(body: dict) -> Response:
    return Response(pretty(body), mimetype="application/json")


def store_file(data: bytes, filename: str, purpose: str, expires_at: int | None = None) -> dict:
    """Keep ``data`` as a new file (an upload, or a batch's output) and return its object."""
    shared = current_state().shared
    created = int(time.time())
    file = {
        "id": new_file_id(),
        "object": "file",
        "bytes": len(data),
        "created_at": created,
        "expires_at": expires_at,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
    }
    if expires_at is None:  # the spec's file has no null here: a file that never expires has no expires_at
        del file["expires_at"]
    shared.put_content(file["id"], data)  # the bytes first: a file listed is a file that can be read
    shared.put_object(KIND, file["id"], file)
    return file


def load_file(file_id: str, param: str = "id") -> dict:
    """The file object, or the real API's 404 (a file past its expiry is gone)."""
    shared = current_state().shared
    file = shared.get_object(KIND, file_id)
    if file is not None and _expired(file):
        _forget(file_id)
        file = None
    if file is None:
        raise OpenAIError(404, f"No such File object: {file_id}", param=param)
    return file


def file_content(file_id: str) -> bytes:
    data = current_state().shared.get_content(file_id)
    if data is None:
        raise OpenAIError(404, f"No such File object: {file_id}", param="id")
    return data


def _expired(file: dict) -> bool:
    return "expires_at" in file and file["expires_at"] <= time.time()


def _forget(file_id: str) -> bool:
    shared = current_state().shared
    shared.delete_content(file_id)
    return shared.delete_object(KIND, file_id)


@bp.post("/files")
def upload_file():
    """200 the new ``file``, from a multipart form: ``file``, ``purpose`` and optionally
    ``expires_after[anchor]`` (``created_at``) and ``expires_after[seconds]`` (3,600 to 2,592,000)."""
    if not (request.mimetype or "").startswith("multipart/form-data"):
        raise OpenAIError(
            400,
            "Invalid Content-Type header (" + (request.content_type or "none") + "), expected multipart/form-data. "
            "(HINT: If you're using curl, you can pass -F 'file=@<file path>' and -F 'purpose=<purpose>')",
        )
    form = request.form
    purpose = form.get("purpose")
    if purpose is None:
        raise _missing("purpose")
    if purpose not in PURPOSES:
        quoted = ", ".join(f"'{p}'" for p in PURPOSES)
        raise OpenAIError(
            400, f"Invalid value: '{purpose}'. Supported values are: {quoted}.", param="purpose", code="invalid_value"
        )
    upload = request.files.get("file")
    if upload is None:
        raise _missing("file")
    data = upload.read()
    filename = upload.filename or "file"
    limit = MAX_BATCH_BYTES if purpose == "batch" else MAX_BYTES
    if len(data) > limit:
        raise OpenAIError(
            400,
            f"File is too large: {len(data)} bytes. The maximum size of a file with purpose '{purpose}' is "
            f"{limit // (1024 * 1024)} MB.",
            param="file",
        )
    if purpose == "batch" and not filename.endswith(".jsonl"):
        raise OpenAIError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
    created = int(time.time())
    seconds = _expiry_seconds(form)
    if seconds is None and purpose == "batch":
        seconds = BATCH_INPUT_EXPIRES_S
    return _json(store_file(data, filename, purpose, created + seconds if seconds is not None else None))


def _missing(name: str) -> OpenAIError:
    return OpenAIError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")


def _expiry_seconds(form) -> int | None:
    """``expires_after[seconds]`` after ``expires_after[anchor]``, checked as the real API checks them."""
    anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise OpenAIError(
            400,
            f"Invalid value: '{anchor}'. Supported values are: 'created_at'." if anchor is not None
            else "Missing required parameter: 'expires_after.anchor'.",
            param="expires_after.anchor",
            code="invalid_value" if anchor is not None else "missing_required_parameter",
        )  # fmt: skip
    low, high = EXPIRY_RANGE_S
    try:
        number = int(seconds)
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        raise OpenAIError(
            400,
            f"Invalid 'expires_after.seconds': must be an integer between {low} and {high}, got {seconds!r}.",
            param="expires_after.seconds",
            code="invalid_value",
        )
    return number


@bp.get("/files")
def list_files():
    """200 a list of ``file`` objects, newest first unless ``order=asc``; ``purpose`` filters; pages with
    ``limit`` (1 to 10,000, default 10,000) and ``after``."""
    params = list_params(default_order="desc", max_limit=10000, default_limit=10000)
    where = {"purpose": request.args["purpose"]} if request.args.get("purpose") else None
    files, has_more = current_state().shared.list_objects(
        KIND, newest_first=params.newest_first, after=params.after, limit=params.limit, where=where
    )
    live = [f for f in files if not _expired(f)]
    return _json(list_body(live, has_more))


@bp.get("/files/<file_id>")
def retrieve_file(file_id: str):
    """200 the ``file``; 404 for an unknown (or expired, or deleted) id."""
    return _json(load_file(file_id))


@bp.delete("/files/<file_id>")
def delete_file(file_id: str):
    """200 ``{"id", "object": "file", "deleted": true}``; 404 for an unknown id."""
    load_file(file_id)
    _forget(file_id)
    return _json({"id": file_id, "object": "file", "deleted": True})


@bp.get("/files/<file_id>/content")
def download_file(file_id: str):
    """200 the file's bytes; 400 for a purpose the real API does not let you download (``assistants``)."""
    file = load_file(file_id)
    if file["purpose"] in NOT_DOWNLOADABLE:
        raise OpenAIError(400, f"Not allowed to download files of purpose: {file['purpose']}")
    return Response(file_content(file_id), mimetype="application/octet-stream")
