"""Google's Gemini API through the Flask test client: bodies, alt=sse chunks, proto-JSON validation in
Google's words, its error shape, auth by x-goog-api-key or ?key=, countTokens, embeddings and models."""

from __future__ import annotations

import json

import pytest

from tests.gemini_sse import parse_gemini_sse

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
KEY = {"x-goog-api-key": "gemini-key"}
HELLO = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}], "generationConfig": {"maxOutputTokens": 12}}
WEATHER = {
    "functionDeclarations": [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
        }
    ]
}


def post(client, path, body, headers=KEY):
    return client.post(path, data=json.dumps(body), headers=headers, content_type="application/json")


def test_a_generate_content_body(client):
    response = post(client, GENERATE, HELLO)
    assert response.status_code == 200
    assert response.data.startswith(b'{\n  "candidates"'), "indented by two spaces"
    body = response.get_json()
    assert list(body) == ["candidates", "usageMetadata", "modelVersion", "responseId"]
    (candidate,) = body["candidates"]
    assert candidate["content"]["role"] == "model" and candidate["content"]["parts"][0]["text"]
    assert candidate["finishReason"] == "MAX_TOKENS" and candidate["index"] == 0
    usage = body["usageMetadata"]
    assert usage["candidatesTokenCount"] == 12
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 12
    assert body["modelVersion"] == "gemini-2.5-flash"
    assert "openai-version" not in response.headers and "x-ratelimit-limit-requests" not in response.headers


def test_the_stream(client):
    response = post(client, STREAM, HELLO)
    assert response.mimetype == "text/event-stream"
    events = parse_gemini_sse(response.data)
    assert len(events) == 13
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
    assert text and all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 12
    assert len({e["responseId"] for e in events}) == 1
    as_array = post(client, "/v1beta/models/gemini-2.5-flash:streamGenerateContent", HELLO)  # no alt=sse
    assert as_array.mimetype == "application/json" and as_array.data.startswith(b"[{")
    assert [e["candidates"][0]["content"]["parts"][0]["text"] for e in json.loads(as_array.data)][-1] == ""
    assert len(json.loads(as_array.data)) == 13


def test_same_under_v1(client):
    assert post(client, "/v1/models/gemini-2.5-flash:generateContent", HELLO).get_json()["candidates"]


def test_function_calling(client):
    asked = {"contents": [{"role": "user", "parts": [{"text": "weather in Rome?"}]}], "tools": [WEATHER]}
    body = post(client, GENERATE, asked).get_json()
    call = body["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
    answered = asked | {
        "contents": [
            *asked["contents"],
            {"role": "model", "parts": [{"functionCall": call}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"c": 20}}}]},
        ]
    }
    assert "text" in post(client, GENERATE, answered).get_json()["candidates"][0]["content"]["parts"][0]
    forced = {
        "contents": [{"parts": [{"text": "x"}]}],
        "tools": [WEATHER],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }
    events = parse_gemini_sse(post(client, STREAM, forced).data)
    calls = [p for e in events for p in e["candidates"][0]["content"]["parts"] if "functionCall" in p]
    assert len(calls) == 1 and events[-1]["candidates"][0]["finishReason"] == "STOP"
    none = forced | {"toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}
    assert "text" in post(client, GENERATE, none).get_json()["candidates"][0]["content"]["parts"][0]


def test_structured_output(client):
    schema = {
        "type": "OBJECT",
        "properties": {"n": {"type": "INTEGER"}, "tags": {"type": "ARRAY", "items": {"type": "STRING"}}},
        "required": ["n", "tags"],
    }
    body = post(
        client,
        GENERATE,
        {
            "contents": HELLO["contents"],
            "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
        },
    ).get_json()
    value = json.loads(body["candidates"][0]["content"]["parts"][0]["text"])
    assert isinstance(value["n"], int) and isinstance(value["tags"], list)


def test_candidates_and_thoughts(client):
    body = post(
        client,
        GENERATE,
        {
            "contents": HELLO["contents"],
            "generationConfig": {
                "candidateCount": 2,
                "maxOutputTokens": 200,
                "thinkingConfig": {"thinkingBudget": 64, "includeThoughts": True},
            },
        },
    ).get_json()
    assert [c["index"] for c in body["candidates"]] == [0, 1]
    assert body["candidates"][0]["content"]["parts"][0]["thought"] is True
    assert body["usageMetadata"]["thoughtsTokenCount"] == 64


def test_snake_case_names_are_taken_too(client):
    body = {"contents": HELLO["contents"], "generation_config": {"max_output_tokens": 3}}
    assert post(client, GENERATE, body).get_json()["usageMetadata"]["candidatesTokenCount"] == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": []}, "* GenerateContentRequest.contents: contents is not specified\n"),
        ({"contents": [{"parts": []}]}, "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty"),
        (HELLO | {"foo": 1}, 'Invalid JSON payload received. Unknown name "foo": Cannot find field.'),
        (
            HELLO | {"generationConfig": {"foo": 1}},
            "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': Cannot find field.",
        ),
        (
            HELLO | {"generationConfig": {"maxOutputTokens": "many"}},
            "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), \"many\"",
        ),
        (HELLO | {"generationConfig": {"maxOutputTokens": 100000}}, "The requested maxOutputTokens (100000)"),
        ({"contents": [{"role": "bot", "parts": [{"text": "x"}]}]}, "Please use a valid role: user, model."),
    ],
)
def test_bad_input_in_googles_words(client, body, message):
    response = post(client, GENERATE, body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["message"].startswith(message), error["message"]


def test_unknown_model_and_method(client):
    response = post(client, "/v1beta/models/gemini-nope:generateContent", HELLO)
    assert response.status_code == 404 and response.get_json()["error"]["status"] == "NOT_FOUND"
    assert "is not found for API version v1beta" in response.get_json()["error"]["message"]
    assert post(client, "/v1beta/models/gemini-2.5-flash:fly", HELLO).status_code == 404
    assert client.get("/v1beta/nothing").get_json()["error"]["status"] == "NOT_FOUND"


def test_auth(make_client):
    client = make_client({"auth": {"token": "g-right"}})
    assert post(client, GENERATE, HELLO, headers={"x-goog-api-key": "g-right"}).status_code == 200
    assert post(client, GENERATE + "?key=g-right", HELLO, headers={}).status_code == 200
    wrong = post(client, GENERATE, HELLO, headers={"x-goog-api-key": "g-wrong"})
    assert wrong.status_code == 400
    assert wrong.get_json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    missing = post(client, GENERATE, HELLO, headers={})
    assert missing.status_code == 403 and missing.get_json()["error"]["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    ("kind", "status", "name"),
    [
        ("429", 429, "RESOURCE_EXHAUSTED"),
        ("500", 500, "INTERNAL"),
        ("503", 503, "UNAVAILABLE"),
        ("insufficient_quota", 429, "RESOURCE_EXHAUSTED"),
    ],
)
def test_faults_in_googles_shape(client, kind, status, name):
    response = post(client, GENERATE, HELLO, headers=KEY | {"X-Mock-Error": kind})
    error = response.get_json()["error"]
    assert response.status_code == status and error["status"] == name
    if kind == "429":
        retry = [d for d in error["details"] if d["@type"].endswith("RetryInfo")]
        assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]
        assert "retry-after" not in response.headers


def test_a_blocked_prompt_and_a_filtered_answer(client):
    blocked = post(client, GENERATE, HELLO, headers=KEY | {"X-Mock-Error": "content_filter"})
    assert blocked.status_code == 200
    body = blocked.get_json()
    assert body["promptFeedback"]["blockReason"] == "SAFETY" and "candidates" not in body
    cut = post(client, GENERATE, HELLO, headers=KEY | {"X-Mock-Filtered-After": "2"}).get_json()
    assert cut["candidates"][0]["finishReason"] == "SAFETY"


def test_mid_stream_error(client):
    response = post(client, STREAM, HELLO, headers=KEY | {"X-Mock-Stream-Error-After": "2"})
    events = parse_gemini_sse(response.data)
    assert events[-1] == {"error": {"code": 500, "message": events[-1]["error"]["message"], "status": "INTERNAL"}}


def test_count_tokens(client):
    counted = post(client, "/v1beta/models/gemini-2.5-flash:countTokens", {"contents": HELLO["contents"]})
    assert (
        counted.get_json()["totalTokens"]
        == post(client, GENERATE, HELLO).get_json()["usageMetadata"]["promptTokenCount"]
    )
    wrapped = post(
        client,
        "/v1beta/models/gemini-2.5-flash:countTokens",
        {"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": HELLO["contents"]}},
    )
    assert wrapped.get_json()["totalTokens"] == counted.get_json()["totalTokens"]


def test_embeddings(client):
    one = post(
        client, "/v1beta/models/gemini-embedding-001:embedContent", {"content": {"parts": [{"text": "hello"}]}}
    ).get_json()
    assert len(one["embedding"]["values"]) == 3072
    batch = post(
        client,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents",
        {
            "requests": [
                {
                    "model": "models/gemini-embedding-001",
                    "content": {"parts": [{"text": "hello"}]},
                    "outputDimensionality": 8,
                },
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "other"}]}},
            ]
        },
    ).get_json()
    first, second = batch["embeddings"]
    assert len(first["values"]) == 8 and len(second["values"]) == 3072
    assert second["values"] != one["embedding"]["values"]
    assert (
        post(
            client, "/v1beta/models/gemini-2.5-flash:embedContent", {"content": {"parts": [{"text": "x"}]}}
        ).status_code
        == 404
    )


def test_models(client):
    listed = client.get("/v1beta/models?pageSize=3", headers=KEY).get_json()
    assert len(listed["models"]) == 3 and listed["nextPageToken"]
    rest = client.get(f"/v1beta/models?pageToken={listed['nextPageToken']}", headers=KEY).get_json()
    assert rest["models"][0]["name"] not in [m["name"] for m in listed["models"]]
    one = client.get("/v1beta/models/gemini-2.5-pro", headers=KEY).get_json()
    assert one["inputTokenLimit"] == 1_048_576 and "generateContent" in one["supportedGenerationMethods"]
    assert client.get("/v1/models/gemini-2.5-pro", headers=KEY).get_json()["name"] == "models/gemini-2.5-pro"
    assert client.get("/v1/models").get_json()["object"] == "list"  # an OpenAI client's list is OpenAI's


def test_bodies_and_chunks_are_the_sdks_types_with_no_extra_field(client):
    """google-genai's types forbid unknown fields (the SDK strips them first, so its own calls would not
    notice one): every body and chunk here validates as a ``GenerateContentResponse`` unstripped."""
    from google.genai import types

    asked = {"contents": [{"parts": [{"text": "weather in Rome?"}]}], "tools": [WEATHER],
             "generationConfig": {"maxOutputTokens": 50, "candidateCount": 2,
                                  "thinkingConfig": {"thinkingBudget": 8, "includeThoughts": True}}}  # fmt: skip
    bodies = [post(client, GENERATE, asked).get_json(), post(client, GENERATE, HELLO).get_json()]
    bodies += parse_gemini_sse(post(client, STREAM, asked).data) + parse_gemini_sse(post(client, STREAM, HELLO).data)
    bodies.append(post(client, GENERATE, HELLO, headers=KEY | {"X-Mock-Error": "content_filter"}).get_json())
    for body in bodies:
        types.GenerateContentResponse.model_validate(body)
    one = post(client, "/v1beta/models/gemini-embedding-001:embedContent", {"content": {"parts": [{"text": "x"}]}})
    types.ContentEmbedding.model_validate(one.get_json()["embedding"])


def test_a_stopping_worker_ends_each_kind_of_stream_with_its_own_error(make_client):
    """The error that ends a stream cut by a stopping worker is worded once per renderer: an SSE stream ends
    with an SSE error, a JSON array with an error element and its ``]``, whichever kind of stream was cut
    first (the second SSE stream gets the SSE wording kept, not the array's)."""
    from time import monotonic

    from app import streaming

    client = make_client({"latency": {"inter_token_latency_ms": 10, "ttft_ms": 0}})
    long = HELLO | {"generationConfig": {"maxOutputTokens": 500}}
    array_path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    streaming.end_streams_at(monotonic() + 0.05)
    try:
        sse, array, sse_again = (post(client, path, long).get_data() for path in (STREAM, array_path, STREAM))
    finally:
        streaming.end_streams_at(float("inf"))
    for data in (sse, sse_again):
        last = json.loads(data.decode().strip().split("\r\n\r\n")[-1].removeprefix("data: "))
        assert last["error"]["code"] == 503 and last["error"]["status"] == "UNAVAILABLE"
    elements = json.loads(array)
    assert elements[-1]["error"]["code"] == 503 and "candidates" in elements[0]
    entries = client.get("/_mock/requests?limit=3").get_json()["data"]  # newest first
    assert entries[0]["response"]["ending"] == entries[2]["response"]["ending"] == "stopped"
