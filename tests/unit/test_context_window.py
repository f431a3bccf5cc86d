"""A prompt past the model's context window gets the real 400 ``context_length_exceeded``, in the words of
the API it came to: chat, legacy completions and Responses (whose ``truncation: auto`` drops the oldest input
instead)."""

from __future__ import annotations

import re

import pytest

from app import create_app

MODELS = {"available": [
    {"id": "small-chat", "context_window": 100, "max_output_tokens": 50},
    {"id": "small-instruct", "context_window": 100, "max_output_tokens": 50, "endpoint": "completions"},
]}  # fmt: skip


@pytest.fixture
def client():
    return create_app({"models": MODELS, "latency": {"inter_token_latency_ms": 0}}).test_client()


def error_of(response) -> dict:
    assert response.status_code == 400, response.get_json()
    return response.get_json()["error"]


def chat(client, words: int, **extra):
    body = {"model": "small-chat", "messages": [{"role": "user", "content": "word " * words}], **extra}
    return client.post("/v1/chat/completions", json=body)


def test_chat_counts_the_messages_and_the_completion_asked_for(client):
    assert chat(client, 20).status_code == 200
    error = error_of(chat(client, 120))
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("This model's maximum context length is 100 tokens. However, your messages")
    prompt = chat(client, 60).get_json()["usage"]["prompt_tokens"]
    error = error_of(chat(client, 60, max_tokens=50))
    assert error["message"] == (
        f"This model's maximum context length is 100 tokens. However, you requested {prompt + 50} tokens "
        f"({prompt} in the messages, 50 in the completion). Please reduce the length of the messages or completion."
    )


def test_legacy_completions_count_sixteen_tokens_when_none_are_asked_for(client):
    fits = client.post("/v1/completions", json={"model": "small-instruct", "prompt": "word " * 80})
    prompt = fits.get_json()["usage"]["prompt_tokens"]
    assert fits.status_code == 200 and prompt + 16 <= 100
    error = error_of(client.post("/v1/completions", json={"model": "small-instruct", "prompt": "word " * 95}))
    assert error["code"] == "context_length_exceeded" and error["param"] == "prompt"
    assert re.fullmatch(
        r"This model's maximum context length is 100 tokens, however you requested (\d+) tokens \((\d+) in your "
        r"prompt; 16 for the completion\)\. Please reduce your prompt; or completion length\.",
        error["message"],
    )


def test_responses_refuse_or_with_truncation_auto_drop_the_oldest_input(client):
    error = error_of(client.post("/v1/responses", json={"model": "small-chat", "input": "word " * 120}))
    assert error == {
        "message": "Your input exceeds the context window of this model. Please adjust your input and try again.",
        "type": "invalid_request_error",
        "param": "input",
        "code": "context_length_exceeded",
    }
    body = {"model": "small-chat", "input": "word " * 120, "truncation": "auto", "max_output_tokens": 20}
    answered = client.post("/v1/responses", json=body)
    assert answered.status_code == 200 and answered.get_json()["usage"]["input_tokens"] == 100
