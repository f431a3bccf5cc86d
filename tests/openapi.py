"""Validate bodies and stream chunks against the official OpenAI OpenAPI spec in ../shared/openai-openapi.

The spec says OpenAPI 3.1 but still uses 3.0's ``nullable: true``, which a 2020-12 validator ignores, so it is
rewritten to ``type: [T, "null"]`` / ``anyOf: [..., {type: null}]`` first (see the spec's SOURCE.md).
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

SPEC_PATH = Path(
    os.environ.get(
        "OPENAI_OPENAPI_SPEC",
        Path(__file__).resolve().parents[2] / "shared" / "openai-openapi" / "openapi.yaml",
    )
)


def rewrite_nullable(node):
    if isinstance(node, list):
        return [rewrite_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: rewrite_nullable(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if "type" in node and isinstance(node["type"], str):
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        elif "anyOf" in node or "oneOf" in node:
            key = "anyOf" if "anyOf" in node else "oneOf"
            node[key] = [*node[key], {"type": "null"}]
        elif "$ref" in node:
            node = {"anyOf": [{"$ref": node.pop("$ref")}, {"type": "null"}], **node}
        elif "allOf" in node:
            node = {"anyOf": [{"allOf": node.pop("allOf")}, {"type": "null"}], **node}
    return node


@functools.cache
def components() -> dict:
    """The spec's components, with nullable rewritten and two quirks fixed: ``Response.usage`` is null while
    a response is in progress (the spec's own ``response.created`` example says so), which its schema
    does not allow; an empty list's ``first_id`` and ``last_id`` are null."""
    parts = _components()
    # A cursor list that is empty has "first_id": null and "last_id": null on the real API (client libraries
    # made them optional after meeting it: tjardoo/openai-client#59, 64bit/async-openai#496); the spec says
    # string.
    for schema in parts["schemas"].values():
        properties = schema.get("properties", {})
        for name in ("first_id", "last_id"):
            if properties.get(name, {}).get("type") == "string":
                properties[name] = {**properties[name], "type": ["string", "null"]}
    for part in parts["schemas"]["Response"]["allOf"]:
        usage = part.get("properties", {}).get("usage")
        if usage is not None and "$ref" in usage:
            part["properties"]["usage"] = {"anyOf": [{"$ref": usage["$ref"]}, {"type": "null"}]}
    return parts


def _components() -> dict:
    return _spec()["components"]


@functools.cache
def spec() -> dict:
    """The whole spec (paths too), rewritten and fixed as :func:`components` is: what the fuzzer reads."""
    return {**_spec(), "components": components()}


@functools.cache
def _spec() -> dict:
    if not SPEC_PATH.is_file():
        raise FileNotFoundError(
            f"The OpenAI spec is not at {SPEC_PATH}: clone the repo with ../shared beside it, "
            "or set OPENAI_OPENAPI_SPEC."
        )
    with SPEC_PATH.open() as handle:
        return rewrite_nullable(yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


@functools.cache
def validator(schema_name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{schema_name}", "components": components()})


@functools.cache
def legacy_chunk_validator() -> Draft202012Validator:
    """CreateCompletionResponse, except that ``finish_reason`` may be null: the real legacy stream sends null
    on every chunk but the last, which the spec (written for the non-streamed body) does not allow."""
    parts = copy.deepcopy(components())
    choice = parts["schemas"]["CreateCompletionResponse"]["properties"]["choices"]["items"]
    choice["properties"]["finish_reason"]["enum"].append(None)
    choice["properties"]["finish_reason"]["type"] = ["string", "null"]
    return Draft202012Validator({"$ref": "#/components/schemas/CreateCompletionResponse", "components": parts})


@functools.cache
def legacy_echo_validator() -> Draft202012Validator:
    """CreateCompletionResponse, except that a logprob may be null: with ``echo`` the real API gives the
    prompt's first token no probability (``null``), which the spec does not allow."""
    parts = copy.deepcopy(components())
    logprobs = parts["schemas"]["CreateCompletionResponse"]["properties"]["choices"]["items"]["properties"]["logprobs"]
    shape = logprobs["anyOf"][0]["properties"]
    shape["token_logprobs"]["items"] = {"type": ["number", "null"]}
    shape["top_logprobs"]["items"] = {"anyOf": [shape["top_logprobs"]["items"], {"type": "null"}]}
    return Draft202012Validator({"$ref": "#/components/schemas/CreateCompletionResponse", "components": parts})


def assert_valid_legacy_echo(instance) -> None:
    errors = list(legacy_echo_validator().iter_errors(instance))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


@functools.cache
def response_event_schemas() -> dict[str, str]:
    """Each Responses stream event ``type`` and the schema that describes it."""
    names = {}
    for option in components()["schemas"]["ResponseStreamEvent"]["anyOf"]:
        name = option["$ref"].rsplit("/", 1)[-1]
        kind = components()["schemas"][name]["properties"]["type"]
        for value in kind.get("enum", []):
            names[value] = name
    return names


def assert_valid_response_event(event: dict) -> None:
    """A Responses stream event, against the schema its ``type`` names."""
    assert event.get("type") in response_event_schemas(), f"unknown event type {event.get('type')!r}"
    assert_valid(response_event_schemas()[event["type"]], event)


def assert_valid(schema_name: str, instance) -> None:
    errors = sorted(validator(schema_name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def assert_valid_legacy_chunk(instance) -> None:
    errors = list(legacy_chunk_validator().iter_errors(instance))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
