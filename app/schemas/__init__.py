"""What we accept, and what we reject with which ``param``: marshmallow request schemas, one module per
endpoint family (:mod:`.chat`, :mod:`.legacy`, :mod:`.embeddings`, :mod:`.responses`) on the checks of
:mod:`.fields`.

Every parameter the OpenAI spec defines for an endpoint is declared with its type and range, because the
official SDK's own tests send them all. Failures carry the real API's wording (``Invalid type for
'max_tokens': expected an integer, but got a string instead.``) and are raised as :class:`OpenAIError`,
the first one in the request's own key order. :func:`validate` is the one way a body is checked.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from flask import request
from marshmallow import Schema, ValidationError

from app.errors import INVALID_JSON_MESSAGE, OpenAIError
from app.journal import BODY as JOURNAL_BODY
from app.schemas.chat import ChatCompletionRequestSchema, check_conversation
from app.schemas.fields import Invalid, kind_of
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
_SCHEMAS: dict[type[Schema], Schema] = {}


def register(schema_class: type[Schema], required: tuple[str, ...], whole_check=None) -> None:
    """Another endpoint family's schema (embeddings, responses), checked the same way."""
    REQUIRED[schema_class] = required
    if whole_check is not None:
        WHOLE_CHECKS[schema_class] = whole_check


@functools.lru_cache(maxsize=512)
def _schema_for(schema_class: type[Schema], present: frozenset) -> Schema:
    """A schema limited to the parameters a request sent: marshmallow otherwise visits every declared field
    on every request. Clients send the same few sets of keys, so these are built once each."""
    return schema_class(only=present)


def validate(schema_class: type[Schema], body, strict: bool) -> dict:
    """Check a decoded JSON body; raise the OpenAIError the real API would send for the first problem.
    Lenient (``strict`` false): required parameters may be missing and unknown ones are ignored."""
    if not isinstance(body, dict):
        raise OpenAIError(400, f"Invalid type for 'body': expected an object, but got {kind_of(body)} instead.")
    schema = _SCHEMAS.get(schema_class)
    if schema is None:
        schema = _SCHEMAS[schema_class] = schema_class()
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
    whole_check = WHOLE_CHECKS.get(schema_class)
    if strict and whole_check is not None:
        try:
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
