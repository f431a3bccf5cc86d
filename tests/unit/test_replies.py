"""Reply sources: the realistic mode's reading of a question, and the scripted mode's rules files."""

from __future__ import annotations

import random

import pytest

from app.replies.realistic import answer, kind_of, language_of, topic_of
from app.replies.scripted import Rules, RulesError, load_rules


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Hi!", "greeting"),
        ("Good morning", "greeting"),
        ("Can you help me with my essay?", "help"),
        ("Why does my Python function raise KeyError?", "code"),
        ("What is the speed of light?", "question"),
        ("The meeting moved to Friday.", "statement"),
    ],
)
def test_questions_are_sorted_by_kind(text, kind):
    assert kind_of(text) == kind


def test_the_topic_drops_the_polite_lead_in():
    assert topic_of("Can you please explain how photosynthesis works?") == "photosynthesis works"
    assert topic_of("What is the difference between TCP and UDP? Thanks") == "the difference between TCP and UDP"
    assert language_of("a rust function to sort") == "rust" and language_of("sort a list") == "python"


def test_code_answers_have_one_fenced_block_in_the_asked_language():
    text = answer("Write a typescript function to remove duplicates", random.Random(0))
    assert text.count("```") == 2 and "```typescript\n" in text


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("r.toml", '[[rules]]\nuser = "x"\ncontent = \n', "line 3"),
        (
            "r.toml",
            '[[rules]]\nuser = "x"\ncontent = "a"\n\n[[rules]]\nusr = "y"\ncontent = "b"\n',
            "r.toml, line 6: unknown key 'usr'",
        ),
        ("r.toml", '[[rules]]\ncontent = "a"\nuser = "(x"\n', "r.toml, line 3: user: bad regular expression"),
        (
            "r.toml",
            '[[rules]]\nuser = "x"\n',
            "r.toml, line 1: a rule needs exactly one of content, error or tool_calls",
        ),
        ("r.toml", '[[rules]]\nerror = "418"\n', "r.toml, line 2: error: expected one of 429"),
        ("r.yaml", "rules:\n  - user: x\n    content: [a\n", "r.yaml, line 4"),
        (
            "r.yaml",
            "rules:\n  - user: x\n    content: a\n  - user: y\n    tools: maybe\n    content: b\n",
            "r.yaml, line 5: tools: expected true or false",
        ),
        ("r.yaml", "- user: x\n", "expected a list under rules:"),
    ],
)
def test_a_bad_rules_file_is_reported_with_its_line(tmp_path, name, text, message):
    with pytest.raises(RulesError) as caught:
        load_rules(write(tmp_path, name, text))
    assert message in str(caught.value)


def test_rules_reload_when_the_file_changes_and_report_a_broken_one(tmp_path):
    path = write(tmp_path, "r.toml", '[[rules]]\nuser = "hi"\ncontent = "one"\n')
    rules = Rules(path)
    assert rules.match("m", "hi", "", False).content == ["one"]
    write(tmp_path, "r.toml", '[[rules]]\nuser = "hi"\ncontent = "two, now longer"\n')
    assert rules.match("m", "hi", "", False).content == ["two, now longer"]
    write(tmp_path, "r.toml", "[[rules]\n")
    with pytest.raises(RulesError, match="line 1"):
        rules.match("m", "hi", "", False)
    with pytest.raises(RulesError, match="cannot read"):
        Rules(str(tmp_path / "missing.toml")).match("m", "hi", "", False)


def _tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


TOOLS = [_tool("get_weather"), _tool("get_stock"), _tool("listFlights")]


@pytest.mark.parametrize(
    ("said", "extra", "called"),
    [
        ("What's the weather in Paris?", {}, ["get_weather"]),
        ("How are my stocks doing?", {}, ["get_stock"]),  # a plural points to the singular
        ("Any flights to Oslo?", {}, ["listFlights"]),  # the words of a camelCase name
        ("Weather and stocks, please.", {}, ["get_weather", "get_stock"]),  # parallel calls by default
        ("Weather and stocks, please.", {"parallel_tool_calls": False}, ["get_weather"]),
        ("Get me a list.", {}, []),  # verbs and such in a name point to nothing
        ("Hello there!", {"tool_choice": "required"}, ["get_weather"]),  # the first tool, when one must be called
        ("What's the weather?", {"tool_choice": "none"}, []),
    ],
)
def test_the_tools_the_users_words_point_to_are_called(client, said, extra, called):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": said}], "tools": TOOLS} | extra
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.get_json()
    message = response.get_json()["choices"][0]["message"]
    assert [call["function"]["name"] for call in message.get("tool_calls") or []] == called
