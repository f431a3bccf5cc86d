"""The detail page's "copy as curl" for each wire format: the key each format presents becomes the shell
variable its SDK reads, never the key itself."""

from __future__ import annotations

from app.ui.curl import curl_command

GEMINI = {"contents": [{"parts": [{"text": "hi"}]}]}
CLAUDE = {"model": "claude-haiku-4-5", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}


def entry_of(client) -> dict:
    newest = client.get("/_mock/requests?limit=1").get_json()["data"][0]
    return client.get(f"/_mock/requests/{newest['id']}").get_json()


def test_each_formats_key_becomes_its_variable(client):
    client.post("/v1beta/models/gemini-2.5-flash:generateContent?key=g-secret", json=GEMINI).get_data()
    gemini = curl_command(entry_of(client), "http://127.0.0.1:8079")
    assert '"http://127.0.0.1:8079/v1beta/models/gemini-2.5-flash:generateContent?key=$GEMINI_API_KEY"' in gemini
    client.post("/v1/messages", json=CLAUDE, headers={"x-api-key": "sk-ant-secret", "anthropic-version": "2023-06-01"})
    claude = curl_command(entry_of(client), "http://127.0.0.1:8079")
    assert '-H "x-api-key: $ANTHROPIC_API_KEY"' in claude and "-H 'Anthropic-Version: 2023-06-01'" in claude
    client.post(
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        headers={"api-key": "az-secret"},
    )
    azure = curl_command(entry_of(client), "http://127.0.0.1:8079")
    assert '-H "api-key: $AZURE_OPENAI_API_KEY"' in azure
    assert not any("secret" in command for command in (gemini, claude, azure))
