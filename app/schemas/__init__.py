"""What we accept, and what we reject with which ``param``: marshmallow request schemas, one module per
endpoint family (:mod:`.chat`, :mod:`.legacy`, :mod:`.embeddings`, :mod:`.responses`) on the checks of
:mod:`.fields`.

Every parameter the OpenAI spec defines for an endpoint is declared with its type and range, because the
official SDK's own tests send them all. Failures carry the real API's wording (``Invalid type for
'max_tokens': expected an integer, but got a string instead.``) and are raised as :class:`OpenAIError`,
the first one in the request's own key order. :func:`validate` is the one way a body is checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from marshmallow import Schema

from app.errors import INVALID_JSON_MESSAGE, OpenAIError
from app.journal import request_body
from app.memo import Memo
from app.schemas.chat import ChatCompletionRequestSchema, check_conversation
from app.schemas.fields import ApiField, Check, Invalid, kind_of
from app.schemas.legacy import CompletionRequestSchema, check_prompt

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
    body: dict  # in the chat-completions shape, which the core reads (another format's view translates to it)
    fills_max_tokens: bool = True  # see app.replies.Ask
    reasoning_budget: int = 0  # see app.replies.Ask
    # Explicit prompt cache breakpoints (Anthropic's cache_control): (the prompt's tokens up to the breakpoint,
    # how long a write there is kept, in seconds), shortest first; None: the cache is implicit, as OpenAI's
    cache_breakpoints: list[tuple[list, float]] | None = None


REQUIRED: dict[type[Schema], tuple[str, ...]] = {
    ChatCompletionRequestSchema: ("model", "messages"),
    CompletionRequestSchema: ("model", "prompt"),
}
# What the real API refuses about a request as a whole, once its fields are well-typed (strict mode only).
WHOLE_CHECKS = {ChatCompletionRequestSchema: check_conversation, CompletionRequestSchema: check_prompt}
_CHECKS: dict[type[Schema], dict[str, Check]] = {}


def register(schema_class: type[Schema], required: tuple[str, ...], whole_check=None) -> None:
    """Another endpoint family's schema (embeddings, responses), checked the same way."""
    REQUIRED[schema_class] = required
    if whole_check is not None:
        WHOLE_CHECKS[schema_class] = whole_check


def checks_of(schema_class: type[Schema]) -> dict[str, Check]:
    """Each parameter's :class:`~app.schemas.fields.Check`, from the schema's declared fields. The request
    schemas are declarations (every field an :class:`ApiField`): a body is checked by calling their checks,
    not through marshmallow's load, whose field machinery was most of a completion's validation time."""
    checks = _CHECKS.get(schema_class)
    if checks is None:
        declared = schema_class._declared_fields
        not_api = [name for name, field in declared.items() if not isinstance(field, ApiField)]
        if not_api:
            raise TypeError(f"{schema_class.__name__}: {not_api} are not ApiFields, which validate() runs")
        checks = _CHECKS[schema_class] = {name: field.api_check for name, field in declared.items()}
    return checks


def validate(schema_class: type[Schema], body, strict: bool) -> dict:
    """Check a decoded JSON body; raise the OpenAIError the real API would send for the first problem, in
    the body's own key order. Lenient (``strict`` false): required parameters may be missing and unknown
    ones are ignored. Returns the known parameters."""
    if not isinstance(body, dict):
        raise OpenAIError(400, f"Invalid type for 'body': expected an object, but got {kind_of(body)} instead.")
    checks = checks_of(schema_class)
    if strict:
        for name in REQUIRED[schema_class]:
            if name not in body:
                raise OpenAIError(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        unknown = [key for key in body if key not in checks]
        if unknown:
            raise OpenAIError(400, f"Unrecognized request argument supplied: {unknown[0]}")
    data = {}
    try:
        for key, value in body.items():
            check = checks.get(key)
            if check is not None:
                data[key] = check.check(value, key)
        whole_check = WHOLE_CHECKS.get(schema_class)
        if strict and whole_check is not None:
            whole_check(data)
    except Invalid as exc:
        raise OpenAIError(400, exc.message, param=exc.param, code=exc.code) from None
    return data


def parse_request(schema_class: type[Schema], body, strict: bool) -> CompletionRequest:
    """A chat or legacy completion request, validated, as the plain object the views act on."""
    data = validate(schema_class, body, strict)
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


# Requests parsed and checked by :func:`request_of_body`, by their bytes: at most this many bytes of bodies held,
# none longer than an eighth of it (128 KB). With what they parse into, about 3.6 times as much: 4 MB a worker
# at most, wasted where no body comes twice, so kept small; a load test's few bodies fit many times over.
PARSED_BODY_BYTES = 1 << 20
PARSED = Memo(PARSED_BODY_BYTES)  # (schema, strict, the body's bytes) -> its CompletionRequest


def request_of_body(schema_class: type[Schema], strict: bool) -> CompletionRequest:
    """:func:`parse_request` of this request's body (:func:`json_body`), kept for the next request that sends
    the same bytes: a load test sends one body over and over, and its decoding and checks were about a tenth
    of a completion's time in the app. The request returned is shared by every request that sent those
    bytes: the views read it and its ``body``, and change neither (tests/unit/test_parsed_memo.py checks)."""
    raw = request_body()
    return PARSED.kept((schema_class, strict, raw), lambda: parse_request(schema_class, json_body(), strict), len(raw))


def json_body():
    """The request's JSON, whatever its Content-Type (the real API does not insist), or the real 400."""
    raw = request_body()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise OpenAIError(400, INVALID_JSON_MESSAGE) from None
