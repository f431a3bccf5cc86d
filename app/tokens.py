"""Token counting: exact where OpenAI's vocabulary is installed, a close approximation where it is not.

With the optional ``bpe-openai`` package (``pip install -e ".[tokenizer]"``: 42 MB, 75 MB installed, about
0.6 s more start-up per worker, which loads both vocabularies at once), prompt tokens are counted with the
model's own encoding: ``o200k_base`` for the gpt-4o, gpt-4.1, gpt-5 and o-series families, ``cl100k_base``
for gpt-3.5, gpt-4 and the embeddings models. Without it, the approximation below, documented in the README:

1. Text is cut into pieces by a pattern shaped like the one in front of OpenAI's BPE encoders
   (``o200k_base``): a word with its leading space, English contractions, runs of up to three digits,
   runs of punctuation with their leading space, and runs of white space; a CJK character stands alone.
2. A piece of up to ten characters is one token (common English words are single tokens in
   ``o200k_base``); a longer piece is cut into ten-character tokens.
3. Chat messages follow OpenAI's cookbook recipe for the gpt-4o family: three tokens per message, the
   tokens of each string field, one more for a ``name``, and three to prime the reply.

On English prose this lands within about ten percent of ``tiktoken``. Response text is split with the same
function, so the ``usage`` a client receives always matches, exactly, the tokens it was sent.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from array import array
from functools import lru_cache

from app.imagesize import data_url_size
from app.memo import Memo, content_key

MAX_TOKEN_CHARS = 10
_CJK = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af"  # kana, CJK and hangul: about one token each
_LETTER = rf"[^\W\d_{_CJK}]"
# The pieces of step 1 below, a word already cut into tokens of MAX_TOKEN_CHARS (its first with its leading
# space), so that most texts need no cutting after the match.
PIECE = re.compile(
    rf"""'(?:[sdmt]|ll|ve|re)(?!{_LETTER})"""  # contractions
    rf"""| {_LETTER}{{1,9}}|{_LETTER}{{1,10}}"""  # a word, with its leading space
    rf"""| ?[{_CJK}]"""
    r"""| ?\d{1,3}"""  # numbers, three digits at a time
    r"""| ?(?:[^\s\w]|_)+[\r\n]*"""  # punctuation
    r"""|\s*[\r\n]+"""  # line breaks
    r"""|\s+(?!\S)|\s+""",  # other white space
    re.UNICODE,
)
# The same for a text of ASCII alone, spelled in ASCII classes: matched in about two thirds of the time. Its
# white space is what str.isspace() counts in ASCII, as \s is for a str pattern (the separators \x1c-\x1f too).
_SPACE = " \t\n\r\x0b\x0c\x1c-\x1f"
ASCII_PIECE = re.compile(
    r"""'(?:[sdmt]|ll|ve|re)(?![A-Za-z])"""
    r"""| [A-Za-z]{1,9}|[A-Za-z]{1,10}"""
    r"""| ?[0-9]{1,3}"""
    rf"""| ?(?:[^{_SPACE}A-Za-z0-9_]|_)+[\r\n]*"""
    rf"""|[{_SPACE}]*[\r\n]+"""
    rf"""|[{_SPACE}]+(?![^{_SPACE}])|[{_SPACE}]+"""
)
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
IMAGE_BASE_TOKENS = 85  # a low-detail image, and the base of every other
IMAGE_TILE_TOKENS = 170  # per 512-pixel tile at high detail
UNKNOWN_IMAGE_SIZE = (1024, 1024)  # an image behind a URL, whose size is not fetched


O200K_MODELS = re.compile(r"^(ft:)?(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|chatgpt-4o|codex)")
_encodings: dict[str, object] = {}


def load_vocabularies() -> bool:
    """Load both encodings now (a worker does, at start-up), if ``bpe-openai`` is installed."""
    if _encodings:
        return True
    try:
        import bpe_openai
    except ImportError:
        return False
    for name in ("o200k_base", "cl100k_base"):
        _encodings[name] = bpe_openai.get_encoding(name)
    return True


@lru_cache(maxsize=256)
def _encoding_for(model: str):
    return _encodings.get("o200k_base" if O200K_MODELS.match(model) else "cl100k_base")


def exact_counter(model: str | None):
    """The model's encoding when the vocabularies are loaded, else None (then the approximation counts)."""
    if not _encodings or not isinstance(model, str):
        return None
    return _encoding_for(model)


def split_tokens(text: str) -> list[str]:
    """The text as tokens; joined back they give the text unchanged. A load test's distinct prompts are each
    split once: 2,000 tokens of English prose took about 320 µs, and take about 190."""
    pieces = (ASCII_PIECE if text.isascii() else PIECE).findall(text)
    if not pieces or max(map(len, pieces)) <= MAX_TOKEN_CHARS:  # (words come cut already)
        return pieces
    tokens = []
    for piece in pieces:
        if len(piece) <= MAX_TOKEN_CHARS:
            tokens.append(piece)
        else:
            tokens.extend(piece[i : i + MAX_TOKEN_CHARS] for i in range(0, len(piece), MAX_TOKEN_CHARS))
    return tokens


def count_tokens(text: str, model: str | None = None) -> int:
    return _tokens_in(text, exact_counter(model))


def _tokens_in(text: str, encoding) -> int:
    """``text``'s tokens in ``encoding`` (None: the approximation), tokenized once (see TOKENIZED)."""
    tokens = TOKENIZED.get((text, encoding))  # (the lookup here: a call less for every string of a prompt)
    return len(tokens if tokens is not None else _tokenized(text, encoding))


def _json_tokens(value, encoding) -> int:
    return len(_json_tokenized(value, encoding))


def count_message_tokens(messages: list, tools: list | None = None, model: str | None = None) -> int:
    """Prompt tokens of a chat request, by the cookbook's recipe."""
    encoding = exact_counter(model)
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            total += _count_value(value, encoding)
            if key == "name":
                total += TOKENS_PER_NAME
    if tools:
        total += _json_tokens(tools, encoding)
    return total


def count_prompt_tokens(prompt, model: str | None = None) -> int:
    """Prompt tokens of a legacy completion: text, a list of texts, or token ids."""
    if prompt is None:
        return 1  # the real API's default prompt, <|endoftext|>
    if isinstance(prompt, str):
        return count_tokens(prompt, model)
    total = 0
    for item in prompt:
        if isinstance(item, str):
            total += count_tokens(item, model)
        elif isinstance(item, int):
            total += 1
        elif isinstance(item, list):
            total += len(item)
    return total


def _count_value(value, encoding) -> int:
    if isinstance(value, str):
        return _tokens_in(value, encoding)
    if isinstance(value, list):  # content parts, tool calls
        total = 0
        for part in value:
            if isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                total += image_tokens(part)
            elif isinstance(part, dict) and "text" in part and isinstance(part["text"], str):
                total += _tokens_in(part["text"], encoding)
            else:
                total += _json_tokens(part, encoding)
        return total
    if isinstance(value, dict):
        return _json_tokens(value, encoding)
    return 0


# A message's framing, as the three tokens per message the recipe counts: its start (before the role), the
# separator before its content, its end. o200k's are the harmony format's (<|start|>, <|message|>, <|end|>),
# cl100k's ChatML's (<|im_start|>, <|im_sep|>, <|im_end|>); the approximation names them by their text.
FRAMING = {
    "o200k_base": {"start": 200006, "message": 200008, "end": 200007},
    "cl100k_base": {"start": 100264, "message": 100266, "end": 100265},
}
FRAMING_TEXT = {
    "o200k_base": {200006: "<|start|>", 200008: "<|message|>", 200007: "<|end|>"},
    "cl100k_base": {100264: "<|im_start|>", 100266: "<|im_sep|>", 100265: "<|im_end|>"},
}
APPROXIMATE_FRAMING = {"start": "<|start|>", "message": "<|message|>", "end": "<|end|>"}


def text_tokens(text: str, model: str | None = None) -> list:
    """The text as the model's token ids; without the vocabularies, as :func:`split_tokens`' pieces (as many
    as :func:`count_tokens` counts)."""
    return list(_tokenized(text, exact_counter(model)))


# Texts are tokenized once (app.memo): a client sends the same ones again and again (a chat resends its whole
# conversation every turn, an agent or a load test its system prompt and tools with every request, and every
# message its role), and looking one up costs about a microsecond for 10 KB (hashing it) where tokenizing it
# costs a hundred. Counts are the lists' lengths; the prompt cache reads the lists (a long prompt whose end
# changes is tokenized only there). Tools and other JSON values are keyed by app.memo.content_key, not by their
# JSON text (10 µs against 80 for an agent's 24 tools). Ids are kept 4 bytes each; at most TOKENIZED_CHARS
# characters of keys held in all (4 MB of ASCII text).
TOKENIZED_CHARS = 1 << 22
TOKENIZED = Memo(TOKENIZED_CHARS)  # (text or content key, encoding or None) -> array of ids, or tuple of pieces


def _tokenized(text: str, encoding):
    key = (text, encoding)
    tokens = TOKENIZED.get(key)
    if tokens is None:
        tokens = _tokenize(text, encoding)
        TOKENIZED.put(key, tokens, len(text))
    return tokens


def _json_tokenized(value, encoding):
    """The tokens of a JSON value's compact text, kept by its content (see :func:`_json_tokens`)."""
    try:
        content = content_key(value)
    except ValueError:  # (not a JSON value after all)
        return _tokenized(json.dumps(value, separators=(",", ":")), encoding)
    key = (content, encoding)
    tokens = TOKENIZED.get(key)
    if tokens is None:
        tokens = _tokenize(json.dumps(value, separators=(",", ":")), encoding)
        TOKENIZED.put(key, tokens, len(content))
    return tokens


def _tokenize(text: str, encoding):
    if encoding is not None:
        try:
            return array("I", encoding.encode_ordinary(text))
        except ValueError:  # past bpe_openai's size limit: the approximation, as count_tokens does
            pass
    return tuple(split_tokens(text))


def chat_tokens(messages, tools=None, model: str | None = None, generation_prompt: bool = True, ids: bool = False):
    """A chat prompt as the model reads it, as many tokens as :func:`count_message_tokens` counts: the tools
    first (they lead the prompt), then each message framed (start, role, separator, its other fields, end),
    then the start of the reply (start, ``assistant``, separator). A list; with ``ids``, an array of the
    vocabulary's ids, or None where the prompt is not all ids (without the vocabularies, or with an image's
    tokens): the prompt cache hashes the array as it is, where a list of 2,000 ints took 25 µs to make and 8 to
    turn back into bytes."""
    encoding = exact_counter(model)
    if ids and encoding is None:
        return None
    frame = FRAMING.get(encoding.name, APPROXIMATE_FRAMING) if encoding is not None else APPROXIMATE_FRAMING
    empty = (lambda: array("I")) if ids else list
    tokens = empty()
    try:
        if tools:
            tokens.extend(_json_tokenized(tools, encoding))
        for message in messages:
            tokens.append(frame["start"])
            rest = empty()
            for key, value in message.items():
                if key == "role":
                    tokens.extend(_value_tokens(value, encoding))
                    continue
                rest.extend(_value_tokens(value, encoding))
                if key == "name":
                    rest.extend(_tokenized(":", encoding)[:TOKENS_PER_NAME])
            tokens.append(frame["message"])
            tokens.extend(rest)
            tokens.append(frame["end"])
        if generation_prompt:  # the reply's priming: three tokens
            tokens.extend((frame["start"], *_tokenized("assistant", encoding)[:1], frame["message"]))
    except TypeError:
        if not ids:
            raise
        return None  # (an image's token met the array)
    return tokens


def _value_tokens(value, encoding):
    """:func:`_count_value`'s tokens."""
    if isinstance(value, str):
        return _tokenized(value, encoding)
    if isinstance(value, list):
        tokens = []
        for part in value:
            if isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                # an image is as many tokens as its tiles cost, named by the image (another image differs)
                mark = hashlib.blake2b(repr(part).encode(), digest_size=8).hexdigest()
                tokens += [mark] * image_tokens(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                tokens += _tokenized(part["text"], encoding)
            else:
                tokens += _json_tokenized(part, encoding)
        return tokens
    if isinstance(value, dict):
        return _json_tokenized(value, encoding)
    return ()


def image_tokens(part: dict) -> int:
    """The gpt-4o family's published image cost: 85 at low detail; otherwise the image is fitted in
    2048 x 2048, its shorter side scaled to 768, and each 512-pixel tile costs 170 more. An inline image's
    size is read from its header; an image behind a URL is taken as 1024 x 1024."""
    image = part.get("image_url") if part.get("type") == "image_url" else part
    if isinstance(image, str):
        url, detail = image, part.get("detail")
    elif isinstance(image, dict):
        url, detail = image.get("url") or image.get("image_url") or "", image.get("detail")
    else:
        url, detail = "", None
    if detail == "low":
        return IMAGE_BASE_TOKENS
    width, height = (isinstance(url, str) and data_url_size(url)) or UNKNOWN_IMAGE_SIZE
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = width * scale, height * scale
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = width * scale, height * scale
    tiles = math.ceil(width / 512) * math.ceil(height / 512)
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles
