"""``POST /v1/chat/completions``: CreateChatCompletionRequest, as strictly as the real API checks it.

Types and shapes (content parts by role, tools, tool calls, response formats) are checked in every mode.
What only the real API's strict reading refuses (a ``tool`` message that answers nothing, ``json_object``
without the word "json") is checked by :func:`check_conversation`, which ``--lenient`` skips.
"""

from __future__ import annotations

from app.schemas.fields import (
    METADATA,
    AnyOf,
    ApiField,
    Arr,
    Bool,
    Int,
    Invalid,
    Obj,
    RequestSchema,
    Str,
    Tagged,
)

NAME_PATTERN = r"^[a-zA-Z0-9_-]+$"

TEXT_PART = Obj({"text": Str(nullable=False)}, required=("text",))
PARTS = {
    "text": TEXT_PART,
    "image_url": Obj(
        {
            "image_url": Obj(
                {"url": Str(nullable=False), "detail": Str(choices=("auto", "low", "high"))},
                required=("url",),
                nullable=False,
            )
        },
        required=("image_url",),
    ),
    "input_audio": Obj(
        {
            "input_audio": Obj(
                {"data": Str(nullable=False), "format": Str(choices=("wav", "mp3"), nullable=False)},
                required=("data", "format"),
                nullable=False,
            )
        },
        required=("input_audio",),
    ),
    "file": Obj(
        {"file": Obj({"file_data": Str(), "file_id": Str(), "filename": Str()}, nullable=False)},
        required=("file",),
    ),
    "refusal": Obj({"refusal": Str(nullable=False)}, required=("refusal",)),
}


def _content(*types: str) -> AnyOf:
    parts = Tagged({t: PARTS[t] for t in types}, nullable=False)
    return AnyOf(Str(), Arr(parts), expected="one of a string or array of objects")


CONTENT_BY_ROLE = {
    "user": _content("text", "image_url", "input_audio", "file"),
    "system": _content("text"),
    "developer": _content("text"),
    "assistant": _content("text", "refusal"),
    "tool": _content("text"),
    "function": AnyOf(Str(), expected="a string"),
}
FUNCTION = Obj({"name": Str(nullable=False), "arguments": Str(nullable=False)}, required=("name", "arguments"))
TOOL_CALL = Tagged(
    {
        "function": Obj({"id": Str(nullable=False), "function": FUNCTION}, required=("id", "function")),
        "custom": Obj(
            {"id": Str(nullable=False), "custom": Obj({"name": Str(), "input": Str()}, required=("name", "input"))},
            required=("id", "custom"),
        ),
    },
    nullable=False,
)


class Message(Obj):
    """A chat message: a known role, content parts that role may send, and what a role requires."""

    ROLES = tuple(CONTENT_BY_ROLE)

    def __init__(self):
        super().__init__(
            props={
                "role": Str(choices=("system", "assistant", "user", "function", "tool", "developer"), nullable=False),
                "name": Str(),
                "tool_calls": Arr(TOOL_CALL),
                "tool_call_id": Str(),
                "function_call": Obj(),
                "refusal": Str(),
                "audio": Obj(),
            },
            required=("role",),
            nullable=False,
        )

    # What each role must send besides its role.
    NEEDS = {role: ("content",) for role in ROLES} | {
        "assistant": (),
        "tool": ("content", "tool_call_id"),
        "function": ("content", "name"),
    }

    def check_value(self, value, path):
        super().check_value(value, path)
        role = value["role"]
        for key in self.NEEDS[role]:
            if key not in value:
                name = f"{path}.{key}"
                raise Invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
        if "content" in value:
            CONTENT_BY_ROLE[role].check(value["content"], f"{path}.content")


# A function tool's definition: chat nests it under "function", the Responses API has it flat.
FUNCTION_DEFINITION = {
    "name": Str(pattern=NAME_PATTERN, max_length=64, nullable=False),
    "description": Str(),
    "parameters": Obj(),
    "strict": Bool(),
}
TOOL = Tagged(
    {
        "function": Obj(
            {"function": Obj(FUNCTION_DEFINITION, required=("name",), nullable=False)},
            required=("function",),
        ),
        "custom": Obj({"custom": Obj({"name": Str(nullable=False)}, required=("name",))}, required=("custom",)),
    },
    nullable=False,
)
NAMED = Obj({"name": Str(nullable=False)}, required=("name",), nullable=False)
TOOL_CHOICE = AnyOf(
    Str(choices=("none", "auto", "required")),
    Tagged(
        {
            "function": Obj({"function": NAMED}, required=("function",)),
            "custom": Obj({"custom": NAMED}, required=("custom",)),
            "allowed_tools": Obj(
                {"allowed_tools": Obj({"mode": Str(choices=("auto", "required")), "tools": Arr(Obj())})},
                required=("allowed_tools",),
            ),
        }
    ),
    expected="one of a string or object",
)
FUNCTION_CALL = AnyOf(Str(choices=("none", "auto")), NAMED, expected="one of a string or object")
JSON_SCHEMA = Obj(
    {
        "name": Str(pattern=NAME_PATTERN, max_length=64, nullable=False),
        "description": Str(),
        "schema": Obj(),
        "strict": Bool(),
    },
    required=("name",),
    nullable=False,
)
RESPONSE_FORMAT = Tagged(
    {"text": Obj(), "json_object": Obj(), "json_schema": Obj({"json_schema": JSON_SCHEMA}, required=("json_schema",))}
)


class ChatCompletionRequestSchema(RequestSchema):
    """``POST /v1/chat/completions``: CreateChatCompletionRequest."""

    messages = ApiField(Arr(Message(), min_items=1, nullable=False))
    max_completion_tokens = ApiField(Int(minimum=1))
    metadata = ApiField(METADATA)
    top_logprobs = ApiField(Int(minimum=0, maximum=20))
    logprobs = ApiField(Bool())
    safety_identifier = ApiField(Str(max_length=64))
    prompt_cache_key = ApiField(Str())
    prompt_cache_retention = ApiField(Str(choices=("in_memory", "24h")))
    prompt_cache_options = ApiField(Obj())
    service_tier = ApiField(Str(choices=("auto", "default", "flex", "scale", "priority", "fast")))
    modalities = ApiField(Arr(Str(choices=("text", "audio"))))
    verbosity = ApiField(Str(choices=("low", "medium", "high")))
    reasoning_effort = ApiField(Str(choices=("none", "minimal", "low", "medium", "high", "xhigh")))
    web_search_options = ApiField(Obj())
    response_format = ApiField(RESPONSE_FORMAT)
    audio = ApiField(Obj(required=("voice", "format")))
    store = ApiField(Bool())
    moderation = ApiField(Obj())
    prediction = ApiField(Obj({"type": Str(choices=("content",))}, required=("type", "content")))
    tools = ApiField(Arr(TOOL, max_items=128))
    tool_choice = ApiField(TOOL_CHOICE)
    parallel_tool_calls = ApiField(Bool())
    function_call = ApiField(FUNCTION_CALL)
    functions = ApiField(Arr(Obj({"name": Str(pattern=NAME_PATTERN)}, required=("name",)), min_items=1, max_items=128))


def check_conversation(body: dict) -> None:
    """What the real API refuses about a well-typed request as a whole; raises :class:`Invalid`."""
    messages = body["messages"]
    answered: set[str] | None = None  # tool_call_ids the last assistant message asked for, still unanswered
    asked_at = 0
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            if answered is None:
                raise Invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    "'tool_calls'.",
                    f"messages.[{index}].role",
                    None,
                )
            answered.discard(message.get("tool_call_id"))
            continue
        if answered:
            _unanswered(answered, asked_at)
        answered = None
        if role == "assistant" and message.get("tool_calls"):
            answered, asked_at = {call.get("id") for call in message["tool_calls"]}, index
    if answered:
        _unanswered(answered, asked_at)
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if choice is not None and not tools:
        raise Invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
            None,
        )
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice["function"]["name"]
        if name not in {t["function"]["name"] for t in tools if t.get("type") == "function"}:
            raise Invalid(
                f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.", "tool_choice", None
            )
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object" and "json" not in _all_text(messages).lower():
        raise Invalid(
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            "messages",
            None,
        )
    if body.get("top_logprobs") is not None and not body.get("logprobs"):
        raise Invalid("Invalid value: 'top_logprobs' is only allowed when 'logprobs' is true.", "top_logprobs", None)


def _unanswered(ids: set, index: int) -> None:
    raise Invalid(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(sorted(ids))}",
        f"messages.[{index}].role",
        None,
    )


def _all_text(messages: list) -> str:
    texts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return " ".join(t for t in texts if isinstance(t, str))
