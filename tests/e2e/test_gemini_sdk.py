"""The official ``google-genai`` SDK against real gunicorn gevent workers: text, streams, function calling
(automatic too), structured output into a pydantic model, thinking, token counting, embeddings and models;
faults raising the SDK's own errors; its retries (when configured) getting through a queued fault."""

from __future__ import annotations

import uuid

import pydantic
import pytest
import requests
from google import genai
from google.genai import errors, types

pytestmark = pytest.mark.e2e

MODEL = "gemini-2.5-flash"


@pytest.fixture
def test_id():
    return f"gemini-{uuid.uuid4().hex[:8]}"


def gemini(server, test_id, **options):
    http = types.HttpOptions(base_url=server.base_url, headers={"X-Mock-Test-Id": test_id}, **options)
    return genai.Client(api_key="gemini-key", http_options=http)


def queue_fault(server, test_id, error, after=None):
    body = {"error": error, "test_id": test_id, "after": after}
    assert requests.post(f"{server.base_url}/_mock/faults", json=body, timeout=5).status_code == 201


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_generate_and_stream(live_server, test_id):
    client = gemini(live_server, test_id)
    response = client.models.generate_content(
        model=MODEL, contents="Hello", config=types.GenerateContentConfig(max_output_tokens=20)
    )
    assert response.text and response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert response.usage_metadata.candidates_token_count == 20
    chunks = list(
        client.models.generate_content_stream(
            model=MODEL, contents="Hello", config=types.GenerateContentConfig(max_output_tokens=20)
        )
    )
    assert len(chunks) == 21 and chunks[-1].usage_metadata.candidates_token_count == 20
    assert "".join(c.text or "" for c in chunks)


def test_function_calling_and_structured_output(live_server, test_id):
    client = gemini(live_server, test_id)
    manual = client.models.generate_content(
        model=MODEL,
        contents="What's the weather in Lima?",
        config=types.GenerateContentConfig(
            tools=[get_weather], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
        ),
    )
    (call,) = manual.function_calls
    assert call.name == "get_weather" and isinstance(call.args["city"], str)
    automatic = client.models.generate_content(
        model=MODEL, contents="What's the weather in Lima?", config=types.GenerateContentConfig(tools=[get_weather])
    )
    assert automatic.text and len(automatic.automatic_function_calling_history) == 3
    parsed = client.models.generate_content(
        model=MODEL,
        contents="Who?",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=Person),
    ).parsed
    assert isinstance(parsed, Person)


def test_thinking_counting_embeddings_models(live_server, test_id):
    client = gemini(live_server, test_id)
    thought = client.models.generate_content(
        model=MODEL,
        contents="Think",
        config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_budget=128, include_thoughts=True), max_output_tokens=1000
        ),
    )
    assert thought.candidates[0].content.parts[0].thought and thought.usage_metadata.thoughts_token_count == 128
    assert client.models.count_tokens(model=MODEL, contents="Hello there").total_tokens > 0
    vectors = client.models.embed_content(
        model="gemini-embedding-001", contents=["a", "b"], config=types.EmbedContentConfig(output_dimensionality=16)
    )
    assert [len(e.values) for e in vectors.embeddings] == [16, 16]
    assert "models/gemini-2.5-pro" in [m.name for m in client.models.list()]
    assert client.models.get(model="gemini-2.5-pro").input_token_limit == 1_048_576
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="gemini-nope", contents="x")
    assert raised.value.code == 404 and raised.value.status == "NOT_FOUND"


@pytest.mark.parametrize(
    ("kind", "exception", "status"),
    [
        ("429", errors.ClientError, "RESOURCE_EXHAUSTED"),
        ("500", errors.ServerError, "INTERNAL"),
        ("503", errors.ServerError, "UNAVAILABLE"),
    ],
)
def test_faults_raise_the_sdks_errors(live_server, test_id, kind, exception, status):
    queue_fault(live_server, test_id, kind)
    client = gemini(live_server, test_id)  # held: a client let go closes its connections
    with pytest.raises(exception) as raised:
        client.models.generate_content(model=MODEL, contents="x")
    assert raised.value.status == status


def test_mid_stream_error_raises(live_server, test_id):
    queue_fault(live_server, test_id, "stream_error", after=3)
    client = gemini(live_server, test_id)
    with pytest.raises(errors.ServerError):
        for _ in client.models.generate_content_stream(model=MODEL, contents="x"):
            pass


def test_configured_retries_get_through(live_server, test_id):
    queue_fault(live_server, test_id, "503")
    retrying = gemini(live_server, test_id, retry_options=types.HttpRetryOptions(attempts=2, initial_delay=0.05))
    assert retrying.models.generate_content(model=MODEL, contents="x").text


def test_auth_against_the_token(start_server):
    server = start_server("--token", "g-right")
    good = genai.Client(api_key="g-right", http_options=types.HttpOptions(base_url=server.base_url))
    assert good.models.generate_content(model=MODEL, contents="x").text
    bad = genai.Client(api_key="g-wrong", http_options=types.HttpOptions(base_url=server.base_url))
    with pytest.raises(errors.ClientError, match="API key not valid"):
        bad.models.generate_content(model=MODEL, contents="x")
