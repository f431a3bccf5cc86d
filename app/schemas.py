"""What we accept, and what we reject with which ``param``: marshmallow request schemas.

Every parameter the OpenAI spec defines for an endpoint is declared here with its type and range, even
those we do not simulate yet, because the official SDK's own tests send them all. Failures carry the real
API's wording (``Invalid type for 'max_tokens': expected an integer, but got a string instead.``) and are
raised as :class:`OpenAIError`, the first one in the request's own key order.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from flask import request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, missing

from app.errors import INVALID_JSON_MESSAGE, OpenAIError
from app.journal import BODY as JOURNAL_BODY

# --- fields that speak the real API's error language ---------------------------------------------------


def kind_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class Invalid(Exception):
    """One request error, with the dotted path of the parameter it concerns."""

    def __init__(self, message: str, param: str, code: str | None):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def type_error(path: str, expected: str, value) -> Invalid:
    return Invalid(
        f"Invalid type for '{path}': expected {expected}, but got {kind_of(value)} instead.",
        path,
        "invalid_type",
    )


def _quoted_list(values) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


class Check:
    """A type (and value) check for one JSON value; ``check(value, path)`` returns it or raises Invalid."""

    expected = "a value"

    def __init__(self, nullable: bool = True):
        self.nullable = nullable

    def matches(self, value) -> bool:
        raise NotImplementedError

    def check(self, value, path: str):
        if value is None and self.nullable:
            return None
        if not self.matches(value):
            raise type_error(path, self.expected, value)
        self.check_value(value, path)
        return value

    def check_value(self, value, path: str) -> None:
        pass


class Bool(Check):
    expected = "a boolean"

    def matches(self, value):
        return isinstance(value, bool)


class Str(Check):
    expected = "a string"

    def __init__(self, choices=None, max_length=None, **kw):
        super().__init__(**kw)
        self.choices, self.max_length = choices, max_length

    def matches(self, value):
        return isinstance(value, str)

    def check_value(self, value, path):
        if self.choices and value not in self.choices:
            raise Invalid(
                f"Invalid value: '{value}'. Supported values are: {_quoted_list(self.choices)}.",
                path,
                "invalid_value",
            )
        if self.max_length is not None and len(value) > self.max_length:
            raise Invalid(
                f"Invalid '{path}': string too long. Expected a string with maximum length "
                f"{self.max_length}, but got a string with length {len(value)} instead.",
                path,
                "string_above_max_length",
            )


class Number(Check):
    expected = "a decimal"
    noun = "decimal"

    def __init__(self, minimum=None, maximum=None, **kw):
        super().__init__(**kw)
        self.minimum, self.maximum = minimum, maximum

    def matches(self, value):
        return isinstance(value, int | float) and not isinstance(value, bool)

    def check_value(self, value, path):
        if self.minimum is not None and value < self.minimum:
            raise Invalid(
                f"Invalid '{path}': {self.noun} below minimum value. Expected a value >= {self.minimum}, "
                f"but got {value} instead.",
                path,
                "invalid_value",
            )
        if self.maximum is not None and value > self.maximum:
            raise Invalid(
                f"Invalid '{path}': {self.noun} above maximum value. Expected a value <= {self.maximum}, "
                f"but got {value} instead.",
                path,
                "invalid_value",
            )


class Int(Number):
    expected = "an integer"
    noun = "integer"

    def matches(self, value):
        return isinstance(value, int) and not isinstance(value, bool)


class Obj(Check):
    """An object; ``props`` checks the keys we know, other keys pass."""

    expected = "an object"

    def __init__(self, props: dict | None = None, required=(), values: Check | None = None, **kw):
        super().__init__(**kw)
        self.props, self.required, self.values = props or {}, required, values

    def matches(self, value):
        return isinstance(value, dict)

    def check_value(self, value, path):
        for key in self.required:
            if key not in value:
                name = f"{path}.{key}"
                raise Invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
        for key, item in value.items():
            check = self.props.get(key, self.values)
            if check is not None:
                check.check(item, f"{path}.{key}")


class Arr(Check):
    expected = "an array"

    def __init__(self, items: Check | None = None, min_items: int = 0, max_items: int | None = None, **kw):
        super().__init__(**kw)
        self.items, self.min_items, self.max_items = items, min_items, max_items

    def matches(self, value):
        return isinstance(value, list)

    def check_value(self, value, path):
        if len(value) < self.min_items:
            if not value:
                raise Invalid(
                    f"Invalid '{path}': empty array. Expected an array with minimum length "
                    f"{self.min_items}, but got an empty array instead.",
                    path,
                    "empty_array",
                )
            raise Invalid(
                f"Invalid '{path}': array too short. Expected an array with minimum length {self.min_items}, "
                f"but got an array with length {len(value)} instead.",
                path,
                "array_below_min_length",
            )
        if self.max_items is not None and len(value) > self.max_items:
            raise Invalid(
                f"Invalid '{path}': array too long. Expected an array with maximum length {self.max_items}, "
                f"but got an array with length {len(value)} instead.",
                path,
                "array_above_max_length",
            )
        if self.items is not None:
            for index, item in enumerate(value):
                self.items.check(item, f"{path}[{index}]")


class AnyOf(Check):
    """One of several shapes; the first whose type matches decides."""

    def __init__(self, *options: Check, expected: str, **kw):
        super().__init__(**kw)
        self.options, self.expected = options, expected

    def matches(self, value):
        return any(option.matches(value) for option in self.options)

    def check_value(self, value, path):
        next(option for option in self.options if option.matches(value)).check(value, path)


class Message(Obj):
    """A chat message: a known role, and content where that role needs it."""

    ROLES = ("system", "assistant", "user", "function", "tool", "developer")
    CONTENT = AnyOf(Str(), Arr(Obj(required=("type",))), expected="one of a string or array of objects")

    def __init__(self):
        super().__init__(
            props={
                "role": Str(choices=self.ROLES, nullable=False),
                "content": self.CONTENT,
                "name": Str(),
                "tool_calls": Arr(Obj()),
                "tool_call_id": Str(),
                "function_call": Obj(),
                "refusal": Str(),
                "audio": Obj(),
            },
            required=("role",),
            nullable=False,
        )

    def check_value(self, value, path):
        super().check_value(value, path)
        if value["role"] != "assistant" and "content" not in value:
            name = f"{path}.content"
            raise Invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")


class ApiField(fields.Field):
    """A marshmallow field that runs a :class:`Check` and reports the real API's error."""

    def __init__(self, check: Check, **kwargs):
        super().__init__(**kwargs)
        self.api_check = check

    def deserialize(self, value, attr=None, data=None, **kwargs):
        # null is the Check's to judge (most OpenAI parameters are nullable), not marshmallow's.
        if value is missing:
            return missing
        return self._deserialize(value, attr, data, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return self.api_check.check(value, attr)
        except Invalid as exc:
            # A dict message survives marshmallow's error collection whole, param and code included.
            raise ValidationError({"message": exc.message, "param": exc.param, "code": exc.code}) from None


# --- shared shapes --------------------------------------------------------------------------------------

STOP = AnyOf(Str(), Arr(Str(), max_items=4), expected="one of a string or array of strings")
STREAM_OPTIONS = Obj({"include_usage": Bool(), "include_obfuscation": Bool()})
METADATA = Obj(values=Str(max_length=512))
LOGIT_BIAS = Obj(values=Int(minimum=-100, maximum=100))
TOOL = Obj({"type": Str(choices=("function", "custom"), nullable=False)}, required=("type",), nullable=False)
TOOL_CHOICE = AnyOf(Str(choices=("none", "auto", "required")), Obj(), expected="one of a string or object")
FUNCTION_CALL = AnyOf(Str(choices=("none", "auto")), Obj(), expected="one of a string or object")
RESPONSE_FORMAT = Obj({"type": Str(choices=("text", "json_object", "json_schema"), nullable=False)}, required=("type",))
PROMPT = AnyOf(
    Str(),
    Arr(AnyOf(Str(), Int(), Arr(Int()), expected="one of a string, integer or array of integers")),
    expected="one of a string, array of strings, array of integers or array of arrays of integers",
)


class _RequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    model = ApiField(Str())
    stream = ApiField(Bool())
    stream_options = ApiField(STREAM_OPTIONS)
    max_tokens = ApiField(Int(minimum=1))
    n = ApiField(Int(minimum=1, maximum=128))
    stop = ApiField(STOP)
    temperature = ApiField(Number(minimum=0, maximum=2))
    top_p = ApiField(Number(minimum=0, maximum=1))
    frequency_penalty = ApiField(Number(minimum=-2, maximum=2))
    presence_penalty = ApiField(Number(minimum=-2, maximum=2))
    logit_bias = ApiField(LOGIT_BIAS)
    seed = ApiField(Int())
    user = ApiField(Str())


class ChatCompletionRequestSchema(_RequestSchema):
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
    prediction = ApiField(Obj(required=("type", "content")))
    tools = ApiField(Arr(TOOL))
    tool_choice = ApiField(TOOL_CHOICE)
    parallel_tool_calls = ApiField(Bool())
    function_call = ApiField(FUNCTION_CALL)
    functions = ApiField(Arr(Obj(required=("name",)), min_items=1, max_items=128))


class CompletionRequestSchema(_RequestSchema):
    """``POST /v1/completions`` (legacy): CreateCompletionRequest."""

    prompt = ApiField(PROMPT)
    max_tokens = ApiField(Int(minimum=0))
    best_of = ApiField(Int(minimum=0, maximum=20))
    echo = ApiField(Bool())
    logprobs = ApiField(Int(minimum=0, maximum=5))
    suffix = ApiField(Str())


# --- the parsed request ---------------------------------------------------------------------------------


@dataclass(slots=True)
class CompletionRequest:
    """A validated request, as a plain object: what the simulation and the views act on."""

    model: str | None
    stream: bool
    include_usage: bool
    include_obfuscation: bool
    max_tokens: int | None  # the limit the client named, from whichever parameter it used
    max_tokens_param: str
    temperature: float | None
    body: dict


REQUIRED = {ChatCompletionRequestSchema: ("model", "messages"), CompletionRequestSchema: ("model", "prompt")}
_SCHEMAS = {cls: cls() for cls in REQUIRED}


@functools.lru_cache(maxsize=512)
def _schema_for(schema_class: type[Schema], present: frozenset) -> Schema:
    """A schema limited to the parameters a request sent: marshmallow otherwise visits every declared field
    on every request. Clients send the same few sets of keys, so these are built once each."""
    return schema_class(only=present)


def parse_request(schema_class: type[Schema], body, strict: bool) -> CompletionRequest:
    """Validate a decoded JSON body; raise the OpenAIError the real API would send for the first problem."""
    if not isinstance(body, dict):
        raise OpenAIError(400, f"Invalid type for 'body': expected an object, but got {kind_of(body)} instead.")
    schema = _SCHEMAS[schema_class]
    if strict:
        for name in REQUIRED[schema_class]:
            if name not in body:
                raise OpenAIError(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        unknown = [key for key in body if key not in schema.fields]
        if unknown:
            raise OpenAIError(400, f"Unrecognized request argument supplied: {unknown[0]}")
    try:
        data = _schema_for(schema_class, frozenset(key for key in body if key in schema.fields)).load(body)
    except ValidationError as exc:
        raise _first_error(exc, body) from None
    if data.get("stream_options") is not None and not data.get("stream"):
        raise OpenAIError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    stream_options = data.get("stream_options") or {}
    limit_param = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    return CompletionRequest(
        model=data.get("model"),
        stream=bool(data.get("stream")),
        include_usage=bool(stream_options.get("include_usage")),
        include_obfuscation=stream_options.get("include_obfuscation", True) is not False,
        max_tokens=data.get(limit_param),
        max_tokens_param=limit_param,
        temperature=data.get("temperature"),
        body=body,
    )


def _first_error(exc: ValidationError, body: dict) -> OpenAIError:
    """Marshmallow collects every error; the client hears about the first, in its own key order."""
    failed = exc.messages
    error = failed[next(key for key in body if key in failed)]
    return OpenAIError(400, error["message"], param=error["param"], code=error["code"])


def json_body():
    """The request's JSON, whatever its Content-Type (the real API does not insist), or the real 400."""
    raw = request.get_data(cache=False)
    request.environ[JOURNAL_BODY] = raw  # what the journal shows as the request body
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise OpenAIError(400, INVALID_JSON_MESSAGE) from None
