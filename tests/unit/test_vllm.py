"""vLLM's own endpoints (app/formats/vllm): /tokenize and /detokenize in vLLM's shapes, /version, and LoRA
adapters loaded and unloaded at run time."""

from __future__ import annotations

import pytest

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How many tokens is this?"}]


def test_a_prompt_tokenizes_with_the_models_vocabulary_and_back(client):
    response = client.post(
        "/tokenize", json={"model": "gpt-4o-mini", "prompt": "Hello world", "return_token_strs": True}
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "count": 2,
        "max_model_len": 128000,
        "tokens": [13225, 2375],  # o200k_base
        "token_strs": ["Hello", " world"],
    }
    old = client.post("/tokenize", json={"model": "gpt-3.5-turbo", "prompt": "Hello world"}).get_json()
    assert old["tokens"] == [9906, 1917] and old["token_strs"] is None  # cl100k_base
    back = client.post("/detokenize", json={"model": "gpt-4o-mini", "tokens": [13225, 2375]})
    assert back.get_json() == {"prompt": "Hello world"}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-3.5-turbo"])
def test_chat_messages_tokenize_to_the_prompt_tokens_a_completion_reports(client, model):
    tokenized = client.post("/tokenize", json={"model": model, "messages": MESSAGES}).get_json()
    completion = client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "max_tokens": 1})
    assert tokenized["count"] == len(tokenized["tokens"]) == completion.get_json()["usage"]["prompt_tokens"]
    text = client.post("/detokenize", json={"model": model, "tokens": tokenized["tokens"]}).get_json()["prompt"]
    assert "Be brief." in text and "How many tokens is this?" in text and text.count("assistant") == 1
    bare = client.post("/tokenize", json={"model": model, "messages": MESSAGES, "add_generation_prompt": False})
    assert bare.get_json()["count"] == tokenized["count"] - 3  # without the reply's priming


def test_the_model_may_be_left_out_and_an_unknown_one_is_vllms_404(client):
    assert client.post("/tokenize", json={"prompt": "x"}).get_json()["count"] == 1
    response = client.post("/tokenize", json={"model": "nope", "prompt": "x"})
    assert response.status_code == 404
    assert response.get_json() == {
        "error": {"message": "The model `nope` does not exist.", "type": "NotFoundError", "param": None, "code": 404}
    }


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/tokenize", {"model": "gpt-4o"}, "prompt: Field required"),
        ("/tokenize", {"messages": MESSAGES, "continue_final_message": True}, "Cannot set both"),
        ("/detokenize", {"tokens": ["a"]}, "tokens: Input should be a valid list of integers"),
        ("/detokenize", {"tokens": [10**9]}, "out of vocabulary"),
        ("/tokenize", [1], "valid dictionary"),
    ],
)
def test_bad_bodies_get_vllms_400(client, path, body, message):
    response = client.post(path, json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert message in error["message"] and error["type"] == "BadRequestError" and error["code"] == 400


def test_version(client):
    assert client.get("/version").get_json() == {"version": "0.11.0"}


def test_a_lora_adapter_is_listed_answered_and_unloaded(client):
    load = {"lora_name": "sql-lora", "lora_path": "/adapters/sql-lora", "base_model_name": "gpt-4.1"}
    response = client.post("/v1/load_lora_adapter", json=load)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Success: LoRA adapter 'sql-lora' added successfully."
    again = client.post("/v1/load_lora_adapter", json=load)
    assert again.status_code == 400
    assert again.get_json()["error"]["message"] == "The lora adapter 'sql-lora' has already been loaded."

    listed = [m for m in client.get("/v1/models").get_json()["data"] if m["id"] == "sql-lora"]
    assert listed == [
        {"id": "sql-lora", "object": "model", "created": listed[0]["created"], "owned_by": "vllm",
         "root": "/adapters/sql-lora", "parent": "gpt-4.1"}
    ]  # fmt: skip
    assert client.get("/v1/models/sql-lora").get_json()["parent"] == "gpt-4.1"
    body = {"model": "sql-lora", "messages": MESSAGES, "max_tokens": 3}
    answered = client.post("/v1/chat/completions", json=body)
    assert answered.status_code == 200 and answered.get_json()["model"] == "sql-lora"

    gone = client.post("/v1/unload_lora_adapter", json={"lora_name": "sql-lora"})
    assert gone.get_data(as_text=True) == "Success: LoRA adapter 'sql-lora' removed successfully."
    assert client.post("/v1/chat/completions", json=body).status_code == 404
    assert all(m["id"] != "sql-lora" for m in client.get("/v1/models").get_json()["data"])
    missing = client.post("/v1/unload_lora_adapter", json={"lora_name": "sql-lora"})
    assert missing.status_code == 404
    assert missing.get_json()["error"] == {
        "message": "The lora adapter 'sql-lora' cannot be found.", "type": "NotFoundError", "param": None, "code": 404
    }  # fmt: skip


def test_an_adapter_needs_a_name_and_a_path_and_a_base_model_cannot_be_loaded_again(client):
    response = client.post("/v1/load_lora_adapter", json={"lora_name": "x"})
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "Both 'lora_name' and 'lora_path' must be provided."
    taken = client.post("/v1/load_lora_adapter", json={"lora_name": "gpt-4o", "lora_path": "/a"})
    assert taken.status_code == 400
    assert client.post("/v1/unload_lora_adapter", json={"lora_name": "gpt-4o"}).status_code == 404


def test_requests_to_an_adapter_show_in_vllm_lora_requests_info(client):
    client.post("/v1/load_lora_adapter", json={"lora_name": "tone", "lora_path": "/adapters/tone"})
    client.post("/v1/chat/completions", json={"model": "tone", "messages": MESSAGES, "max_tokens": 2})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'vllm:lora_requests_info{max_lora="1",running_lora_adapters="",waiting_lora_adapters=""}' in text
    assert 'vllm:request_success_total{finished_reason="length",model_name="tone"} 1.0' in text


def test_a_kv_cache_takes_blocks_as_tokens_are_due_and_gives_them_back(make_client):
    from app.simulation.kv_cache import KvSequence

    kv = KvSequence(None, "m", {"kv_cache_blocks": 100, "block_size": 16, "max_concurrent_sequences": 0}, 30)
    assert (
        list(kv.boundaries(40)) == [k for k in range(1, 40) if kv.blocks_for(k + 1) > kv.blocks_for(k)] == [2, 18, 34]
    )

    client = make_client({"latency": {"inter_token_latency_ms": 1, "kv_cache_blocks": 20}})
    shared = client.application.extensions["mock_openai"].shared
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert shared.used_blocks("gpt-4o-mini") == 7  # ~8 + 100 tokens, until the server closes the response
    response.close()
    assert shared.used_blocks("gpt-4o-mini") == 0
    client.post("/v1/chat/completions", json=body | {"stream": True}).get_data()
    assert shared.used_blocks("gpt-4o-mini") == 0
    scrape = client.get("/metrics").get_data(as_text=True)
    assert 'vllm:kv_cache_usage_perc{model_name="gpt-4o-mini"} 0.0' in scrape


def test_a_prompt_larger_than_the_kv_cache_is_refused(make_client):
    client = make_client({"latency": {"kv_cache_blocks": 4}})
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "word " * 100}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "context_length_exceeded"


def test_prefills_queue_per_model_and_take_their_steps_of_the_budget(tmp_path):
    from app.shared import open_shared
    from app.simulation.prefill import prefill_s

    shared = open_shared(str(tmp_path / "shared.sqlite3"))
    latency = {"max_num_batched_tokens": 1000, "inter_token_latency_ms": 20}
    first = prefill_s(shared, "m", 6000, latency, running=0)
    second = prefill_s(shared, "m", 6000, latency, running=0)  # behind the first: its six steps, then six more
    assert first == pytest.approx(0.12, abs=0.01) and second == pytest.approx(0.24, abs=0.01)
    assert prefill_s(shared, "other", 10, latency, running=0) == pytest.approx(0.02)  # another model: one step
    assert prefill_s(shared, "busy", 6000, latency, running=500) == pytest.approx(0.24, abs=0.01)  # half a budget
    assert prefill_s(shared, "m", 6000, latency | {"inter_token_latency_ms": 0}, running=0) == 0
