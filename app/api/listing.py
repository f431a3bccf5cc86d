"""The real API's cursor lists: ``limit``, ``order`` and ``after`` read once, one page shape for all."""

from __future__ import annotations

from dataclasses import dataclass

from flask import request

from app.errors import OpenAIError


@dataclass(slots=True)
class ListParams:
    limit: int
    newest_first: bool
    after: str | None


def list_params(default_order: str = "asc", max_limit: int = 100) -> ListParams:
    args = request.args
    raw = args.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        raise OpenAIError(
            400,
            "Invalid type for 'limit': expected an integer, but got a string instead.",
            "invalid_request_error",
            "limit",
            "invalid_type",
        ) from None
    if limit < 1:
        raise OpenAIError(
            400,
            f"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {limit} instead.",
            param="limit",
            code="integer_below_min_value",
        )
    if limit > max_limit:
        raise OpenAIError(
            400,
            f"Invalid 'limit': integer above maximum value. Expected a value <= {max_limit}, but got {limit} instead.",
            param="limit",
            code="integer_above_max_value",
        )
    order = args.get("order", default_order)
    if order not in ("asc", "desc"):
        raise OpenAIError(
            400,
            f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.",
            param="order",
            code="invalid_value",
        )
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
