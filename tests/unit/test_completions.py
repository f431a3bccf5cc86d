"""Chat and legacy completions through the Flask test client: bodies, streams, spec conformance, errors."""

from __future__ import annotations

import json

import pytest

from tests.openapi import assert_valid, assert_valid_legacy_chunk
from tests.sse import parse_sse

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there!"}]


def chat(client, **body):
    body.setdefault("model", "gpt-4o-mini")
    body.setdefault("messages", MESSAGES)
    return client.post("/v1/chat/completions", json=body)


def legacy(client, **body):
    body.setdefault("model", "gpt-3.5-turbo-instruct")
    body.setdefault("prompt", "Say this is a test")
    return client.post("/v1/completions", json=body)


def error_of(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert_valid("ErrorResponse", body)
    return body["error"]


# --- chat, not streamed ---------------------------------------------------------------------------------


def test_chat_completion_body_matches_the_spec_and_the_requested_length(client):
    response = chat(client, max_tokens=7)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert_valid("CreateChatCompletionResponse", body)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["role"] == "assistant" and choice["message"]["refusal"] is None
    assert choice["logprobs"] is None
    assert body["usage"]["completion_tokens"] == 7
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 7
    assert body["id"].startswith("chatcmpl-") and body["model"] == "gpt-4o-mini-2024-07-18"
    assert body["system_fingerprint"].startswith("fp_") and body["service_tier"] == "default"


def test_usage_counts_the_tokens_that_were_sent(client):
    from app.tokens import split_tokens

    body = chat(client, max_completion_tokens=50).get_json()
    assert len(split_tokens(body["choices"][0]["message"]["content"])) == 50
    assert body["usage"]["completion_tokens"] == 50


def test_no_limit_gives_the_configured_length_and_a_natural_stop(make_client):
    client = make_client({"responses": {"max_tokens": 40, "inter_token_latency_ms": 0}})
    body = chat(client).get_json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 40


def test_replies_longer_than_the_corpus_wrap_around(client):
    body = chat(client, max_tokens=5000).get_json()
    assert body["usage"]["completion_tokens"] == 5000
    assert len(body["choices"][0]["message"]["content"]) > 20000


TRICKY_CORPUS = 'She said "go\\home"\tnow.\nCafé — naïve 日本語 \u0001 end! Then \\"quoted\\" again.'


def test_a_corpus_text_and_its_json_are_its_tokens_in_turn_wherever_they_start_and_however_long():
    import json

    from app.textgen import Corpus

    corpus = Corpus(TRICKY_CORPUS)
    size = len(corpus)
    for start in range(size):
        for count in (0, 1, 2, size - start, size - start + 1, size, 3 * size + 2):
            text = corpus.text(start, count)
            assert text == "".join(corpus.tokens[(start + k) % size] for k in range(count)), (start, count)
            assert corpus.json_text(start, count) == json.dumps(text, ensure_ascii=False), (start, count)


@pytest.mark.parametrize("endpoint", ["chat", "legacy"])
def test_a_bodys_text_from_a_corpus_with_escapes_reads_back_as_the_stream_of_the_same_request(
    endpoint, make_client, tmp_path
):
    path = tmp_path / "corpus.txt"
    path.write_text(TRICKY_CORPUS, encoding="utf-8")
    client = make_client({"responses": {"corpus": str(path), "inter_token_latency_ms": 0}})
    send = chat if endpoint == "chat" else legacy
    asked = {"max_tokens": 45, "temperature": 0}
    response = send(client, **asked)
    body = response.get_json()
    assert response.get_data(as_text=True) == json.dumps(body, indent=2, ensure_ascii=False)  # as the real API
    events = [e for e in parse_sse(send(client, stream=True, **asked).get_data()) if e != "[DONE]"]
    if endpoint == "chat":
        text = body["choices"][0]["message"]["content"]
        streamed = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    else:
        text = body["choices"][0]["text"]
        streamed = "".join(e["choices"][0]["text"] for e in events if e["choices"])
    assert text == streamed and '"go\\home"' in text and "日本語" in text


def test_temperature_zero_repeats_the_same_text(client):
    first = chat(client, max_tokens=20, temperature=0).get_json()["choices"][0]["message"]["content"]
    second = chat(client, max_tokens=20, temperature=0).get_json()["choices"][0]["message"]["content"]
    assert first == second and first.startswith("The lighthouse")


def test_prompt_tokens_follow_the_cookbook_recipe(client):
    from app.tokens import count_tokens

    body = chat(client, max_tokens=1, messages=[{"role": "user", "content": "Hello there!"}]).get_json()
    assert body["usage"]["prompt_tokens"] == 3 + count_tokens("user") + count_tokens("Hello there!") + 3


def test_the_original_load_test_body_is_refused_by_default_and_answered_when_lenient(client, make_client):
    error = error_of(client.post("/v1/chat/completions", json={"stream": False, "max_tokens": 2048}), 400)
    assert error["code"] == "missing_required_parameter" and error["param"] == "model"
    client = make_client({"server": {"strict_validation": False}})
    response = client.post("/v1/chat/completions", json={"stream": False, "max_tokens": 2048})
    assert response.status_code == 200
    body = response.get_json()
    assert body["model"] == "gpt-4o-mini-2024-07-18" and body["usage"]["completion_tokens"] == 2048


def test_every_spec_parameter_is_accepted(client):
    response = chat(
        client,
        messages=[{"role": "user", "content": "Answer in JSON."}],
        max_tokens=3,
        temperature=0.5,
        top_p=0.9,
        n=1,
        stop=["\n"],
        presence_penalty=0.1,
        frequency_penalty=0.1,
        logit_bias={"50256": -100},
        logprobs=True,
        top_logprobs=2,
        user="u1",
        safety_identifier="s1",
        prompt_cache_key="k",
        seed=42,
        metadata={"a": "b"},
        store=False,
        service_tier="auto",
        reasoning_effort="low",
        verbosity="low",
        modalities=["text"],
        parallel_tool_calls=True,
        response_format={"type": "json_object"},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice="auto",
        prediction={"type": "content", "content": "x"},
        web_search_options={},
        audio={"voice": "alloy", "format": "mp3"},
    )
    assert response.status_code == 200, response.get_json()


def test_response_headers_are_the_real_apis(client):
    response = chat(client, max_tokens=1)
    headers = response.headers
    assert headers["x-request-id"].startswith("req_") and len(headers["x-request-id"]) == 36
    int(headers["x-request-id"][4:], 16)
    assert headers["openai-version"] == "2020-10-01"
    assert int(headers["openai-processing-ms"]) >= 0
    assert int(headers["x-ratelimit-limit-requests"]) > int(headers["x-ratelimit-remaining-requests"])
    assert int(headers["x-ratelimit-limit-tokens"]) > int(headers["x-ratelimit-remaining-tokens"])
    assert headers["x-ratelimit-reset-requests"].endswith("ms")


# --- chat, streamed -------------------------------------------------------------------------------------


def test_chat_stream_events_come_in_the_real_order_and_match_the_spec(client):
    response = chat(client, max_tokens=5, stream=True, stream_options={"include_usage": True})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    events = parse_sse(response.get_data())
    chunks = events[:-1]
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
        assert chunk["object"] == "chat.completion.chunk"
        assert "usage" in chunk  # null on every chunk but the last while usage is requested
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    content = chunks[1:6]
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in content)
    assert all(c["choices"][0]["finish_reason"] is None and c["usage"] is None for c in content)
    assert chunks[6]["choices"][0]["delta"] == {} and chunks[6]["choices"][0]["finish_reason"] == "length"
    assert chunks[7]["choices"] == [] and chunks[7]["usage"]["completion_tokens"] == 5
    assert len(chunks) == 8


def test_chat_stream_without_usage_has_no_usage_field(client):
    events = parse_sse(chat(client, max_tokens=3, stream=True).get_data())
    assert len(events) == 1 + 3 + 1 + 1
    assert all("usage" not in e for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "length"


def test_stream_content_joins_to_the_non_streamed_text(client):
    events = parse_sse(chat(client, max_tokens=30, stream=True, temperature=0).get_data())
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
    body = chat(client, max_tokens=30, temperature=0).get_json()
    assert text == body["choices"][0]["message"]["content"]


def test_obfuscation_pads_every_chunk_unless_turned_off(client):
    events = parse_sse(chat(client, max_tokens=3, stream=True).get_data())
    assert all(isinstance(e["obfuscation"], str) and e["obfuscation"] for e in events[:-1])
    off = {"include_obfuscation": False}
    events = parse_sse(chat(client, max_tokens=3, stream=True, stream_options=off).get_data())
    assert all("obfuscation" not in e for e in events[:-1])


def test_non_ascii_tokens_are_sent_unescaped_and_intact(tmp_path, make_client):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text('Grüße aus Köln. 東京は大きい "quoted" back\\slash\n')
    client = make_client({"responses": {"corpus": str(corpus), "inter_token_latency_ms": 0, "temperature": 0}})
    raw = chat(client, max_tokens=14, stream=True).get_data()
    assert "Grüße".encode() in raw or b"Gr" in raw
    events = parse_sse(raw)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == 'Grüße aus Köln. 東京は大きい "quoted" back\\slash'[: len(text)] and len(text) > 20


# --- legacy completions ---------------------------------------------------------------------------------


def test_legacy_completion_body_matches_the_spec(client):
    response = legacy(client, max_tokens=4)
    body = response.get_json()
    assert_valid("CreateCompletionResponse", body)
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 4


def test_legacy_stream_puts_finish_reason_on_the_last_text_chunk(client):
    events = parse_sse(legacy(client, max_tokens=4, stream=True, stream_options={"include_usage": True}).get_data())
    chunks = events[:-1]
    assert len(chunks) == 5
    for chunk in chunks[:4]:
        assert_valid_legacy_chunk(chunk)
        assert chunk["object"] == "text_completion" and "usage" not in chunk
    assert [c["choices"][0]["finish_reason"] for c in chunks[:4]] == [None, None, None, "length"]
    assert all(c["choices"][0]["text"] for c in chunks[:4])
    assert chunks[4]["choices"] == [] and chunks[4]["usage"]["completion_tokens"] == 4
    assert_valid("CreateCompletionResponse", chunks[4])


def test_legacy_prompt_can_be_token_ids_or_a_list(client):
    assert legacy(client, prompt=[1, 2, 3], max_tokens=1).get_json()["usage"]["prompt_tokens"] == 3
    assert legacy(client, prompt=["a b", "c"], max_tokens=1).status_code == 200


def test_legacy_max_tokens_zero_ends_at_once(client):
    events = parse_sse(legacy(client, max_tokens=0, stream=True).get_data())
    assert len(events) == 2 and events[0]["choices"][0]["finish_reason"] == "length"


def test_model_and_endpoint_must_match_as_in_the_real_api(client):
    error = error_of(legacy(client, model="gpt-4o-mini"), 404)
    assert "This is a chat model" in error["message"] and error["param"] == "model"
    error = error_of(chat(client, model="gpt-3.5-turbo-instruct"), 404)
    assert "not a chat model" in error["message"]


# --- errors ---------------------------------------------------------------------------------------------


def test_invalid_json_gets_the_real_400(client):
    error = error_of(client.post("/v1/chat/completions", data="{not json"), 400)
    assert error["message"].startswith("We could not parse the JSON body of your request.")
    assert error["param"] is None and error["code"] is None and error["type"] == "invalid_request_error"


def test_json_nested_too_deep_is_a_parse_error_not_a_crash(client):
    error = error_of(client.post("/v1/chat/completions", data="[" * 100000), 400)
    assert error["message"].startswith("We could not parse the JSON body")


def test_empty_messages_is_an_empty_array_error(client):
    error = error_of(chat(client, messages=[]), 400)
    assert error["param"] == "messages" and error["code"] == "empty_array"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_tokens", "10", "Invalid type for 'max_tokens': expected an integer, but got a string instead."),
        ("stream", "yes", "Invalid type for 'stream': expected a boolean, but got a string instead."),
        (
            "temperature",
            "hot",
            "Invalid type for 'temperature': expected a decimal, but got a string instead.",
        ),
        ("tools", {}, "Invalid type for 'tools': expected an array, but got an object instead."),
        ("messages", "hi", "Invalid type for 'messages': expected an array, but got a string instead."),
    ],
)
def test_wrong_types_name_the_field(client, field, value, message):
    error = error_of(chat(client, **{field: value}), 400)
    assert error == {
        "message": message,
        "type": "invalid_request_error",
        "param": field,
        "code": "invalid_type",
    }


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("max_tokens", -1, "integer_below_min_value"),
        ("n", 0, "integer_below_min_value"),
        ("temperature", 2.5, "decimal_above_max_value"),
        ("top_logprobs", 21, "integer_above_max_value"),
        ("reasoning_effort", "max", "invalid_value"),
    ],
)
def test_bad_values_have_the_real_codes(client, field, value, code):
    error = error_of(chat(client, **{field: value}), 400)
    assert error["param"] == field and error["code"] == code


def test_n_of_zero_has_the_real_wording(client):
    error = error_of(chat(client, n=0), 400)
    assert error["message"] == "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead."


def test_bad_messages_point_at_the_message(client):
    error = error_of(chat(client, messages=[{"role": "user", "content": "a"}, {"content": "b"}]), 400)
    assert error["param"] == "messages[1].role" and error["code"] == "missing_required_parameter"
    error = error_of(chat(client, messages=[{"role": "robot", "content": "a"}]), 400)
    assert error["param"] == "messages[0].role" and error["code"] == "invalid_value"
    assert error["message"].startswith("Invalid value: 'robot'. Supported values are: 'system',")


def test_max_tokens_above_the_model_limit(client):
    error = error_of(chat(client, model="gpt-3.5-turbo", max_tokens=5000), 400)
    assert error["message"] == (
        "max_tokens is too large: 5000. This model supports at most 4096 completion tokens, whereas you provided 5000."
    )
    assert error["param"] == "max_tokens" and error["code"] == "invalid_value"
    error = error_of(chat(client, max_completion_tokens=20000), 400)
    assert error["param"] == "max_completion_tokens"


def test_unknown_model_is_404_model_not_found(client):
    error = error_of(chat(client, model="gpt-9"), 404)
    assert error["message"] == "The model `gpt-9` does not exist or you do not have access to it."
    assert error["code"] == "model_not_found"


def test_allow_unknown_models_echoes_the_name(make_client):
    client = make_client({"models": {"allow_unknown": True}, "responses": {"inter_token_latency_ms": 0}})
    body = chat(client, model="my-finetune", max_tokens=2).get_json()
    assert body["model"] == "my-finetune"
    assert client.get("/v1/models/my-finetune").get_json()["id"] == "my-finetune"


@pytest.mark.parametrize(
    ("model", "answered"), [("gpt-4o-mini", "gpt-4o-mini-2024-07-18"), *[('tuned-ünï-"%s"-\\-模型',) * 2]]
)
@pytest.mark.parametrize("n", [1, 2])
def test_every_chunk_of_a_stream_is_compact_json_with_the_envelope_first(make_client, model, answered, n):
    # A one-choice stream fills its envelope and usage into templates, a stream of several encodes dicts: both
    # must write what json.dumps(separators=(",", ":"), ensure_ascii=False) writes, fields in the same order.
    client = make_client({"models": {"allow_unknown": True}})
    asked = dict(stream=True, stream_options={"include_usage": True}, max_tokens=5, n=n, model=model)
    raw = chat(client, **asked).get_data(as_text=True)
    lines = [line[6:] for line in raw.split("\n\n") if line.startswith("data: {")]
    assert len(lines) == n + 5 * n + n + 1  # a role and a finish a choice, the tokens, the usage
    for line in lines:
        chunk = json.loads(line)
        assert line == json.dumps(chunk, separators=(",", ":"), ensure_ascii=False)
        assert list(chunk)[:6] == ["id", "object", "created", "model", "service_tier", "system_fingerprint"]
        assert (chunk["model"], chunk["object"], chunk["service_tier"]) == (
            answered,
            "chat.completion.chunk",
            "default",
        )
    usage = json.loads(lines[-1])["usage"]
    assert (usage["completion_tokens"], usage["total_tokens"]) == (5 * n, usage["prompt_tokens"] + 5 * n)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}


def test_stream_options_without_stream_is_rejected(client):
    error = error_of(chat(client, stream_options={"include_usage": True}), 400)
    assert error["message"] == "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    assert chat(client, stream=False, stream_options=None, max_tokens=1).status_code == 200


def test_unknown_route_and_wrong_method(client):
    error = error_of(client.post("/v1/nope"), 404)
    assert error["message"] == "Invalid URL (POST /v1/nope)"
    error = error_of(client.get("/v1/completions"), 405)
    assert error["message"] == "Invalid method for URL (GET /v1/completions)"


def test_oversized_body_is_413(make_client):
    client = make_client({"server": {"max_body_bytes": 2048}})
    error_of(client.post("/v1/chat/completions", data="x" * 5000, content_type="application/json"), 413)


def test_strict_mode_requires_model_and_messages_and_rejects_unknown_arguments(make_client):
    client = make_client({"server": {"strict_validation": True}})
    error = error_of(client.post("/v1/chat/completions", json={"model": "gpt-4o"}), 400)
    assert error == {
        "message": "Missing required parameter: 'messages'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "missing_required_parameter",
    }
    error = error_of(chat(client, max_tokens=1, frobnicate=True), 400)
    assert error["message"] == "Unrecognized request argument supplied: frobnicate"


def test_lenient_mode_ignores_unknown_arguments(make_client):
    client = make_client({"server": {"strict_validation": False}})
    assert chat(client, max_tokens=1, frobnicate=True).status_code == 200


def test_injected_server_errors_follow_error_rate_percent(make_client):
    client = make_client({"responses": {"error_rate_percent": 100}})
    error = error_of(chat(client, max_tokens=1), 500)
    assert error["type"] == "server_error"


def test_streaming_can_be_disabled(make_client):
    client = make_client({"responses": {"streaming_enabled": False}})
    error = error_of(chat(client, stream=True), 400)
    assert error["param"] == "stream"
    assert chat(client, max_tokens=1).status_code == 200


def test_an_unexpected_failure_is_a_500_in_the_openai_shape(client, app, monkeypatch):
    monkeypatch.setattr("app.api.completions.respond", lambda *args: 1 / 0)
    error = error_of(chat(client, max_tokens=1), 500)
    assert error["type"] == "server_error"


def test_bodies_are_indented_exactly_as_the_real_api_does(client):
    import json

    for response in (chat(client, max_tokens=3), legacy(client, max_tokens=3), client.get("/v1/models")):
        text = response.get_data(as_text=True)
        assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    error = chat(client, n=0).get_data(as_text=True)
    assert error == json.dumps(json.loads(error), indent=4) + "\n"
