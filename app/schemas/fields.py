"""Checks for JSON values that speak the real API's error language, and the marshmallow field that declares them.

``Invalid type for 'max_tokens': expected an integer, but got a string instead.``: every failure carries the real
wording, the dotted path of the parameter (``param``) and the real ``code``.
"""

from __future__ import annotations

import re

from marshmallow import EXCLUDE, Schema, fields


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

    def __init__(self, choices=None, max_length=None, pattern: str | None = None, **kw):
        super().__init__(**kw)
        self.choices, self.max_length = choices, max_length
        self.pattern = re.compile(pattern) if pattern else None
        self.constrained = bool(choices) or max_length is not None or pattern is not None

    def matches(self, value):
        return isinstance(value, str)

    def check(self, value, path: str):
        # (the common case in one call: most strings of a request, every message's text among them, have no
        # constraint; a conversation of 20 messages checked each through three calls)
        if isinstance(value, str):
            if self.constrained:
                self.check_value(value, path)
            return value
        return super().check(value, path)  # null, or the wrong type

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
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise Invalid(
                f"Invalid '{path}': string does not match pattern. Expected a string that matches the pattern "
                f"'{self.pattern.pattern}'.",
                path,
                "invalid_value",
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
                f"{self.noun}_below_min_value",
            )
        if self.maximum is not None and value > self.maximum:
            raise Invalid(
                f"Invalid '{path}': {self.noun} above maximum value. Expected a value <= {self.maximum}, "
                f"but got {value} instead.",
                path,
                f"{self.noun}_above_max_value",
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
        if not self.props and self.values is None:
            return  # free-form (a function's parameters, a JSON schema): no key of it is checked
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

    def check(self, value, path: str):
        if value is None and self.nullable:
            return None
        for option in self.options:  # (the first that matches, found once)
            if option.matches(value):
                option.check(value, path)
                return value
        raise type_error(path, self.expected, value)


class Tagged(Obj):
    """An object whose ``type`` says its shape (a content part, a tool): ``shapes`` maps each type to an
    :class:`Obj` for the rest of it."""

    def __init__(self, shapes: dict[str, Obj], nullable: bool = True):
        super().__init__(
            props={"type": Str(choices=tuple(shapes), nullable=False)}, required=("type",), nullable=nullable
        )
        self.shapes = shapes

    def check_value(self, value, path):
        # (its type, then its shape, which reads every key: the generic walk of every key would be a second)
        if "type" not in value:
            raise Invalid(f"Missing required parameter: '{path}.type'.", f"{path}.type", "missing_required_parameter")
        self.props["type"].check(value["type"], f"{path}.type")
        self.shapes[value["type"]].check(value, path)


class ApiField(fields.Field):
    """A parameter of a request schema: the :class:`Check` that :func:`app.schemas.validate` runs on its value
    (null included: most OpenAI parameters are nullable, and the Check judges it). The schemas declare; they
    are not loaded through marshmallow."""

    def __init__(self, check: Check, **kwargs):
        super().__init__(**kwargs)
        self.api_check = check


# --- shapes and parameters every completion endpoint shares -------------------------------------------

STOP = AnyOf(Str(), Arr(Str(), max_items=4), expected="one of a string or array of strings")
STREAM_OPTIONS = Obj({"include_usage": Bool(), "include_obfuscation": Bool()})
METADATA = Obj(values=Str(max_length=512))
LOGIT_BIAS = Obj(values=Int(minimum=-100, maximum=100))


class ApiSchema(Schema):
    """A request body: unknown keys are the caller's to refuse (strict mode), not marshmallow's."""

    class Meta:
        unknown = EXCLUDE


class RequestSchema(ApiSchema):
    """The parameters chat and legacy completions share."""

    model = ApiField(Str(nullable=False))
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
