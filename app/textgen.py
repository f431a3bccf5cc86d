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
from pathlib import Path

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
        # json.dumps gives the quoted, escaped string, as the real API writes it (non-ASCII left as is).
        self.json_tokens: list[bytes] = [json.dumps(t, ensure_ascii=False).encode() for t in tokens]
        # ... and without its quotes, as text: a body's text is those of its tokens joined (JSON escapes each
        # character alone), where json's encoder would scan every character of every body again.
        self.escaped_tokens: list[str] = [t[1:-1].decode() for t in self.json_tokens]
        self.sentence_starts = [0] + [i + 1 for i, t in enumerate(tokens[:-1]) if _SENTENCE_END.search(t)]
        self._text = "".join(tokens)
        self._escaped = "".join(self.escaped_tokens)

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
        return _span(self.tokens, self._text, start, count)

    def json_text(self, start: int, count: int) -> str:
        """The same text as a JSON string, quoted and escaped as ``json.dumps(text, ensure_ascii=False)``."""
        return '"' + _span(self.escaped_tokens, self._escaped, start, count) + '"'


def _span(pieces: list[str], whole_text: str, start: int, count: int) -> str:
    """``count`` of ``pieces`` from ``start`` joined, wrapping around (``whole_text``: all of them joined)."""
    size = len(pieces)
    if count <= size - start:
        return "".join(pieces[start : start + count])
    whole, rest = divmod(count - (size - start), size)
    return "".join(pieces[start:]) + whole_text * whole + "".join(pieces[:rest])


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
