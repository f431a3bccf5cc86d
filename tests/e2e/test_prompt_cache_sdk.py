"""Prompt caching against real gunicorn gevent workers, with the official SDK (bodies strictly validated): a
prefix repeated on another worker, or on another instance sharing one Redis, is reported as cached and starts
sooner; a different prefix is not cached and starts as late as the first."""

from __future__ import annotations

import time
import uuid

import openai
import pytest

pytestmark = pytest.mark.e2e

SYSTEM = " ".join(f"Clause {i}: the assistant quotes the clause it applies, word for word." for i in range(300))
PREFILL = {"MOCK_OPENAI_LATENCY_PREFILL_MS_PER_1K_PROMPT_TOKENS": "100"}  # ~3,000 tokens: 0.3 s uncached


@pytest.fixture(params=["two workers", "two instances on Redis"])
def clients(request, start_server, tmp_path) -> list[openai.OpenAI]:
    if request.param == "two workers":
        servers = [start_server("-w", "2", "--inter-token-latency", "0", env=PREFILL)]
    else:
        env = PREFILL | {"MOCK_OPENAI_SHARED_REDIS_URL": request.getfixturevalue("redis_url"),
                         "MOCK_OPENAI_SHARED_REDIS_PREFIX": uuid.uuid4().hex}  # fmt: skip
        servers = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            servers.append(start_server("--inter-token-latency", "0", env=env, cwd=tmp_path / name))
    made = [openai.OpenAI(base_url=s.base_url + "/v1", api_key="sk-cache", max_retries=0,
                          _strict_response_validation=True) for s in servers]  # fmt: skip
    return made * (2 // len(made))  # two clients: of two instances, or both of the one server


def stream(client: openai.OpenAI, system: str) -> tuple[float, openai.types.CompletionUsage]:
    """Time to the first content chunk, and the usage chunk's counts."""
    started, first, usage = time.monotonic(), None, None
    chunks = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "Which clause applies?"}],
        max_tokens=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in chunks:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.monotonic() - started
        if chunk.usage is not None:
            usage = chunk.usage
    return first, usage


def test_a_repeated_prefix_is_cached_for_every_worker_and_starts_sooner(clients):
    one, other = clients
    cold, usage = stream(one, SYSTEM)
    assert usage.prompt_tokens > 3000 and usage.prompt_tokens_details.cached_tokens == 0
    assert cold >= 0.25

    warm, usage = stream(other, SYSTEM)  # another worker (or instance) serves it from the shared cache
    cached = usage.prompt_tokens_details.cached_tokens
    assert usage.prompt_tokens - 128 < cached < usage.prompt_tokens and (cached - 1024) % 128 == 0
    assert warm < cold / 3

    cold_again, usage = stream(other, "Another policy entirely. " + SYSTEM)
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert cold_again >= 0.25

    body = one.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "And?"}]
    )
    assert body.usage.prompt_tokens_details.cached_tokens >= 1024
