"""A journal entry as a ``curl`` command that sends the same request again: the detail page's "copy as curl".

Credentials never appear: the API key becomes ``$OPENAI_API_KEY`` (the journal stores it redacted anyway),
and cookies are left out. Headers a client library adds about itself, or that curl sets, are left out too,
so the command reads as what a person would type.
"""

from __future__ import annotations

import json
import shlex

CREDENTIALS = {"authorization": "Authorization: Bearer $OPENAI_API_KEY", "api-key": "api-key: $AZURE_OPENAI_API_KEY",
               "x-api-key": "x-api-key: $ANTHROPIC_API_KEY",
               "x-goog-api-key": "x-goog-api-key: $GEMINI_API_KEY"}  # fmt: skip
LEFT_OUT = {"host", "content-length", "connection", "accept-encoding", "user-agent", "cookie", "keep-alive"}


def curl_command(entry: dict, base_url: str) -> str:
    """``curl`` for ``entry`` (the JSON of a journal entry) against ``base_url`` (this server): the command
    and its URL on the first line, then one option a line."""
    request = entry["request"]
    url = base_url.rstrip("/") + entry["path"] + (f"?{entry['query']}" if entry.get("query") else "")
    quoted = shlex.quote(url)
    if "key=[redacted]" in url:  # Gemini's key in the query: double quotes, so the shell fills it in
        quoted = '"' + url.replace("key=[redacted]", "key=$GEMINI_API_KEY") + '"'
    first = ["curl", *(["-N"] if entry.get("stream") else []), "-X", entry["method"], quoted]
    lines = [" ".join(first)]
    for name, value in request["headers"].items():
        lower = name.lower()
        if lower in LEFT_OUT or lower.startswith("x-stainless-"):
            continue
        # Double quotes for a credential, so the shell fills in the variable; single quotes for the rest.
        lines.append("-H " + (f'"{CREDENTIALS[lower]}"' if lower in CREDENTIALS else shlex.quote(f"{name}: {value}")))
    body = request["body"]
    if body is not None:
        text = json.dumps(body, ensure_ascii=False) if isinstance(body, dict | list) else str(body)
        lines.append("-d " + shlex.quote(text))
    return " \\\n  ".join(lines)
