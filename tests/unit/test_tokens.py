"""Token splitting and counting."""

import random
import re

from app.config import DEFAULT_CORPUS
from app.tokens import count_message_tokens, count_tokens, split_tokens


def test_tokens_join_back_to_the_text():
    alphabet = "ab _-\n\t1é.,'东\"\\"
    rng = random.Random(1)
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(40))
        assert "".join(split_tokens(text)) == text
        assert count_tokens(text) == len(split_tokens(text))


def test_common_words_are_single_tokens_with_their_space():
    assert split_tokens("The quick brown fox.") == ["The", " quick", " brown", " fox", "."]


def test_long_words_and_numbers_split():
    assert split_tokens(" internationalization") == [" internati", "onalizatio", "n"]
    assert split_tokens("1234567") == ["123", "456", "7"]


# The approximation as the README states it, spelled directly: the pieces, each cut into tokens of ten.
_PIECES = re.compile(
    r"""'(?:[sdmt]|ll|ve|re)(?![^\W\d_\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af])"""
    r"""| ?[^\W\d_\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]+"""
    r"""| ?[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]| ?\d{1,3}| ?(?:[^\s\w]|_)+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def _stated(text: str) -> list[str]:
    return [piece[i : i + 10] for piece in _PIECES.findall(text) for i in range(0, len(piece), 10)]


def test_the_split_is_the_stated_pieces_cut_into_tens_for_ascii_and_any_other_text():
    # split_tokens matches words already cut, and ASCII text with a pattern of ASCII classes: both must give
    # what the stated rule gives, for every character class the rule names and runs longer than ten
    alphabets = [
        "".join(map(chr, range(128))),  # ASCII: controls, the separators \x1c-\x1f, punctuation
        "ab Z9_'\n\r\t.,!-sdmtlvre",  # contractions, and runs of each kind
        "aé漢字かなß9 '\n!…—\u3000\u00a0\u2028\x85",  # letters, CJK, Unicode white space
        "".join(map(chr, range(0x2100))),
    ]
    rng = random.Random(3)
    for case in range(20000):
        text = "".join(rng.choice(alphabets[case % 4]) for _ in range(rng.randint(0, 40)))
        if case % 5 == 0:
            text = text.replace(" ", rng.choice(["", " " * 12, " abcdefghijklmnopq", "\n" * 11, "!" * 23]))
        assert split_tokens(text) == _stated(text), repr(text)
    prose = DEFAULT_CORPUS.read_text()
    assert split_tokens(prose) == _stated(prose)
    assert split_tokens(prose.replace(". ", ".\u2014 ")) == _stated(prose.replace(". ", ".\u2014 "))


def test_english_prose_is_about_four_characters_a_token():
    text = DEFAULT_CORPUS.read_text()
    assert 3.5 < len(text) / count_tokens(text) < 5.5


def test_message_recipe():
    messages = [{"role": "user", "content": "Hi", "name": "bob"}]
    assert count_message_tokens(messages) == 3 + 1 + 1 + 1 + 1 + 3


def test_exact_counts_with_the_bundled_vocabularies():
    """With bpe-openai installed (the test extras have it), prompts are counted with the model's encoding."""
    from app.tokens import count_message_tokens, count_tokens, load_vocabularies

    assert load_vocabularies(), "bpe-openai is needed (the test extras have it): pip install -e '.[test]'"
    text = "Hello there! How are you today? Tokenization isn't trivial: 12345 ünïcödé 日本語"
    import bpe_openai

    assert count_tokens(text, "gpt-4o") == len(bpe_openai.get_encoding("o200k_base").encode(text))
    assert count_tokens(text, "gpt-3.5-turbo") == len(bpe_openai.get_encoding("cl100k_base").encode(text))
    assert count_tokens("Hello there! How are you today?", "gpt-5.4") == 8
    # the cookbook's recipe around the exact counts: 3 per message, 3 to prime the reply
    assert count_message_tokens([{"role": "user", "content": "Hello there!"}], None, "gpt-4o") == 3 + 1 + 3 + 3


def test_images_are_counted_by_size_and_detail():
    import base64
    import struct
    import zlib

    from app.tokens import image_tokens

    def png(width, height):
        header = struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"
        chunk = b"IHDR" + header
        raw = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
        return "data:image/png;base64," + base64.b64encode(raw).decode()

    def part(url, detail=None):
        return {"type": "image_url", "image_url": {"url": url, "detail": detail}}

    assert image_tokens(part(png(4096, 4096), "low")) == 85
    assert image_tokens(part(png(512, 512))) == 85 + 170  # one tile
    assert image_tokens(part(png(1024, 1024))) == 85 + 170 * 4  # scaled to 768 x 768: four tiles
    assert image_tokens(part(png(2048, 4096))) == 85 + 170 * 6  # 1024 x 2048, then 768 x 1536
    assert image_tokens(part("https://example.com/cat.jpg")) == 85 + 170 * 4  # taken as 1024 x 1024
    assert image_tokens({"type": "input_image", "image_url": png(512, 512), "detail": "high"}) == 255


def test_a_text_sent_again_is_counted_as_before_by_each_encoding():
    """Texts are tokenized once (a chat resends its conversation every turn): what is kept is what each
    encoding makes of that text, at most TOKENIZED_CHARS characters of texts in all, and a very long text is
    tokenized every time."""
    import bpe_openai

    from app import tokens

    assert tokens.load_vocabularies()
    o200k, cl100k = bpe_openai.get_encoding("o200k_base"), bpe_openai.get_encoding("cl100k_base")
    text = "Tokenization isn't trivial: 12345 ünïcödé 日本語 " * 3
    for _ in range(2):  # counted, then kept: the same answers, each encoding its own
        assert count_tokens(text, "gpt-4o") == len(o200k.encode(text))
        assert count_tokens(text, "gpt-3.5-turbo") == len(cl100k.encode(text))
        assert count_tokens(text) == len(split_tokens(text))
    assert len(o200k.encode(text)) != len(cl100k.encode(text)) != len(split_tokens(text))

    tokens.TOKENIZED.clear()
    chunk = "word " * (tokens.TOKENIZED_CHARS // 48)  # a tenth of the budget, near enough: the tenth text clears it
    for i in range(10):
        assert count_tokens(f"{i} {chunk}", "gpt-4o") == len(o200k.encode(f"{i} {chunk}"))
        assert tokens.TOKENIZED.held <= tokens.TOKENIZED_CHARS
    assert 0 < len(tokens.TOKENIZED.values) < 10  # forgotten when full, then kept again

    too_long = "word " * (tokens.TOKENIZED_CHARS // 40 + 1)
    tokens.TOKENIZED.clear()
    assert count_tokens(too_long, "gpt-4o") == len(o200k.encode(too_long))
    assert not tokens.TOKENIZED.values


def test_json_values_are_counted_as_their_compact_text():
    """Tools and content parts are kept by their content: values that differ only in type (1, 1.0, true) or
    order are counted as their own JSON text."""
    import json

    import bpe_openai

    from app import tokens

    assert tokens.load_vocabularies()
    o200k = bpe_openai.get_encoding("o200k_base")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    variants = [[{"n": 1, "m": "x"}], [{"n": 1.0, "m": "x"}], [{"n": True, "m": "x"}], [{"m": "x", "n": 1}], tools]
    messages = [{"role": "user", "content": "hi"}]
    alone = count_message_tokens(messages, None, "gpt-4o")
    for _ in range(2):  # counted, then kept
        for value in variants:
            text = json.dumps(value, separators=(",", ":"))
            assert count_message_tokens(messages, value, "gpt-4o") - alone == len(o200k.encode(text)), value
    parts = [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]
    assert (
        count_message_tokens([{"role": "user", "content": parts}], None, "gpt-4o")
        == 3 + 1 + len(o200k.encode(json.dumps(parts[0], separators=(",", ":")))) + 3
    )


def test_a_prompt_read_again_gives_the_same_tokens_and_a_caller_cannot_change_them():
    """Token lists are kept too (the prompt cache reads the whole prompt on every long request)."""
    import bpe_openai

    from app import tokens

    assert tokens.load_vocabularies()
    o200k = bpe_openai.get_encoding("o200k_base")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    for model in ("gpt-4o", None):  # exact ids, then the approximation's pieces
        tokens.TOKENIZED.clear()
        first = tokens.chat_tokens(messages, tools, model)
        again = tokens.chat_tokens(messages, tools, model)
        assert first == again and len(first) == tokens.count_message_tokens(messages, tools, model)
        text = tokens.text_tokens("Be brief.", model)
        text.append("changed by the caller")
        assert tokens.text_tokens("Be brief.", model) == text[:-1]
        assert tokens.chat_tokens(messages, tools, model) == first
    assert tokens.text_tokens("Be brief.", "gpt-4o") == o200k.encode("Be brief.")


def test_a_prompt_as_ids_is_its_tokens_in_an_array_or_none_where_they_are_not_all_ids():
    """The prompt cache reads a long prompt as an array of ids (chat_tokens(..., ids=True)): the same tokens as
    the list, and None without the vocabularies or with an image's tokens among the ids."""
    from app import tokens

    assert tokens.load_vocabularies()
    messages = [
        {"role": "system", "content": "Be brief.", "name": "policy"},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    for generation_prompt in (True, False):
        listed = tokens.chat_tokens(messages, tools, "gpt-4o", generation_prompt)
        ids = tokens.chat_tokens(messages, tools, "gpt-4o", generation_prompt, ids=True)
        assert ids.typecode == "I" and list(ids) == listed
    assert tokens.chat_tokens(messages, tools, None, ids=True) is None  # the approximation's pieces
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with_image = [{"role": "user", "content": [{"type": "text", "text": "Look"}, image]}]
    assert tokens.chat_tokens(with_image, None, "gpt-4o", ids=True) is None
    assert any(isinstance(t, str) for t in tokens.chat_tokens(with_image, None, "gpt-4o"))
