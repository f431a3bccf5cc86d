"""``/_mock/requests`` and ``/_mock/stats``: the request journal, for test harnesses and the web UI.

- ``GET /_mock/requests``: entries newest first (by the time the request came in), filtered by ``method``,
  ``path``, ``status``, ``model``, ``api`` (the wire format: ``openai``, ``anthropic``, ``azure``, ``gemini``),
  ``stream``, ``ending``, ``test_id``, ``since`` (Unix seconds or ISO 8601)
  and text ``q`` (every word of it somewhere in the path, model, test id, fault, scenario, response
  headers or either body); a page is ``limit`` entries (50, at most 1000) after a ``cursor`` (the
  ``next_cursor`` of the page before) or at a ``page`` number. ``{"object": "list", "data", "total",
  "has_more", "next_cursor"}``. Each entry has a ``preview``: the first words of what was asked (the last
  user message, prompt or input) and of what was answered.
- ``GET /_mock/requests/<id>``: one entry, with a stream's events and their times; 404 if it is gone.
- ``DELETE /_mock/requests``: ``{"deleted": n}``.
- ``GET /_mock/stats``: counts by status, method, path and model, success rate, latency and TTFT
  percentiles, tokens, requests per second now and streams open now.

A read first waits (at most two seconds) until every worker has written what it had answered, so a
request that has been answered is there. Same token rule as the rest of ``/_mock``; a bad query value is a
400 that names the parameter.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, request

from app.api.admin import admin_json, invalid, require_admin_token
from app.errors import OpenAIError
from app.journal.entries import entry_of
from app.journal.stats import stats
from app.state import current_state

bp = Blueprint("journal", __name__, url_prefix="/_mock")
bp.before_request(require_admin_token)

LIST_PARAMS = ("method", "path", "status", "model", "api", "batch", "stream", "ending", "test_id", "since", "q",
               "limit", "cursor", "page")  # fmt: skip
MAX_LIMIT = 1000


def _journal():
    journal = current_state().journal
    if journal is None or journal.store is None:
        raise OpenAIError(404, "The request journal is off ([journal] enabled = false).", code="journal_disabled")
    return journal


def _whole(name: str, low: int, high: int | None = None) -> int:
    value = request.args[name]
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise invalid(f"Invalid '{name}': {value!r}. Expected a whole number {bound}.", name)
    return number


def _cursor() -> tuple[float, int]:
    """A ``next_cursor``: the time and id of the last entry of the page before."""
    value = request.args["cursor"]
    moment, _, entry_id = value.partition("_")
    try:
        return float(moment), int(entry_id)
    except ValueError:
        raise invalid(f"Invalid 'cursor': {value!r}. Use the next_cursor of the page before.", "cursor") from None


def _since() -> float | None:
    value = request.args.get("since")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"Invalid 'since': {value!r}. Expected Unix seconds or an ISO 8601 time.", "since") from None
    if moment.tzinfo is None:
        raise invalid(f"Invalid 'since': {value!r}. An ISO 8601 time needs its offset, e.g. Z.", "since")
    return moment.timestamp()


def list_query() -> dict:
    """The checked query of a list request: filters, page and text."""
    unknown = [name for name in request.args if name not in LIST_PARAMS]
    if unknown:
        raise invalid(f"Unknown query parameter '{unknown[0]}'; use {', '.join(LIST_PARAMS)}.", unknown[0])
    where = {}
    for name in ("method", "path", "model", "api", "batch", "ending", "test_id"):
        if name in request.args:
            where[name] = request.args[name].upper() if name == "method" else request.args[name]
    if "status" in request.args:
        where["status"] = _whole("status", 100, 599)
    if "stream" in request.args:
        value = request.args["stream"].lower()
        if value not in ("true", "false", "1", "0"):
            raise invalid(f"Invalid 'stream': {request.args['stream']!r}. Expected true or false.", "stream")
        where["stream"] = 1 if value in ("true", "1") else 0
    limit = _whole("limit", 1, MAX_LIMIT) if "limit" in request.args else 50
    if "cursor" in request.args and "page" in request.args:
        raise invalid("Use either 'cursor' or 'page', not both.", "page")
    cursor = _cursor() if "cursor" in request.args else None
    page = _whole("page", 1) if "page" in request.args else 1
    return {
        "where": where,
        "q": request.args.get("q") or None,
        "since": _since(),
        "before": cursor,
        "limit": limit,
        "offset": (page - 1) * limit,
    }


def list_entries(query: dict) -> dict:
    journal = _journal()
    journal.settled()
    rows, total = journal.store.query(**{**query, "limit": query["limit"] + 1})  # one more: is there a next?
    has_more = len(rows) > query["limit"]
    rows = rows[: query["limit"]]
    return {
        "object": "list",
        "data": [entry_of(row) for row in rows],
        "total": total,
        "has_more": has_more,
        "next_cursor": f"{rows[-1]['time']!r}_{rows[-1]['id']}" if has_more else None,
    }


@bp.get("/requests")
def get_requests():
    """200 a page of entries, newest first, with the total that match; 400 naming a bad parameter."""
    return admin_json(list_entries(list_query()))


@bp.get("/requests/<int:entry_id>")
def get_request(entry_id: int):
    """200 one entry, with ``response.stream_events`` for a stream; 404 when there is no such entry."""
    journal = _journal()
    journal.settled()
    row = journal.store.get(entry_id)
    if row is None:
        raise OpenAIError(404, f"No journal entry with id {entry_id}.", param="id", code="not_found")
    return admin_json(entry_of(row, events=True))


@bp.delete("/requests")
def delete_requests():
    """200 ``{"deleted": n}``: the journal is empty."""
    journal = _journal()
    journal.settled()
    return admin_json({"deleted": journal.store.clear()})


@bp.get("/stats")
def get_stats():
    """200 ``mock.stats``: what the journal holds, summed up (``since`` limits it to entries from then)."""
    unknown = [name for name in request.args if name != "since"]
    if unknown:
        raise invalid(f"Unknown query parameter '{unknown[0]}'; use since.", unknown[0])
    journal = _journal()
    journal.settled()
    return admin_json(stats(journal.store, _since()))
