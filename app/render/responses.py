"""The Responses API's ``response`` object and its stream of typed events.

A stream is the real sequence, each event with ``event:`` and ``data:`` lines and an increasing
``sequence_number``: ``response.created``, ``response.in_progress``, then per output item
``response.output_item.added``, for a message ``response.content_part.added``, ``response.output_text.delta``
(one per token), ``response.output_text.done``, ``response.content_part.done``, for a function call
``response.function_call_arguments.delta`` and ``.done``, then ``response.output_item.done``, and last
``response.completed`` with the whole response. There is no ``[DONE]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from random import getrandbits

from app.render import PrettyTemplate, Reply, compact, compact_text, json_text, pretty
from app.streaming import NumberedEvents
from app.streaming.recipes import EventTable


def item_id(prefix: str) -> str:
    """``resp_``, ``msg_`` or ``fc_`` and 48 hex digits, like the real ids (``random``, not ``os.urandom``:
    a system call for each of a response's ids, which guard nothing)."""
    return f"{prefix}{getrandbits(192):048x}"


@dataclass(slots=True)
class ResponseReply:
    """A completion (:class:`Reply`) dressed as a Response: the request's echoed settings and the ids."""

    reply: Reply
    request: dict  # the CreateResponse body
    response_id: str = field(default_factory=lambda: item_id("resp_"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    on_done: object = None  # called with the completed response object (to store it)
    status: str = "completed"
    compaction: dict | None = None  # the item of a compaction the input's size set off (context_management)


def output_items(reply: ResponseReply) -> list[dict]:
    compacted = [reply.compaction] if reply.compaction is not None else []
    return compacted + _answer_items(reply)


def _answer_items(reply: ResponseReply) -> list[dict]:
    choice = reply.reply.answer.choices[0]
    if choice.tool_calls:
        return [
            {
                "id": item_id("fc_"),
                "type": "function_call",
                "status": "completed",
                "arguments": call.arguments,
                "call_id": call.id,
                "name": call.name,
            }
            for call in choice.tool_calls
        ]
    return [_message(item_id("msg_"), "completed", [_part(choice.text.text())])]


INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}  # finish -> incomplete reason


class _MessageEvent:
    """An event about a message item (:func:`_answer_items`' shape), as ``compact`` writes its dict, filled in:
    a small dict's encoding costs more to set up than to run, and a stream has five of them. The text, which
    three of them carry, is the reply's JSON already (:func:`app.render.json_text`), not encoded three times."""

    def __init__(self, kind: str, **fields):
        self.head = b"event: " + kind.encode() + b"\ndata: "
        self.template = PrettyTemplate({"type": kind, "sequence_number": "@sequence@", **fields}, dump=compact_text)

    def render(self, **values) -> bytes:
        return self.head + self.template.render(**values).encode() + b"\n\n"


def _part(text: str) -> dict:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message(message_id: str, status: str, content: list) -> dict:
    return {"id": message_id, "type": "message", "status": status, "content": content, "role": "assistant"}


_IN_ITEM = {"item_id": "@id@", "output_index": "@index@", "content_index": 0}
_MESSAGE_ADDED = _MessageEvent(
    "response.output_item.added", output_index="@index@", item=_message("@id@", "in_progress", [])
)
_PART_ADDED = _MessageEvent("response.content_part.added", **_IN_ITEM, part=_part(""))
_TEXT_DONE = _MessageEvent("response.output_text.done", **_IN_ITEM, text="@text@", logprobs=[])
_PART_DONE = _MessageEvent("response.content_part.done", **_IN_ITEM, part=_part("@text@"))
_MESSAGE_DONE = _MessageEvent(
    "response.output_item.done", output_index="@index@", item=_message("@id@", "completed", [_part("@text@")])
)


def response_object(reply: ResponseReply, output: list, status: str) -> dict:
    """The ``response`` object in the real API's field order, echoing the request's settings."""
    body, inner = reply.request, reply.reply
    answer = inner.answer
    done = status == "completed"
    finish = answer.choices[0].finish_reason
    cut = finish in INCOMPLETE and done
    text = {"format": (body.get("text") or {}).get("format") or {"type": "text"}}
    text["verbosity"] = (body.get("text") or {}).get("verbosity") or "medium"
    return {
        "id": reply.response_id,
        "object": "response",
        "created_at": reply.created_at,
        "status": "incomplete" if cut else status,
        "background": bool(body.get("background")),
        "completed_at": int(time.time()) if done else None,
        "error": None,
        "incomplete_details": {"reason": INCOMPLETE[finish]} if cut else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": inner.model,
        "output": output,
        "parallel_tool_calls": _given(body, "parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": inner.service_tier,
        "store": _given(body, "store", True),
        "temperature": _given(body, "temperature", 1.0),
        "text": text,
        "tool_choice": _given(body, "tool_choice", "auto"),
        "tools": [_tool(t) for t in body.get("tools") or []],
        "top_logprobs": _given(body, "top_logprobs", 0),
        "top_p": _given(body, "top_p", 1.0),
        "truncation": _given(body, "truncation", "disabled"),
        "usage": _usage(inner.prompt_tokens, answer.completion_tokens, inner.cached_tokens) if done or cut else None,
        # "user" (deprecated) only when sent: the spec does not allow the null the real API writes
        **({"user": body["user"]} if body.get("user") is not None else {}),
        "metadata": body.get("metadata") or {},
    }


def _given(body: dict, key: str, default):
    """The request's setting, or the default the real API echoes when it was left out or sent as null."""
    value = body.get(key)
    return default if value is None else value


def _tool(tool: dict) -> dict:
    if tool.get("type") != "function":
        return tool
    return {
        "type": "function",
        "description": tool.get("description"),
        "name": tool["name"],
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict", True),
    }


def _usage(input_tokens: int, output_tokens: int, cached_tokens: int) -> dict:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


_TEXT_DELTA = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'


class ResponsesRenderer:
    def __init__(self, pads: list[str]):
        self.pads = pads  # obfuscation pads, drawn once (see app.render.TokenChunks)
        # What follows a text delta's token, with and without its pad: a stream's deltas are its bytes
        # joined, not each a dict encoded (four fifths of a stream's time, when they were). Tables that the
        # journal's recipes name (app.streaming.recipes), as it names the corpus's tokens.
        self.delta_ends = {
            True: EventTable(
                b',"logprobs":[],"obfuscation":' + encode_basestring(pad).encode() + b"}\n\n" for pad in pads
            ),
            False: EventTable([b',"logprobs":[]}\n\n']),
        }

    def body(self, reply: ResponseReply) -> str:
        completed = response_object(reply, output_items(reply), reply.status)
        if reply.on_done is not None:
            reply.on_done(completed)
        return pretty(completed)

    def stream(self, reply: ResponseReply):
        """``(head, event_at, count, tail)``: step ``k`` is the ``k``-th token's delta (with the events
        that open or close an output item around it)."""
        final_items = output_items(reply)
        counter = iter(range(1 << 62))
        obfuscate = reply.reply.include_obfuscation
        pads = self.pads

        def event(kind: str, **data) -> bytes:
            payload = {"type": kind, "sequence_number": next(counter), **data}
            return b"event: " + kind.encode() + b"\ndata: " + compact(payload) + b"\n\n"

        def in_progress(call: dict) -> dict:
            return dict(call, status="in_progress", arguments="")

        def with_response(kind: str, encoded: bytes) -> bytes:
            """``event(kind, response=...)`` with the response already encoded."""
            sequence = b"%d" % next(counter)
            data = b'{"type":"%s","sequence_number":%s,"response":%s}' % (kind.encode(), sequence, encoded)
            return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

        opened = compact(response_object(reply, [], "in_progress"))  # the same response, twice
        head = with_response("response.created", opened) + with_response("response.in_progress", opened)
        steps: list[bytes] = []
        pending = b""  # events that go out with the next token (an item's opening)
        choice = reply.reply.answer.choices[0]
        calls = 0  # the function calls so far: the k-th call item streams the k-th tool call's tokens
        # The usual answer, one message and nothing else: its opening events go with the head and its closing
        # ones with the tail, the same bytes in the same writes, so that every step is one event and the writer
        # counts the events it sent (PacedEvents.events_sent), not the journal a scan of the stream's bytes.
        streamed = [item for item in final_items if item["type"] != "compaction"]
        lone_message = len(streamed) == 1 and streamed[0]["type"] == "message" and choice.text.count > 0
        closed = b""  # the lone message's closing events
        for index, item in enumerate(final_items):
            if item["type"] == "compaction":  # done before the answer starts: it comes whole
                head += event("response.output_item.added", output_index=index, item=item)
                head += event("response.output_item.done", output_index=index, item=item)
                continue
            if item["type"] == "message":
                opening = _MESSAGE_ADDED.render(sequence=next(counter), index=index, id=item["id"])
                opening += _PART_ADDED.render(sequence=next(counter), index=index, id=item["id"])
                # compact({"type", "sequence_number", "item_id", "output_index", "content_index", "delta",
                # "logprobs", "obfuscation"}) as an event: the token's JSON is the reply's own
                middle = b',"item_id":%s,"output_index":%d,"content_index":0,"delta":' % (
                    encode_basestring(item["id"]).encode(),
                    index,
                )
                pending += opening
                if lone_message:
                    head, pending = head + pending, b""
                if choice.text.count:
                    first, text = next(counter), choice.text
                    deltas = NumberedEvents(
                        _TEXT_DELTA, first, middle, text.json_tokens, text.start, text.count, self.delta_ends[obfuscate]
                    )
                    counter = iter(range(first + len(deltas), 1 << 62))  # (the deltas took the numbers between)
                    if lone_message:
                        event_at = deltas  # (the stream is these events, told by their parts: app.streaming.recipes)
                    elif pending:
                        deltas[0] = pending + deltas[0]
                    steps += deltas
                    pending = b""
            else:
                pending += event("response.output_item.added", output_index=index, item=in_progress(item))
                for k, token in enumerate(choice.tool_calls[calls].tokens):
                    data = {"item_id": item["id"], "output_index": index, "delta": token}
                    if obfuscate:
                        data["obfuscation"] = pads[k % len(pads)]
                    steps.append(pending + event("response.function_call_arguments.delta", **data))
                    pending = b""
                calls += 1
            if item["type"] == "message":
                filled = {"index": index, "id": item["id"], "text": json_text(choice.text)}
                closing = _TEXT_DONE.render(sequence=next(counter), **filled)
                closing += _PART_DONE.render(sequence=next(counter), **filled)
                closing += _MESSAGE_DONE.render(sequence=next(counter), **filled)
            else:
                closing = event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
                closing += event("response.output_item.done", output_index=index, item=item)
            if lone_message:
                closed = closing
            elif steps:
                steps[-1] += pending + closing
            else:
                head += pending + closing
            pending = b""
        completed = response_object(reply, final_items, "completed")
        if reply.on_done is not None:
            reply.on_done(completed)
        kind = "response.incomplete" if completed["status"] == "incomplete" else "response.completed"
        tail = closed + with_response(kind, compact(completed))
        return head, event_at if lone_message else steps.__getitem__, len(steps), tail
