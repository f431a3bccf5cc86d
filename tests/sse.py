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


RESPONSE_ENDINGS = ("response.completed", "response.incomplete", "response.failed")


def parse_response_events(raw: bytes | str) -> list[dict]:
    """A Responses API stream, read whole: each event an ``event:`` line naming its ``type`` and one
    ``data:`` line, numbered in order, ending with the response's last state (no ``[DONE]``: the real API
    sends none on this endpoint)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    assert text.endswith("\n\n"), "a stream ends with a blank line"
    events = []
    for block in text[:-2].split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(fields) == {"event", "data"}, f"unexpected SSE lines in {block[:200]!r}"
        event = json.loads(fields["data"])
        assert fields["event"] == event["type"]
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] in RESPONSE_ENDINGS, f"the stream ends with {events[-1]['type']}"
    return events
