"""The realistic mode: answers shaped like a chat model's, in Markdown, to what the user asked.

The last user message is sorted into a greeting, a request for help, a code question or a general question
(anything else gets an acknowledgement), and its topic is lifted from it. Each kind has several templates,
picked at random (or by the request's ``seed``), so replies vary as a model's do; code answers carry a fenced
block in the language the question names. The length is the answer's own.
"""

from __future__ import annotations

import re

GREETING = re.compile(r"^\s*(hi|hello|hey|hiya|howdy|greetings|good (morning|afternoon|evening)|yo)\b", re.I)
HELP = re.compile(r"\b(help|assist|support|stuck|guide me|can you|could you|how (do|can|should) i)\b", re.I)
CODE = re.compile(
    r"```|\b(code|function|class|method|bug|error|exception|stack ?trace|compile|script|regex|sql|query|api|"
    r"python|javascript|typescript|node|java|golang|go|rust|c\+\+|bash|shell|html|css|json|yaml|docker|git|"
    r"implement|refactor|debug|algorithm|loop|array|list|dict|string)\b",
    re.I,
)
QUESTION = re.compile(r"\?\s*$|^\s*(what|why|how|who|when|where|which|is|are|does|do|can|should|explain)\b", re.I)
LEAD_IN = re.compile(
    r"^\s*((please|hey|hi|hello|ok|so)[,!]?\s+)*"
    r"((can|could|would|will) you\s+(please\s+)?)?"
    r"((help me( with)?|explain|describe|tell me( about)?|show me( how)?|write( me)?|give me|teach me)\s+)?"
    r"((what|why|how|who|when|where|which)(\s+(is|are|was|were|does|do|did|can|could|should|would|to))?\s+)?"
    r"((i|we|you)\s+)?",
    re.I,
)
LANGUAGES = {
    "python": ("python", "py"),
    "javascript": ("javascript", "js", "node", "node.js"),
    "typescript": ("typescript", "ts"),
    "go": ("go", "golang"),
    "rust": ("rust",),
    "sql": ("sql", "query", "postgres", "mysql", "sqlite"),
    "bash": ("bash", "shell", "sh", "terminal"),
}


def topic_of(text: str) -> str:
    """The subject of a message: its first sentence without the polite lead-in, at most eight words."""
    first = re.split(r"(?<=[.?!])\s|\n", text.strip(), maxsplit=1)[0]
    first = LEAD_IN.sub("", first, count=1).strip(" ?.!,:;")
    words = first.split()
    return " ".join(words[:8]) if words else "this"


def language_of(text: str) -> str:
    words = set(re.findall(r"[a-z.+#]+", text.lower()))
    return next((lang for lang, names in LANGUAGES.items() if words & set(names)), "python")


FILLER = {
    "a",
    "an",
    "the",
    "in",
    "of",
    "to",
    "that",
    "which",
    "with",
    "for",
    "and",
    "or",
    "my",
    "some",
    "using",
    "function",
    "code",
    "write",
    "program",
    "script",
    "me",
    "please",
}


def identifier(topic: str, style: str) -> str:
    names = {name for names in LANGUAGES.values() for name in names}
    words = [w for w in re.findall(r"[a-z0-9]+", topic.lower()) if w not in FILLER and w not in names]
    words = words[:3] or ["solve"]
    if words[0].isdigit():
        words.insert(0, "do")
    if style == "camel":
        return words[0] + "".join(w.title() for w in words[1:])
    return "_".join(words)


def kind_of(text: str) -> str:
    if GREETING.search(text) and len(text.split()) <= 6:
        return "greeting"
    if CODE.search(text):
        return "code"
    if HELP.search(text):
        return "help"
    if QUESTION.search(text):
        return "question"
    return "statement"


def answer(text: str, rng) -> str:
    kind = kind_of(text)
    topic = topic_of(text)
    if kind == "greeting":
        return rng.choice(GREETINGS)
    if kind == "code":
        language = language_of(text)
        name = LANGUAGE_NAMES[language]
        named = any(n in set(re.findall(r"[a-z.+#]+", text.lower())) for n in LANGUAGES[language])
        # "read a file in Python" already says it; a question naming no language gets none added
        in_language = f" in {name}" if named and name.lower() not in topic.lower() else ""
        action = topic[:1].lower() + topic[1:]
        if re.match(r"(a|an|the|some|my)\b", action):  # a thing, not a task: "a function that ..."
            action = "write " + action
        intro = rng.choice(CODE_INTROS).format(topic=action, language=name, in_language=in_language)
        snippet = rng.choice(SNIPPETS[language]).format(
            snake=identifier(topic, "snake"), camel=identifier(topic, "camel"), topic=topic
        )
        outro = rng.choice(CODE_OUTROS)
        return f"{intro}\n\n```{language}\n{snippet}\n```\n\n{outro}"
    template = rng.choice({"help": HELPS, "question": QUESTIONS, "statement": STATEMENTS}[kind])
    said = re.split(r"(?<=[.?!])\s|\n", text.strip(), maxsplit=1)[0].rstrip(".!") or "that"
    return template.format(topic=topic, Topic=topic[:1].upper() + topic[1:], said=said)


LANGUAGE_NAMES = {
    "python": "Python",
    "javascript": "JavaScript",
    "typescript": "TypeScript",
    "go": "Go",
    "rust": "Rust",
    "sql": "SQL",
    "bash": "Bash",
}

GREETINGS = [
    "Hello! How can I help you today?",
    "Hi there! 👋 What can I do for you today?",
    "Hey! Good to hear from you. What would you like to work on?",
    "Hello! I'm here to help, whether it's code, writing or a quick question. What's on your mind?",
    "Hi! How's it going? Let me know what you need and we'll get started.",
]

HELPS = [
    "Of course, I'd be glad to help with {topic}. To give you the most useful answer, could you tell me a bit "
    "more?\n\n1. **What you're trying to achieve**: the end result you have in mind.\n2. **What you've tried "
    "so far**, and what happened.\n3. **Any constraints**: tools, deadlines or requirements I should know "
    "about.\n\nIn the meantime, a good first step is to break the problem into smaller pieces and tackle the "
    "one that blocks everything else.",
    "Happy to help! Here's how I'd approach **{topic}**:\n\n- **Clarify the goal.** Write down what \"done\" "
    "looks like.\n- **Gather what you have.** Notes, errors, examples: anything concrete.\n- **Take one small "
    "step** and check the result before the next one.\n\nIf you share more details, I can give you specific, "
    "step-by-step guidance.",
    "Sure! {Topic} can feel overwhelming at first, but it gets easier once it's broken down.\n\n"
    "### Where to start\n\n1. Identify the part that matters most right now.\n2. Look for an example that is "
    "close to what you need.\n3. Adapt it one change at a time.\n\nTell me where you're stuck and I'll walk "
    "you through it.",
]

QUESTIONS = [
    "Great question! Here's a concise overview of **{topic}**.\n\n**In short:** it comes down to a few core "
    "ideas that build on each other.\n\n### Key points\n\n- **The basics:** what it is and the problem it "
    "solves.\n- **How it works:** the main mechanism, step by step.\n- **Trade-offs:** where it shines and "
    "where it falls short.\n\n### Why it matters\n\nUnderstanding {topic} helps you make better decisions "
    "and avoid common pitfalls.\n\nWould you like me to go deeper into any of these points?",
    "{Topic} is a broad subject, so let me give you the essentials.\n\n1. **Definition.** At its core, it "
    "describes how the pieces fit together and why.\n2. **Context.** It grew out of practical needs, which "
    "explains many of its conventions.\n3. **In practice.** Most people meet it through everyday examples "
    "long before the theory.\n\nIf you tell me what you need it for, I can tailor the explanation.",
    "Here's what you need to know about {topic}:\n\n- It's usually explained in terms of *inputs*, "
    "*process* and *outcomes*.\n- The details depend on the context, but the principles stay the same.\n- A "
    "common misconception is that it's more complicated than it is.\n\n> **Tip:** start with a concrete "
    "example, then generalise.\n\nWant an example worked through step by step?",
]

STATEMENTS = [
    "Thanks for sharing that. Here's how I understand it: *{said}*.\n\nA few thoughts:\n\n- It's worth "
    "considering the context and what you want to achieve.\n- There may be more than one good way forward.\n\n"
    "How would you like to proceed?",
    "Got it: *{said}*. That's a useful starting point.\n\nIf you'd like, I can:\n\n1. Summarise the main "
    "points,\n2. Suggest next steps, or\n3. Look at it from a different angle.\n\nJust let me know.",
    "Understood. Let me reflect that back to make sure I have it right: **{said}**.\n\nIf that's accurate, "
    "the next step is to decide what matters most here. What would you like to focus on?",
]

CODE_INTROS = [
    "Here's how to {topic}{in_language}:",
    "Sure! Below is a clean, minimal way to {topic}{in_language}.",
    "Good question. A straightforward {language} approach looks like this:",
]

CODE_OUTROS = [
    "**How it works:**\n\n- The input is checked first, so bad data fails early with a clear message.\n- The "
    "main loop does one thing per step, which keeps it easy to test.\n- The result is returned rather than "
    "printed, so you can reuse it.\n\nLet me know if you'd like tests or a version with error handling.",
    "A few notes:\n\n1. It runs in linear time over the input.\n2. Edge cases (empty input, duplicates) are "
    "handled explicitly.\n3. You can adapt the core step to your own data.\n\nWant me to explain any part in "
    "more detail?",
    "This keeps the logic in one small function, which makes it easy to test and reuse. If you run into an "
    "error, paste the full message and I'll help you track it down.",
]

SNIPPETS = {
    "python": [
        'def {snake}(items):\n    """{topic}."""\n    if not items:\n        return []\n    result = []\n'
        "    for item in items:\n        if item not in result:\n            result.append(item)\n    return result"
        "\n\n\nprint({snake}([3, 1, 3, 2]))",
        "from collections import Counter\n\n\ndef {snake}(text: str) -> dict[str, int]:\n    words = "
        "text.lower().split()\n    return dict(Counter(words).most_common(10))",
    ],
    "javascript": [
        "function {camel}(items) {{\n  if (!Array.isArray(items)) {{\n    throw new TypeError('expected an "
        "array');\n  }}\n  return [...new Set(items)];\n}}\n\nconsole.log({camel}([3, 1, 3, 2]));",
        "async function {camel}(url) {{\n  const response = await fetch(url);\n  if (!response.ok) {{\n    "
        "throw new Error(`HTTP ${{response.status}}`);\n  }}\n  return response.json();\n}}",
    ],
    "typescript": [
        "export function {camel}<T>(items: T[]): T[] {{\n  return Array.from(new Set(items));\n}}",
        "interface Result {{\n  ok: boolean;\n  value?: number;\n}}\n\nexport function {camel}(input: string): "
        "Result {{\n  const value = Number(input);\n  return Number.isNaN(value) ? {{ ok: false }} : {{ ok: true, "
        "value }};\n}}",
    ],
    "go": [
        "func {camel}(items []int) []int {{\n\tseen := make(map[int]bool)\n\tvar out []int\n\tfor _, item := "
        "range items {{\n\t\tif !seen[item] {{\n\t\t\tseen[item] = true\n\t\t\tout = append(out, item)\n\t\t}}"
        "\n\t}}\n\treturn out\n}}",
    ],
    "rust": [
        "fn {snake}(items: &[i32]) -> Vec<i32> {{\n    let mut out = items.to_vec();\n    out.sort_unstable();"
        "\n    out.dedup();\n    out\n}}",
    ],
    "sql": [
        "SELECT customer_id,\n       COUNT(*)   AS orders,\n       SUM(total) AS revenue\nFROM orders\nWHERE "
        "created_at >= NOW() - INTERVAL '30 days'\nGROUP BY customer_id\nORDER BY revenue DESC\nLIMIT 10;",
    ],
    "bash": [
        '#!/usr/bin/env bash\nset -euo pipefail\n\nfor file in "$@"; do\n  echo "processing $file"\n  wc -l '
        '"$file"\ndone',
    ],
}
