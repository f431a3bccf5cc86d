"""JSON that fits what the client asked for: ``json_object``, a ``json_schema``, or a tool's parameters.

:func:`instance_of` walks a JSON Schema (the subset structured outputs and function parameters use, and more:
``$ref`` into ``$defs``/``definitions``, ``anyOf``/``oneOf``/``allOf``, ``enum``/``const``, type lists,
nested objects and arrays with their bounds, numbers with bounds and ``multipleOf``, string lengths and
formats) and builds a value valid against it. Values are drawn from ``rng`` and a pool of words, so a seeded
request gets the same JSON every time. A ``pattern`` on a string cannot be satisfied in general; a value
matching a few common shapes is tried, and otherwise the schema's own ``examples`` or ``default``.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

MAX_DEPTH = 12  # a recursive schema ($ref to itself) stops here, with its smallest valid value

FORMATS = {
    "date-time": lambda rng: _moment(rng).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "date": lambda rng: _moment(rng).strftime("%Y-%m-%d"),
    "time": lambda rng: _moment(rng).strftime("%H:%M:%S"),
    "duration": lambda rng: f"PT{rng.randint(1, 59)}M",
    "email": lambda rng: f"{_word(rng)}.{_word(rng)}@example.com",
    "hostname": lambda rng: f"{_word(rng)}.example.com",
    "ipv4": lambda rng: ".".join(str(rng.randint(1, 254)) for _ in range(4)),
    "ipv6": lambda rng: ":".join(f"{rng.randint(0, 65535):x}" for _ in range(8)),
    "uri": lambda rng: f"https://example.com/{_word(rng)}",
    "url": lambda rng: f"https://example.com/{_word(rng)}",
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
}
WORDS = (
    "alpha bravo cedar delta ember fjord granite harbor island juniper kestrel lantern meadow nectar orbit "
    "prairie quartz river summit timber umber valley willow xenon yarrow zephyr"
).split()
_PATTERN_SAMPLES = ("abc", "ABC", "abc123", "123", "a", "A1", "2024-01-01", "+15555550123", "abc-def", "x_y")


def _word(rng) -> str:
    return rng.choice(WORDS)


def _moment(rng) -> datetime:
    return datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 365 * 86400))


def json_object_text(rng, words: list[str]) -> str:
    """For ``response_format: json_object``: a small object, pretty as the models write it."""
    value = {"answer": " ".join(words[:12]) or _word(rng), "confidence": round(rng.uniform(0.5, 1.0), 2)}
    return json.dumps(value, indent=2)


def instance_text(schema: dict, rng, words: list[str] | None = None) -> str:
    """A compact JSON text valid against ``schema`` (how strict structured outputs and arguments read)."""
    return json.dumps(instance_of(schema, rng, words), ensure_ascii=False, separators=(",", ":"))


def instance_of(schema, rng, words: list[str] | None = None):
    return _Builder(schema if isinstance(schema, dict) else {}, rng, words or []).value(schema, 0)


class _Builder:
    def __init__(self, root: dict, rng, words: list[str]):
        self.root, self.rng, self.words = root, rng, words

    def resolve(self, schema: dict) -> dict:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < MAX_DEPTH:
            target = self.root
            for part in schema["$ref"].lstrip("#").strip("/").split("/"):
                if not part:
                    continue
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, dict) else {}
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extra} if extra else target
            seen += 1
        return schema if isinstance(schema, dict) else {}

    def value(self, schema, depth: int):
        if schema is True or schema is None:
            schema = {}
        if schema is False:
            return None
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema and schema["enum"]:
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                options = schema[key]
                if depth >= MAX_DEPTH:  # the way out of a recursion: prefer a branch without a $ref
                    options = [o for o in options if "$ref" not in o] or options
                base = {k: v for k, v in schema.items() if k != key}
                return self.value(
                    {**base, **self.resolve(options[0] if key == "oneOf" else self.rng.choice(options))}, depth + 1
                )
        if schema.get("allOf"):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part)
                merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
                merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
            return self.value(merged, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"] or ["null"]
            kind = kinds[0]
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        return getattr(self, "_" + kind, self._string)(schema, depth)

    def _object(self, schema, depth):
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        result = {}
        for name, sub in properties.items():
            # optional properties: all of them near the top, fewer deeper down, none past the depth limit
            if name in required or (depth < 3 and self.rng.random() < 0.7):
                result[name] = self._named(name, sub, depth + 1) if depth < MAX_DEPTH or name in required else None
        for name in required - set(result):
            result[name] = self.value({}, depth + 1)
        return result

    def _named(self, name: str, schema, depth):
        """A property's value; a plain string property named for what the user said gets their words."""
        resolved = self.resolve(schema) if isinstance(schema, dict) else {}
        plain = resolved.get("type") == "string" and not ({"enum", "const", "format", "pattern"} & set(resolved))
        if plain and self.words and name.lower() in ("query", "q", "question", "search", "text", "prompt", "input"):
            text = " ".join(self.words[:16])
            return self._fit_length(text, resolved)
        return self.value(schema, depth)

    def _array(self, schema, depth):
        low = schema.get("minItems", 0)
        high = schema.get("maxItems", max(low, 3))
        count = 0 if depth >= MAX_DEPTH else self.rng.randint(max(low, min(1, high)), max(low, min(high, low + 3)))
        count = max(count, low)
        if isinstance(schema.get("prefixItems"), list):
            items = [self.value(s, depth + 1) for s in schema["prefixItems"]]
            return items + [self.value(schema.get("items") or {}, depth + 1) for _ in range(count - len(items))]
        items = [self.value(schema.get("items") or {}, depth + 1) for _ in range(count)]
        if schema.get("uniqueItems"):
            unique = []
            for item in items:
                if item not in unique:
                    unique.append(item)
            items = unique
        return items

    def _string(self, schema, depth):
        form = schema.get("format")
        if form in FORMATS:
            return FORMATS[form](self.rng)
        pattern = schema.get("pattern")
        if pattern:
            for sample in [*schema.get("examples", []), schema.get("default"), *_PATTERN_SAMPLES]:
                if isinstance(sample, str) and re.search(pattern, sample):
                    return sample
        text = " ".join(self.rng.choice(self.words) for _ in range(self.rng.randint(1, 4))) if self.words else ""
        return self._fit_length(text or _word(self.rng), schema)

    def _fit_length(self, text: str, schema) -> str:
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        while len(text) < low:
            text += " " + _word(self.rng)
        return text[:high] if high is not None else text

    def _number(self, schema, depth, integer: bool = False):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0 if integer else 0.0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 100))
        step = schema.get("multipleOf")
        if integer:
            low_i = int(low) + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
            high_i = int(high) - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
            value = self.rng.randint(low_i, max(low_i, high_i))
            if step:
                value = int(-(-low_i // step) * step)
            return value
        value = round(self.rng.uniform(low, high), 2)
        if "exclusiveMinimum" in schema and value <= low:
            value = low + (high - low) / 2
        if "exclusiveMaximum" in schema and value >= high:
            value = low + (high - low) / 2
        if step:
            value = -(-low // step) * step
        return value

    def _integer(self, schema, depth):
        return self._number(schema, depth, integer=True)

    def _boolean(self, schema, depth):
        return self.rng.random() < 0.5

    def _null(self, schema, depth):
        return None
