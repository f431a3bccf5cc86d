"""Conformance: a broad matrix of requests to a live server (real gunicorn gevent workers), every body and
SSE event validated against the official spec; then the official SDK with strict response validation on
every endpoint, its parsing and streaming helpers, and langchain-openai."""

from __future__ import annotations

import base64
import itertools
import json
import struct
from typing import Literal

import jsonschema
import openai
import pydantic
import pytest
import requests

from pytest_mock_openai import LiveServer
from tests.openapi import (
    assert_valid,
    assert_valid_legacy_chunk,
    assert_valid_legacy_echo,
    assert_valid_response_event,
)
from tests.sse import parse_sse

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "born": {"type": "string", "format": "date"},
        "email": {"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}]},
        "address": {"$ref": "#/$defs/address"},
        "roles": {"type": "array", "items": {"type": "string", "enum": ["admin", "user"]}, "minItems": 1},
    },
    "required": ["name", "born", "email", "address", "roles"],
    "additionalProperties": False,
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "integer", "minimum": 1000, "maximum": 9999}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        }
    },
}
FORMATS = {
    "text": None,
    "json_object": {"type": "json_object"},
    "json_schema": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(["-w", "2", "--inter-token-latency", "0"], None, tmp_path_factory.mktemp("conformance"))
    yield live
    live.stop()


def sdk(server, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url + "/v1", api_key="sk-test", max_retries=0, _strict_response_validation=True, **kwargs
    )


def post(server, path, body, **kwargs):
    return requests.post(server.base_url + path, json=body, timeout=30, **kwargs)


# --- the matrix, against the spec ------------------------------------------------------------------------

CHAT_MATRIX = list(
    itertools.product((False, True), (1, 3), ("none", "tools", "required"), tuple(FORMATS), (False, True))
)


@pytest.mark.parametrize(("stream", "n", "tools", "response_format", "logprobs"), CHAT_MATRIX)
def test_chat_matrix_matches_the_spec(server, stream, n, tools, response_format, logprobs):
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "What is the weather in Paris? Reply in JSON."}],
        "n": n,
        "max_completion_tokens": 400,
    }
    if tools != "none":
        body["tools"] = [WEATHER]
        body["tool_choice"] = "required" if tools == "required" else "auto"
    if FORMATS[response_format]:
        body["response_format"] = FORMATS[response_format]
    if logprobs:
        body |= {"logprobs": True, "top_logprobs": 2}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    response = post(server, "/v1/chat/completions", body)
    assert response.status_code == 200, response.text
    if not stream:
        completion = response.json()
        assert_valid("CreateChatCompletionResponse", completion)
        choices = completion["choices"]
    else:
        events = parse_sse(response.text)
        for chunk in events[:-1]:
            assert_valid("CreateChatCompletionStreamResponse", chunk)
        choices = assemble(events[:-1])
    assert sorted(c["index"] for c in choices) == list(range(n))
    for choice in choices:
        calls = choice["message"].get("tool_calls")
        if tools != "none":  # the user names the weather tool: auto calls it too
            assert choice["finish_reason"] == "tool_calls" and calls
            arguments = json.loads(calls[0]["function"]["arguments"])
            assert set(arguments) == {"city", "unit"} and arguments["unit"] in ("celsius", "fahrenheit")
            continue
        content = choice["message"]["content"]
        if response_format != "text":
            value = json.loads(content)
            if response_format == "json_schema":
                jsonschema.validate(value, PERSON)
        if logprobs:
            tokens = [entry["token"] for entry in choice["logprobs"]["content"]]
            assert "".join(tokens) == content


def assemble(chunks: list[dict]) -> list[dict]:
    """Choices rebuilt from stream chunks, as a client accumulates them."""
    choices: dict[int, dict] = {}
    for chunk in chunks:
        for part in chunk["choices"]:
            choice = choices.setdefault(part["index"], {"index": part["index"], "message": {"content": ""}})
            delta = part["delta"]
            if delta.get("content"):
                choice["message"]["content"] += delta["content"]
            for call in delta.get("tool_calls") or []:
                calls = choice["message"].setdefault("tool_calls", [])
                if "id" in call:
                    assert call["type"] == "function" and call["function"]["arguments"] == ""
                    calls.append({"id": call["id"], "function": {"name": call["function"]["name"], "arguments": ""}})
                assert call["index"] == len(calls) - 1
                calls[call["index"]]["function"]["arguments"] += call["function"].get("arguments", "")
            if part["logprobs"]:
                choice.setdefault("logprobs", {"content": []})["logprobs"] = None
                choice["logprobs"]["content"] += part["logprobs"]["content"]
            if part["finish_reason"]:
                choice["finish_reason"] = part["finish_reason"]
    return list(choices.values())


@pytest.mark.parametrize(
    ("stream", "n", "prompts", "echo"), list(itertools.product((False, True), (1, 2), (1, 2), (False, True)))
)
def test_legacy_matrix_matches_the_spec(server, stream, n, prompts, echo):
    prompt = "Say this is a test" if prompts == 1 else ["Say one", "Say two"]
    body = {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": prompt,
        "n": n,
        "echo": echo,
        "max_tokens": 5,
        "stream": stream,
    }
    response = post(server, "/v1/completions", body)
    assert response.status_code == 200, response.text
    if stream:
        events = parse_sse(response.text)
        for chunk in events[:-1]:
            assert_valid_legacy_chunk(chunk)
        indexes = {c["choices"][0]["index"] for c in events[:-1]}
    else:
        assert_valid("CreateCompletionResponse", response.json())
        choices = response.json()["choices"]
        indexes = {c["index"] for c in choices}
        if echo:
            assert all(c["text"].startswith(("Say this", "Say one", "Say two")) for c in choices)
    assert indexes == set(range(n * prompts))


def test_legacy_logprobs_with_echo(server):
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Hello there", "echo": True, "logprobs": 2, "max_tokens": 3}
    completion = post(server, "/v1/completions", body).json()
    assert_valid_legacy_echo(completion)
    logprobs = completion["choices"][0]["logprobs"]
    assert "".join(logprobs["tokens"]) == completion["choices"][0]["text"] and logprobs["token_logprobs"][0] is None


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("tools", [False, True])
def test_responses_matrix_matches_the_spec(server, stream, tools):
    body = {"model": "gpt-5.4", "input": "What's the weather in Rome?", "stream": stream}
    if tools:
        body["tools"] = [{"type": "function", **WEATHER["function"]}]
    response = post(server, "/v1/responses", body)
    assert response.status_code == 200, response.text
    if not stream:
        assert_valid("Response", response.json())
        return
    events = []
    for block in response.text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append(json.loads(fields["data"]))
    for event in events:
        assert_valid_response_event(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_embeddings_models_and_errors_match_the_spec(server):
    assert_valid(
        "CreateEmbeddingResponse",
        post(server, "/v1/embeddings", {"model": "text-embedding-3-small", "input": ["a", "b"]}).json(),
    )
    assert_valid("ListModelsResponse", requests.get(server.base_url + "/v1/models", timeout=10).json())
    assert_valid("Model", requests.get(server.base_url + "/v1/models/gpt-5", timeout=10).json())
    bad = post(server, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []})
    assert bad.status_code == 400
    assert_valid("ErrorResponse", bad.json())


# --- the official SDK, strictly --------------------------------------------------------------------------


class Weather(pydantic.BaseModel):
    city: str
    unit: Literal["celsius", "fahrenheit"]
    days: list[int]


def test_sdk_chat_parse_and_its_stream_helper(server):
    client = sdk(server)
    ask = [{"role": "user", "content": "Weather for Paris, please."}]
    parsed = client.chat.completions.parse(model="gpt-4o-mini", messages=ask, response_format=Weather)
    result = parsed.choices[0].message.parsed
    assert isinstance(result, Weather) and result.unit in ("celsius", "fahrenheit")
    with client.chat.completions.stream(model="gpt-4o-mini", messages=ask, response_format=Weather) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Weather)


def test_sdk_tool_calls_streamed_and_answered(server):
    client = sdk(server)
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    with client.chat.completions.stream(
        model="gpt-4o", messages=ask, tools=[openai.pydantic_function_tool(Weather)]
    ) as s:
        final = s.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls"
    assert isinstance(call.function.parsed_arguments, Weather)
    follow = ask + [
        final.choices[0].message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"}),
        {"role": "tool", "tool_call_id": call.id, "content": "22 C and sunny"},
    ]
    answer = client.chat.completions.create(model="gpt-4o", messages=follow, tools=[WEATHER])
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content


def test_sdk_n_logprobs_seed_and_stop(server):
    client = sdk(server)
    ask = [{"role": "user", "content": "Hi"}]
    many = client.chat.completions.create(
        model="gpt-4.1", messages=ask, n=3, logprobs=True, top_logprobs=3, max_tokens=8
    )
    assert [c.index for c in many.choices] == [0, 1, 2]
    for choice in many.choices:
        assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
        assert all(len(t.top_logprobs) == 3 and t.top_logprobs[0].logprob == t.logprob for t in choice.logprobs.content)
    assert many.usage.completion_tokens == 24
    one = client.chat.completions.create(model="gpt-4.1", messages=ask, seed=7, max_tokens=20)
    same = client.chat.completions.create(model="gpt-4.1", messages=ask, seed=7, max_tokens=20)
    assert one.choices[0].message.content == same.choices[0].message.content
    text = one.choices[0].message.content
    word = text.split()[3]
    cut = client.chat.completions.create(model="gpt-4.1", messages=ask, seed=7, max_tokens=20, stop=[word])
    assert cut.choices[0].finish_reason == "stop" and word not in cut.choices[0].message.content
    assert text.startswith(cut.choices[0].message.content)


def test_sdk_responses_create_stream_and_parse(server):
    client = sdk(server)
    created = client.responses.create(model="gpt-5.4", input="Tell me a joke", instructions="Be funny")
    assert created.output_text and created.status == "completed"
    with client.responses.stream(model="gpt-5.4", input="Tell me a story") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(deltas) and deltas
    parsed = client.responses.parse(model="gpt-5.4", input="Weather in Paris", text_format=Weather)
    assert isinstance(parsed.output_parsed, Weather)
    follow = client.responses.create(model="gpt-5.4", input="More", previous_response_id=created.id)
    assert client.responses.retrieve(follow.id).id == follow.id
    assert [i.type for i in client.responses.input_items.list(follow.id)] == ["message"]
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_sdk_responses_compact_and_context_management(server):
    """``compact`` with the SDK's method, and its output given back as input. Its client is not strict: the
    SDK types the compacted output as output items, where the spec (and the real API) gives the user's
    messages as ``role: user`` messages with ``input_text`` parts, which the SDK's assistant message model
    refuses; the body is checked against the spec's ``CompactResource`` instead."""
    loose = openai.OpenAI(base_url=server.base_url + "/v1", api_key="sk-test", max_retries=0)
    conversation = [
        {"role": "user", "content": "Tell me about lighthouses. " * 30},
        {"role": "assistant", "content": "Lighthouses guide ships. " * 100},
    ]
    raw = loose.responses.with_raw_response.compact(model="gpt-5.4", input=conversation, prompt_cache_key="k")
    assert_valid("CompactResource", raw.http_response.json())
    compacted = raw.parse()
    assert compacted.object == "response.compaction" and compacted.output[-1].type == "compaction"
    strict = sdk(server)
    follow = strict.responses.create(
        model="gpt-5.4", input=[*raw.http_response.json()["output"], {"role": "user", "content": "More"}]
    )
    assert follow.usage.input_tokens < compacted.usage.input_tokens
    managed = strict.responses.create(
        model="gpt-5.4", input="word " * 1500, max_output_tokens=16,
        context_management=[{"type": "compaction", "compact_threshold": 1000}],
    )  # fmt: skip
    assert [item.type for item in managed.output] == ["compaction", "message"]


def test_sdk_embeddings_default_base64_and_floats(server):
    client = sdk(server)
    # The SDK asks for base64 and decodes it before it builds its model, so its strict validation (which
    # sees the string) refuses base64 from the real API too; the default client is the one users run.
    lenient = openai.OpenAI(base_url=server.base_url + "/v1", api_key="sk-test", max_retries=0)
    default = lenient.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])  # asks for base64
    assert len(default.data) == 2 and len(default.data[0].embedding) == 1536
    floats = client.embeddings.create(model="text-embedding-3-small", input="hello", encoding_format="float")
    packed = struct.pack("<1536f", *floats.data[0].embedding)
    assert struct.unpack("<1536f", packed) == struct.unpack("<1536f", struct.pack("<1536f", *default.data[0].embedding))
    raw = requests.post(
        server.base_url + "/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "hello", "encoding_format": "base64"},
        timeout=10,
    ).json()["data"][0]["embedding"]
    assert len(base64.b64decode(raw)) == 1536 * 4
    short = lenient.embeddings.create(model="text-embedding-3-large", input="x", dimensions=64)
    assert len(short.data[0].embedding) == 64


def test_sdk_stored_completions_and_models(server):
    client = sdk(server)
    made = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "keep me"}], store=True, metadata={"suite": "sdk"}
    )
    assert made.id in [c.id for c in client.chat.completions.list(metadata={"suite": "sdk"})]
    assert client.chat.completions.retrieve(made.id).id == made.id
    assert client.chat.completions.update(made.id, metadata={"suite": "done"}).metadata == {"suite": "done"}
    # The real API lists the request's messages with their roles ("user", as the spec's own example shows);
    # the SDK's model says "assistant", so its strict validation refuses the real answer: read it leniently.
    lenient = openai.OpenAI(base_url=server.base_url + "/v1", api_key="sk-test", max_retries=0)
    assert [m.content for m in lenient.chat.completions.messages.list(made.id)] == ["keep me"]
    assert client.chat.completions.delete(made.id).deleted is True
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("gpt-4o-mini")
    legacy = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=["a", "b"], n=2, max_tokens=3)
    assert [c.index for c in legacy.choices] == [0, 1, 2, 3]


# --- langchain-openai ------------------------------------------------------------------------------------


def test_langchain_chat_stream_tools_structured_output_and_embeddings(server):
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    chat = ChatOpenAI(model="gpt-4o-mini", base_url=server.base_url + "/v1", api_key="sk-test", max_retries=0)
    assert chat.invoke("Hello").content
    assert "".join(chunk.content for chunk in chat.stream("Hello"))
    with_tools = chat.bind_tools([Weather], tool_choice="Weather")
    call = with_tools.invoke("What is the weather in Paris?").tool_calls[0]
    assert call["name"] == "Weather" and set(call["args"]) >= {"city", "unit"}
    assert isinstance(chat.with_structured_output(Weather).invoke("Weather in Oslo"), Weather)
    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=server.base_url + "/v1",
        api_key="sk-test",
        check_embedding_ctx_length=False,  # else it fetches tiktoken's vocabulary from the network
    )
    vectors = embeddings.embed_documents(["alpha", "beta"])
    assert len(vectors) == 2 and len(vectors[0]) == 1536 and len(embeddings.embed_query("alpha")) == 1536
