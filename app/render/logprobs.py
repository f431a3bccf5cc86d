"""Log probabilities that agree with the tokens sent, in the chat and the legacy shapes.

Each token's log probability is drawn from a hash of the token and its position, so a reply and its
stream carry the same numbers, and a seeded request the same ones every time. The sent token is always the
most likely; the alternatives (other tokens of the corpus) are less likely and sorted, and the
probabilities of a position never add up to more than one.
"""

from __future__ import annotations

import math
import zlib

ALTERNATIVES = (" the", " a", " and", " of", " to", " in", " is", ",", ".", " that", " it", " for", " on",
                " with", " as", " was", " be", " at", " by", " this", " or")  # fmt: skip


def _draw(token: str, position: int) -> float:
    return (zlib.crc32(f"{position}\0{token}".encode()) & 0xFFFF) / 0x10000


def chosen_logprob(token: str, position: int) -> float:
    """Between about -1.6 and 0: the probability of the sent token is 0.2 to 1."""
    return round(math.log(0.2 + 0.8 * (1 - _draw(token, position) ** 2)), 6)


def alternatives(token: str, position: int, count: int) -> list[tuple[str, float]]:
    """``count`` pairs ``(token, logprob)``, most likely first: the sent token, then others sharing what
    probability is left."""
    if count <= 0:
        return []
    first = chosen_logprob(token, position)
    chosen = math.exp(first)
    pairs = [(token, first)]
    share = min(max(1e-6, 1 - chosen) / 2, chosen * 0.9)  # what is left, halved each time; never above the sent one
    for other in ALTERNATIVES:
        if len(pairs) >= count:
            break
        if other == token:
            continue
        pairs.append((other, round(math.log(share), 6)))
        share /= 2
    return pairs


def _entry(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def chat_entry(token: str, position: int, top: int) -> dict:
    """One item of ``logprobs.content``."""
    entry = _entry(token, chosen_logprob(token, position))
    entry["top_logprobs"] = [_entry(t, lp) for t, lp in alternatives(token, position, top)]
    return entry


def chat_logprobs(tokens: list[str], top: int) -> dict:
    return {"content": [chat_entry(t, k, top) for k, t in enumerate(tokens)], "refusal": None}


def legacy_logprobs(tokens: list[str], top: int, offset: int = 0, echoed: int = 0, start: int = 0) -> dict:
    """The legacy shape: parallel lists. The first ``echoed`` tokens are the prompt (legacy ``echo``); the
    very first token of a prompt has no probability (null), as in the real API."""
    result = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for k, token in enumerate(tokens):
        position = start + k
        result["tokens"].append(token)
        result["text_offset"].append(offset)
        offset += len(token)
        if position == 0 and echoed:
            result["token_logprobs"].append(None)
            result["top_logprobs"].append(None)
            continue
        result["token_logprobs"].append(chosen_logprob(token, position))
        result["top_logprobs"].append(dict(alternatives(token, position, max(1, top))))
    return result
