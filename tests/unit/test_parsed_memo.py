"""Requests parsed and checked once per body (chat and legacy: app.schemas.request_of_body; Anthropic's Messages:
app.formats.anthropic): the same bytes give the same answer, a refused body is refused every time, and nothing
a request does changes what is kept for the next one."""

import json

import pytest

from app.formats import anthropic
from app.formats.anthropic import schema as anthropic_schema
from app.schemas import PARSED, PARSED_BODY_BYTES, ChatCompletionRequestSchema, CompletionRequestSchema, parse_request

SCHEMAS = {"/v1/chat/completions": ChatCompletionRequestSchema, "/v1/completions": CompletionRequestSchema}


@pytest.fixture(autouse=True)
def empty_memo():
    PARSED.clear()
    anthropic.PARSED.clear()
    yield
    PARSED.clear()
    anthropic.PARSED.clear()


def chat_bytes(content, max_tokens) -> bytes:
    return json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
    ).encode()


def post(client, path, body):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, data=raw, content_type="application/json")


def kept(path, raw, strict=True):
    return PARSED.get((SCHEMAS[path], strict, raw))


def test_the_same_bytes_are_parsed_once_and_answered_each_time(client):
    raw = chat_bytes("Hi", 5)
    first = post(client, "/v1/chat/completions", raw)
    parsed = kept("/v1/chat/completions", raw)
    second = post(client, "/v1/chat/completions", raw)
    assert first.status_code == second.status_code == 200
    assert kept("/v1/chat/completions", raw) is parsed and parsed.max_tokens == 5
    assert first.json["id"] != second.json["id"]  # each request is its own completion
    assert first.json["usage"] == second.json["usage"]


def test_a_refused_body_is_refused_every_time_and_never_kept(client):
    raw = chat_bytes("Hi", "5")
    for _ in range(2):
        response = post(client, "/v1/chat/completions", raw)
        assert response.status_code == 400 and response.json["error"]["param"] == "max_tokens"
    assert kept("/v1/chat/completions", raw) is None
    assert post(client, "/v1/chat/completions", b"{not json").status_code == 400


def test_strict_and_lenient_servers_keep_their_own_verdicts(client, make_client):
    raw = json.dumps({"model": "gpt-4o-mini", "prompt": "Hello"}).encode()  # a chat request without messages
    lenient = make_client({"server": {"strict_validation": False}})
    assert post(lenient, "/v1/chat/completions", raw).status_code == 200
    assert post(client, "/v1/chat/completions", raw).status_code == 400
    assert post(lenient, "/v1/chat/completions", raw).status_code == 200
    assert kept("/v1/chat/completions", raw, strict=False) is not None
    assert kept("/v1/chat/completions", raw, strict=True) is None


def test_a_body_past_an_eighth_of_the_budget_is_parsed_each_time(client):
    text = "word " * (PARSED_BODY_BYTES // 8 // 5 + 1)
    raw = chat_bytes(text, 1)
    assert post(client, "/v1/chat/completions", raw).status_code == 200
    assert kept("/v1/chat/completions", raw) is None


TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
BODIES = [
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is the weather?"}]},
            ],
            "tools": [TOOL],
            "tool_choice": "required",
            "max_tokens": 20,
        },
    ),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Stream"}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": 8,
        },
    ),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Keep it"}],
            "store": True,
            "metadata": {"topic": "memo"},
            "n": 2,
            "logprobs": True,
            "top_logprobs": 2,
            "max_tokens": 6,
        },
    ),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "JSON"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
            },
        },
    ),
    ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": ["one", "two"], "max_tokens": 4, "echo": True}),
    ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say", "stream": True, "max_tokens": 4}),
]


def test_nothing_a_request_does_changes_what_is_kept_for_the_next(client):
    answers = {}
    for _ in range(2):
        for path, body in BODIES:
            response = post(client, path, body)
            answers.setdefault(json.dumps(body), []).append(response.status_code)
    assert all(codes == [200, 200] for codes in answers.values()), answers
    for path, body in BODIES:
        raw = json.dumps(body).encode()
        parsed = kept(path, raw)
        assert parsed is not None, body
        assert parsed.body == body  # the body as sent, after two requests read it
        assert parsed == parse_request(SCHEMAS[path], json.loads(raw), True)  # and every field as parsed anew


ANTHROPIC = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-test"}
POLICY = " ".join(f"Clause {i}: quote the clause you apply, word for word." for i in range(250))
MESSAGES = [
    {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]},
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 8,
        "stream": True,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather?"}]}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}],
    },
    {  # a cache breakpoint: the request's own copy carries it, what is kept carries none
        "model": "claude-sonnet-4-5",
        "max_tokens": 5,
        "system": [{"type": "text", "text": POLICY, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Which clause covers refunds?"}],
    },
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "Think"}],
    },  # fmt: skip
]


def test_anthropic_messages_are_parsed_once_and_nothing_a_request_does_changes_what_is_kept(client):
    usages = []
    for _ in range(2):
        for body in MESSAGES:
            response = client.post("/v1/messages", json=body, headers=ANTHROPIC)
            assert response.status_code == 200, response.get_json()
            if body is MESSAGES[2]:
                usages.append(response.get_json()["usage"])
    # the breakpoint was written by the first request and read by the second: each had its own
    assert usages[0]["cache_creation_input_tokens"] > 2000 and usages[0]["cache_read_input_tokens"] == 0
    assert usages[1]["cache_read_input_tokens"] == usages[0]["cache_creation_input_tokens"]
    for body in MESSAGES:
        raw = json.dumps(body).encode()
        kept_body, parsed = anthropic.PARSED.get((True, raw))
        assert kept_body == body and parsed.cache_breakpoints == []
        anew = anthropic_schema.parse(json.loads(raw), True)
        anew.cache_breakpoints = []
        assert parsed == anew


def test_a_refused_anthropic_body_is_refused_every_time_and_never_kept(client):
    raw = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": "8", "messages": []}).encode()
    for _ in range(2):
        response = client.post("/v1/messages", data=raw, content_type="application/json", headers=ANTHROPIC)
        assert response.status_code == 400 and response.get_json()["type"] == "error"
    assert anthropic.PARSED.get((True, raw)) is None
