"""Azure OpenAI's routes through the Flask test client: deployments mapped to models, api-version, Azure's
content filter results, its stream opening, headers and errors."""

from __future__ import annotations

import json

import pytest

from tests.sse import parse_sse

VERSION = "?api-version=2024-10-21"
CHAT = f"/openai/deployments/gpt-4o/chat/completions{VERSION}"
HI = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}
KEY = {"api-key": "azure-key"}


def test_a_chat_completion_with_filter_results(client):
    response = client.post(CHAT, json=HI, headers=KEY)
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == sorted(body), "Azure's keys are in alphabetical order"
    assert body["model"] == "gpt-4o-2024-08-06" and body["object"] == "chat.completion"
    assert "service_tier" not in body
    (prompt,) = body["prompt_filter_results"]
    assert prompt["prompt_index"] == 0 and prompt["content_filter_results"]["jailbreak"] == {
        "filtered": False,
        "detected": False,
    }
    results = body["choices"][0]["content_filter_results"]
    assert all(not category["filtered"] for category in results.values())
    assert results["hate"]["severity"] == "safe"
    for name in ("apim-request-id", "x-request-id", "x-ms-region", "x-ratelimit-remaining-requests"):
        assert response.headers[name]
    assert response.headers["x-ms-deployment-name"] == "gpt-4o"
    assert "openai-version" not in response.headers and "x-ratelimit-reset-requests" not in response.headers


def test_the_stream_opens_with_prompt_filter_results(client):
    response = client.post(CHAT, json=HI | {"stream": True}, headers=KEY)
    events = parse_sse(response.data)
    first = events[0]
    assert first["choices"] == [] and first["id"] == "" and first["prompt_filter_results"]
    content = [e for e in events[1:-1] if e["choices"] and e["choices"][0]["delta"].get("content")]
    assert content and all(
        e["choices"][0]["content_filter_results"]["sexual"] == {"filtered": False, "severity": "safe"} for e in content
    )
    assert all("obfuscation" not in e for e in events[1:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("tokens", [8, 1800])  # 1,800: past the end of the corpus's tokens, wherever it starts
@pytest.mark.parametrize("usage", [True, False])
def test_every_chunk_of_a_stream_is_what_azures_rewrite_makes_of_it(client, monkeypatch, tokens, usage):
    """A chat stream's chunks are made from the first one rewritten (app.formats.azure.render), not each
    rewritten (13 µs a chunk): each must be exactly what rewriting it again gives (keys sorted, content filter
    results, no obfuscation), and carry the text OpenAI's renderer would have sent. The next stream of the same
    request is made from what the first one's rewrites gave, with its own id and time."""
    from app.formats.azure import render
    from app.formats.azure.render import _azure, sorted_json

    rewritten = []
    rewrite = render._events
    monkeypatch.setattr(render, "_events", lambda data: rewritten.append(data) or rewrite(data))
    body = HI | {"stream": True, "max_tokens": tokens, "stream_options": {"include_usage": usage}}
    streams = []
    for turn in range(2):
        rewritten.clear()
        raw = client.post(CHAT, json=body, headers=KEY).data
        assert len(rewritten) <= (4 if turn == 0 else 0)  # the opening, the first two chunks, the end; then none
        chunks = [block[6:] for block in raw.decode().split("\n\n") if block.startswith("data: {")]
        for chunk in chunks:
            assert sorted_json(_azure(json.loads(chunk), stream=True)) == chunk
        events = parse_sse(raw)
        content = [e["choices"][0]["delta"]["content"] for e in events[1:] if e != "[DONE]" and e["choices"]
                   and e["choices"][0]["delta"].get("content")]  # fmt: skip
        assert len(content) == tokens and (events[-2].get("usage") is not None) == usage
        assert len({(e["id"], e["created"]) for e in events[1:-1]}) == 1 and isinstance(events[1]["created"], int)
        streams.append(events[1]["id"])
    assert streams[0] != streams[1]


@pytest.mark.parametrize("mode", ["corpus", "echo", "realistic"])
@pytest.mark.parametrize(
    "content",
    ["Hello", 'naïve "quoted" \\ back\nslash 日本 100% %s %(id)s', "word " * 1200],  # 1,200 words: the prompt cache
)
def test_a_body_is_openais_as_azure_rewrites_it(make_client, monkeypatch, mode, content):
    """Azure's body of one choice of text is filled into its own shape, not made by rewriting OpenAI's body:
    it must be byte for byte that rewrite of what OpenAI's route answers to the same request."""
    from app.formats.azure.render import _azure, sorted_json
    from app.render import chat

    monkeypatch.setattr(chat.time, "time", lambda: 1_800_000_000.0)
    monkeypatch.setattr(chat, "new_id", lambda prefix: prefix + "fixed")
    client = make_client({"responses": {"mode": mode}})
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 40, "seed": 7}
    client.post("/v1/chat/completions", json=body | {"model": "gpt-4o"})  # (a long prompt is cached from here)
    for _ in range(2):  # the second: a body parsed before
        azure = client.post(CHAT, json=body).get_data(as_text=True)
        openai = client.post("/v1/chat/completions", json=body | {"model": "gpt-4o"}).get_json()
        assert azure == sorted_json(_azure(openai, stream=False))
    assert json.loads(azure)["usage"]["prompt_tokens_details"]["cached_tokens"] == (1152 if len(content) > 99 else 0)


@pytest.mark.parametrize(
    "body",
    [
        {"input": "The quick brown fox"},
        {"input": ["a", "b", [1, 2, 3]], "encoding_format": "float", "dimensions": 64},
        {"input": ["naïve 日本", "x"], "encoding_format": "base64"},
    ],
)
def test_embeddings_are_openais_as_azure_writes_them(client, body):
    """Azure's embeddings are written in its order from the start, not OpenAI's body rewritten: byte for byte
    what the rewrite makes of OpenAI's route's answer, the second time from what was kept."""
    from app.formats.azure.render import sorted_json

    body = body | {"model": "text-embedding-3-small"}
    for _ in range(2):
        azure = client.post(f"/openai/deployments/text-embedding-3-small/embeddings{VERSION}", json=body)
        openai = client.post("/v1/embeddings", json=body)
        assert azure.status_code == 200 and azure.get_data(as_text=True) == sorted_json(openai.get_json())


def test_deployments_map_to_models(make_client):
    client = make_client({"azure": {"deployments": {"prod-chat": "gpt-4o-mini"}}})
    body = client.post("/openai/deployments/prod-chat/chat/completions" + VERSION, json=HI).get_json()
    assert body["model"] == "gpt-4o-mini-2024-07-18"
    missing = client.post("/openai/deployments/nope/chat/completions" + VERSION, json=HI)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "DeploymentNotFound"


def test_the_same_body_to_each_deployment_is_its_models(make_client):
    """A body is parsed once for every request that sends its bytes to the same model; each deployment's
    requests still go to its own model, named in its own headers, and what a body fails is still its own."""
    client = make_client({"azure": {"deployments": {"small": "gpt-4o-mini", "large": "gpt-4o"}}})
    for _ in range(2):
        for deployment, model in (("small", "gpt-4o-mini-2024-07-18"), ("large", "gpt-4o-2024-08-06")):
            response = client.post(f"/openai/deployments/{deployment}/chat/completions" + VERSION, json=HI)
            assert response.get_json()["model"] == model
            assert response.headers["x-ms-deployment-name"] == deployment
    for _ in range(2):
        stream = client.post("/openai/deployments/small/chat/completions" + VERSION, json=HI | {"stream": True})
        assert b'"obfuscation"' not in stream.data and parse_sse(stream.data)[-1] == "[DONE]"
    for _ in range(2):  # not JSON: refused as such, before the deployment is looked for
        broken = client.post(
            "/openai/deployments/nope/chat/completions" + VERSION, data=b"{", content_type="application/json"
        )
        assert broken.status_code == 400


def test_the_v1_routes_name_the_deployment_in_model(client):
    body = client.post("/openai/v1/chat/completions", json=HI | {"model": "gpt-4o"}).get_json()
    assert body["prompt_filter_results"] and body["model"] == "gpt-4o-2024-08-06"
    assert client.post("/openai/v1/chat/completions", json=HI).status_code == 400


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [("", 404, "404"), ("?api-version=1999-01-01", 400, "BadRequest"), ("?api-version=2025-04-01-preview", 200, None)],
)
def test_api_version(client, query, status, code):
    response = client.post("/openai/deployments/gpt-4o/chat/completions" + query, json=HI)
    assert response.status_code == status
    if code:
        assert response.get_json()["error"]["code"] == code


def test_legacy_completions_and_embeddings(client):
    legacy = client.post(
        f"/openai/deployments/gpt-3.5-turbo-instruct/completions{VERSION}", json={"prompt": "Say", "max_tokens": 3}
    ).get_json()
    assert legacy["choices"][0]["content_filter_results"] and legacy["prompt_filter_results"]
    vectors = client.post(
        f"/openai/deployments/text-embedding-3-small/embeddings{VERSION}", json={"input": ["a", "b"]}
    ).get_json()
    assert [item["index"] for item in vectors["data"]] == [0, 1] and len(vectors["data"][0]["embedding"]) == 1536


def test_validation_passes_the_models_own_error_through(client):
    response = client.post(CHAT, json={"messages": "nope"})
    assert response.status_code == 400 and response.get_json()["error"]["param"] == "messages"


def test_content_filter_faults(client):
    refused = client.post(CHAT, json=HI, headers={"X-Mock-Error": "content_filter"})
    error = refused.get_json()["error"]
    assert refused.status_code == 400 and error["code"] == "content_filter" and error["param"] == "prompt"
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert error["innererror"]["content_filter_result"]["violence"]["filtered"] is True
    cut = client.post(CHAT, json=HI | {"max_tokens": 50}, headers={"X-Mock-Filtered-After": "4"}).get_json()
    choice = cut["choices"][0]
    assert choice["finish_reason"] == "content_filter" and cut["usage"]["completion_tokens"] == 4
    assert choice["content_filter_results"]["violence"] == {"filtered": True, "severity": "medium"}


def test_429_in_azures_words(client):
    response = client.post(CHAT, json=HI, headers={"X-Mock-Error": "429"})
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    error = response.get_json()["error"]
    assert error["code"] == "429" and error["message"].startswith(
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded"
    )


def test_auth_by_api_key(make_client):
    client = make_client({"auth": {"token": "azure-right"}})
    assert client.post(CHAT, json=HI, headers={"api-key": "azure-right"}).status_code == 200
    assert client.post(CHAT, json=HI, headers={"Authorization": "Bearer azure-right"}).status_code == 200
    wrong = client.post(CHAT, json=HI, headers={"api-key": "azure-wrong"})
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "401"
    missing = client.post(CHAT, json=HI)
    assert "missing subscription key" in missing.get_json()["error"]["message"]


def test_unknown_route(client):
    response = client.post("/openai/deployments/gpt-4o/nothing" + VERSION, data=json.dumps(HI))
    assert response.status_code == 404 and response.get_json() == {
        "error": {"code": "404", "message": "Resource not found"}
    }
