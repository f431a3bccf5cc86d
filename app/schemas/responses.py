"""``POST /v1/responses``: CreateResponse, and how its input becomes the conversation a reply is composed for.

:func:`as_chat` turns a Responses request (``instructions``, ``input`` items, flat function tools,
``text.format``) into the chat body that :mod:`app.replies` composes for, so both APIs answer alike.
"""

from __future__ import annotations

from app.render.compaction import opened
from app.schemas.chat import FUNCTION_DEFINITION, NAME_PATTERN
from app.schemas.fields import (
    METADATA,
    AnyOf,
    ApiField,
    ApiSchema,
    Arr,
    Bool,
    Int,
    Invalid,
    Number,
    Obj,
    Str,
    Tagged,
)

INPUT_PART = Tagged(
    {
        "input_text": Obj({"text": Str(nullable=False)}, required=("text",)),
        "output_text": Obj({"text": Str(nullable=False)}, required=("text",)),
        "input_image": Obj({"image_url": Str(), "file_id": Str(), "detail": Str(choices=("auto", "low", "high"))}),
        "input_file": Obj({"file_id": Str(), "file_data": Str(), "filename": Str(), "file_url": Str()}),
        "input_audio": Obj({"input_audio": Obj()}, required=("input_audio",)),
        "refusal": Obj({"refusal": Str(nullable=False)}, required=("refusal",)),
    },
    nullable=False,
)
MESSAGE = Obj(
    {
        "role": Str(choices=("user", "assistant", "system", "developer"), nullable=False),
        "content": AnyOf(Str(), Arr(INPUT_PART), expected="one of a string or array of objects", nullable=False),
    },
    required=("role", "content"),
)
ITEM = Tagged(
    {
        "message": MESSAGE,
        "function_call": Obj(
            {"call_id": Str(nullable=False), "name": Str(nullable=False), "arguments": Str(nullable=False)},
            required=("call_id", "name", "arguments"),
        ),
        "function_call_output": Obj(
            {"call_id": Str(nullable=False), "output": AnyOf(Str(), Arr(Obj()), expected="a string", nullable=False)},
            required=("call_id", "output"),
        ),
        "item_reference": Obj({"id": Str(nullable=False)}, required=("id",)),
        "reasoning": Obj(),
        # what POST /v1/responses/compact made of a conversation, given back as the context it stands for
        "compaction": Obj(
            {"id": Str(), "encrypted_content": Str(nullable=False), "created_by": Str()},
            required=("encrypted_content",),
        ),
    },
    nullable=False,
)


class _Item(Obj):
    """An input item; a message may leave out ``"type": "message"`` (EasyInputMessage)."""

    def __init__(self):
        super().__init__(nullable=False)

    def check_value(self, value, path):
        if "type" not in value:
            MESSAGE.check(value, path)
        else:
            ITEM.check(value, path)


INPUT = AnyOf(Str(), Arr(_Item()), expected="one of a string or array of objects")
TOOL = Tagged(
    {
        "function": Obj(FUNCTION_DEFINITION, required=("name",)),
        # built-in tools are accepted and never called (see the README)
        **{name: Obj() for name in ("web_search", "web_search_preview", "file_search", "code_interpreter", "mcp")},
    },
    nullable=False,
)
TOOL_CHOICE = AnyOf(
    Str(choices=("none", "auto", "required")),
    Obj({"type": Str(nullable=False), "name": Str()}, required=("type",)),
    expected="one of a string or object",
)
FORMAT = Tagged(
    {
        "text": Obj(),
        "json_object": Obj(),
        "json_schema": Obj(
            {"name": Str(pattern=NAME_PATTERN, nullable=False), "schema": Obj(nullable=False), "strict": Bool()},
            required=("name", "schema"),
        ),
    }
)


SERVICE_TIER = Str(choices=("auto", "default", "fast", "flex", "scale", "priority"))
PROMPT_CACHE_OPTIONS = Obj({"mode": Str(choices=("implicit", "explicit")), "ttl": Str(choices=("30m",))})
IMAGE = Obj({"context_compression": Str(choices=("auto", "enabled", "disabled"))})
# Compaction on the server's side: when the input passes compact_threshold tokens, the response compacts it.
CONTEXT_MANAGEMENT = Arr(
    Obj(
        {"type": Str(choices=("compaction",), nullable=False), "compact_threshold": Int(minimum=1000)},
        required=("type",),
        nullable=False,
    ),
    min_items=1,
)


class CreateResponseSchema(ApiSchema):
    model = ApiField(Str(nullable=False))
    input = ApiField(INPUT)
    instructions = ApiField(Str())
    previous_response_id = ApiField(Str())
    conversation = ApiField(AnyOf(Str(), Obj(), expected="one of a string or object"))
    max_output_tokens = ApiField(Int(minimum=16))
    max_tool_calls = ApiField(Int(minimum=0))  # the spec sets no minimum; 0 allows no built-in tool call
    temperature = ApiField(Number(minimum=0, maximum=2))
    top_p = ApiField(Number(minimum=0, maximum=1))
    top_logprobs = ApiField(Int(minimum=0, maximum=20))
    tools = ApiField(Arr(TOOL))
    tool_choice = ApiField(TOOL_CHOICE)
    parallel_tool_calls = ApiField(Bool())
    text = ApiField(Obj({"format": FORMAT, "verbosity": Str(choices=("low", "medium", "high"))}))
    reasoning = ApiField(Obj({"effort": Str(choices=("none", "minimal", "low", "medium", "high", "xhigh"))}))
    store = ApiField(Bool())
    stream = ApiField(Bool())
    stream_options = ApiField(Obj({"include_obfuscation": Bool()}))
    background = ApiField(Bool())
    metadata = ApiField(METADATA)
    user = ApiField(Str())
    safety_identifier = ApiField(Str(max_length=64))
    prompt_cache_key = ApiField(Str())
    prompt_cache_retention = ApiField(Str(choices=("in_memory", "24h")))
    prompt_cache_options = ApiField(PROMPT_CACHE_OPTIONS)
    service_tier = ApiField(SERVICE_TIER)
    truncation = ApiField(Str(choices=("auto", "disabled")))
    include = ApiField(Arr(Str()))
    prompt = ApiField(Obj())
    context_management = ApiField(CONTEXT_MANAGEMENT)
    image = ApiField(IMAGE)
    moderation = ApiField(Obj())
    background_options = ApiField(Obj({"completion_window": Str(), "continuation_id": Str()}))
    access_programs = ApiField(Obj())


class CompactResponseSchema(ApiSchema):
    """``POST /v1/responses/compact``: a conversation (``input``, or ``previous_response_id``) to compact."""

    model = ApiField(Str())
    input = ApiField(INPUT)
    instructions = ApiField(Str())
    previous_response_id = ApiField(Str())
    prompt_cache_key = ApiField(Str(max_length=64))
    prompt_cache_retention = ApiField(Str(choices=("in_memory", "24h")))
    prompt_cache_options = ApiField(PROMPT_CACHE_OPTIONS)
    service_tier = ApiField(SERVICE_TIER)
    image = ApiField(IMAGE)


def check_response_request(body: dict) -> None:
    if body.get("background") and body.get("store") is False:
        raise Invalid("Background mode requires 'store' to be true.", "background", None)
    if body.get("previous_response_id") and body.get("conversation"):
        raise Invalid(
            "Cannot use both 'previous_response_id' and 'conversation' parameters.", "previous_response_id", None
        )


def input_items(value) -> list[dict]:
    """The input as items: a string is one user message."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return [{"type": "message", **item} if "type" not in item else item for item in value]


def as_chat(body: dict, history: list[dict]) -> dict:
    """The chat body a reply is composed for: ``history`` (earlier items of the conversation, from
    ``previous_response_id``), then ``instructions`` as the system prompt and this request's input."""
    messages = [{"role": "system", "content": body["instructions"]}] if body.get("instructions") else []
    for item in [*history, *input_items(body.get("input"))]:
        kind = item.get("type")
        if kind == "message":
            messages.append({"role": item["role"], "content": _chat_content(item["content"])})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            if messages and messages[-1]["role"] == "assistant" and messages[-1].get("tool_calls"):
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": _text_of(output)})
        elif kind == "compaction":
            # What came before it is pruned to the instructions and what the user said (as the compact
            # endpoint's output keeps them), and the rest is read back from the compaction: its summary.
            messages = [m for m in messages if m["role"] in ("system", "developer", "user")]
            messages.append({"role": "assistant", "content": opened(item["encrypted_content"])})
    chat = {"messages": messages or [{"role": "user", "content": ""}]}
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    if tools:
        chat["tools"] = [
            {"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters") if k in t}}
            for t in tools
        ]
        choice = body.get("tool_choice", "auto")
        if isinstance(choice, dict):
            choice = {"type": "function", "function": {"name": choice.get("name")}}
        chat["tool_choice"] = choice
        chat["parallel_tool_calls"] = body.get("parallel_tool_calls", True)
    text_format = (body.get("text") or {}).get("format") or {}
    if text_format.get("type") == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": text_format}
    elif text_format.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    for key in ("temperature", "top_p", "metadata", "user", "prompt_cache_key", "prompt_cache_retention",
                "prompt_cache_options"):  # fmt: skip
        if key in body:
            chat[key] = body[key]
    return chat


def _chat_content(content):
    """Input parts as chat parts: text stays text, an ``input_image`` becomes an ``image_url`` part (so it is
    counted as an image)."""
    if not isinstance(content, list):
        return content
    parts = []
    for part in content:
        if part.get("type") == "input_image":
            parts.append(
                {"type": "image_url", "image_url": {"url": part.get("image_url") or "", "detail": part.get("detail")}}
            )
        elif isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
    return parts


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""
