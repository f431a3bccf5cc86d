"""What a person scanning the request list reads: the first words of what was asked and of what came back.

Worked out when an entry is read (the list and the API), never on the request path. Each body family keeps
its words in its own place; anything else previews as None.
"""

from __future__ import annotations

WIDTH = 80  # characters: a table cell's worth, cut at a word where one is near


def preview(request_body, response_body, stream_text: str | None) -> dict:
    """``{"asked", "answered"}``: the last user message (or prompt, or input) and the reply, cut short."""
    answered = stream_text if stream_text is not None else _answered(response_body)
    return {"asked": _cut(_asked(request_body)), "answered": _cut(answered)}


def _asked(body) -> str | None:
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("messages"), list):  # chat
        users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        return _text_of(users[-1].get("content")) if users else None
    if isinstance(body.get("contents"), list):  # Gemini
        users = [c for c in body["contents"] if isinstance(c, dict) and c.get("role", "user") == "user"]
        return _text_of(users[-1].get("parts")) if users else None
    for key in ("input", "prompt"):  # Responses and embeddings; legacy completions
        value = body.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value:
            if key == "input" and all(isinstance(item, dict) for item in value):
                users = [item for item in value if item.get("role", "user") == "user"]
                return _text_of(users[-1].get("content")) if users else None
            return value[0] if isinstance(value[0], str) else None
    return None


def _answered(body) -> str | None:
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("error"), dict):
        return body["error"].get("message")
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        message = choice.get("message")
        if isinstance(message, dict):
            calls = message.get("tool_calls") or []
            if message.get("content") is None and calls:
                return ", ".join(f"{c['function']['name']}({c['function']['arguments']})" for c in calls)
            return message.get("content")
        return choice.get("text")
    if isinstance(body.get("output"), list):  # the Responses API
        texts = [
            part.get("text", "")
            for item in body["output"]
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or ()
            if isinstance(part, dict) and part.get("type") == "output_text"
        ]
        return "".join(texts) or None
    if body.get("type") == "message" and isinstance(body.get("content"), list):  # Anthropic
        blocks = [b for b in body["content"] if isinstance(b, dict)]
        texts = [b["text"] for b in blocks if isinstance(b.get("text"), str)]
        calls = [f"{b.get('name')}({b.get('input')})" for b in blocks if b.get("type") == "tool_use"]
        return " ".join(texts) or ", ".join(calls) or None
    candidates = body.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):  # Gemini
        parts = [p for p in (candidates[0].get("content") or {}).get("parts") or () if isinstance(p, dict)]
        texts = [p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")]
        calls = [f"{p['functionCall'].get('name')}({p['functionCall'].get('args')})" for p in parts
                 if isinstance(p.get("functionCall"), dict)]  # fmt: skip
        return "".join(texts) or ", ".join(calls) or None
    if body.get("object") == "list" and isinstance(body.get("data"), list) and body["data"]:
        first = body["data"][0]
        if isinstance(first, dict) and first.get("object") == "embedding":
            return f"{len(body['data'])} embedding{'s' if len(body['data']) > 1 else ''}"
    return None


def _text_of(content) -> str | None:
    """A message's text: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return " ".join(texts) or None
    return None


def _cut(text: str | None) -> str | None:
    if not text:
        return None
    words = " ".join(text.split())
    if len(words) <= WIDTH:
        return words
    cut = words[:WIDTH]
    space = cut.rfind(" ")
    return (cut[:space] if space > WIDTH * 2 // 3 else cut).rstrip(" ,.;:") + "…"
