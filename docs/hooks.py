"""MkDocs hooks: the reference pages are generated from the code at build time, so they cannot drift.

- ``<!-- reference: configuration -->`` becomes a table per config section: every key, its default, its
  environment variable, its command-line flag and its meaning. Keys and defaults come from the loader's
  built-in defaults; the meanings from the comments of the shipped ``app/config/default.toml`` (a test
  keeps that file equal to the defaults); flags from the CLI's one map of flags to keys.
- ``<!-- reference: endpoints -->`` becomes a section per blueprint: each route, its methods and its view's
  docstring (what a client sees), as httpbin documents itself.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

MARKER = re.compile(r"<!-- reference: (\w+) -->")
SKIPPED_BLUEPRINTS = {"ui"}  # the web UI's pages are documented on their own page
TITLES = {
    "meta": "Service endpoints",
    "models": "Models",
    "completions": "Completions",
    "embeddings": "Embeddings",
    "responses": "Responses",
    "stored_completions": "Stored chat completions",
    "files": "Files",
    "batches": "Batch API",
    "admin": "Runtime control (/_mock)",
    "journal": "The request journal (/_mock)",
    "anthropic": "Anthropic Messages API",
    "azure": "Azure OpenAI",
    "gemini": "Gemini API",
    "vllm": "vLLM's server endpoints",
}


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARKER.sub(lambda match: GENERATORS[match.group(1)](), markdown)


# --- configuration ------------------------------------------------------------------------------------------


def configuration() -> str:
    from app.cli import flags_by_key
    from app.config import BUILT_IN_CONFIG, DEFAULTS, ENV_PREFIXES

    meanings, section_notes = _meanings(BUILT_IN_CONFIG / "default.toml")
    flags = flags_by_key()
    out = []
    for section, values in DEFAULTS.items():
        out.append(f"## `[{section}]`\n")
        if section_notes.get(section):
            out.append(section_notes[section].capitalize() + ".\n")
        if section in ("models", "scenarios"):
            see = "Tables, not single values: see [Configuration](../configuration.md)."
            out.append(f"{see} Built-in: `{_value(values)}`\n")
            continue
        out.append("| key | default | environment variable | flag | meaning |\n|---|---|---|---|---|")
        for key, default in values.items():
            env = f"`{ENV_PREFIXES[0]}{section.upper()}_{key.upper()}`"
            flag = f"`{flags[(section, key)]}`" if (section, key) in flags else ""
            meaning = meanings.get((section, key), "").replace("|", "\\|")
            out.append(f"| `{key}` | `{_value(default)}` | {env} | {flag} | {meaning} |")
        out.append("")
    return "\n".join(out)


def _meanings(path: Path) -> tuple[dict, dict]:
    """``(section, key) -> comment`` and ``section -> comment`` from a commented TOML file."""
    meanings, notes, section = {}, {}, None
    for line in path.read_text().splitlines():
        header = re.match(r"^\[([\w.]+)\]\s*(?:#\s*(.*))?$", line)
        if header:
            section = header.group(1)
            notes[section] = header.group(2) or ""
            continue
        item = re.match(r"^(\w+)\s*=.*?#\s*(.*)$", line)
        if item and section:
            meanings[(section, item.group(1))] = item.group(2)
    return meanings, notes


def _value(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else (value or '""')


# --- endpoints ----------------------------------------------------------------------------------------------


def endpoints() -> str:
    from app import create_app

    app = create_app({"journal": {"enabled": True}})
    by_blueprint: dict[str, list] = {}
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.partition(".")[0]
        if blueprint in SKIPPED_BLUEPRINTS or rule.endpoint.endswith("static") or "." not in rule.endpoint:
            continue
        by_blueprint.setdefault(blueprint, []).append(rule)
    out = []
    for blueprint, rules in by_blueprint.items():
        out.append(f"## {TITLES.get(blueprint, blueprint)}\n")
        module = inspect.getmodule(app.view_functions[rules[0].endpoint])
        out.append(_first_paragraph(module.__doc__) + "\n")
        for rule in rules:
            methods = ", ".join(sorted(rule.methods - {"HEAD", "OPTIONS"}))
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            view = app.view_functions[rule.endpoint]
            out.append(f"### `{methods} {path}`\n")
            out.append(inspect.cleandoc(view.__doc__ or "").strip() + "\n")
    return "\n".join(out)


def _first_paragraph(doc: str | None) -> str:
    return inspect.cleandoc(doc or "").split("\n\n")[0]


GENERATORS = {"configuration": configuration, "endpoints": endpoints}
