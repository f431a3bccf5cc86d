"""The code blocks of the README and the docs, as the tests read them: each with its file, line, language,
and what the comment just before it says (``<!-- docs-test: server FLAGS -->`` runs it against a server
started with those flags; ``<!-- docs-test: not run: REASON -->`` says why it is not run)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.S | re.M)
DIRECTIVE = re.compile(r"<!-- docs-test: (.*?) -->\s*$")


@dataclass
class Block:
    path: Path
    line: int
    language: str
    code: str
    directive: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(language: str | None = None) -> list[Block]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text()
        for match in FENCE.finditer(text):
            indent, lang, code = match.groups()
            code = "\n".join(line[len(indent) :] for line in code.split("\n"))
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            directive = DIRECTIVE.search(before)
            block = Block(
                path, text.count("\n", 0, match.start()) + 1, lang, code, directive.group(1) if directive else ""
            )
            if language is None or lang == language:
                found.append(block)
    return found


def commands(code: str) -> list[str]:
    """A shell block's commands: continuation lines joined, a quoted argument over several lines kept whole,
    comment lines left out."""
    found, pending = [], ""
    for line in re.sub(r"\\\n\s*", " ", code).split("\n"):
        if not pending and (not line.strip() or line.strip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line.strip()
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        found.append(pending)
        pending = ""
    return found
