"""Stored chat completions: store=true, then list (filters, pages), retrieve, update, delete, messages."""

from __future__ import annotations

from tests.openapi import assert_valid


def store(client, text: str, **body):
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "store": True,
        "max_tokens": 3,
        **body,
    }
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    return response


def test_stored_completions_list_filter_page_update_and_delete(client):
    made = [store(client, "one", metadata={"run": "a"}).get_json()]
    made.append(store(client, "two", metadata={"run": "a"}).get_json())
    store(client, "three", metadata={"run": "b"}, stream=True).get_data()  # a stream is stored too
    client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    listed = client.get("/v1/chat/completions").get_json()
    assert_valid("ChatCompletionList", listed)
    assert [c["id"] for c in listed["data"]][:2] == [m["id"] for m in made] and len(listed["data"]) == 3
    assert listed["data"][0]["choices"] == made[0]["choices"]
    assert len(client.get("/v1/chat/completions?metadata[run]=a").get_json()["data"]) == 2
    assert client.get("/v1/chat/completions?model=gpt-4o").get_json()["data"] == []
    first = client.get("/v1/chat/completions?limit=2").get_json()
    assert first["has_more"] is True
    rest = client.get(f"/v1/chat/completions?limit=2&after={first['last_id']}").get_json()
    assert len(rest["data"]) == 1 and rest["has_more"] is False
    newest = client.get("/v1/chat/completions?order=desc&limit=1").get_json()["data"][0]
    assert newest["id"] == rest["data"][0]["id"]

    target = made[0]["id"]
    updated = client.post(f"/v1/chat/completions/{target}", json={"metadata": {"run": "z"}}).get_json()
    assert updated["metadata"] == {"run": "z"}
    assert client.get(f"/v1/chat/completions/{target}").get_json()["metadata"] == {"run": "z"}
    messages = client.get(f"/v1/chat/completions/{target}/messages").get_json()
    assert [m["content"] for m in messages["data"]] == ["one"] and messages["data"][0]["id"] == f"{target}-0"
    deleted = client.delete(f"/v1/chat/completions/{target}").get_json()
    assert_valid("ChatCompletionDeleted", deleted)
    assert deleted == {"object": "chat.completion.deleted", "id": target, "deleted": True}
    assert client.get(f"/v1/chat/completions/{target}").status_code == 404
    assert client.delete(f"/v1/chat/completions/{target}").status_code == 404


def test_bad_list_parameters_and_updates(client):
    assert client.get("/v1/chat/completions?limit=0").get_json()["error"]["code"] == "integer_below_min_value"
    assert client.get("/v1/chat/completions?order=up").get_json()["error"]["param"] == "order"
    made = store(client, "x").get_json()
    refused = client.post(f"/v1/chat/completions/{made['id']}", json={"metadata": {"k": 5}})
    assert refused.status_code == 400 and refused.get_json()["error"]["param"] == "metadata.k"
