"""What the Messages API accepts, refused in its own words, and the neutral request it becomes.

Anthropic validates with pydantic and names the first failing field by its dotted path:
``max_tokens: Field required``, ``messages.0.role: Input should be 'user' or 'assistant'``,
``temperature: Input should be less than or equal to 1``. The checks here are declared per object (its
fields, which are required, the check of each) and report the same way. A valid body is then written in the
chat-completions shape the core reads (:func:`neutral_body`): system and messages, tool use and results as
tool calls and tool messages, tools as functions, ``tool_choice``, ``stop_sequences`` as ``stop`` and
``output_config.format`` as a JSON schema response format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextvars import ContextVar

from app.errors import OpenAIError
from app.schemas import CompletionRequest


class Invalid(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)


# --- value checks: each takes (value, path) and raises Invalid ------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(low: int | None = None, high: int | None = None) -> Callable:
    def check(value, path):
        if not _is_int(value):
            raise Invalid(path, "Input should be a valid integer")
        if low is not None and value < low:
            raise Invalid(path, f"Input should be greater than or equal to {low}")
        if high is not None and value > high:
            raise Invalid(path, f"Input should be less than or equal to {high}")

    return check


def number(low: float, high: float) -> Callable:
    def check(value, path):
        if not (isinstance(value, int | float) and not isinstance(value, bool)):
            raise Invalid(path, "Input should be a valid number")
        if value < low:
            raise Invalid(path, f"Input should be greater than or equal to {low:g}")
        if value > high:
            raise Invalid(path, f"Input should be less than or equal to {high:g}")

    return check


def string(value, path):
    if not isinstance(value, str):
        raise Invalid(path, "Input should be a valid string")


def boolean(value, path):
    if not isinstance(value, bool):
        raise Invalid(path, "Input should be a valid boolean")


def anything(value, path):
    pass


def dictionary(value, path):
    if not isinstance(value, dict):
        raise Invalid(path, "Input should be a valid dictionary")


def literal(*choices: str) -> Callable:
    quoted = [f"'{c}'" for c in choices]
    expected = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]

    def check(value, path):
        if value not in choices:
            raise Invalid(path, f"Input should be {expected}")

    return check


def list_of(item: Callable, min_length: int = 0, too_short: str = "") -> Callable:
    def check(value, path):
        if not isinstance(value, list):
            raise Invalid(path, "Input should be a valid list")
        if len(value) < min_length:
            raise Invalid(path, too_short or f"List should have at least {min_length} item after validation")
        for index, element in enumerate(value):
            item(element, f"{path}.{index}")

    return check


def obj(fields: dict[str, Callable], required: tuple[str, ...] = (), open_: bool = False) -> Callable:
    """An object with these fields; ``open_`` ones take unknown fields (server tools, future blocks)."""

    def check(value, path):
        dictionary(value, path)
        for name in required:
            if name not in value:
                raise Invalid(_join(path, name), "Field required")
        for name, field_value in value.items():
            field_check = fields.get(name)
            if field_check is None:
                if not open_ and STRICT.get():
                    raise Invalid(_join(path, name), "Extra inputs are not permitted")
                continue
            field_check(field_value, _join(path, name))

    return check


def tagged(variants: dict[str, Callable], open_: bool = False) -> Callable:
    """A union told apart by its ``type``, as pydantic words a wrong or missing tag."""
    tags = ", ".join(f"'{t}'" for t in variants)

    def check(value, path):
        dictionary(value, path)
        tag = value.get("type")
        if tag is None:
            raise Invalid(path, "Unable to extract tag using discriminator 'type'")
        variant = variants.get(tag)
        if variant is None:
            if open_:
                return
            raise Invalid(path, f"Input tag '{tag}' found using 'type' does not match any of the expected tags: {tags}")
        variant(value, f"{path}.{tag}")  # pydantic names the variant in the path: thinking.enabled.budget_tokens

    return check


def either(*checks: Callable) -> Callable:
    """The first check that passes; the last one's complaint otherwise."""

    def check(value, path):
        for candidate in checks[:-1]:
            try:
                candidate(value, path)
                return
            except Invalid:
                continue
        checks[-1](value, path)

    return check


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def nullable(inner: Callable) -> Callable:
    def check(value, path):
        if value is not None:
            inner(value, path)

    return check


STRICT = ContextVar("anthropic_strict", default=True)  # lenient mode (--lenient) lets unknown fields through

# --- the Messages API's objects --------------------------------------------------------------------------

CACHE_CONTROL = obj({"type": literal("ephemeral"), "ttl": literal("5m", "1h")}, ("type",))
SOURCE = obj(
    {"type": string, "media_type": string, "data": string, "url": string, "file_id": string, "content": anything},
    ("type",),
    open_=True,
)
_COMMON = {"cache_control": nullable(CACHE_CONTROL)}
TEXT = obj({"type": string, "text": string, "citations": anything, **_COMMON}, ("text",))
IMAGE = obj({"type": string, "source": SOURCE, **_COMMON}, ("source",))
DOCUMENT = obj(
    {"type": string, "source": SOURCE, "title": anything, "context": anything, "citations": anything, **_COMMON},
    ("source",),
)
TOOL_USE = obj(
    {"type": string, "id": string, "name": string, "input": dictionary, "caller": anything, **_COMMON},
    ("id", "name", "input"),
)
TOOL_RESULT = obj(
    {
        "type": string,
        "tool_use_id": string,
        "content": either(string, list_of(tagged({"text": TEXT, "image": IMAGE, "document": DOCUMENT}, open_=True))),
        "is_error": boolean,
        **_COMMON,
    },
    ("tool_use_id",),
)
THINKING = obj({"type": string, "thinking": string, "signature": string}, ("thinking", "signature"))
REDACTED_THINKING = obj({"type": string, "data": string}, ("data",))
BLOCKS = {
    "text": TEXT,
    "image": IMAGE,
    "document": DOCUMENT,
    "tool_use": TOOL_USE,
    "tool_result": TOOL_RESULT,
    "thinking": THINKING,
    "redacted_thinking": REDACTED_THINKING,
    # Blocks of Anthropic's server tools and search results, passed back as they came: taken as they are.
    **{
        kind: obj({"type": string}, open_=True)
        for kind in (
            "search_result",
            "server_tool_use",
            "web_search_tool_result",
            "web_fetch_tool_result",
            "code_execution_tool_result",
            "bash_code_execution_tool_result",
            "text_editor_code_execution_tool_result",
            "mcp_tool_use",
            "mcp_tool_result",
            "container_upload",
        )
    },
}
MESSAGE = obj(
    {"role": literal("user", "assistant"), "content": either(string, list_of(tagged(BLOCKS)))},
    ("role", "content"),
)
CUSTOM_TOOL = obj(
    {
        "type": literal("custom"),
        "name": string,
        "description": string,
        "input_schema": obj({"type": literal("object")}, ("type",), open_=True),
        "strict": boolean,
        **_COMMON,
    },
    ("name", "input_schema"),
    open_=True,
)


def tool(value, path):
    """A custom tool (``type`` absent or ``custom``), or one of Anthropic's server tools (``web_search_...``)."""
    dictionary(value, path)
    if value.get("type") in (None, "custom"):
        CUSTOM_TOOL(value, path)
    else:
        obj({"type": string, "name": string}, ("name",), open_=True)(value, path)


TOOL_CHOICE = tagged(
    {
        "auto": obj({"type": string, "disable_parallel_tool_use": boolean}),
        "any": obj({"type": string, "disable_parallel_tool_use": boolean}),
        "tool": obj({"type": string, "name": string, "disable_parallel_tool_use": boolean}, ("name",)),
        "none": obj({"type": string}),
    }
)
THINKING_CONFIG = tagged(
    {
        "enabled": obj(
            {"type": string, "budget_tokens": integer(1024), "display": literal("summarized", "omitted")},
            ("budget_tokens",),
        ),
        "adaptive": obj({"type": string, "display": literal("summarized", "omitted")}),
        "disabled": obj({"type": string}),
    }
)
OUTPUT_CONFIG = obj(
    {
        "effort": literal("low", "medium", "high", "xhigh", "max"),
        "format": obj({"type": literal("json_schema"), "schema": dictionary}, ("type", "schema")),
    }
)
SYSTEM = either(
    string, list_of(obj({"type": literal("text"), "text": string, "citations": anything, **_COMMON}, ("type", "text")))
)
COUNTED = {  # what count_tokens takes
    "model": string,
    "messages": list_of(MESSAGE),
    "system": SYSTEM,
    "tools": list_of(tool),
    "tool_choice": TOOL_CHOICE,
    "thinking": THINKING_CONFIG,
    "output_config": OUTPUT_CONFIG,
    "mcp_servers": anything,
    "context_management": anything,
    "cache_control": CACHE_CONTROL,
}
MESSAGES_REQUEST = obj(
    {
        **COUNTED,
        "max_tokens": integer(1),
        "stop_sequences": list_of(string),
        "stream": boolean,
        "temperature": number(0, 1),
        "top_p": number(0, 1),
        "top_k": integer(0),
        "metadata": obj({"user_id": nullable(string)}),
        "service_tier": literal("auto", "standard_only"),
        "container": anything,
        "inference_geo": anything,
        "speed": literal("standard", "fast"),
        "diagnostics": anything,
    },
    ("max_tokens", "messages", "model"),
)
COUNT_TOKENS_REQUEST = obj(COUNTED, ("messages", "model"))


def invalid(message: str, status: int = 400) -> OpenAIError:
    return OpenAIError(status, message, "invalid_request_error")


def check(schema: Callable, body, strict: bool) -> None:
    """Raise the 400 Anthropic sends for the first problem of ``body``."""
    if not isinstance(body, dict):
        raise invalid("Input should be a valid dictionary")
    reset = STRICT.set(strict)
    if not strict:  # lenient: the required fields may be missing too
        body = {"max_tokens": 1, "messages": [], "model": "", **body}
    try:
        schema(body, "")
    except Invalid as exc:
        raise invalid(str(exc)) from None
    finally:
        STRICT.reset(reset)


def parse(body, strict: bool) -> CompletionRequest:
    """A valid Messages request as the neutral request (``max_tokens`` a ceiling, as Anthropic's is)."""
    check(MESSAGES_REQUEST, body, strict)
    if strict:
        check_whole(body)
    thinking = body.get("thinking") or {}
    budget = 0
    if thinking.get("type") == "enabled":
        budget = thinking["budget_tokens"]
    elif thinking.get("type") == "adaptive":
        budget = body.get("max_tokens", 0) // 4  # it decides how much to think: here a quarter of what it may
    return CompletionRequest(
        model=body.get("model"),
        stream=bool(body.get("stream")),
        include_usage=True,
        include_obfuscation=False,
        max_tokens=body.get("max_tokens"),
        max_tokens_param="max_tokens",
        temperature=body.get("temperature"),
        body=neutral_body(body),
        fills_max_tokens=False,
        reasoning_budget=budget,
    )


def check_whole(body: dict) -> None:
    """What Anthropic refuses about a request as a whole, once each field is well-typed."""
    if not body["messages"]:
        raise invalid("messages: at least one message is required")
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        if body["max_tokens"] <= thinking["budget_tokens"]:
            raise invalid(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
                "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
            )
        if body.get("temperature") not in (None, 1):
            raise invalid(
                "`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at "
                "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility"
            )
        if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
            raise invalid(
                "Thinking may not be enabled when tool_choice forces tool use.",
            )
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        names = [t.get("name") for t in body.get("tools") or ()]
        if choice["name"] not in names:
            raise invalid(f"Tool '{choice['name']}' not found in provided tools")
    elif choice and choice.get("type") != "none" and not body.get("tools"):
        raise invalid("tool_choice may only be specified while providing tools.")


def text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text")


def neutral_body(body: dict) -> dict:
    """The request in the chat-completions shape the core reads."""
    messages = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": text_of(system)})
    for message in body.get("messages") or ():
        content, role = message.get("content"), message.get("role")
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
            continue
        blocks = [b for b in content or () if isinstance(b, dict)]
        for block in blocks:
            if block.get("type") == "tool_result":
                result = block.get("content")
                messages.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text_of(result)})
        calls = [
            {
                "id": b.get("id"),
                "type": "function",
                "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})},
            }
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        parts = [
            {"type": "text", "text": b["text"]} if b.get("type") == "text" else {"type": b.get("type")}
            for b in blocks
            if b.get("type") in ("text", "image", "document")
        ]
        if parts or calls or not blocks:
            neutral = {"role": role, "content": parts or ("" if not calls else None)}
            if calls:
                neutral["tool_calls"] = calls
            messages.append(neutral)
    neutral = {"model": body.get("model"), "messages": messages}
    tools = [
        {
            "type": "function",
            "function": {
                "name": t.get("name"),
                "description": t.get("description", ""),
                "parameters": t.get("input_schema") or {"type": "object"},
            },
        }
        for t in body.get("tools") or ()
        if isinstance(t, dict) and t.get("type") in (None, "custom")
    ]
    if tools:
        neutral["tools"] = tools
        choice = body.get("tool_choice") or {"type": "auto"}
        kind = choice.get("type")
        neutral["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(kind) or {
            "type": "function",
            "function": {"name": choice.get("name")},
        }
        if choice.get("disable_parallel_tool_use"):
            neutral["parallel_tool_calls"] = False
    if body.get("stop_sequences"):
        neutral["stop"] = body["stop_sequences"]
    output_format = (body.get("output_config") or {}).get("format")
    if output_format:
        neutral["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": output_format.get("schema")},
        }
    for name in ("temperature", "top_p", "top_k"):
        if name in body:
            neutral[name] = body[name]
    return neutral
