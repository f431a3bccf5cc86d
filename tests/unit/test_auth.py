"""The optional API key, answered as the real API answers it."""

from __future__ import annotations

import base64

import pytest

from app.auth import mask_key
from tests.openapi import assert_valid

TOKEN = "sk-mock-0123456789abcdef"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


@pytest.fixture
def secured(make_client):
    return make_client({"auth": {"token": TOKEN}, "responses": {"inter_token_latency_ms": 0}})


def test_without_a_token_everything_is_open(client):
    assert client.post("/v1/chat/completions", json=BODY).status_code == 200
    assert client.get("/tokens").status_code == 200


def test_missing_key_gets_the_real_401(secured):
    response = secured.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 401
    body = response.get_json()
    assert_valid("ErrorResponse", body)
    assert body["error"]["message"].startswith(
        "You didn't provide an API key. You need to provide your API key in an Authorization header using "
        "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."[:-2]
    )
    assert body["error"]["code"] is None and body["error"]["param"] is None
    assert body["error"]["type"] == "invalid_request_error"
    assert response.headers["x-request-id"].startswith("req_")


def test_wrong_key_is_masked_but_for_its_ends(secured):
    wrong = "sk-proj-ABCDEFGHIJKLMNOPwxyz"
    response = secured.post("/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {wrong}"})
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["message"] == (
        "Incorrect API key provided: sk-proj-****************wxyz. "
        "You can find your API key at https://platform.openai.com/account/api-keys."
    )
    assert "ABCDEFGH" not in error["message"]


def test_short_keys_show_only_their_last_four():
    assert mask_key("abcd1234") == "****1234"


def test_right_key_as_bearer_or_basic_password(secured):
    assert (
        secured.post("/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    )
    basic = base64.b64encode(f":{TOKEN}".encode()).decode()
    assert (
        secured.post("/v1/chat/completions", json=BODY, headers={"Authorization": f"Basic {basic}"}).status_code == 200
    )


@pytest.mark.parametrize("path", ["/v1/models", "/tokens", "/v1/nope"])
def test_protected_paths_need_the_key(secured, path):
    assert secured.get(path).status_code == 401


def test_echo_needs_the_key(secured):
    assert secured.post("/echo", json={}).status_code == 401


def test_health_and_hello_stay_open(secured):
    assert secured.get("/health").status_code == 200
    assert secured.get("/hello").status_code == 200
