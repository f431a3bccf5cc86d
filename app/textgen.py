"""Where response text comes from: a corpus, tokenised once at start-up.

A reply of N tokens is N consecutive corpus tokens, wrapping around at the end, so any length can be served.
With ``temperature`` 0 every reply starts at the top of the corpus (the same request gets the same text);
otherwise it starts at a randomly chosen sentence.

Each token's JSON-escaped form is built here once, so the streaming path only concatenates bytes.
"""

from __future__ import annotations

import json
import random
import re
from array import array
from itertools import accumulate
from pathlib import Path

from app.streaming.recipes import EventTable
from app.tokens import split_tokens

_SENTENCE_END = re.compile(r"[.!?]['\")\]]*\s*$")


class CorpusError(Exception):
    """The corpus cannot be read or downloaded; ``str()`` is the message for the user."""


class Corpus:
    def __init__(self, text: str):
        tokens = split_tokens(text.strip())
        if not tokens:
            raise CorpusError("the corpus is empty")
        self.tokens: list[str] = tokens
        # json.dumps gives the quoted, escaped string, as the real API writes it (non-ASCII left as is). A table
        # that streams' events are made of: the journal keeps a stream of them as a recipe (app.streaming.recipes)
        self.json_tokens: list[bytes] = EventTable(json.dumps(t, ensure_ascii=False).encode() for t in tokens)
        # A reply's text is a run of consecutive tokens: a slice of them all joined once, where a join of its
        # tokens took about 10 µs for 2,048. Its JSON too: JSON escapes each character alone, so a run of the
        # tokens' escapes is the run's escaped text, which json's encoder would scan again in every body.
        self._text = Joined(tokens)
        self._escaped = Joined([t[1:-1].decode() for t in self.json_tokens])
        self.sentence_starts = [0] + [i + 1 for i, t in enumerate(tokens[:-1]) if _SENTENCE_END.search(t)]

    @classmethod
    def from_file(cls, path: Path) -> Corpus:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise CorpusError(f"cannot read the corpus {path}: {exc.strerror or exc}") from None
        try:
            return cls(text)
        except CorpusError as exc:
            raise CorpusError(f"{exc}: {path}") from None

    def __len__(self) -> int:
        return len(self.tokens)

    def start_for(self, temperature: float) -> int:
        """Where a reply begins: the top at temperature 0, a random sentence otherwise."""
        if temperature == 0:
            return 0
        return random.choice(self.sentence_starts)

    def text(self, start: int, count: int) -> str:
        """The text of ``count`` tokens from ``start``, wrapping around the corpus."""
        return self._text.run(start, count)

    def json_text(self, start: int, count: int) -> str:
        """The same text as a JSON string, quoted and escaped as ``json.dumps(text, ensure_ascii=False)``."""
        return '"' + self._escaped.run(start, count) + '"'


class Joined:
    """Pieces joined once, with where each begins: any run of them, wrapping around, is a slice or two."""

    __slots__ = ("text", "starts", "size")

    def __init__(self, pieces: list[str]):
        self.text = "".join(pieces)
        self.starts = array("q", accumulate(map(len, pieces), initial=0))
        self.size = len(pieces)

    def run(self, start: int, count: int) -> str:
        """``count`` pieces from the one at ``start`` (``0 <= start < size``), joined."""
        text, starts = self.text, self.starts
        laps, end = divmod(start + count, self.size)
        if not laps:
            return text[starts[start] : starts[end]]
        return text[starts[start] :] + text * (laps - 1) + text[: starts[end]]


def download(url: str, destination: Path, timeout: float = 30) -> Path:
    """Fetch a text corpus (the sonnets) once; a clear CorpusError when there is no network."""
    import requests  # here, not at import: gunicorn's master must not import ssl before gevent patches it

    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as exc:
        reason = exc.__class__.__name__
        if isinstance(exc, requests.HTTPError):
            reason = f"HTTP {exc.response.status_code}"
        raise CorpusError(
            f"could not download {url} ({reason}). Check the network, set "
            "MOCK_OPENAI_RESPONSES_SONNETS_URL to a reachable copy, or use --corpus PATH."
        ) from None
    text = response.content.decode("utf-8", errors="replace")
    if not text.strip():
        raise CorpusError(f"{url} returned an empty file")
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(text, encoding="utf-8")
    return destination
