"""Parse an Anthropic Messages stream as a strict client does: each event an ``event:`` line and one ``data:``
line whose ``type`` is the event's name, in the order the API sends them."""

from __future__ import annotations

import json


def parse_anthropic_sse(raw: bytes | str) -> list[dict]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    assert text.endswith("\n\n"), "a stream ends with a blank line"
    events = []
    for block in text[:-2].split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block[:200]
        data = json.loads(lines[1][6:])
        assert data["type"] == lines[0][7:], "the event's name is its data's type"
        events.append(data)
    return events


def assert_message_sequence(events: list[dict]) -> None:
    """message_start; per block start, deltas, stop (indexes in order); one ping; message_delta; message_stop."""
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"], kinds[:3]
    assert kinds.count("ping") == 1
    open_index = None
    next_index = 0
    for event in events[1:-2]:
        if event["type"] == "content_block_start":
            assert open_index is None and event["index"] == next_index
            open_index = event["index"]
        elif event["type"] == "content_block_delta":
            assert event["index"] == open_index
        elif event["type"] == "content_block_stop":
            assert event["index"] == open_index
            open_index, next_index = None, next_index + 1
    assert open_index is None and next_index >= 1
