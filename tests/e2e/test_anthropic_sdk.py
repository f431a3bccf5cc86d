"""The official ``anthropic`` SDK, strict response validation on, against real gunicorn gevent workers: each
call's result and each stream event checked by the SDK's own types; faults raise the SDK's own exceptions,
and its retries honour our retry headers."""

from __future__ import annotations

import time
import uuid

import anthropic
import pydantic
import pytest
import requests
from anthropic.types import RawMessageStreamEvent

from tests.anthropic_sse import assert_message_sequence, parse_anthropic_sse

pytestmark = pytest.mark.e2e

MODEL = "claude-sonnet-4-6"
HI = [{"role": "user", "content": "Hello there"}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)


@pytest.fixture
def test_id():
    return f"anthropic-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def claude(live_server, test_id):
    """A strict client whose requests are tagged with this test's id (its faults are its own)."""
    return anthropic.Anthropic(
        base_url=live_server.base_url,
        api_key="sk-ant-test",
        _strict_response_validation=True,
        default_headers={"X-Mock-Test-Id": test_id},
    )


def queue_fault(live_server, test_id, error, count=1, after=None):
    body = {"error": error, "count": count, "test_id": test_id, "after": after}
    assert requests.post(f"{live_server.base_url}/_mock/faults", json=body, timeout=5).status_code == 201


def test_create_and_stream(claude):
    message = claude.messages.create(model=MODEL, max_tokens=40, messages=HI)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 40
    with claude.messages.stream(model=MODEL, max_tokens=40, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.content[0].text == text and final.usage.output_tokens == 40
    assert final.id.startswith("msg_01")


def test_every_event_is_the_sdks_type(live_server):
    response = requests.post(
        f"{live_server.base_url}/v1/messages",
        json={
            "model": MODEL,
            "max_tokens": 2000,
            "stream": True,
            "messages": HI,
            "tools": [WEATHER],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
        headers={"anthropic-version": "2023-06-01", "x-api-key": "k"},
        timeout=30,
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_anthropic_sse(response.content)
    assert_message_sequence(events)
    for event in events:
        if event["type"] != "ping":
            EVENT.validate_python(event)


def test_tool_round_trip(claude):
    ask = [{"role": "user", "content": "What's the weather in Oslo?"}]
    first = claude.messages.create(model=MODEL, max_tokens=500, tools=[WEATHER], messages=ask)
    assert first.stop_reason == "tool_use"
    call = first.content[0]
    assert call.type == "tool_use" and isinstance(call.input["city"], str)
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "3 C"}]}
    second = claude.messages.create(
        model=MODEL,
        max_tokens=500,
        tools=[WEATHER],
        messages=[*ask, {"role": "assistant", "content": first.content}, result],
    )
    assert second.content[0].type == "text"
    with claude.messages.stream(
        model=MODEL, max_tokens=500, tools=[WEATHER], tool_choice={"type": "any"}, messages=HI
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use" and set(final.content[0].input) == {"city"}


def test_thinking_blocks(claude):
    with claude.messages.stream(
        model=MODEL, max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 1024}, messages=HI
    ) as stream:
        final = stream.get_final_message()
    thinking, text = final.content
    assert thinking.type == "thinking" and thinking.thinking and thinking.signature
    assert text.type == "text" and final.stop_reason in ("end_turn", "max_tokens")


def test_count_tokens_and_models(claude):
    counted = claude.messages.count_tokens(model=MODEL, messages=HI)
    created = claude.messages.create(model=MODEL, max_tokens=5, messages=HI)
    assert counted.input_tokens == created.usage.input_tokens
    listed = [m.id for m in claude.models.list()]
    assert MODEL in listed and "claude-opus-4-6" in listed
    assert claude.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5-20251001"
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="claude-nope", max_tokens=5, messages=HI)
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Input should be greater than or equal to 1"):
        claude.messages.create(model=MODEL, messages=HI, max_tokens=0)


@pytest.mark.parametrize(
    ("kind", "exception"),
    [
        ("429", anthropic.RateLimitError),
        ("500", anthropic.InternalServerError),
        ("503", anthropic.OverloadedError),
        ("insufficient_quota", anthropic.BadRequestError),
    ],
)
def test_faults_raise_the_sdks_exceptions(claude, live_server, test_id, kind, exception):
    queue_fault(live_server, test_id, kind)
    with pytest.raises(exception):
        claude.with_options(max_retries=0).messages.create(model=MODEL, max_tokens=5, messages=HI)


def test_retries_honour_retry_after(claude, live_server, test_id):
    queue_fault(live_server, test_id, "429")
    started = time.monotonic()
    message = claude.with_options(max_retries=2).messages.create(model=MODEL, max_tokens=5, messages=HI)
    assert message.usage.output_tokens == 5
    assert time.monotonic() - started >= 0.9  # retry-after: 1, read by the SDK


def test_mid_stream_error_raises(claude, live_server, test_id):
    queue_fault(live_server, test_id, "stream_error", after=3)
    with pytest.raises(anthropic.APIStatusError, match="Internal server error"):
        with claude.messages.stream(model=MODEL, max_tokens=50, messages=HI) as stream:
            for _ in stream:
                pass


def test_auth_against_the_token(start_server):
    server = start_server("--token", "sk-ant-right")
    good = anthropic.Anthropic(base_url=server.base_url, api_key="sk-ant-right", _strict_response_validation=True)
    assert good.messages.create(model=MODEL, max_tokens=5, messages=HI).usage.output_tokens == 5
    bad = anthropic.Anthropic(base_url=server.base_url, api_key="sk-ant-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
        bad.messages.create(model=MODEL, max_tokens=5, messages=HI)


def test_prompt_caching_with_cache_control(claude, test_id):
    # the live server has two workers: the write and the reads may land on either, and share one cache
    policy = f"Policy {test_id}. " + " ".join(f"Clause {i}: quote the clause you apply." for i in range(300))
    system = [{"type": "text", "text": policy, "cache_control": {"type": "ephemeral"}}]
    first = claude.messages.create(model=MODEL, max_tokens=5, system=system, messages=HI)
    assert first.usage.cache_creation_input_tokens > 2000 and first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == first.usage.cache_creation_input_tokens
    for _ in range(4):
        with claude.messages.stream(model=MODEL, max_tokens=5, system=system, messages=HI) as stream:
            usage = stream.get_final_message().usage
        assert usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
        assert usage.cache_creation_input_tokens == 0 and usage.input_tokens == first.usage.input_tokens
