"""Strict validation by default, with the real API's wording, param and code; ``--lenient`` relaxes it."""

from __future__ import annotations

import pytest

USER = {"role": "user", "content": "Hello"}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


def error_of(client, **body):
    body.setdefault("model", "gpt-4o-mini")
    body.setdefault("messages", [USER])
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.get_json()
    return response.get_json()["error"]


@pytest.mark.parametrize(
    ("body", "message", "param", "code"),
    [
        ({"model": None}, None, "model", "invalid_type"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "Invalid type for 'messages[0].content[0].text': expected a string, but got an integer instead.",
            "messages[0].content[0].text",
            "invalid_type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "bogus"}]}]},
            "Invalid value: 'bogus'. Supported values are: 'text', 'image_url', 'input_audio', and 'file'.",
            "messages[0].content[0].type",
            "invalid_value",
        ),
        (
            {"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "Invalid value: 'image_url'. Supported values are: 'text'.",
            "messages[0].content[0].type",
            "invalid_value",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "Missing required parameter: 'messages[0].content[0].image_url.url'.",
            "messages[0].content[0].image_url.url",
            "missing_required_parameter",
        ),
        (
            {"messages": [USER, {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "content": "x"}]},
            "Missing required parameter: 'messages[2].tool_call_id'.",
            "messages[2].tool_call_id",
            "missing_required_parameter",
        ),
        (
            {"tools": [{"type": "function"}]},
            "Missing required parameter: 'tools[0].function'.",
            "tools[0].function",
            "missing_required_parameter",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
            "Invalid 'tools[0].function.name': string does not match pattern. Expected a string that matches the "
            "pattern '^[a-zA-Z0-9_-]+$'.",
            "tools[0].function.name",
            "invalid_value",
        ),
        (
            {"messages": [USER, {"role": "tool", "tool_call_id": "call_1", "content": "x"}]},
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
            "'tool_calls'.",
            "messages.[1].role",
            None,
        ),
        (
            {"messages": [USER, {"role": "assistant", "tool_calls": [CALL]}, USER]},
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            "'tool_call_id'. The following tool_call_ids did not have response messages: call_1",
            "messages.[1].role",
            None,
        ),
        (
            {"tool_choice": "required"},
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
            None,
        ),
        (
            {"response_format": {"type": "json_object"}},
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            "messages",
            None,
        ),
        (
            {"response_format": {"type": "json_schema"}},
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
            "missing_required_parameter",
        ),
        (
            {"n": 0},
            "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead.",
            "n",
            "integer_below_min_value",
        ),
        (
            {"messages": [USER, {"role": "assistant", "content": 7}]},
            "Invalid type for 'messages[1].content': expected one of a string or array of objects, but got an "
            "integer instead.",
            "messages[1].content",
            "invalid_type",
        ),
        (
            {"messages": [{"role": None, "content": "Hello"}]},
            "Invalid type for 'messages[0].role': expected a string, but got null instead.",
            "messages[0].role",
            "invalid_type",
        ),
        (
            {"messages": [USER, {"role": "function", "content": "22 C"}]},
            "Missing required parameter: 'messages[1].name'.",
            "messages[1].name",
            "missing_required_parameter",
        ),
        (
            {"tools": [{"function": {"name": "f"}}]},
            "Missing required parameter: 'tools[0].type'.",
            "tools[0].type",
            "missing_required_parameter",
        ),
        (
            {"tools": [TOOL, {"type": 5, "function": {"name": "f"}}]},
            "Invalid type for 'tools[1].type': expected a string, but got an integer instead.",
            "tools[1].type",
            "invalid_type",
        ),
        (
            {"tools": [{"type": "retrieval"}]},
            "Invalid value: 'retrieval'. Supported values are: 'function', and 'custom'.",
            "tools[0].type",
            "invalid_value",
        ),
        (
            {"stop": 5},
            "Invalid type for 'stop': expected one of a string or array of strings, but got an integer instead.",
            "stop",
            "invalid_type",
        ),
        (
            {"stop": ["a", 1]},
            "Invalid type for 'stop[1]': expected a string, but got an integer instead.",
            "stop[1]",
            "invalid_type",
        ),
        (
            {"metadata": {"k": "v" * 513}},
            "Invalid 'metadata.k': string too long. Expected a string with maximum length 512, but got a string "
            "with length 513 instead.",
            "metadata.k",
            "string_above_max_length",
        ),
    ],
)
def test_strict_validation_refuses_what_the_real_api_refuses(client, body, message, param, code):
    error = error_of(client, **body)
    assert error["param"] == param and error["code"] == code and error["type"] == "invalid_request_error"
    if message is not None:
        assert error["message"] == message


def test_what_is_well_typed_passes(client):
    """Nulls where the API takes them, an assistant message without content, a function's answer."""
    messages = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "22 C"}]},
        {"role": "assistant", "name": None, "refusal": None},
        {"role": "function", "name": "get_weather", "content": "22 C"},
    ]
    body = {"model": "gpt-4o-mini", "messages": messages, "stop": None, "metadata": {"k": "v" * 512}}
    response = client.post("/v1/chat/completions", json=body | {"tools": [TOOL]})
    assert response.status_code == 200, response.get_json()


def test_missing_model_and_messages_are_required(client):
    for missing, body in (("model", {"messages": [USER]}), ("messages", {"model": "gpt-4o-mini"})):
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 400
        assert response.get_json()["error"] == {
            "message": f"Missing required parameter: '{missing}'.",
            "type": "invalid_request_error",
            "param": missing,
            "code": "missing_required_parameter",
        }


def test_a_full_tool_round_trip_is_accepted(client):
    messages = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22 C"},
    ]
    response = client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": messages, "tools": [TOOL]})
    assert response.status_code == 200, response.get_json()


def test_lenient_mode_skips_required_and_conversation_checks_but_not_types(make_client):
    client = make_client({"server": {"strict_validation": False}})
    assert client.post("/v1/chat/completions", json={}).status_code == 200
    lone_tool = [USER, {"role": "tool", "tool_call_id": "x", "content": "y"}]
    assert client.post("/v1/chat/completions", json={"messages": lone_tool}).status_code == 200
    bad_type = [{"role": "user", "content": [{"type": "text", "text": 5}]}]
    assert client.post("/v1/chat/completions", json={"messages": bad_type}).status_code == 400


def test_legacy_best_of_must_cover_n(client):
    response = client.post(
        "/v1/completions", json={"model": "gpt-3.5-turbo-instruct", "prompt": "x", "n": 3, "best_of": 2}
    )
    assert response.status_code == 400 and response.get_json()["error"]["param"] == "best_of"


def test_audio_output_is_refused_not_answered_with_text(client):
    error = error_of(client, modalities=["text", "audio"], audio={"voice": "alloy", "format": "mp3"})
    assert error["param"] == "modalities" and error["code"] == "unsupported_value"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"max_tokens": 10}, "max_tokens", "unsupported_parameter"),
        ({"temperature": 0.2}, "temperature", "unsupported_value"),
        ({"logprobs": True}, "logprobs", "unsupported_parameter"),
    ],
)
def test_reasoning_models_refuse_what_they_cannot_do(client, make_client, body, param, code):
    error = error_of(client, model="o3", **body)
    assert error["param"] == param and error["code"] == code
    assert (
        client.post(
            "/v1/chat/completions",
            json={"model": "o3", "messages": [USER], "max_completion_tokens": 10, "temperature": 1},
        ).status_code
        == 200
    )
    lenient = make_client({"server": {"strict_validation": False}})
    assert lenient.post("/v1/chat/completions", json={"model": "o3", "messages": [USER], **body}).status_code == 200
