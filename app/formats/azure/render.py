"""OpenAI's bodies and chunks as Azure sends them: content filter results on the prompt and each choice,
a stream opened by a chunk of prompt filter results with empty ``choices``, keys in alphabetical order, no
``service_tier`` or ``obfuscation``. A wrapper of OpenAI's renderer, rewriting what it renders (on Azure's
routes only)."""

from __future__ import annotations

import json

from app.render import Reply

SAFE = {"filtered": False, "severity": "safe"}
NOT_DETECTED = {"filtered": False, "detected": False}
PROMPT_FILTER = {"hate": SAFE, "jailbreak": NOT_DETECTED, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
PROMPT_FILTERED = PROMPT_FILTER | {"violence": {"filtered": True, "severity": "medium"}}
OUTPUT_FILTER = {
    "hate": SAFE,
    "protected_material_code": NOT_DETECTED,
    "protected_material_text": NOT_DETECTED,
    "self_harm": SAFE,
    "sexual": SAFE,
    "violence": SAFE,
}
OUTPUT_FILTERED = OUTPUT_FILTER | {"violence": {"filtered": True, "severity": "medium"}}
PROMPT_RESULTS = [{"prompt_index": 0, "content_filter_results": PROMPT_FILTER}]
_DROPPED = ("service_tier", "obfuscation")


def _azure(body: dict, stream: bool) -> dict:
    for name in _DROPPED:
        body.pop(name, None)
    choices = body.get("choices")
    if choices is None:  # embeddings
        return body
    if not stream:
        body["prompt_filter_results"] = PROMPT_RESULTS
    for choice in choices:
        if choice.get("finish_reason") == "content_filter":
            choice["content_filter_results"] = OUTPUT_FILTERED
        elif not stream or _has_content(choice):
            choice["content_filter_results"] = OUTPUT_FILTER
        else:
            choice["content_filter_results"] = {}
    return body


def _has_content(choice: dict) -> bool:
    delta = choice.get("delta")
    return bool(delta.get("content") if isinstance(delta, dict) else choice.get("text"))


def _dump(body: dict) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _events(data: bytes) -> bytes:
    """Each ``data:`` event of ``data`` rewritten as Azure sends it; ``[DONE]`` and the rest as they are."""
    if not data:
        return data
    out = []
    for block in data.split(b"\n\n"):
        if block.startswith(b"data: {"):
            try:
                block = b"data: " + _dump(_azure(json.loads(block[6:]), stream=True)).encode()
            except ValueError:  # a malformed chunk (a fault) stays malformed
                pass
        out.append(block)
    return b"\n\n".join(out)


OPENING = (
    b"data: "
    + _dump(
        {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": PROMPT_RESULTS}
    ).encode()
    + b"\n\n"
)


class AzureRenderer:
    def __init__(self, inner):
        self.inner = inner

    def body(self, reply: Reply) -> str:
        return _dump(_azure(json.loads(self.inner.body(reply)), stream=False))

    def stream(self, reply: Reply):
        head, event_at, count, tail = self.inner.stream(reply)
        return OPENING + _events(head), lambda k: _events(event_at(k)), count, _events(tail)
