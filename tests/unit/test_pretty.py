"""Bodies are indented as ``json.dumps(body, indent=2, ensure_ascii=False)`` writes them (the real API's two
spaces; its errors four, ASCII-escaped): :func:`app.pretty_json.pretty` writes exactly that text, for any
value, faster where the value is plain. Stream events are compact, and :func:`app.pretty_json.one_line`
writes what ``json.dumps`` writes with the same separators."""

from __future__ import annotations

import enum
import json
import random

import pytest

from app.pretty_json import one_line, pretty


def reference(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


STRINGS = ["", "a", "é日本語", 'quote " and \\ back', "line\nbreak\ttab\x00\x1f", "\u2028\u2029", "🙂", "%s %(x)s"]
NUMBERS = [0, -1, 7, 2**70, -(2**64), 0.0, -0.0, 0.1, 1e16, 1.5e-7, 123456.789, 1e308]


def random_value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth < 4 and roll < 0.25:
        return {rng.choice(STRINGS) + str(k): random_value(rng, depth + 1) for k in range(rng.randrange(4))}
    if depth < 4 and roll < 0.45:
        items = [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
        return tuple(items) if rng.random() < 0.2 else items
    return rng.choice([*STRINGS, *NUMBERS, True, False, None])


@pytest.mark.parametrize("seed", range(40))
def test_any_plain_value_is_written_as_the_standard_library_writes_it(seed):
    rng = random.Random(seed)
    for _ in range(25):
        value = random_value(rng)
        assert pretty(value) == reference(value)
        assert pretty(value, indent=4, ensure_ascii=True) == json.dumps(value, indent=4)


class Level(enum.IntEnum):
    HIGH = 3


class Text(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {"n": float("nan"), "i": float("inf"), "j": [float("-inf")]},
        {"level": Level.HIGH, "ok": True},
        {"text": Text("x")},
        {1: "a", None: "b", 2.5: "c", False: "d"},
        [{"nested": {"key": [1, {"deep": [None]}]}}, "after"],
    ],
    ids=["nan and infinities", "an int subclass", "a str subclass", "keys that are not strings", "nested"],
)
def test_what_is_not_plain_is_still_written_as_the_standard_library_writes_it(value):
    assert pretty(value) == reference(value)


def test_what_json_cannot_write_raises_as_the_standard_library_raises():
    with pytest.raises(TypeError, match="not JSON serializable"):
        pretty({"when": object()})
    looped: list = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        pretty(looped)


ONE_LINE_FORMS = [((",", ":"), False), ((",", ": "), False), ((",", ": "), True), ((", ", ": "), True)]


@pytest.mark.parametrize(("separators", "ensure_ascii"), ONE_LINE_FORMS)
def test_one_line_writes_what_json_dumps_writes(separators, ensure_ascii):
    write = one_line(separators, ensure_ascii)
    rng = random.Random(7)
    values = [random_value(rng) for _ in range(400)]
    values += [
        {"n": float("nan"), "i": float("inf"), "j": [float("-inf")]},
        {"level": Level.HIGH, "ok": True, "text": Text("x")},
        {1: "a", None: "b", 2.5: "c", False: "d"},
        "a string alone",
        7,
    ]
    for value in values:
        assert write(value) == json.dumps(value, separators=separators, ensure_ascii=ensure_ascii)


def test_what_one_line_cannot_write_raises_as_the_standard_library_raises():
    write = one_line()
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        write({"when": [object()]})
    looped: list = []
    looped.append(looped)
    with pytest.raises(RecursionError):  # (ValueError from json.dumps: nothing written here refers to itself)
        write(looped)
    assert write({"after": "an error"}) == '{"after":"an error"}'  # the encoder is not left broken


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v1/responses", {"model": "gpt-4.1", "input": "Hi", "max_output_tokens": 16}),
        ("get", "/v1/models", None),
        ("post", "/v1/chat/completions",
         {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "logprobs": True, "top_logprobs": 2}),
        ("post", "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}],
                                          "tool_choice": "required", "tools": [{"type": "function", "function": {
                                              "name": "weather", "parameters": {"type": "object", "properties": {
                                                  "city": {"type": "string"}}}}}]}),
    ],
    ids=["responses", "models", "chat with logprobs", "chat with a tool call"],
)  # fmt: skip
def test_bodies_are_indented_as_the_real_api_indents_them(client, method, path, body):
    response = getattr(client, method)(path, json=body) if body is not None else getattr(client, method)(path)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == reference(response.get_json())


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1beta/models/gemini-2.5-flash:countTokens", {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}),
        ("/v1beta/models/gemini-embedding-001:embedContent", {"content": {"parts": [{"text": "Hi"}]}}),
        ("/v1beta/models", None),
        ("/v1beta/models/gemini-2.5-flash", None),
    ],
    ids=["countTokens", "embedContent", "models", "a model"],
)
def test_geminis_other_bodies_are_indented_and_escaped_as_before(client, path, body):
    headers = {"x-goog-api-key": "k"}
    got = client.post(path, json=body, headers=headers) if body is not None else client.get(path, headers=headers)
    assert got.status_code == 200
    assert got.get_data(as_text=True) == json.dumps(got.get_json(), indent=2)


def test_geminis_bodies_and_errors_are_indented_as_google_indents_them(client):
    headers = {"x-goog-api-key": "k"}
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    answered = client.post(path, json={"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}, headers=headers)
    refused = client.post(path, json={"contents": "not a list"}, headers=headers)
    assert answered.status_code == 200 and refused.status_code == 400
    assert answered.get_data(as_text=True) == reference(answered.get_json())
    assert refused.get_data(as_text=True) == reference(refused.get_json()) + "\n"
    blocked = client.post(path, json={"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]},
                          headers=headers | {"X-Mock-Error": "content_filter"})  # fmt: skip
    assert blocked.status_code == 200 and "promptFeedback" in blocked.get_json()
    assert blocked.get_data(as_text=True) == json.dumps(blocked.get_json(), indent=2)


def test_openai_errors_are_indented_by_four_spaces_as_the_real_api_indents_them(client):
    unknown = client.post(
        "/v1/chat/completions", json={"model": "gpt-ünknown", "messages": [{"role": "user", "content": "Hi"}]}
    )
    assert unknown.status_code == 404 and "\\u00fc" in unknown.get_data(as_text=True)
    assert unknown.get_data(as_text=True) == json.dumps(unknown.get_json(), indent=4) + "\n"
