"""What a request's content gives, kept for the next request that sends the same content.

Clients send the same content again and again: a chat resends its whole conversation every turn, an agent or a
load test its system prompt and tools with every request, and often its whole body. What is worked out from
that content alone (its token count, the digests of its prefixes for the prompt cache, the request a body
parses into) is kept here, keyed by the content itself, so that a repeat costs a hash of it instead of
tokenizing or parsing it again.
"""

from __future__ import annotations

import marshal


class Memo:
    """Values by key, holding keys of at most ``budget`` characters (or bytes) in all: when the next would pass
    it, everything is forgotten at once (cheaper than tracking what was used last, and a load's repeats come
    back at once). A key of more than an eighth of the budget is never kept."""

    def __init__(self, budget: int):
        self.budget = budget
        self.values: dict = {}
        self.held = 0
        self.get = self.values.get  # (the dict's own: a lookup is on every request's path, for every message)

    def put(self, key, value, size: int) -> None:
        if size > self.budget // 8:
            return
        if self.held + size > self.budget:
            self.values.clear()
            self.held = 0
        self.values[key] = value
        self.held += size

    def kept(self, key, make, size: int):
        """The value kept for ``key``, or ``make()``'s, kept for the next time (what raises is not kept)."""
        value = self.values.get(key)
        if value is None:
            value = make()
            self.put(key, value, size)
        return value

    def clear(self) -> None:
        self.values.clear()
        self.held = 0


def content_key(value) -> bytes:
    """A key for a JSON value (dicts, lists, strings, numbers, booleans, null) that is equal only for equal
    values, made about eight times faster than its JSON text (``marshal`` writes each type and value as it
    is; equal bytes read back as equal values)."""
    return marshal.dumps(value)
