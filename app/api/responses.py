"""``/v1/responses``: create (streamed or not, in the background or not), retrieve, delete, cancel, and
list a response's input items. Stored responses (``store``, the default) are shared by every worker."""

from __future__ import annotations

import time

from flask import Blueprint, Response

from app.api.completions import refuse_unsupported, resolve_model
from app.api.listing import list_body, list_params, paged
from app.delivery import respond
from app.errors import OpenAIError
from app.journal import annotate
from app.render import Reply, answered_tier, pretty
from app.render.compaction import seal
from app.render.responses import ResponseReply, item_id, output_items, response_object
from app.schemas import CompletionRequest, json_body, register, validate
from app.schemas.responses import (
    CompactResponseSchema,
    CreateResponseSchema,
    as_chat,
    check_response_request,
    input_items,
)
from app.state import current_state
from app.tokens import count_message_tokens

bp = Blueprint("responses", __name__, url_prefix="/v1")
register(CreateResponseSchema, ("model",), check_response_request)
register(CompactResponseSchema, ("model",))
KIND = "response"  # stored: {"response", "input", "ready_at", "cancelled"}
SUMMARY_TOKENS = 512  # the most a compaction's summary runs to


def not_found(response_id: str) -> OpenAIError:
    return OpenAIError(404, f"Response with id '{response_id}' not found.", param="response_id")


@bp.post("/responses")
def create_response():
    """200 ``response`` JSON, or with ``"stream": true`` the typed event stream; with ``background`` a
    ``queued`` response at once, which completes when its generation time has passed (poll it with GET)."""
    state = current_state()
    body = validate(CreateResponseSchema, json_body(), state.settings.server["strict_validation"])
    annotate(model=body.get("model"))
    model = resolve_model(state, body.get("model"), "chat")
    refuse_unsupported(model, body, state.settings.server["strict_validation"])
    history = _history(state, body.get("previous_response_id"))
    chat = as_chat(body, history)
    prompt_tokens = count_message_tokens(chat["messages"], chat.get("tools"), model.id)
    if prompt_tokens > model.context_window:
        if body.get("truncation") != "auto":
            raise OpenAIError(
                400,
                "Your input exceeds the context window of this model. Please adjust your input and try again.",
                param="input",
                code="context_length_exceeded",
            )
        prompt_tokens = model.context_window  # "auto": the oldest items are dropped until it fits
    stream = bool(body.get("stream"))
    parsed = CompletionRequest(
        model.id,
        stream,
        False,
        (body.get("stream_options") or {}).get("include_obfuscation", True) is not False,
        body.get("max_output_tokens"),
        "max_output_tokens",
        body.get("temperature"),
        chat,
    )
    fate = state.simulation.decide(parsed, "chat", model.id, model.max_output_tokens, prompt_tokens)
    answer = fate.answer
    reply = ResponseReply(
        Reply(
            model.answers_as,
            answer,
            prompt_tokens,
            False,
            parsed.include_obfuscation,
            answered_tier(body.get("service_tier")),
            cached_tokens=fate.cached_tokens,
        ),
        body,
    )
    reply.compaction = _compaction(body.get("context_management"), prompt_tokens, model.context_window)
    items = [dict(item, id=item.get("id") or item_id("msg_")) for item in input_items(body.get("input"))]
    background = bool(body.get("background"))
    if background and not stream:
        return _start_in_background(state, reply, fate, items, history)
    if body.get("store", True) is not False:  # a streamed background response is stored as it ends
        ready_at = time.time() if background else None
        reply.on_done = lambda completed: _store(state, completed, items, history, ready_at)
    return respond(fate, reply, state.responses, stream)


def _compaction(entries, prompt_tokens: int, window: int) -> dict | None:
    """The compaction item of a request whose input has reached a ``context_management`` entry's
    ``compact_threshold`` (without one, nine tenths of the model's window): the context is compacted before
    the answer, which the next request reads back as the summary."""
    for entry in entries or ():
        threshold = entry.get("compact_threshold") or int(window * 0.9)
        if entry["type"] == "compaction" and prompt_tokens >= threshold:
            summary = f"A summary of the conversation so far ({prompt_tokens} tokens compacted)."
            return {"type": "compaction", "id": item_id("cmp_"), "encrypted_content": seal(summary)}
    return None


@bp.post("/responses/compact")
def compact_response():
    """200 ``response.compaction``: the conversation's user messages, then one ``compaction`` item standing for
    the rest (its summary, composed and timed as a reply is); give ``output`` back as the next ``input``."""
    state = current_state()
    body = validate(CompactResponseSchema, json_body(), state.settings.server["strict_validation"])
    annotate(model=body.get("model"))
    model = resolve_model(state, body.get("model"), "chat")
    history = _history(state, body.get("previous_response_id"))
    chat = as_chat(body, history)
    prompt_tokens = count_message_tokens(chat["messages"], None, model.id)
    if prompt_tokens > model.context_window:
        raise OpenAIError(
            400,
            "Your input exceeds the context window of this model. Please adjust your input and try again.",
            param="input",
            code="context_length_exceeded",
        )
    summary_tokens = min(SUMMARY_TOKENS, max(16, prompt_tokens // 4))  # a summary is shorter than its text
    parsed = CompletionRequest(model.id, False, False, True, summary_tokens, "max_output_tokens", None, chat)
    fate = state.simulation.decide(parsed, "chat", model.id, model.max_output_tokens, prompt_tokens)
    try:
        time.sleep(fate.non_stream_wait_s)  # the compaction pass takes as long as a reply of its length
    finally:
        if fate.release is not None:
            fate.release()
    conversation = [*history, *input_items(body.get("input"))]
    output = [_user_message(item) for item in conversation if item.get("type") == "message" and item["role"] == "user"]
    output.append({"type": "compaction", "id": item_id("cmp_"), "encrypted_content": seal(fate.answer.text.text())})
    tokens = fate.answer.completion_tokens
    compacted = {
        "id": item_id("resp_"),
        "object": "response.compaction",
        "output": output,
        "created_at": int(time.time()),
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": fate.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + tokens,
        },
    }
    response = Response(pretty(compacted), mimetype="application/json")
    response.headers.extend(fate.rate_limit_headers)
    return response


def _user_message(item: dict) -> dict:
    """A user message of the conversation as the compacted output shows it: an item with its input parts."""
    content = item["content"]
    parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
    return {"id": item.get("id") or item_id("msg_"), "type": "message", "status": "completed", "role": "user",
            "content": parts}  # fmt: skip


def _start_in_background(state, reply: ResponseReply, fate, items: list, history: list):
    """Answer ``queued`` now; the stored response completes when its stream would have ended."""
    completed = response_object(reply, output_items(reply), "completed")
    ready_at = time.time() + fate.timing.ttft_s + fate.timing.generation_s(fate.answer.count)
    _store(state, completed, items, history, ready_at)
    if fate.release is not None:
        fate.release()
    queued = dict(completed, status="queued", completed_at=None, output=[], usage=None)
    response = Response(pretty(queued), mimetype="application/json")
    response.headers.extend(fate.rate_limit_headers)
    return response


def _store(state, completed: dict, items: list, history: list, ready_at: float | None = None) -> None:
    """``ready_at``: when a background response is done (None: not made in the background)."""
    record = {"response": completed, "input": items, "history": history, "ready_at": ready_at}
    state.shared.put_object(KIND, completed["id"], record)


def _history(state, previous_id: str | None) -> list[dict]:
    """The conversation so far: the previous response's history, its input and its output."""
    if not previous_id:
        return []
    stored = state.shared.get_object(KIND, previous_id)
    if stored is None:
        raise OpenAIError(
            404,
            f"Previous response with id '{previous_id}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return [*stored.get("history", []), *stored["input"], *stored["response"]["output"]]


def _load(response_id: str) -> dict:
    stored = current_state().shared.get_object(KIND, response_id)
    if stored is None:
        raise not_found(response_id)
    return stored


def _current(stored: dict) -> dict:
    """A background response as it stands now: queued, in progress, completed or cancelled."""
    response = stored["response"]
    ready_at = stored.get("ready_at")
    if stored.get("cancelled"):
        return dict(response, status="cancelled", completed_at=None, output=[], usage=None)
    if ready_at is not None and time.time() < ready_at:
        return dict(response, status="in_progress", completed_at=None, output=[], usage=None)
    return response


@bp.get("/responses/<response_id>")
def retrieve_response(response_id: str):
    """200 the stored response (a background one as it stands now); 404 for an unknown id."""
    return Response(pretty(_current(_load(response_id))), mimetype="application/json")


@bp.delete("/responses/<response_id>")
def delete_response(response_id: str):
    """200 ``{"id", "object": "response", "deleted": true}``; 404 for an unknown id."""
    if not current_state().shared.delete_object(KIND, response_id):
        raise not_found(response_id)
    return Response(pretty({"id": response_id, "object": "response", "deleted": True}), mimetype="application/json")


@bp.post("/responses/<response_id>/cancel")
def cancel_response(response_id: str):
    """200 the cancelled response; 400 for one not made with ``background`` or already finished."""
    stored = _load(response_id)
    if stored.get("ready_at") is None:
        raise OpenAIError(400, "Only responses created with background=true can be cancelled.", param="response_id")
    status = _current(stored)["status"]
    if status == "completed":
        raise OpenAIError(400, "Cannot cancel a completed response.", param="response_id")
    stored["cancelled"] = True
    current_state().shared.put_object(KIND, response_id, stored)
    return Response(pretty(_current(stored)), mimetype="application/json")


@bp.get("/responses/<response_id>/input_items")
def list_input_items(response_id: str):
    """200 ``ResponseItemList`` of the items the response was made from, ``order`` desc by default, with
    ``limit`` (1-100) and ``after``."""
    params = list_params(default_order="desc")
    page, has_more = paged([_as_resource(item) for item in _load(response_id)["input"]], params)
    return Response(pretty(list_body(page, has_more)), mimetype="application/json")


def _as_resource(item: dict) -> dict:
    if item.get("type") != "message":
        return dict(item, status=item.get("status", "completed"))
    content = item["content"]
    if isinstance(content, str):
        content = [{"type": "input_text" if item["role"] != "assistant" else "output_text", "text": content}]
    return {"id": item["id"], "type": "message", "status": "completed", "content": content, "role": item["role"]}
