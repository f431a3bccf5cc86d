"""Prompt caching (app/simulation/prompt_cache.py): a repeated prefix of 1,024 tokens or more is reported as
cached, in steps of 128, and skips prefill; anything else is not."""

from __future__ import annotations

import time

import pytest

from app.simulation.prompt_cache import prefix_digests, tokens_bytes
from app.tokens import chat_tokens, count_message_tokens

SYSTEM = " ".join(f"Rule {i}: answer in full sentences and cite the section you rely on." for i in range(250))


def chat(client, question, system=SYSTEM, **extra):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": system}], "max_tokens": 4}
    body["messages"].append({"role": "user", "content": question})
    response = client.post("/v1/chat/completions", json=body | extra)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["usage"]


def cached(usage) -> int:
    return usage["prompt_tokens_details"]["cached_tokens"]


def test_a_repeated_prefix_is_cached_in_steps_of_128_from_1024(client):
    first = chat(client, "What is rule 3?")
    assert cached(first) == 0  # the first time, nothing is cached: it is written
    second = chat(client, "And what does rule 7 say about sources?")
    assert second["prompt_tokens"] > 2500
    hit = cached(second)
    # the shared part is the system prompt and the user message's framing; cached up to the last whole step in it
    assert hit >= 1024 and (hit - 1024) % 128 == 0
    assert second["prompt_tokens"] - 128 - 20 < hit <= second["prompt_tokens"] - 10
    # the whole prompt seen once more: cached up to its own last whole step
    whole = 1024 + (second["prompt_tokens"] - 1024) // 128 * 128
    assert cached(chat(client, "And what does rule 7 say about sources?")) == whole


def test_a_short_prompt_or_a_different_prefix_or_model_is_not_cached(client):
    short = "Be brief. " * 50
    chat(client, "q", system=short)
    assert cached(chat(client, "q", system=short)) == 0  # under 1,024 tokens
    chat(client, "q")
    assert cached(chat(client, "q", system="A different opening. " + SYSTEM)) == 0
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "system", "content": SYSTEM}], "max_tokens": 4}
    other_model = client.post("/v1/chat/completions", json=body).get_json()["usage"]
    assert cached(other_model) == 0


def test_prompt_cache_key_routes_to_a_cache_of_its_own(client):
    chat(client, "q1", prompt_cache_key="tenant-a")
    assert cached(chat(client, "q2", prompt_cache_key="tenant-b")) == 0
    assert cached(chat(client, "q3", prompt_cache_key="tenant-a")) > 0
    assert cached(chat(client, "q4", prompt_cache_key="tenant-b")) > 0


def test_responses_report_it_as_input_tokens_details(client):
    def respond(text):
        body = {"model": "gpt-4o-mini", "instructions": SYSTEM, "input": text, "max_output_tokens": 16}
        response = client.post("/v1/responses", json=body)
        assert response.status_code == 200, response.get_json()
        return response.get_json()["usage"]

    assert respond("first")["input_tokens_details"]["cached_tokens"] == 0
    usage = respond("second")
    assert usage["input_tokens_details"]["cached_tokens"] >= 1024
    assert usage["input_tokens_details"]["cached_tokens"] <= usage["input_tokens"]


def test_a_stream_reports_the_cached_tokens_in_its_usage_chunk(client):
    chat(client, "q")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": SYSTEM}], "max_tokens": 4}
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    text = client.post("/v1/chat/completions", json=body).get_data(as_text=True)
    assert '"cached_tokens":' in text and '"cached_tokens":0' not in text.replace(" ", "")


def test_an_idle_prefix_is_forgotten_after_retention_s_and_24h_retention_keeps_it(make_client):
    client = make_client({"prompt_cache": {"retention_s": 0.2}})
    chat(client, "q")
    time.sleep(0.3)
    assert cached(chat(client, "q")) == 0
    chat(client, "q", system="Kept. " + SYSTEM, prompt_cache_retention="24h")
    time.sleep(0.3)
    assert cached(chat(client, "q", system="Kept. " + SYSTEM)) > 0


def test_the_cache_can_be_turned_off_and_explicit_mode_without_breakpoints_caches_nothing(make_client):
    client = make_client({"prompt_cache": {"enabled": False}})
    chat(client, "q")
    assert cached(chat(client, "q")) == 0
    client = make_client({})
    options = {"mode": "explicit"}
    chat(client, "q", prompt_cache_options=options)
    assert cached(chat(client, "q", prompt_cache_options=options)) == 0


def test_cached_tokens_skip_prefill(make_client):
    client = make_client({"latency": {"prefill_ms_per_1k_prompt_tokens": 100, "inter_token_latency_ms": 0}})

    def first_token_s() -> float:  # unpaced, a body is sent at its first token
        started = time.monotonic()
        chat(client, "q")
        return time.monotonic() - started

    uncached = first_token_s()  # about 2,500 tokens: 0.25 s of prefill
    assert uncached >= 0.2
    assert first_token_s() < uncached / 4  # the rest, under 128 tokens: about 0.01 s


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-3.5-turbo"])  # o200k and cl100k
def test_the_prompt_is_read_as_many_tokens_as_it_counts(model):
    body = {
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "system", "content": SYSTEM, "name": "policy"},
            {"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        ],
    }  # fmt: skip
    assert len(chat_tokens(body["messages"], body["tools"], model)) == count_message_tokens(
        body["messages"], body["tools"], model
    )


def test_prefixes_have_equal_digests_exactly_while_their_tokens_are_equal():
    # Each kind of token list: ids (the vocabularies), pieces (the approximation), ids with an image's marks, and
    # pieces that hold a NUL (the separator of pieces). Two prompts share their digests up to the first step
    # where a token differs, and none after it.
    ids = list(range(100_000, 102_000))
    pieces = [f" w{i}" for i in range(2000)]
    marked = [*ids[:1100], *["a1b2c3d4"] * 85, *ids[1185:]]
    nul = [*pieces[:1500], "a\0b", *pieces[1501:]]
    for tokens in (ids, pieces, marked, nul):
        digests = prefix_digests(tokens, "m\0", 1024, 128)
        assert len(digests) == 8 and len(set(digests)) == 8
        assert prefix_digests(list(tokens), "m\0", 1024, 128) == digests
        changed = [*tokens[:1300], "x" if tokens[1300] != "x" else "y", *tokens[1301:]]  # in the step 1280-1408
        assert prefix_digests(changed, "m\0", 1024, 128)[:3] == digests[:3]
        assert not set(prefix_digests(changed, "m\0", 1024, 128)[3:]) & set(digests)
        assert prefix_digests(tokens, "other\0", 1024, 128)[0] != digests[0]  # another model or cache key
    # Lists that would read alike in a careless encoding: ids against their bytes as text, pieces split at a NUL
    # against pieces joined, a mark against the id of the same digits
    assert tokens_bytes(["a\0b", "c"]) != tokens_bytes(["a", "b\0c"])
    assert tokens_bytes(["a", "b"]) != tokens_bytes(["a\0b"])
    assert tokens_bytes(["ab", "c"]) != tokens_bytes(["a", "bc"])
    assert tokens_bytes([1, 2]) != tokens_bytes(["\x01\x00\x00\x00\x02\x00\x00\x00"])
    assert tokens_bytes([12]) != tokens_bytes(["12"])
    assert tokens_bytes([5, "m"]) != tokens_bytes([5, "n"])
    assert tokens_bytes([2**40]) != tokens_bytes([2**40 + 1])  # not an id of 4 bytes: kept whole


def test_a_long_prompt_is_cached_without_the_vocabularies_too(client, monkeypatch):
    # the approximation's pieces are hashed as text, not as ids
    monkeypatch.setattr("app.tokens._encodings", {})
    first = chat(client, "What is rule 3?", system="Without vocabularies. " + SYSTEM)
    assert cached(first) == 0
    assert cached(chat(client, "And rule 9?", system="Without vocabularies. " + SYSTEM)) >= 1024
