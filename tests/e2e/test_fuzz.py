"""Property-based fuzzing, bounded so that CI stays short.

- schemathesis, from the official spec (``tests/openapi.py`` fixes its quirks first), against real gunicorn
  workers. It makes valid and invalid requests for every operation we serve. Each answer must be one of three
  things: a 2xx body that its spec schema accepts; a stream read to ``[DONE]`` whose every event its schema
  accepts; or an error in the API's JSON shape with a 4xx status. Never a 5xx, HTML or a hang.
- Hypothesis, on our own request schemas through the Flask test client: arbitrary JSON for each endpoint gets
  a 200 or a 4xx JSON error, never an exception.

``MOCK_OPENAI_FUZZ_EXAMPLES`` sets the examples per operation (default 25); with ``MOCK_OPENAI_FUZZ_REPORT``
set to a path, the counts of what was sent and seen are written there as JSON (``bench/proof.py`` does).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import zlib
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_mock_openai import LiveServer
from tests import openapi
from tests.sse import parse_response_events, parse_sse

EXAMPLES = int(os.environ.get("MOCK_OPENAI_FUZZ_EXAMPLES", "25"))
SERVED = {  # the spec's operations that the server implements
    ("POST", "/chat/completions"),
    ("GET", "/chat/completions"),
    ("GET", "/chat/completions/{completion_id}"),
    ("POST", "/chat/completions/{completion_id}"),
    ("DELETE", "/chat/completions/{completion_id}"),
    ("GET", "/chat/completions/{completion_id}/messages"),
    ("POST", "/completions"),
    ("POST", "/embeddings"),
    ("GET", "/models"),
    ("GET", "/models/{model}"),
    ("DELETE", "/models/{model}"),
    ("POST", "/responses"),
    ("GET", "/responses/{response_id}"),
    ("DELETE", "/responses/{response_id}"),
    ("POST", "/responses/{response_id}/cancel"),
    ("GET", "/responses/{response_id}/input_items"),
    ("POST", "/responses/compact"),
    ("POST", "/files"),
    ("GET", "/files"),
    ("GET", "/files/{file_id}"),
    ("DELETE", "/files/{file_id}"),
    ("GET", "/files/{file_id}/content"),
    ("POST", "/batches"),
    ("GET", "/batches"),
    ("GET", "/batches/{batch_id}"),
    ("POST", "/batches/{batch_id}/cancel"),
}
MODELS = {  # a model each endpoint serves
    "/chat/completions": "gpt-4o-mini",
    "/responses": "gpt-4.1-nano",
    "/responses/compact": "gpt-4.1-nano",
    "/completions": "gpt-3.5-turbo-instruct",
    "/embeddings": "text-embedding-3-small",
}
SIMPLE_CONTENT = {
    "/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
    "/completions": {"prompt": "hi"},
    "/responses": {"input": "hi"},
}
# Bounds on what a generated body may ask for, so each answer is quick: the server's job here is to answer
# every request correctly, not to stream 16,384 tokens.
BOUNDED = {"max_tokens": 16, "max_completion_tokens": 16, "max_output_tokens": 16, "n": 2, "best_of": 2}

# The examples and fuzzing phases, bounded by EXAMPLES; not the coverage phase, which sends thousands of
# boundary cases per operation (11,000 requests, 2 minutes, for 16 operations).
CONFIG = schemathesis.Config.from_dict(
    {"phases": {"coverage": {"enabled": False}}, "max-stream-events": 100_000}  # streams read whole, to [DONE]
)
schema = schemathesis.openapi.from_dict(openapi.spec(), config=CONFIG).include(
    lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in SERVED
)


@functools.cache
def spec_field_names() -> frozenset:
    """Every property name the spec's schemas declare."""
    return frozenset(
        name for schema in openapi.components()["schemas"].values() for name in schema.get("properties", {})
    )


@schemathesis.hook
def map_body(context, body):
    """Bodies that reach past the first checks: in half of them, the model is one the endpoint serves and
    only argument names the spec knows are kept (the real API refuses others, which the other half tests);
    in half of those, the prompt is a plain one and a stream is asked for. None asks for a long answer."""
    if not isinstance(body, dict):
        return body
    path = context.operation.path if context is not None else ""
    share = zlib.crc32(json.dumps(body, sort_keys=True, default=str).encode()) % 4  # the same on every run
    if share >= 2:
        body = {key: value for key, value in body.items() if key in spec_field_names()}
        if path in MODELS:
            body["model"] = MODELS[path]
    if share == 3 and path in SIMPLE_CONTENT:  # and a stream, whatever else the body asks for
        body.update(SIMPLE_CONTENT[path], stream=True)
    for key, bound in BOUNDED.items():
        if isinstance(body.get(key), int) and not isinstance(body[key], bool) and body[key] > bound:
            body[key] = bound
    return body


SEEN: Counter = Counter()


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    server = LiveServer(["-w", "2", "--inter-token-latency", "0"], None, tmp_path_factory.mktemp("fuzz"))
    yield server
    server.stop()
    report = os.environ.get("MOCK_OPENAI_FUZZ_REPORT")
    if report:
        with open(report, "w") as handle:
            json.dump(
                {"examples_per_operation": EXAMPLES, "operations": len(SERVED), **SEEN, "5xx": SEEN["5xx"]}, handle
            )


def _stream_event_check(path: str):
    if path == "/chat/completions":
        return lambda event: openapi.assert_valid("CreateChatCompletionStreamResponse", event)
    if path == "/completions":
        return openapi.assert_valid_legacy_chunk
    return openapi.assert_valid_response_event


def _body_schema(operation) -> str | None:
    content = operation.definition.raw["responses"].get("200", {}).get("content", {})
    ref = content.get("application/json", {}).get("schema", {}).get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def assert_answer_is_faithful(case, response) -> None:
    """``response``: schemathesis's, whose headers map lower-case names to lists of values."""
    where = f"{case.method} {response.request.url} -> {response.status_code}"
    kind = (response.headers.get("content-type") or [""])[0]
    SEEN["requests"] += 1
    SEEN[f"{response.status_code // 100}xx"] += 1
    SEEN["streams"] += kind.startswith("text/event-stream")
    SEEN["non_json_errors"] += response.status_code >= 400 and not kind.startswith("application/json")
    assert response.status_code < 500, f"{where}: {case.body!r:.600} {response.content[:300]!r}"
    if response.status_code >= 400:
        assert kind.startswith("application/json"), f"{where}: not JSON ({kind}): {response.content[:200]!r}"
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], f"{where}: {error}"
        return
    if kind.startswith("text/event-stream"):
        if case.operation.path == "/responses":
            events = parse_response_events(response.content)  # read to the response's last state
        else:
            events = parse_sse(response.content)[:-1]  # read to [DONE], every event well formed
        check = _stream_event_check(case.operation.path)
        for event in events:
            check(event)
        SEEN["streams_read_whole"] += 1
        return
    name = _body_schema(case.operation)
    if name is None or not response.content:
        return
    body = response.json()
    if (
        name == "CreateEmbeddingResponse"
        and isinstance(case.body, dict)
        and case.body.get("encoding_format") == "base64"
    ):
        # the real API's base64 embedding is a string where the spec's model wants a list (see tests/openapi.py)
        for item in body["data"]:
            assert len(base64.b64decode(item["embedding"], validate=True)) % 4 == 0
            item["embedding"] = []
    for file in body.get("data", [body]) if name in ("OpenAIFile", "ListFilesResponse") else ():
        # the spec lets a file be uploaded for "evals" (CreateFileRequest) but leaves it out of the file's enum
        if file.get("purpose") == "evals":
            file["purpose"] = "user_data"
    openapi.assert_valid(name, body)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same examples on every run: a failure in CI is one that can be repeated
)
def test_every_served_operation_answers_faithfully(case, fuzzed_server):
    response = case.call(base_url=fuzzed_server.base_url + "/v1", timeout=30)
    assert_answer_is_faithful(case, response)


# --- Hypothesis on our own request schemas ----------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
FIELDS = {
    "/v1/chat/completions": ["model", "messages", "stream", "n", "max_tokens", "tools", "response_format", "stop"],
    "/v1/completions": ["model", "prompt", "stream", "n", "max_tokens", "echo", "logprobs", "suffix"],
    "/v1/embeddings": ["model", "input", "dimensions", "encoding_format"],
    "/v1/responses": ["model", "input", "stream", "instructions", "tools", "text", "max_output_tokens"],
}


def _bodies(path: str):
    """Dicts with the endpoint's own field names (so validation goes deep) holding arbitrary JSON, with a
    real model half of the time; and now and then not a dict at all."""
    known = st.dictionaries(st.sampled_from(FIELDS[path]), JSON, max_size=len(FIELDS[path]))
    with_model = st.builds(lambda body: {**body, "model": MODELS[path.removeprefix("/v1")]}, known)
    return with_model | known | JSON


@pytest.fixture(scope="module")
def fuzz_client():
    from app import create_app

    return create_app({"latency": {"inter_token_latency_ms": 0}}).test_client()


@pytest.mark.parametrize("path", sorted(FIELDS))
def test_our_request_schemas_answer_any_json_with_a_reply_or_a_json_error(fuzz_client, path):
    @settings(max_examples=EXAMPLES * 4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(body=_bodies(path))
    def check(body):
        if isinstance(body, dict):
            for key, bound in BOUNDED.items():
                if isinstance(body.get(key), int) and not isinstance(body[key], bool):
                    body[key] = min(body[key], bound)
        response = fuzz_client.post(path, data=json.dumps(body), content_type="application/json")
        raw = response.get_data()
        assert response.status_code < 500, raw[:300]
        if response.status_code >= 400:
            error = json.loads(raw)["error"]
            assert set(error) == {"message", "type", "param", "code"}
        elif response.mimetype == "text/event-stream":
            parse_sse(raw)
        else:
            json.loads(raw)

    check()


# --- the other wire formats -----------------------------------------------------------------------------------
# Each route with its own field names (so validation goes deep) and a check that an error is in its own shape.
def _anthropic_error(body, status):
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"} and body["request_id"]


def _azure_error(body, status):
    error = body["error"]
    assert {"message", "code"} <= set(error), error


def _google_error(body, status):
    error = body["error"]
    assert error["code"] == status and error["status"] and error["message"]


CLAUDE_FIELDS = ["model", "max_tokens", "messages", "system", "stream", "tools", "tool_choice", "thinking",
                 "stop_sequences", "temperature", "output_config"]  # fmt: skip
GEMINI_FIELDS = ["contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings"]
FORMAT_ROUTES = {
    "/v1/messages": (
        CLAUDE_FIELDS,
        {"model": "claude-haiku-4-5"},
        {"anthropic-version": "2023-06-01"},
        _anthropic_error,
    ),
    "/v1/messages/count_tokens": (
        CLAUDE_FIELDS,
        {"model": "claude-haiku-4-5"},
        {"anthropic-version": "2023-06-01"},
        _anthropic_error,
    ),
    "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21": (
        FIELDS["/v1/chat/completions"],
        {},
        {},
        _azure_error,
    ),
    "/openai/v1/embeddings": (FIELDS["/v1/embeddings"], {"model": "text-embedding-3-small"}, {}, _azure_error),
    "/v1beta/models/gemini-2.5-flash:generateContent": (GEMINI_FIELDS, {}, {}, _google_error),
    "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse": (GEMINI_FIELDS, {}, {}, _google_error),
    "/v1beta/models/gemini-2.5-flash:countTokens": (["contents", "generateContentRequest"], {}, {}, _google_error),
    "/v1beta/models/gemini-embedding-001:batchEmbedContents": (["requests"], {}, {}, _google_error),
}
_CAPPED = {"max_tokens": 16, "maxOutputTokens": 16, "max_output_tokens": 16, "candidateCount": 2, "n": 2,
           "budget_tokens": 1100, "thinkingBudget": 16}  # fmt: skip


def _capped(value):
    """Lengths a reply would take long to write, capped at any depth."""
    if isinstance(value, dict):
        return {k: min(v, _CAPPED[k]) if k in _CAPPED and isinstance(v, int) and not isinstance(v, bool) else _capped(v)
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list):
        return [_capped(v) for v in value]
    return value


@pytest.mark.parametrize("route", sorted(FORMAT_ROUTES))
def test_other_formats_answer_any_json_with_a_reply_or_their_own_json_error(fuzz_client, route):
    names, base, headers, assert_error = FORMAT_ROUTES[route]
    known = st.dictionaries(st.sampled_from(names), JSON, max_size=len(names))

    @settings(max_examples=EXAMPLES * 2, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(body=st.builds(lambda body: {**body, **base}, known) | known | JSON)
    def check(body):
        response = fuzz_client.post(
            route, data=json.dumps(_capped(body)), headers=headers, content_type="application/json"
        )
        raw = response.get_data()
        assert response.status_code < 500, raw[:300]
        if response.status_code >= 400:
            assert_error(json.loads(raw), response.status_code)
        elif response.mimetype != "text/event-stream":
            json.loads(raw)

    check()
