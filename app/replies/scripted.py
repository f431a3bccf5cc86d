"""The scripted mode: a rules file (TOML or YAML) that says what to answer.

```toml
[[rules]]
user = "(?i)weather"            # a regex searched in the last user message
model = "gpt-4o"                # optional: only this model
system = "(?i)pirate"           # optional: a regex searched in the system (or developer) prompt
tools = true                    # optional: only requests with (true) or without (false) tools
content = "It is sunny."        # the answer; a list gives variations, one picked per request
# error = "429"                 # or answer with a fault kind, or {status, message, type, param, code}
# tool_calls = [{ name = "get_weather", arguments = { city = "Paris" } }]   # or call the request's tools
```

The first rule that matches wins; a request no rule matches gets corpus text. The file is read again when it
changes. A bad file (its syntax, an unknown key, a bad regex) is reported with its line: at start-up it stops
the server; at run time the requests in scripted mode get a 500 that says what is wrong and where.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass

from app.config import ERROR_KINDS, ConfigError

KEYS = {"user", "model", "system", "tools", "content", "error", "tool_calls"}


class RulesError(ConfigError):
    """A rules file that cannot be used; ``str()`` names the file and line."""


class RuleError(Exception):
    """A rule answered with an error; ``spec`` is a fault kind or a table."""

    def __init__(self, spec):
        super().__init__(str(spec))
        self.spec = spec


@dataclass(slots=True)
class Rule:
    user: re.Pattern | None
    model: str | None
    system: re.Pattern | None
    tools: bool | None
    content: list[str] | None
    error: str | dict | None
    tool_calls: list[dict] | None = None  # [{name, arguments}]: called when the request offers those tools

    def matches(self, model: str, user_text: str, system_text: str, has_tools: bool) -> bool:
        return (
            (self.model is None or self.model == model)
            and (self.user is None or self.user.search(user_text) is not None)
            and (self.system is None or self.system.search(system_text) is not None)
            and (self.tools is None or self.tools == has_tools)
        )

    def check_error(self) -> None:
        if self.error is not None:
            raise RuleError(self.error)

    def reply(self, rng) -> str:
        return self.content[0] if len(self.content) == 1 else rng.choice(self.content)


class Rules:
    """A rules file, read again whenever its modification time changes."""

    def __init__(self, path: str):
        self.path = path
        self.stamp = None
        self.rules: list[Rule] = []
        self.problem: RulesError | None = None

    def match(self, model: str, user_text: str, system_text: str, has_tools: bool) -> Rule | None:
        self._reload_if_changed()
        if self.problem is not None:
            raise self.problem
        return next((r for r in self.rules if r.matches(model, user_text, system_text, has_tools)), None)

    def _reload_if_changed(self) -> None:
        try:
            info = os.stat(self.path)
            stamp = (info.st_mtime_ns, info.st_size)
        except OSError as exc:
            stamp = None
            if self.stamp != "missing":
                self.stamp, self.rules = "missing", []
                self.problem = RulesError(f"cannot read the rules file {self.path!r}: {exc.strerror or exc}")
            return
        if stamp != self.stamp:
            self.stamp = stamp
            try:
                self.rules, self.problem = load_rules(self.path), None
            except RulesError as exc:
                self.problem = exc


def load_rules(path: str) -> list[Rule]:
    """Parse and check a rules file; RulesError names the line of the first problem."""
    if not path:
        raise RulesError("the scripted mode needs a rules file: set [responses] rules_path (--rules FILE)")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise RulesError(f"cannot read the rules file {path!r}: {exc.strerror or exc}") from None
    if path.endswith((".yaml", ".yml")):
        raw, lines = _parse_yaml(path, text)
    else:
        raw, lines = _parse_toml(path, text)
    rules = []
    for index, table in enumerate(raw):
        line = lines(index, None)
        if not isinstance(table, dict):
            raise RulesError(f"{path}, line {line}: a rule must be a table")
        for key in table:
            if key not in KEYS:
                raise RulesError(
                    f"{path}, line {lines(index, key)}: unknown key {key!r} (use {', '.join(sorted(KEYS))})"
                )
        rules.append(_rule(path, table, index, lines))
    return rules


def _rule(path, table, index, lines) -> Rule:
    def fail(key, reason):
        raise RulesError(f"{path}, line {lines(index, key)}: {key}: {reason}")

    patterns = {}
    for key in ("user", "system"):
        if key in table:
            if not isinstance(table[key], str):
                fail(key, "expected a regular expression")
            try:
                patterns[key] = re.compile(table[key])
            except re.error as exc:
                fail(key, f"bad regular expression: {exc}")
    if "model" in table and not isinstance(table["model"], str):
        fail("model", "expected a model name")
    if "tools" in table and not isinstance(table["tools"], bool):
        fail("tools", "expected true or false")
    if sum(key in table for key in ("content", "error", "tool_calls")) != 1:
        raise RulesError(f"{path}, line {lines(index, None)}: a rule needs exactly one of content, error or tool_calls")
    tool_calls = table.get("tool_calls")
    if tool_calls is not None and (
        not isinstance(tool_calls, list)
        or not tool_calls
        or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in tool_calls)
        or not all(isinstance(c.get("arguments", {}), dict | str) for c in tool_calls)
    ):
        fail("tool_calls", "expected a list of tables {name, arguments}")
    content = table.get("content")
    if content is not None:
        content = [content] if isinstance(content, str) else content
        if not isinstance(content, list) or not content or not all(isinstance(c, str) for c in content):
            fail("content", "expected a string or a non-empty list of strings")
    error = table.get("error")
    if error is not None:
        if isinstance(error, str | int) and str(error) in ERROR_KINDS:
            error = str(error)
        elif isinstance(error, dict):
            status = error.get("status")
            if not isinstance(status, int) or not 400 <= status <= 599 or not isinstance(error.get("message"), str):
                fail("error", "a table needs status (400-599) and message")
        else:
            fail("error", f"expected one of {', '.join(ERROR_KINDS)} or a table {{status, message, type, code}}")
    return Rule(
        patterns.get("user"), table.get("model"), patterns.get("system"), table.get("tools"), content, error, tool_calls
    )


def _parse_toml(path, text):
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: {exc}") from None  # tomllib's message ends "(at line N, column M)"
    rules = data.get("rules")
    if not isinstance(rules, list):
        raise RulesError(f"{path}: expected [[rules]] tables")
    headers = [n for n, line in enumerate(text.splitlines(), 1) if line.strip().startswith("[[rules]]")]

    def lines(index, key):
        start = headers[index] if index < len(headers) else 1
        if key is not None:
            following = text.splitlines()[start:]
            for offset, line in enumerate(following):
                if line.strip().startswith("[["):
                    break
                if re.match(rf"\s*{re.escape(key)}\s*=", line):
                    return start + offset + 1
        return start

    return rules, lines


def _parse_yaml(path, text):
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise RulesError(f"{path}{where}: {getattr(exc, 'problem', None) or exc}") from None
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        raise RulesError(f"{path}: expected a list under rules:")
    items = next(v for k, v in node.value if k.value == "rules").value

    def lines(index, key):
        item = items[index]
        if key is not None and isinstance(item, yaml.MappingNode):
            for k, _ in item.value:
                if k.value == key:
                    return k.start_mark.line + 1
        return item.start_mark.line + 1

    return rules, lines
