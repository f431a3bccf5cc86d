"""The official SDK's ``AzureOpenAI`` client (and the plain client on Azure's v1 routes) against real
gunicorn gevent workers: bodies strictly validated where the SDK allows (an Azure stream opens with a chunk of
prompt filter results that no OpenAI type describes, as the real service's does), faults raising the SDK's
exceptions, retries honouring retry-after."""

from __future__ import annotations

import time
import uuid

import openai
import pytest
import requests

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "Hello"}]
VERSION = "2024-10-21"


@pytest.fixture
def test_id():
    return f"azure-{uuid.uuid4().hex[:8]}"


def azure(server, test_id, strict=True):
    return openai.AzureOpenAI(
        azure_endpoint=server.base_url,
        api_key="azure-key",
        api_version=VERSION,
        _strict_response_validation=strict,
        default_headers={"X-Mock-Test-Id": test_id},
    )


def queue_fault(server, test_id, error):
    body = {"error": error, "test_id": test_id}
    assert requests.post(f"{server.base_url}/_mock/faults", json=body, timeout=5).status_code == 201


def test_chat_stream_legacy_and_embeddings(live_server, test_id):
    client = azure(live_server, test_id)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI, max_tokens=6)
    completion = raw.parse()
    assert completion.usage.completion_tokens == 6 and completion.choices[0].finish_reason == "length"
    assert completion.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    assert raw.headers["apim-request-id"] and raw.headers["x-ms-region"]
    chunks = list(
        azure(live_server, test_id, strict=False).chat.completions.create(
            model="gpt-4o", messages=HI, max_tokens=6, stream=True
        )
    )
    assert chunks[0].choices == [] and chunks[0].model_extra["prompt_filter_results"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks[1:] if c.choices)
    assert text == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) and text
    legacy = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say", max_tokens=3)
    assert legacy.usage.completion_tokens == 3
    vectors = azure(live_server, test_id, strict=False).embeddings.create(model="text-embedding-3-small", input="x")
    assert len(vectors.data[0].embedding) == 1536


def test_v1_routes_with_the_plain_client(live_server):
    client = openai.OpenAI(base_url=f"{live_server.base_url}/openai/v1/", api_key="k", _strict_response_validation=True)
    assert client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=3).usage.completion_tokens == 3


@pytest.mark.parametrize(
    ("kind", "exception"),
    [("429", openai.RateLimitError), ("500", openai.InternalServerError), ("content_filter", openai.BadRequestError)],
)
def test_faults_raise_the_sdks_exceptions(live_server, test_id, kind, exception):
    queue_fault(live_server, test_id, kind)
    with pytest.raises(exception) as raised:
        azure(live_server, test_id).with_options(max_retries=0).chat.completions.create(model="gpt-4o", messages=HI)
    if kind == "content_filter":
        assert raised.value.code == "content_filter"


def test_deployment_not_found(live_server, test_id):
    with pytest.raises(openai.NotFoundError) as raised:
        azure(live_server, test_id).chat.completions.create(model="no-such-deployment", messages=HI)
    assert raised.value.code == "DeploymentNotFound"


def test_retries_honour_retry_after(live_server, test_id):
    queue_fault(live_server, test_id, "429")
    started = time.monotonic()
    completion = azure(live_server, test_id).chat.completions.create(model="gpt-4o", messages=HI, max_tokens=2)
    assert completion.usage.completion_tokens == 2 and time.monotonic() - started >= 0.9
