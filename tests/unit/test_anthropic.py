"""Anthropic's Messages API through the Flask test client: bodies, stream events in order, validation in
Anthropic's words, its error shape and headers, auth by x-api-key, count_tokens and the models list."""

from __future__ import annotations

import json

import pytest

from tests.anthropic_sse import assert_message_sequence, parse_anthropic_sse

HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-test"}
HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"],
    },
}


def post(client, body, path="/v1/messages", headers=HEADERS):
    return client.post(path, data=json.dumps(body), headers=headers, content_type="application/json")


def test_a_message_body(client):
    response = post(client, HELLO)
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["model", "id", "type", "role", "content", "stop_reason", "stop_sequence", "usage"]
    assert body["id"].startswith("msg_01") and len(body["id"]) == 28
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["content"][0]["type"] == "text" and body["content"][0]["text"]
    usage = body["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] == 64  # a ceiling the corpus reaches
    assert body["stop_reason"] == "max_tokens"
    assert usage["cache_creation_input_tokens"] == 0 and usage["cache_read_input_tokens"] == 0
    assert response.headers["request-id"].startswith("req_")
    assert "openai-version" not in response.headers and "x-request-id" not in response.headers
    assert response.headers["anthropic-ratelimit-requests-limit"]
    assert response.headers["anthropic-ratelimit-output-tokens-remaining"]
    assert not any(name.lower().startswith("x-ratelimit-") for name in response.headers.keys())


def test_max_tokens_is_a_ceiling(make_client):
    client = make_client({"responses": {"max_tokens": 20}})
    body = post(client, HELLO | {"max_tokens": 1000}).get_json()
    assert body["stop_reason"] == "end_turn" and body["usage"]["output_tokens"] == 20
    body = post(client, HELLO | {"max_tokens": 20}).get_json()
    assert body["stop_reason"] == "max_tokens" and body["usage"]["output_tokens"] == 20


def test_stop_sequence_is_named(make_client):
    client = make_client({"responses": {"mode": "echo"}})
    body = post(
        client,
        HELLO | {"messages": [{"role": "user", "content": "one two END three"}], "stop_sequences": ["nothing", "END"]},
    ).get_json()
    assert body["stop_reason"] == "stop_sequence" and body["stop_sequence"] == "END"
    assert body["content"][0]["text"] == "one two "


def test_the_stream_in_order(client):
    response = post(client, HELLO | {"stream": True})
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = parse_anthropic_sse(response.data)
    assert_message_sequence(events)
    start = events[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["id"].startswith("msg_01")
    assert [e["type"] for e in events[1:3]] == ["content_block_start", "ping"]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert len(text) > 20
    final = events[-2]
    assert final["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == 64


@pytest.mark.parametrize("mode", ["corpus", "echo", "realistic"])
def test_every_stream_event_is_compact_json_and_the_text_is_the_messages(make_client, mode):
    """A text block's deltas are written from their parts (the corpus's, or the reply's own tokens' JSON): each
    event must still be exactly the compact JSON of what it holds, and the deltas the message's text, for any
    text (echo sends the quotes, backslashes, newlines and non-ASCII back)."""
    client = make_client({"responses": {"mode": mode}})
    said = 'Say "hi" \\ back\nslash — «ünïcode» 👋 and some more words'
    body = HELLO | {"messages": [{"role": "user", "content": said}], "max_tokens": 200}
    response = post(client, body | {"stream": True})
    text = ""
    for block in response.get_data(as_text=True).strip().split("\n\n"):
        data = block.split("\ndata: ", 1)[1]
        event = json.loads(data)
        assert data == json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        if event["type"] == "content_block_delta":
            text += event["delta"]["text"]
    assert text
    if mode == "echo":
        assert text == said


def test_forced_tool_use(client):
    body = post(client, HELLO | {"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_weather"}}).get_json()
    assert body["stop_reason"] == "tool_use"
    (block,) = body["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_01") and block["name"] == "get_weather"
    assert set(block["input"]) == {"city", "unit"} and block["input"]["unit"] in ("c", "f")


def test_automatic_tool_use_and_its_result(client):
    asked = HELLO | {"tools": [WEATHER], "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
    body = post(client, asked).get_json()
    assert body["stop_reason"] == "tool_use"
    call = body["content"][0]
    follow_up = asked | {
        "messages": [
            *asked["messages"],
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "18 C"}]},
        ]
    }
    body = post(client, follow_up).get_json()
    assert body["content"][0]["type"] == "text" and body["stop_reason"] in ("end_turn", "max_tokens")


def test_tool_use_streams_input_json(client):
    response = post(client, HELLO | {"stream": True, "tools": [WEATHER], "tool_choice": {"type": "any"}})
    events = parse_anthropic_sse(response.data)
    assert_message_sequence(events)
    assert events[1]["content_block"]["type"] == "tool_use" and events[1]["content_block"]["input"] == {}
    partial = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert set(json.loads(partial)) == {"city", "unit"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_extended_thinking(client):
    asked = HELLO | {"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    body = post(client, asked).get_json()
    thinking, text = body["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] and len(thinking["signature"]) > 100
    assert text["type"] == "text"
    events = parse_anthropic_sse(post(client, asked | {"stream": True}).data)
    assert_message_sequence(events)
    deltas = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"]
    assert deltas[0] == "thinking_delta" and "signature_delta" in deltas and deltas[-1] == "text_delta"
    assert deltas.index("signature_delta") == deltas.count("thinking_delta")


def test_structured_output_follows_the_schema(client):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    body = post(
        client, HELLO | {"max_tokens": 500, "output_config": {"format": {"type": "json_schema", "schema": schema}}}
    ).get_json()
    assert isinstance(json.loads(body["content"][0]["text"])["n"], int)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"max_tokens": "9"}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role: Input should be 'user' or 'assistant'"),
        ({"messages": [{"role": "user", "content": [{"type": "nope"}]}]}, "messages.0.content.0: Input tag 'nope'"),
        ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
        ({"foo": 1}, "foo: Extra inputs are not permitted"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text.text: Field required",
        ),
        ({"messages": []}, "messages: at least one message is required"),
        ({"max_tokens": 200000}, "max_tokens: 200000 > 128000, which is the maximum allowed number of output tokens"),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 100}},
            "thinking.enabled.budget_tokens: Input should be greater",
        ),
        ({"tool_choice": {"type": "any"}}, "tool_choice may only be specified while providing tools."),
    ],
)
def test_bad_input_in_anthropics_words(client, change, message):
    body = {k: v for k, v in (HELLO | change).items() if v is not None}
    response = post(client, body)
    assert response.status_code == 400
    error = response.get_json()
    assert error["type"] == "error" and error["request_id"].startswith("req_")
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(message), error["error"]["message"]


def test_not_json_and_unknown_model(client):
    response = client.post("/v1/messages", data=b"{nope", headers=HEADERS)
    assert response.status_code == 400 and response.get_json()["error"]["type"] == "invalid_request_error"
    response = post(client, HELLO | {"model": "claude-nope"})
    assert response.status_code == 404
    assert response.get_json()["error"] == {"type": "not_found_error", "message": "model: claude-nope"}


def test_anthropic_version_is_required(client):
    response = post(client, HELLO, headers={"x-api-key": "k"})
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "anthropic-version: header is required"


def test_lenient_takes_what_strict_refuses(make_client):
    client = make_client({"server": {"strict_validation": False}})
    assert post(client, HELLO | {"foo": 1}).status_code == 200


def test_auth_by_x_api_key(make_client):
    client = make_client({"auth": {"token": "sk-ant-right"}})
    assert post(client, HELLO, headers=HEADERS | {"x-api-key": "sk-ant-right"}).status_code == 200
    assert (
        post(
            client, HELLO, headers={"anthropic-version": "2023-06-01", "Authorization": "Bearer sk-ant-right"}
        ).status_code
        == 200
    )
    wrong = post(client, HELLO, headers=HEADERS | {"x-api-key": "sk-ant-wrong"})
    assert wrong.status_code == 401
    assert wrong.get_json()["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
    missing = post(client, HELLO, headers={"anthropic-version": "2023-06-01"})
    assert missing.get_json()["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}
    models = client.get("/v1/models", headers=HEADERS | {"x-api-key": "sk-ant-wrong"})
    assert models.status_code == 401 and models.get_json()["type"] == "error"


@pytest.mark.parametrize(
    ("kind", "status", "error_type"),
    [
        ("429", 429, "rate_limit_error"),
        ("500", 500, "api_error"),
        ("503", 529, "overloaded_error"),
        ("insufficient_quota", 400, "invalid_request_error"),
        ("502", 502, "api_error"),
    ],
)
def test_faults_in_anthropics_shape(client, kind, status, error_type):
    response = post(client, HELLO, headers=HEADERS | {"X-Mock-Error": kind})
    assert response.status_code == status
    assert response.get_json()["error"]["type"] == error_type
    if status == 429:
        assert response.headers["retry-after"] and "retry-after-ms" not in response.headers


def test_mid_stream_error_is_an_error_event(client):
    response = post(client, HELLO | {"stream": True}, headers=HEADERS | {"X-Mock-Stream-Error-After": "3"})
    blocks = response.data.decode().strip().split("\n\n")
    assert blocks[-1].startswith("event: error\ndata: ")
    assert json.loads(blocks[-1].split("data: ", 1)[1]) == {
        "type": "error",
        "error": {"type": "api_error", "message": "Internal server error"},
    }


def test_count_tokens(client):
    response = post(client, {"model": "claude-sonnet-4-6", "messages": HELLO["messages"]}, "/v1/messages/count_tokens")
    assert (
        response.status_code == 200
        and response.get_json()["input_tokens"] == post(client, HELLO).get_json()["usage"]["input_tokens"]
    )
    with_tools = post(
        client,
        {"model": "claude-sonnet-4-6", "messages": HELLO["messages"], "tools": [WEATHER]},
        "/v1/messages/count_tokens",
    )
    assert with_tools.get_json()["input_tokens"] > response.get_json()["input_tokens"]
    assert post(client, {"model": "claude-sonnet-4-6"}, "/v1/messages/count_tokens").status_code == 400


def test_models_in_anthropics_shape_only_when_asked(client):
    listed = client.get("/v1/models?limit=2", headers=HEADERS).get_json()
    assert [m["type"] for m in listed["data"]] == ["model", "model"] and listed["has_more"] is True
    following = client.get(f"/v1/models?after_id={listed['last_id']}", headers=HEADERS).get_json()
    assert following["data"][0]["id"] not in [m["id"] for m in listed["data"]]
    one = client.get("/v1/models/claude-opus-4-6", headers=HEADERS).get_json()
    assert one["max_input_tokens"] == 1_000_000 and one["max_tokens"] == 128000
    assert client.get("/v1/models/claude-nope", headers=HEADERS).get_json()["error"]["type"] == "not_found_error"
    assert client.get("/v1/models").get_json()["object"] == "list"  # an OpenAI client's list is OpenAI's


def test_a_stopping_worker_ends_the_stream_with_anthropics_error_event(make_client):
    from time import monotonic

    from app import streaming

    client = make_client({"latency": {"inter_token_latency_ms": 10, "ttft_ms": 0}})
    streaming.end_streams_at(monotonic() + 0.1)
    try:
        response = post(client, HELLO | {"stream": True, "max_tokens": 500})
        data = response.get_data()
    finally:
        streaming.end_streams_at(float("inf"))
    last = data.decode().strip().split("\n\n")[-1]
    assert last.startswith("event: error\ndata: ")
    assert json.loads(last.split("data: ", 1)[1])["error"]["type"] == "api_error"
    entry = client.get("/_mock/requests?limit=1").get_json()["data"][0]
    assert entry["response"]["ending"] == "stopped"


def test_rate_limits_count_per_x_api_key_with_anthropics_headers(make_client):
    client = make_client({"rate_limits": {"requests_per_minute": 2}})
    first, second, refused = (post(client, HELLO, headers=HEADERS | {"x-api-key": "k1"}) for _ in range(3))
    assert [r.headers["anthropic-ratelimit-requests-remaining"] for r in (first, second)] == ["1", "0"]
    assert refused.status_code == 429 and refused.get_json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert post(client, HELLO, headers=HEADERS | {"x-api-key": "k2"}).status_code == 200  # another key's own limit


POLICY = " ".join(f"Clause {i}: quote the clause you apply, word for word." for i in range(250))


def cached_call(client, question, model="claude-sonnet-4-5", ttl=None, **extra):
    control = {"type": "ephemeral"} | ({"ttl": ttl} if ttl else {})
    body = {"model": model, "max_tokens": 5, "system": [{"type": "text", "text": POLICY, "cache_control": control}]}
    body["messages"] = [{"role": "user", "content": question}]
    response = post(client, body | extra)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["usage"]


def test_a_cache_control_breakpoint_is_written_then_read(client):
    first = cached_call(client, "Which clause covers refunds?")
    written = first["cache_creation_input_tokens"]
    assert written > 2000 and first["cache_read_input_tokens"] == 0
    assert first["cache_creation"] == {"ephemeral_5m_input_tokens": written, "ephemeral_1h_input_tokens": 0}
    second = cached_call(client, "And which covers returns?")
    assert second["cache_read_input_tokens"] == written and second["cache_creation_input_tokens"] == 0
    # input_tokens is what comes after the breakpoint: the question, framed
    assert 0 < second["input_tokens"] < 30
    counted = post(client, {"model": "claude-sonnet-4-5", "system": POLICY,
                            "messages": [{"role": "user", "content": "And which covers returns?"}]},
                   "/v1/messages/count_tokens").get_json()["input_tokens"]  # fmt: skip
    assert second["input_tokens"] + second["cache_read_input_tokens"] == counted


def test_a_one_hour_write_and_a_later_breakpoint_written_past_the_cached_one(client):
    first = cached_call(client, "q", ttl="1h")
    assert first["cache_creation"]["ephemeral_1h_input_tokens"] == first["cache_creation_input_tokens"] > 2000
    long_question = [{"type": "text", "text": POLICY, "cache_control": {"type": "ephemeral"}}]
    usage = cached_call(client, long_question, ttl="1h")
    assert usage["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert usage["cache_creation"]["ephemeral_5m_input_tokens"] > 2000  # the second breakpoint's part only


def test_no_breakpoint_or_one_under_the_models_minimum_caches_nothing(client):
    for _ in range(2):
        plain = post(client, {"model": "claude-sonnet-4-5", "max_tokens": 5, "system": POLICY,
                              "messages": [{"role": "user", "content": "q"}]}).get_json()["usage"]  # fmt: skip
    assert plain["cache_read_input_tokens"] == plain["cache_creation_input_tokens"] == 0
    for _ in range(2):
        haiku = cached_call(client, "q", model="claude-haiku-4-5")  # about 3,000 tokens: Haiku 4.5 caches 4,096+
    assert haiku["cache_read_input_tokens"] == haiku["cache_creation_input_tokens"] == 0


def test_the_top_level_cache_control_marks_the_last_block_and_five_marks_are_refused(client):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "cache_control": {"type": "ephemeral"},
            "messages": [{"role": "user", "content": POLICY}]}  # fmt: skip
    assert post(client, body).get_json()["usage"]["cache_creation_input_tokens"] > 2000
    assert post(client, body).get_json()["usage"]["cache_read_input_tokens"] > 2000
    block = {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}
    body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": [block] * 5}]}
    response = post(client, body)
    assert response.status_code == 400
    assert (
        response.get_json()["error"]["message"] == "A maximum of 4 blocks with cache_control may be provided. Found 5."
    )


def test_a_stream_reports_the_cache_in_message_start_and_message_delta(client):
    cached_call(client, "q")
    body = {"model": "claude-sonnet-4-5", "max_tokens": 3, "stream": True,
            "system": [{"type": "text", "text": POLICY, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "q"}]}  # fmt: skip
    events = parse_anthropic_sse(post(client, body).get_data(as_text=True))
    start = next(e for e in events if e["type"] == "message_start")["message"]["usage"]
    delta = next(e for e in events if e["type"] == "message_delta")["usage"]
    assert start["cache_read_input_tokens"] == delta["cache_read_input_tokens"] > 2000
