"""Parse a Server-Sent Events body the way a strict client does: every event, every line."""

from __future__ import annotations

import json


def parse_sse(raw: bytes | str) -> list:
    """The ``data`` of each event: decoded JSON, or the string ``"[DONE]"``. Fails on anything a real API
    stream would not contain (a bare ``event:`` line, an event without data, text after ``[DONE]``)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    assert text.endswith("\n\n"), "a stream ends with a blank line"
    events = []
    for block in text[:-2].split("\n\n"):
        lines = block.split("\n")
        data = [line[6:] for line in lines if line.startswith("data: ")]
        others = [line for line in lines if not line.startswith("data: ") and not line.startswith(":")]
        assert not others, f"unexpected SSE lines {others!r}"
        if not data:
            continue  # a comment (keep-alive) block
        assert len(data) == 1, "one data line per event"
        events.append("[DONE]" if data[0] == "[DONE]" else json.loads(data[0]))
    assert events and events[-1] == "[DONE]", "the stream ends with data: [DONE]"
    assert events.count("[DONE]") == 1
    return events
