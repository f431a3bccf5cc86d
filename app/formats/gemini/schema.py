"""What the Gemini API accepts, refused in Google's words, and the neutral request it becomes.

Google parses a body as proto3 JSON: each field by its camelCase or snake_case name, an unknown name refused as
``Invalid JSON payload received. Unknown name "foo" at 'generation_config': Cannot find field.`` and a value of
the wrong type as ``Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), "many"``; what is
missing is named after the request type (``* GenerateContentRequest.contents: contents is not specified``).
Each message type here is a table of its fields (:class:`Message`). A valid body is written in the
chat-completions shape the core reads (:func:`neutral_body`); a Gemini ``Schema`` (OpenAPI's subset, types in
capitals) becomes the JSON Schema the replies fill.
"""

from __future__ import annotations

import json
import re

from app.errors import OpenAIError


class Invalid(Exception):
    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.message, self.field = message, field


def invalid(message: str, field: str = "") -> OpenAIError:
    """Google's 400 ``INVALID_ARGUMENT``; the field, when named, goes into a ``BadRequest`` detail."""
    return OpenAIError(400, message, "INVALID_ARGUMENT", param=field or None)


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _is_int(value) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str) and value.lstrip("-").isdigit()
    )


# Scalar kinds: (proto type name, check).
INT32 = ("TYPE_INT32", _is_int)
FLOAT = ("TYPE_FLOAT", lambda v: isinstance(v, int | float) and not isinstance(v, bool))
STRING = ("TYPE_STRING", lambda v: isinstance(v, str))
BOOL = ("TYPE_BOOL", lambda v: isinstance(v, bool))
BYTES = ("TYPE_BYTES", lambda v: isinstance(v, str))
STRUCT = ("TYPE_MESSAGE", lambda v: isinstance(v, dict))  # google.protobuf.Struct: any object
VALUE = ("TYPE_MESSAGE", lambda v: True)  # google.protobuf.Value: any JSON


def enum(*names: str) -> tuple:
    return ("TYPE_ENUM", lambda v: v in names)


class Message:
    """A proto message: its fields by snake_case name -> kind (a scalar, a Message, or ``[kind]`` repeated)."""

    def __init__(self, name: str, fields: dict):
        self.name, self.fields = name, fields

    def check(self, value, path: str) -> dict:
        """The message with snake_case keys, or Invalid for the first problem."""
        if not isinstance(value, dict):
            raise Invalid(f"Invalid value at '{path}' (TYPE_MESSAGE), {json.dumps(value)}", path)
        out = {}
        for key, field_value in value.items():
            name = _snake(key)
            kind = self.fields.get(name)
            if kind is None:
                where = f" at '{path}'" if path else ""
                raise Invalid(f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.', path)
            out[name] = _check(kind, field_value, f"{path}.{name}" if path else name)
        return out


def _check(kind, value, path: str):
    if isinstance(kind, list):
        if not isinstance(value, list):
            value = [value]  # proto JSON takes a single value for a repeated field
        return [_check(kind[0], item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(kind, Message):
        return kind.check(value, path)
    type_name, accepts = kind
    if value is None:
        return None
    if not accepts(value):
        shown = json.dumps(value) if not isinstance(value, dict | list) else ""
        raise Invalid(f"Invalid value at '{path}' ({type_name}), {shown}".rstrip(", "), path)
    return int(value) if kind is INT32 else value


BLOB = Message("Blob", {"mime_type": STRING, "data": BYTES, "display_name": STRING})
FILE_DATA = Message("FileData", {"mime_type": STRING, "file_uri": STRING, "display_name": STRING})
FUNCTION_CALL = Message(
    "FunctionCall", {"id": STRING, "name": STRING, "args": STRUCT, "partial_args": VALUE, "will_continue": BOOL}
)
FUNCTION_RESPONSE = Message(
    "FunctionResponse",
    {"id": STRING, "name": STRING, "response": STRUCT, "parts": VALUE, "will_continue": BOOL, "scheduling": STRING},
)
PART = Message(
    "Part",
    {
        "text": STRING,
        "inline_data": BLOB,
        "file_data": FILE_DATA,
        "function_call": FUNCTION_CALL,
        "function_response": FUNCTION_RESPONSE,
        "executable_code": STRUCT,
        "code_execution_result": STRUCT,
        "thought": BOOL,
        "thought_signature": BYTES,
        "video_metadata": STRUCT,
        "media_resolution": VALUE,
        "part_metadata": STRUCT,
    },
)
CONTENT = Message("Content", {"role": STRING, "parts": [PART]})
FUNCTION_DECLARATION = Message(
    "FunctionDeclaration",
    {
        "name": STRING,
        "description": STRING,
        "parameters": STRUCT,
        "parameters_json_schema": VALUE,
        "response": STRUCT,
        "response_json_schema": VALUE,
        "behavior": STRING,
    },
)
TOOL = Message(
    "Tool",
    {
        "function_declarations": [FUNCTION_DECLARATION],
        "google_search": STRUCT,
        "google_search_retrieval": STRUCT,
        "code_execution": STRUCT,
        "url_context": STRUCT,
        "file_search": STRUCT,
        "computer_use": STRUCT,
        "google_maps": STRUCT,
    },
)
MODES = ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED")
TOOL_CONFIG = Message(
    "ToolConfig",
    {
        "function_calling_config": Message(
            "FunctionCallingConfig", {"mode": enum(*MODES), "allowed_function_names": [STRING]}
        ),
        "retrieval_config": STRUCT,
    },
)
THINKING_CONFIG = Message(
    "ThinkingConfig", {"include_thoughts": BOOL, "thinking_budget": INT32, "thinking_level": STRING}
)
GENERATION_CONFIG = Message(
    "GenerationConfig",
    {
        "stop_sequences": [STRING],
        "response_mime_type": STRING,
        "response_schema": STRUCT,
        "response_json_schema": VALUE,
        "_response_json_schema": VALUE,
        "response_modalities": [STRING],
        "candidate_count": INT32,
        "max_output_tokens": INT32,
        "temperature": FLOAT,
        "top_p": FLOAT,
        "top_k": INT32,
        "seed": INT32,
        "presence_penalty": FLOAT,
        "frequency_penalty": FLOAT,
        "response_logprobs": BOOL,
        "logprobs": INT32,
        "enable_enhanced_civic_answers": BOOL,
        "speech_config": STRUCT,
        "thinking_config": THINKING_CONFIG,
        "image_config": STRUCT,
        "media_resolution": STRING,
    },
)
SAFETY_SETTING = Message("SafetySetting", {"category": STRING, "threshold": STRING, "method": STRING})
GENERATE_CONTENT_REQUEST = Message(
    "GenerateContentRequest",
    {
        "model": STRING,
        "contents": [CONTENT],
        "system_instruction": CONTENT,
        "tools": [TOOL],
        "tool_config": TOOL_CONFIG,
        "safety_settings": [SAFETY_SETTING],
        "generation_config": GENERATION_CONFIG,
        "cached_content": STRING,
        "service_tier": STRING,
        "store": BOOL,
    },
)
COUNT_TOKENS_REQUEST = Message(
    "CountTokensRequest", {"model": STRING, "contents": [CONTENT], "generate_content_request": GENERATE_CONTENT_REQUEST}
)
EMBED_CONTENT_REQUEST = Message(
    "EmbedContentRequest",
    {"model": STRING, "content": CONTENT, "task_type": STRING, "title": STRING, "output_dimensionality": INT32},
)
BATCH_EMBED_REQUEST = Message("BatchEmbedContentsRequest", {"model": STRING, "requests": [EMBED_CONTENT_REQUEST]})


def check(message: Message, body, strict: bool) -> dict:
    """The body with snake_case keys, or Google's 400 for its first problem (lenient: unknown fields dropped)."""
    if not isinstance(body, dict):
        raise invalid(f"Invalid value (TYPE_MESSAGE), {json.dumps(body)[:80]}")
    if not strict:
        body = _known(message, body)
    try:
        return message.check(body, "")
    except Invalid as exc:
        raise invalid(exc.message, exc.field) from None


def _known(message: Message, value):
    """``value`` without the fields ``message`` does not have, at every depth (``--lenient``)."""
    if isinstance(message, list):
        return [_known(message[0], v) for v in value] if isinstance(value, list) else value
    if not isinstance(message, Message) or not isinstance(value, dict):
        return value
    return {k: _known(message.fields[_snake(k)], v) for k, v in value.items() if _snake(k) in message.fields}


def check_contents(request: dict, type_name: str = "GenerateContentRequest") -> None:
    """What Google refuses about the conversation, once each field is well-typed."""
    contents = request.get("contents") or []
    if not contents:
        raise invalid(f"* {type_name}.contents: contents is not specified\n")
    for i, content in enumerate(contents):
        if not content.get("parts"):
            raise invalid(f"* {type_name}.contents[{i}].parts: contents.parts must not be empty.\n")
        if content.get("role") not in (None, "", "user", "model", "function"):
            raise invalid("Please use a valid role: user, model.")
    config = request.get("generation_config") or {}
    count = config.get("candidate_count")
    if count is not None and not 1 <= count <= 8:
        raise invalid("* GenerateContentRequest.generation_config.candidate_count: must be in range [1, 8].\n")
    mode = ((request.get("tool_config") or {}).get("function_calling_config") or {}).get("mode")
    if mode in ("ANY", "VALIDATED") and not _declarations(request):
        raise invalid("Function calling config is set without function_declarations.")


def _declarations(request: dict) -> list[dict]:
    return [d for tool in request.get("tools") or () for d in tool.get("function_declarations") or ()]


def json_schema(schema) -> dict:
    """A Gemini ``Schema`` (``type: "OBJECT"``, ``nullable``, ``propertyOrdering``) as JSON Schema."""
    if not isinstance(schema, dict):
        return {}
    out = {}
    for key, value in schema.items():
        name = _snake(key)
        if name == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif name == "properties" and isinstance(value, dict):
            out["properties"] = {k: json_schema(v) for k, v in value.items()}
        elif name == "items":
            out["items"] = json_schema(value)
        elif name == "any_of" and isinstance(value, list):
            out["anyOf"] = [json_schema(v) for v in value]
        elif name in ("required", "enum", "format", "description", "minimum", "maximum", "title", "default"):
            out[name] = value
        elif name in ("min_items", "max_items", "min_length", "max_length", "min_properties", "max_properties"):
            out[re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)] = int(value)
    if schema.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def text_of(content: dict | None) -> str:
    return "".join(p.get("text") or "" for p in (content or {}).get("parts") or () if not p.get("thought"))


def neutral_body(request: dict) -> dict:
    """The request (snake_case, checked) in the chat-completions shape the core reads."""
    messages = []
    if request.get("system_instruction"):
        messages.append({"role": "system", "content": text_of(request["system_instruction"])})
    for index, content in enumerate(request.get("contents") or ()):
        parts = content.get("parts") or ()
        role = "assistant" if content.get("role") == "model" else "user"
        for part in parts:
            response = part.get("function_response")
            if response:
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": response.get("id") or response.get("name"),
                        "content": json.dumps(response.get("response") or {}),
                    }
                )
        calls = [
            {
                "id": p["function_call"].get("id") or f"call_{index}_{n}",
                "type": "function",
                "function": {
                    "name": p["function_call"].get("name"),
                    "arguments": json.dumps(p["function_call"].get("args") or {}),
                },
            }
            for n, p in enumerate(parts)
            if p.get("function_call")
        ]
        text = text_of(content)
        if text or calls or not any(p.get("function_response") for p in parts):
            message = {"role": role, "content": text if not calls else (text or None)}
            if calls:
                message["tool_calls"] = calls
            messages.append(message)
    neutral = {"model": request.get("model"), "messages": messages}
    declarations = _declarations(request)
    if declarations:
        neutral["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": d.get("name"),
                    "description": d.get("description", ""),
                    "parameters": d.get("parameters_json_schema")
                    or json_schema(d.get("parameters"))
                    or {"type": "object"},
                },
            }
            for d in declarations
        ]
        calling = (request.get("tool_config") or {}).get("function_calling_config") or {}
        mode, allowed = calling.get("mode") or "AUTO", calling.get("allowed_function_names") or []
        if mode == "NONE":
            neutral["tool_choice"] = "none"
        elif mode in ("ANY", "VALIDATED") and len(allowed) == 1:
            neutral["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
        else:
            neutral["tool_choice"] = "required" if mode == "ANY" else "auto"
    config = request.get("generation_config") or {}
    if config.get("stop_sequences"):
        neutral["stop"] = config["stop_sequences"]
    if config.get("candidate_count"):
        neutral["n"] = config["candidate_count"]
    if config.get("seed") is not None:
        neutral["seed"] = config["seed"]
    schema = config.get("response_json_schema") or config.get("_response_json_schema")
    if schema is None and config.get("response_schema"):
        schema = json_schema(config["response_schema"])
    if schema is not None:
        neutral["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    elif config.get("response_mime_type") == "application/json":
        neutral["response_format"] = {"type": "json_object"}
    for name in ("temperature", "top_p"):
        if config.get(name) is not None:
            neutral[name] = config[name]
    return neutral
