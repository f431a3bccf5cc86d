"""/v1/responses: the Response object, its typed event stream, conversation state and stored objects."""

from __future__ import annotations

import json
import re

import pytest

from tests.openapi import assert_valid, assert_valid_response_event

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def client(make_client):
    return make_client({"latency": {"inter_token_latency_ms": 0}})


def create(client, **body):
    body.setdefault("model", "gpt-4.1")
    body.setdefault("input", "Tell me about harbours")
    response = client.post("/v1/responses", json=body)
    assert response.status_code == 200, response.get_json()
    return response


def events_of(response) -> list[dict]:
    events = []
    for block in response.get_data(as_text=True).strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        event = json.loads(fields["data"])
        assert fields["event"] == event["type"]
        assert_valid_response_event(event)
        events.append(event)
    return events


def test_a_response_matches_the_spec_and_echoes_the_request(client):
    body = create(client, instructions="Be brief", metadata={"k": "v"}, temperature=0.5).get_json()
    assert_valid("Response", body)
    assert body["object"] == "response" and body["id"].startswith("resp_") and body["status"] == "completed"
    assert body["model"] == "gpt-4.1-2025-04-14" and body["instructions"] == "Be brief"
    assert body["metadata"] == {"k": "v"} and body["temperature"] == 0.5
    (message,) = body["output"]
    assert message["type"] == "message" and message["role"] == "assistant" and message["id"].startswith("msg_")
    text = message["content"][0]["text"]
    assert message["content"][0]["type"] == "output_text" and text
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] and usage["output_tokens"] > 0


def test_ids_are_the_real_ones_shape_and_new_on_every_response(client):
    first, second = (create(client).get_json() for _ in range(2))
    for body in (first, second):
        assert re.fullmatch(r"resp_[0-9a-f]{48}", body["id"])
        assert re.fullmatch(r"msg_[0-9a-f]{48}", body["output"][0]["id"])
    assert first["id"] != second["id"] and first["output"][0]["id"] != second["output"][0]["id"]


def test_max_output_tokens_makes_it_incomplete(client):
    body = create(client, max_output_tokens=16).get_json()
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["usage"]["output_tokens"] == 16


@pytest.mark.parametrize("tokens", [20, 1800])  # 1,800: past the end of the corpus's tokens, wherever it starts
def test_the_stream_is_the_real_event_sequence(client, tokens):
    events = events_of(create(client, stream=True, max_output_tokens=tokens))
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) == tokens
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == "".join(deltas) == events[-1]["response"]["output"][0]["content"][0]["text"]
    assert all("obfuscation" in e for e in events if e["type"] == "response.output_text.delta")
    quiet = events_of(create(client, stream=True, stream_options={"include_obfuscation": False}))
    assert not any("obfuscation" in e for e in quiet)


@pytest.mark.parametrize("mode", ["corpus", "echo"])
@pytest.mark.parametrize("obfuscation", [True, False])
def test_every_event_is_compact_json_in_the_real_field_order(make_client, mode, obfuscation):
    """The text deltas are written from their parts, not encoded one by one: each must still be exactly what
    ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)`` writes, fields in the real API's order,
    for any text (echo sends the input's quotes, backslashes, newlines and non-ASCII back)."""
    client = make_client({"latency": {"inter_token_latency_ms": 0}, "responses": {"mode": mode}})
    text = 'Say "hi" \\ back\nslash — «ünïcode» 👋 and more words to stream'
    response = create(
        client, input=text, stream=True, max_output_tokens=40, stream_options={"include_obfuscation": obfuscation}
    )
    deltas = []
    for block in response.get_data(as_text=True).strip().split("\n\n"):
        data = block.split("\ndata: ", 1)[1]
        event = json.loads(data)
        assert data == json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        if event["type"] == "response.output_text.delta":
            fields = ["type", "sequence_number", "item_id", "output_index", "content_index", "delta", "logprobs"]
            assert list(event) == fields + (["obfuscation"] if obfuscation else [])
            deltas.append(event["delta"])
        if event["type"] == "response.output_text.done":
            assert "".join(deltas) == event["text"] and len(deltas) > 5
    if mode == "echo":
        assert text.startswith("".join(deltas))


@pytest.mark.parametrize("mode", ["corpus", "echo"])
@pytest.mark.parametrize("max_output_tokens", [40, 1800])  # 1,800: past the end of the corpus's tokens
def test_a_messages_events_are_what_its_item_encodes_to(make_client, mode, max_output_tokens):
    """The five events around a message (its item and its part added and done, its text done) are filled into
    templates: each must be the dict the real API sends, built from the completed item, encoded as ``compact``
    encodes it, fields in that order, with its own sequence number."""
    client = make_client({"latency": {"inter_token_latency_ms": 0}, "responses": {"mode": mode}})
    text = 'Say "hi" \\ back\nslash — «ünïcode» 👋 %s %(x)s @text@ and more words to stream'
    response = create(client, input=text, stream=True, max_output_tokens=max_output_tokens)
    blocks = response.get_data(as_text=True).strip().split("\n\n")
    data = {json.loads(b.split("\ndata: ", 1)[1])["type"]: b.split("\ndata: ", 1)[1] for b in blocks}
    numbers = {kind: json.loads(d)["sequence_number"] for kind, d in data.items()}
    item = json.loads(data["response.completed" if "response.completed" in data else "response.incomplete"])
    item = item["response"]["output"][0]
    part = item["content"][0]
    inside = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    expected = {
        "response.output_item.added": {"output_index": 0, "item": dict(item, status="in_progress", content=[])},
        "response.content_part.added": {**inside, "part": dict(part, text="")},
        "response.output_text.done": {**inside, "text": part["text"], "logprobs": []},
        "response.content_part.done": {**inside, "part": part},
        "response.output_item.done": {"output_index": 0, "item": item},
    }
    for kind, fields in expected.items():
        event = {"type": kind, "sequence_number": numbers[kind], **fields}
        assert data[kind] == json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    assert numbers["response.output_item.added"] == 2 and numbers["response.content_part.added"] == 3
    assert len(part["text"]) > 20 and (mode == "corpus" or text.startswith(part["text"]))


def test_function_calls_as_items_and_in_the_stream(client):
    body = create(client, input="What is the weather in Paris?", tools=[WEATHER]).get_json()
    (call,) = body["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather" and call["call_id"].startswith("call_")
    assert isinstance(json.loads(call["arguments"])["city"], str)
    events = events_of(create(client, input="weather in Oslo?", tools=[WEATHER], stream=True))
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert "".join(deltas) == done["arguments"] and done["name"] == "get_weather"
    assert events[-1]["type"] == "response.completed"
    follow_up = create(
        client,
        input=[
            {
                "type": "function_call",
                "call_id": call["call_id"],
                "name": "get_weather",
                "arguments": call["arguments"],
            },
            {"type": "function_call_output", "call_id": call["call_id"], "output": "22 C"},
        ],
        tools=[WEATHER],
        previous_response_id=body["id"],
    ).get_json()
    assert follow_up["output"][0]["type"] == "message"


def test_structured_output_via_text_format(client):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"enum": ["a", "b"]}}},
        "required": ["name", "tags"],
        "additionalProperties": False,
    }
    text_format = {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}
    body = create(client, text={"format": text_format}).get_json()
    value = json.loads(body["output"][0]["content"][0]["text"])
    assert set(value) == {"name", "tags"} and set(value["tags"]) <= {"a", "b"}
    assert body["text"]["format"] == text_format


def test_conversation_state_retrieve_input_items_and_delete(client):
    first = create(client, input="My name is Ada.").get_json()
    second = create(client, input="What is my name?", previous_response_id=first["id"]).get_json()
    assert second["previous_response_id"] == first["id"]
    assert second["usage"]["input_tokens"] > first["usage"]["input_tokens"]
    assert client.get(f"/v1/responses/{first['id']}").get_json() == first
    items = client.get(f"/v1/responses/{second['id']}/input_items").get_json()
    assert_valid("ResponseItemList", items)
    assert items["data"][0]["content"][0]["text"] == "What is my name?"
    deleted = client.delete(f"/v1/responses/{first['id']}")
    assert deleted.get_json() == {"id": first["id"], "object": "response", "deleted": True}
    missing = client.get(f"/v1/responses/{first['id']}")
    assert missing.status_code == 404 and missing.get_json()["error"]["message"].startswith("Response with id")
    gone = client.post("/v1/responses", json={"model": "gpt-4.1", "input": "x", "previous_response_id": "resp_nope"})
    assert gone.status_code == 404 and gone.get_json()["error"]["code"] == "previous_response_not_found"


def test_store_false_is_not_kept(client):
    body = create(client, store=False).get_json()
    assert body["store"] is False and client.get(f"/v1/responses/{body['id']}").status_code == 404


def test_background_responses_complete_later_and_can_be_cancelled(make_client):
    slow = make_client({"latency": {"ttft_ms": 3000}})
    queued = slow.post("/v1/responses", json={"model": "gpt-4.1", "input": "x", "background": True}).get_json()
    assert queued["status"] == "queued" and queued["background"] is True and queued["output"] == []
    assert slow.get(f"/v1/responses/{queued['id']}").get_json()["status"] == "in_progress"
    cancelled = slow.post(f"/v1/responses/{queued['id']}/cancel").get_json()
    assert cancelled["status"] == "cancelled"
    fast = make_client({"latency": {"ttft_ms": 0, "inter_token_latency_ms": 0}})
    done = fast.post("/v1/responses", json={"model": "gpt-4.1", "input": "x", "background": True}).get_json()
    assert fast.get(f"/v1/responses/{done['id']}").get_json()["status"] == "completed"
    refused = fast.post(f"/v1/responses/{done['id']}/cancel")
    assert refused.status_code == 400
    plain = create(fast).get_json()
    assert fast.post(f"/v1/responses/{plain['id']}/cancel").status_code == 400


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "gpt-4.1", "input": 5}, "input"),
        ({"model": "gpt-4.1", "input": [{"role": "user", "content": [{"type": "bogus"}]}]}, "input[0].content[0].type"),
        ({"model": "gpt-4.1", "input": "x", "max_output_tokens": 5}, "max_output_tokens"),
        ({"model": "gpt-4.1", "input": "x", "background": True, "store": False}, "background"),
        ({"model": "gpt-4.1", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
    ],
)
def test_bad_requests(client, body, param):
    response = client.post("/v1/responses", json=body)
    assert response.status_code == 400 and response.get_json()["error"]["param"] == param


def test_a_streamed_background_response_streams_and_is_stored(client):
    events = events_of(create(client, background=True, stream=True))
    response_id = events[0]["response"]["id"]
    assert events[0]["response"]["background"] is True and events[-1]["type"] == "response.completed"
    assert client.get(f"/v1/responses/{response_id}").get_json()["status"] == "completed"


def test_settings_sent_as_null_are_echoed_as_their_defaults(client):
    # found by tests/e2e/test_fuzz.py: "parallel_tool_calls": null came back null, which the spec does not allow
    nulls = dict.fromkeys(("parallel_tool_calls", "store", "temperature", "tool_choice", "top_p", "truncation"))
    body = create(client, **nulls).get_json()
    assert body["parallel_tool_calls"] is True and body["store"] is True and body["tool_choice"] == "auto"
    assert body["temperature"] == 1.0 and body["top_p"] == 1.0 and body["truncation"] == "disabled"
    assert_valid("Response", body)


# --- compaction: POST /v1/responses/compact, and context_management ---------------------------------------

CONVERSATION = [
    {"role": "user", "content": "Plan the launch of a dog petting cafe. " * 40},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A plan: " * 300}]},
    {"role": "user", "content": "And the budget?"},
]


def compact(client, **body):
    body.setdefault("model", "gpt-4.1")
    response = client.post("/v1/responses/compact", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_compact_keeps_the_users_messages_and_one_compaction_item_that_stands_for_the_rest(client):
    compacted = compact(client, input=CONVERSATION)
    assert_valid("CompactResource", compacted)
    assert compacted["object"] == "response.compaction" and compacted["id"].startswith("resp_")
    *users, item = compacted["output"]
    assert [u["content"][0]["text"] for u in users] == [CONVERSATION[0]["content"], "And the budget?"]
    assert {u["role"] for u in users} == {"user"} and item["type"] == "compaction" and item["id"].startswith("cmp_")
    whole = create(client, input=CONVERSATION).get_json()["usage"]["input_tokens"]
    usage = compacted["usage"]
    assert usage["input_tokens"] == whole and 16 <= usage["output_tokens"] <= whole // 4
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    # Given back as the next input, it costs the summary's tokens, not the assistant's 300-word answer's.
    after = create(client, input=[*compacted["output"], {"role": "user", "content": "Go on"}]).get_json()
    assert after["usage"]["input_tokens"] < whole - 250


def test_compact_reads_a_stored_conversation_and_is_as_strict_as_the_rest(client):
    first = create(client, input="Remember the number 7").get_json()
    compacted = compact(client, previous_response_id=first["id"], input="What was it?", prompt_cache_key="k",
                        prompt_cache_options={"mode": "implicit", "ttl": "30m"}, service_tier="auto")  # fmt: skip
    assert [o["type"] for o in compacted["output"]] == ["message", "message", "compaction"]
    refused = client.post("/v1/responses/compact", json={"input": "hi"})
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "missing_required_parameter"
    refused = client.post("/v1/responses/compact", json={"model": "gpt-4.1", "stream": True})
    assert refused.get_json()["error"]["message"] == "Unrecognized request argument supplied: stream"
    assert client.post("/v1/responses/compact", json={"model": "gpt-9"}).status_code == 404


def test_context_management_compacts_an_input_past_its_threshold_before_the_answer(client):
    policy = [{"type": "compaction", "compact_threshold": 1000}]
    small = create(client, input="hi", context_management=policy).get_json()
    assert [o["type"] for o in small["output"]] == ["message"]
    big = create(client, input="word " * 1200, context_management=policy, max_output_tokens=16).get_json()
    assert_valid("Response", big)
    assert [o["type"] for o in big["output"]] == ["compaction", "message"]
    events = events_of(create(client, input="word " * 1200, context_management=policy, stream=True))
    for event in events:
        assert_valid_response_event(event)
    opened = [e for e in events if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["type"]) for e in opened] == [(0, "compaction"), (1, "message")]
    assert {e["output_index"] for e in events if e["type"] == "response.output_text.delta"} == {1}
    for wrong, code in (({"type": "summary"}, "invalid_value"), ({"type": "compaction", "compact_threshold": 10},
                        "integer_below_min_value")):  # fmt: skip
        refused = client.post("/v1/responses", json={"model": "gpt-4.1", "input": "hi", "context_management": [wrong]})
        assert refused.status_code == 400 and refused.get_json()["error"]["code"] == code
