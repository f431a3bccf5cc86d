"""The real API's cursor lists: ``limit``, ``order`` and ``after`` read once, one page shape for all."""

from __future__ import annotations

from dataclasses import dataclass

from flask import request

from app.errors import OpenAIError
from app.schemas.fields import Int, Invalid, Str


@dataclass(slots=True)
class ListParams:
    limit: int
    newest_first: bool
    after: str | None


def list_params(default_order: str = "asc", max_limit: int = 100, default_limit: int = 20) -> ListParams:
    """The query's list parameters, checked by the same checks (and wording) as request bodies."""
    args = request.args
    raw = args.get("limit", str(default_limit))
    try:
        number = int(raw)
    except ValueError:
        number = raw  # reported as the string it is
    try:
        limit = Int(minimum=1, maximum=max_limit).check(number, "limit")
        order = Str(choices=("asc", "desc")).check(args.get("order", default_order), "order")
    except Invalid as exc:
        raise OpenAIError(400, exc.message, param=exc.param, code=exc.code) from None
    return ListParams(limit, order == "desc", args.get("after") or None)


def paged(items: list[dict], params: ListParams) -> tuple[list[dict], bool]:
    """A page of items kept in creation order (each with an ``id``)."""
    ordered = list(reversed(items)) if params.newest_first else items
    if params.after is not None:
        ids = [item["id"] for item in ordered]
        ordered = ordered[ids.index(params.after) + 1 :] if params.after in ids else []
    return ordered[: params.limit], len(ordered) > params.limit


def list_body(data: list[dict], has_more: bool) -> dict:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
