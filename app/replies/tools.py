"""Whether a chat reply calls tools, which ones, and with what arguments.

As the real models do: ``tool_choice`` ``"none"`` never calls; a named function is always called;
``"required"`` calls the tools the user's words point to (or the first tool); ``"auto"`` (the default when
tools are sent) calls when the last message is the user's and it names a tool (``get_weather`` for "what's
the weather in Paris?"), or when a scripted rule answers with ``tool_calls``. A reply to ``tool`` results is
text. With ``parallel_tool_calls`` (the default) every tool the words point to is called at once; without
it, one. Arguments are JSON valid against each function's ``parameters`` (:mod:`.structured`).
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from functools import lru_cache

from app.replies.structured import instance_text
from app.tokens import split_tokens

_ID_ALPHABET = string.ascii_letters + string.digits
_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"([a-z])([A-Z])")
_STOP_WORDS = {"get", "set", "list", "fetch", "find", "search", "create", "make", "run", "call", "the", "a", "to", "of"}


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text
    tokens: list[str]  # the arguments as streamed: joined, they are ``arguments``


def call_id(rng) -> str:
    """``call_`` and 24 letters and digits, like the real ids."""
    return "call_" + "".join(rng.choices(_ID_ALPHABET, k=24))


def functions_of(body: dict) -> list[dict]:
    return [t["function"] for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]


def wanted_calls(body: dict, user_text: str, scripted: list[dict] | None) -> list[tuple[dict, str | None]]:
    """The functions to call, each with the arguments a rule fixed (or None to make them up); ``[]`` for text."""
    functions = functions_of(body)
    if not functions:
        return []
    choice = body.get("tool_choice")
    if choice is None and body.get("functions") is None:
        choice = "auto"
    if choice == "none":
        return []
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return [(f, None) for f in functions if f.get("name") == name][:1]
    messages = body.get("messages") or []
    if choice == "auto" and messages and messages[-1].get("role") not in ("user", None):
        return []  # after tool results (or an assistant turn) the model answers in words
    by_name = {f.get("name"): f for f in functions}
    if scripted:
        calls = [(by_name[c["name"]], c.get("arguments")) for c in scripted if c.get("name") in by_name]
        if calls:
            return calls if body.get("parallel_tool_calls", True) is not False else calls[:1]
    said = _words_said(user_text)
    pointed = [f for f in functions if _points_to(f, said)]
    if not pointed:
        if choice != "required":
            return []
        pointed = functions[:1]
    if body.get("parallel_tool_calls", True) is False:
        pointed = pointed[:1]
    return [(f, None) for f in pointed]


def make_calls(wanted: list[tuple[dict, str | None]], rng, words: list[str]) -> list[ToolCall]:
    calls = []
    for function, arguments in wanted:
        if arguments is None:
            arguments = instance_text(function.get("parameters") or {"type": "object"}, rng, words)
        elif not isinstance(arguments, str):
            arguments = json.dumps(arguments, separators=(",", ":"))
        calls.append(ToolCall(call_id(rng), function["name"], arguments, split_tokens(arguments)))
    return calls


def _words_said(text: str) -> set[str]:
    """The user's words, and each plural's singular ("stocks" points to get_stock)."""
    said = set(_WORD.findall(text.lower()))
    return said | {w[:-1] for w in said if w.endswith("s")}


def _points_to(function: dict, said: set[str]) -> bool:
    """The user's words name the tool: a word of its name (other than verbs like "get") is among them."""
    return not _name_words(function.get("name", "")).isdisjoint(said)


@lru_cache(maxsize=1024)
def _name_words(name: str) -> frozenset[str]:
    """A tool name's words (``get_weather``, ``getWeather``: ``weather``), verbs like "get" left out."""
    return frozenset(_WORD.findall(_CAMEL.sub(r"\1 \2", name).lower())) - _STOP_WORDS
