"""Parse a Gemini ``alt=sse`` stream as a strict client does: ``data:`` lines of whole JSON responses, each
event ended by a blank line with CRLF, as Google sends them."""

from __future__ import annotations

import json


def parse_gemini_sse(raw: bytes | str) -> list[dict]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    assert text.endswith("\r\n\r\n"), "each event ends with CRLF CRLF"
    events = []
    for block in text[:-4].split("\r\n\r\n"):
        assert block.startswith("data: ") and "\n" not in block, block[:200]
        events.append(json.loads(block[6:]))
    return events
