"""/v1/models from the configured model list."""

from tests.openapi import assert_valid


def test_list_models_matches_the_spec_and_the_defaults(client):
    response = client.get("/v1/models")
    body = response.get_json()
    assert_valid("ListModelsResponse", body)
    assert [m["id"] for m in body["data"]] == [
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-3.5-turbo",
        "gpt-3.5-turbo-instruct",
    ]


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
