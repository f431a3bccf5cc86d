"""The ``mock_openai`` pytest plugin, as another project uses it: run through ``pytester`` in a subprocess,
the way pytest loads it from the installed package's ``pytest11`` entry point."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.e2e

TESTS = """
import openai

def test_sdk_call_is_in_the_journal(mock_openai):
    reply = mock_openai.client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello"}], max_tokens=5
    )
    last = mock_openai.last_request()
    assert last.path == "/v1/chat/completions" and last.status == 200
    assert last.body["messages"] == [{"role": "user", "content": "Hello"}]
    assert last.text == reply.choices[0].message.content
    assert last.test_id.endswith("test_sdk_call_is_in_the_journal")

def test_streams_and_filters(mock_openai):
    stream = mock_openai.client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    mock_openai.client.models.list()
    assert [e.path for e in mock_openai.requests()] == ["/v1/models", "/v1/chat/completions"]
    streamed = mock_openai.last_request(stream=True)
    assert streamed.text == text and streamed.response["ending"] == "done"
    detail = mock_openai.request(streamed.id)
    assert detail.response["stream_events"][-1]["data"] == "[DONE]"

def test_faults_reach_the_sdk_and_are_cleared_after(mock_openai):
    mock_openai.fault("429", count=5)
    client = mock_openai.client.with_options(max_retries=0)
    try:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    except openai.RateLimitError:
        pass
    else:
        raise AssertionError("expected a 429")
    assert mock_openai.last_request().status == 429

def test_after_the_fault_test_nothing_is_left(mock_openai):
    reply = mock_openai.client.with_options(max_retries=0).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=2
    )
    assert reply.choices[0].finish_reason == "length"
    assert mock_openai.stats()["total_requests"] >= 1
"""

# The README's example, word for word.
README_EXAMPLE = """
def test_summary_retries_a_429(mock_openai):
    mock_openai.fault("429", count=1)  # the first attempt is refused; the SDK retries
    reply = mock_openai.client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Summarize: ..."}], max_tokens=20
    )
    attempts = mock_openai.requests(path="/v1/chat/completions")
    assert [a.status for a in attempts] == [200, 429]  # newest first
    assert attempts[0].body["messages"][0]["content"].startswith("Summarize")
    assert attempts[0].text == reply.choices[0].message.content
"""

FORMATS = """
def test_a_client_for_each_wire_format(mock_openai):
    message = mock_openai.anthropic_client.messages.create(
        model="claude-haiku-4-5", max_tokens=4, messages=[{"role": "user", "content": "Hi Claude"}]
    )
    azure = mock_openai.azure_client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hi Azure"}], max_tokens=4
    )
    gemini = mock_openai.gemini_client.models.generate_content(model="gemini-2.5-flash", contents="Hi Gemini")
    (claude,) = mock_openai.requests(api="anthropic")
    assert claude.text == message.content[0].text and claude.body["messages"][0]["content"] == "Hi Claude"
    assert mock_openai.requests(api="azure")[0].text == azure.choices[0].message.content
    assert mock_openai.requests(api="gemini")[0].text == gemini.text
    assert len(mock_openai.requests()) == 3
"""

PARALLEL = """
import pytest

@pytest.mark.parametrize("n", range(8))
def test_each_sees_only_its_own(mock_openai, n):
    for _ in range(n + 1):
        mock_openai.client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"test {n}"}], max_tokens=3
        )
    mine = mock_openai.requests()
    assert len(mine) == n + 1
    assert {e.body["messages"][0]["content"] for e in mine} == {f"test {n}"}
    assert len(mock_openai.requests(all_tests=True)) >= n + 1
"""


def test_the_fixture_starts_a_server_and_reads_its_journal(pytester):
    pytester.makeini("[pytest]\nmock_openai_args = -w 2 --inter-token-latency 0\n")
    pytester.makepyfile(test_client=TESTS, test_readme=README_EXAMPLE, test_formats=FORMATS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


def test_parallel_tests_against_one_server_do_not_see_each_other(pytester, start_server):
    server = start_server("-w", "2", "--inter-token-latency", "0")
    pytester.makepyfile(test_parallel=PARALLEL)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", f"--mock-openai-url={server.base_url}")
    result.assert_outcomes(passed=8)


def test_a_server_with_a_token_is_read_with_it(pytester, start_server):
    server = start_server("--token", "sk-plugin-secret")
    pytester.makepyfile(
        test_token="""
def test_token(mock_openai):
    mock_openai.client.models.list()
    assert mock_openai.last_request().request["headers"]["Authorization"] == "Bearer [redacted]"
"""
    )
    result = pytester.runpytest_subprocess(
        f"--mock-openai-url={server.base_url}", "--mock-openai-token=sk-plugin-secret"
    )
    result.assert_outcomes(passed=1)
