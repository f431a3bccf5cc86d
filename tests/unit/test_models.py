"""/v1/models from the configured model list."""

from tests.openapi import assert_valid


def test_list_models_matches_the_spec_and_the_defaults(client):
    response = client.get("/v1/models")
    body = response.get_json()
    assert_valid("ListModelsResponse", body)
    ids = [m["id"] for m in body["data"]]
    assert ids[:3] == ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gpt-5.4"]
    for name in ("gpt-5", "gpt-4.1", "o3", "o4-mini", "gpt-4o", "gpt-3.5-turbo-instruct", "text-embedding-3-small"):
        assert name in ids


def test_a_completion_answers_as_the_dated_snapshot_and_the_snapshot_can_be_asked_for(client):
    for asked in ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"):
        body = client.post(
            "/v1/chat/completions", json={"model": asked, "messages": [{"role": "user", "content": "hi"}]}
        ).get_json()
        assert body["model"] == "gpt-4o-mini-2024-07-18"
    assert client.get("/v1/models/gpt-4o-mini-2024-07-18").get_json()["id"] == "gpt-4o-mini-2024-07-18"


def test_a_base_model_cannot_be_deleted_and_a_fine_tune_can(make_client):
    client = make_client({"models": {"available": ["gpt-4o-mini", "ft:gpt-4o-mini-2024-07-18:acme::abc123"]}})
    refused = client.delete("/v1/models/gpt-4o-mini")
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "model_not_deletable"
    fine_tune = "ft:gpt-4o-mini-2024-07-18:acme::abc123"
    deleted = client.delete(f"/v1/models/{fine_tune}")
    assert deleted.status_code == 200
    assert_valid("DeleteModelResponse", deleted.get_json())
    assert deleted.get_json() == {"id": fine_tune, "object": "model", "deleted": True}
    assert client.get(f"/v1/models/{fine_tune}").status_code == 404
    assert fine_tune not in [m["id"] for m in client.get("/v1/models").get_json()["data"]]
    chat = client.post(
        "/v1/chat/completions", json={"model": fine_tune, "messages": [{"role": "user", "content": "x"}]}
    )
    assert chat.status_code == 404 and chat.get_json()["error"]["code"] == "model_not_found"
    assert client.delete(f"/v1/models/{fine_tune}").status_code == 404


def test_retrieve_model(client):
    body = client.get("/v1/models/gpt-4o").get_json()
    assert_valid("Model", body)
    assert body["id"] == "gpt-4o" and body["object"] == "model"


def test_unknown_model_is_404(client):
    response = client.get("/v1/models/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "model_not_found"


def test_model_list_comes_from_config(make_client):
    client = make_client({"models": {"available": "llama-3:8192,mistral"}})
    assert [m["id"] for m in client.get("/v1/models").get_json()["data"]] == ["llama-3", "mistral"]
