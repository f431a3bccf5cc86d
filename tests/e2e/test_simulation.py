"""End to end, the simulation: faults, retries, rate limits, sequences, runtime control, timing, scenarios and
record/replay, through real gunicorn gevent workers, with ``requests`` and the official SDK."""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from tests.conftest import LiveServer
from tests.openapi import assert_valid
from tests.sse import parse_sse

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "Say hello"}]


def sdk(server, **kwargs) -> openai.OpenAI:
    kwargs.setdefault("api_key", "sk-test")
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=server.base_url + "/v1", **kwargs)


def chat(server, headers=None, **body):
    body.setdefault("messages", MESSAGES)
    body.setdefault("model", "gpt-4o-mini")
    return requests.post(server.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Two workers, 1 ms between tokens, a short timeout fault and retry-after, for fault tests."""
    live = LiveServer(["-w", "2", "--inter-token-latency", "1"], None, tmp_path_factory.mktemp("sim"))
    patch = {"faults": {"retry_after_ms": 300, "timeout_ms": 1500}}
    assert requests.patch(live.base_url + "/_mock/config", json=patch, timeout=5).ok
    yield live
    live.stop()


@pytest.fixture(autouse=True)
def no_leftover_faults(request):
    yield
    if "server" in request.fixturenames:
        live = request.getfixturevalue("server")
        requests.delete(live.base_url + "/_mock/faults", timeout=5)


class Attempts:
    """The requests an SDK client sends, as an httpx event hook sees them: time and retry count."""

    def __init__(self):
        self.seen = []

    def __call__(self, request):
        self.seen.append((time.monotonic(), request.headers.get("x-stainless-retry-count")))

    def client(self, server, **kwargs):
        return sdk(server, http_client=openai.DefaultHttpxClient(event_hooks={"request": [self]}), **kwargs)

    @property
    def gaps(self):
        return [b[0] - a[0] for a, b in zip(self.seen, self.seen[1:], strict=False)]


# --- injected errors and the SDK's retries ---------------------------------------------------------------


def test_sdk_with_max_retries_2_makes_three_attempts_and_honours_retry_after(server):
    queued = requests.post(server.base_url + "/_mock/faults", json={"error": "429", "count": 3}, timeout=5)
    assert queued.status_code == 201 and queued.json()["pending"] == 3
    attempts = Attempts()
    with pytest.raises(openai.RateLimitError) as caught:
        attempts.client(server, max_retries=2).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [count for _, count in attempts.seen] == ["0", "1", "2"]
    assert all(0.3 <= gap < 0.3 + 0.25 for gap in attempts.gaps), attempts.gaps  # retry-after-ms: 300
    assert caught.value.code == "rate_limit_exceeded" and caught.value.type == "requests"
    assert caught.value.response.headers["retry-after-ms"] == "300"
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    faults = requests.get(server.base_url + "/_mock/faults", timeout=5).json()
    assert faults["pending"] == 0 and faults["data"][0]["used"] == 3


def test_fail_the_first_two_then_succeed_is_survived_by_the_sdk_retries(server):
    requests.post(server.base_url + "/_mock/faults", json={"error": "503", "count": 2}, timeout=5)
    attempts = Attempts()
    reply = attempts.client(server, max_retries=2).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=3
    )
    assert reply.usage.completion_tokens == 3
    assert [count for _, count in attempts.seen] == ["0", "1", "2"]
    # No retry-after on a 503: the SDK's own backoff, 0.5 s then 1 s, less up to 25% jitter.
    assert 0.375 <= attempts.gaps[0] < 0.5 + 0.2 and 0.75 <= attempts.gaps[1] < 1.0 + 0.2


def test_one_shot_faults_for_one_model_leave_the_others_alone(server):
    requests.post(server.base_url + "/_mock/faults", json={"error": "500", "count": 1, "model": "gpt-4o"}, timeout=5)
    assert chat(server, model="gpt-4o-mini", max_tokens=1).status_code == 200
    failed = chat(server, model="gpt-4o", max_tokens=1)
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "server_error"
    assert chat(server, model="gpt-4o", max_tokens=1).status_code == 200


def test_a_one_shot_fault_for_one_test_id_reaches_only_that_tests_requests(server):
    url = server.base_url + "/_mock/faults"
    bad = requests.post(url, json={"error": "500", "test_id": 7}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "test_id"
    assert requests.post(url, json={"error": "500", "count": 2, "test_id": "tests/a.py::t"}, timeout=5).ok
    assert chat(server, max_tokens=1).status_code == 200
    assert chat(server, max_tokens=1, headers={"X-Mock-Test-Id": "tests/b.py::t"}).status_code == 200
    assert chat(server, max_tokens=1, headers={"X-Mock-Test-Id": "tests/a.py::t"}).status_code == 500
    assert requests.delete(url, params={"test_id": "tests/a.py::t"}, timeout=5).json() == {"cleared": 1}
    assert chat(server, max_tokens=1, headers={"X-Mock-Test-Id": "tests/a.py::t"}).status_code == 200


@pytest.mark.parametrize(
    ("kind", "status", "exception", "error"),
    [
        ("429", 429, openai.RateLimitError, {"type": "requests", "code": "rate_limit_exceeded", "param": None}),
        (
            "insufficient_quota",
            429,
            openai.RateLimitError,
            {"type": "insufficient_quota", "code": "insufficient_quota", "param": None},
        ),
        ("500", 500, openai.InternalServerError, {"type": "server_error", "code": None, "param": None}),
        (
            "502",
            502,
            openai.InternalServerError,
            {"code": 502, "message": "Bad gateway.", "param": None, "type": "cf_bad_gateway"},
        ),
        ("503", 503, openai.InternalServerError, {"type": "server_error", "code": None, "param": None}),
    ],
)
def test_each_injected_error_reaches_the_sdk_as_the_real_one(server, kind, status, exception, error):
    with pytest.raises(exception) as caught:
        sdk(server).chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"X-Mock-Error": kind})
    assert caught.value.status_code == status
    body = caught.value.body
    assert {key: body[key] for key in error} == error
    assert list(body) == (
        ["code", "message", "param", "type"] if kind == "502" else ["message", "type", "param", "code"]
    )
    headers = caught.value.response.headers
    assert ("retry-after" in headers) == (kind == "429")
    if kind == "503":
        assert headers["x-request-id"] in body["message"]  # the real message quotes the request id


def test_a_timeout_fault_outlasts_the_client_and_then_answers_504(server):
    attempts = Attempts()
    with pytest.raises(openai.APITimeoutError):
        attempts.client(server, max_retries=1, timeout=0.3).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"X-Mock-Error": "timeout"}
        )
    assert [count for _, count in attempts.seen] == ["0", "1"]  # the SDK retries timeouts too
    started = time.monotonic()
    response = chat(server, headers={"X-Mock-Error": "timeout"}, max_tokens=1)
    assert 1.5 <= time.monotonic() - started < 2.5  # [faults] timeout_ms, patched to 1500 for these tests
    assert response.status_code == 504
    assert response.json() == {
        "error": {"code": 504, "message": "Gateway timeout.", "param": None, "type": "cf_gateway_timeout"}
    }


# --- faults during a stream ------------------------------------------------------------------------------


def stream_through_sdk(server, headers, **kwargs):
    """Content chunks received before the exception the stream raised."""
    received = []
    client = sdk(server, **kwargs)
    with pytest.raises(Exception) as caught:
        for chunk in client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=20, stream=True, extra_headers=headers
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk)
    return received, caught.value


def test_an_error_event_mid_stream_raises_api_error_in_the_sdk(server):
    received, error = stream_through_sdk(server, {"X-Mock-Stream-Error-After": "4"})
    assert len(received) == 4
    assert type(error) is openai.APIError and error.body["type"] == "server_error"


def test_a_dropped_connection_mid_stream_is_a_connection_error(server):
    received, error = stream_through_sdk(server, {"X-Mock-Disconnect-After": "5"})
    assert len(received) == 5 and isinstance(error, openai.APIConnectionError)
    assert "Traceback" not in server.output()


def test_a_stall_past_the_client_timeout_is_a_timeout(server):
    received, error = stream_through_sdk(server, {"X-Mock-Stall-After": "3", "X-Mock-Stall-Ms": "1000"}, timeout=0.4)
    assert len(received) == 3 and isinstance(error, openai.APITimeoutError)


def test_a_stall_shorter_than_the_timeout_delays_the_rest_of_the_stream(server):
    response = chat(server, {"X-Mock-Stall-After": "2", "X-Mock-Stall-Ms": "300"}, max_tokens=5, stream=True)
    assert response.elapsed.total_seconds() < 0.3  # headers came at once
    events = parse_sse(response.content)
    assert sum(1 for e in events[:-1] if e["choices"] and e["choices"][0]["delta"].get("content")) == 5


def test_one_malformed_chunk_breaks_the_sdk_parser_and_the_stream_goes_on(server):
    received, error = stream_through_sdk(server, {"X-Mock-Malformed-Chunk-After": "2"})
    assert len(received) == 2 and isinstance(error, json.JSONDecodeError)
    raw = chat(server, {"X-Mock-Malformed-Chunk-After": "2"}, max_tokens=4, stream=True).text
    events = raw.split("\n\n")[:-1]
    broken = [e for e in events if not e.endswith("}") and e != "data: [DONE]"]
    assert len(broken) == 1 and events[-1] == "data: [DONE]" and len(events) == 1 + 1 + 4 + 1 + 1


def test_trickle_sends_the_body_at_the_asked_rate(server):
    started = time.monotonic()
    response = chat(server, {"X-Mock-Trickle-Bytes-Per-S": "4000"}, max_tokens=40)
    elapsed = time.monotonic() - started
    size = len(response.content)
    assert response.status_code == 200 and response.headers["content-length"] == str(size)
    assert size / 4000 * 0.8 < elapsed < size / 4000 * 1.3 + 0.1


def test_a_malformed_control_header_is_a_400_naming_it(server):
    response = chat(server, {"X-Mock-Disconnect-After": "soon"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "X-Mock-Disconnect-After"


# --- runtime control across workers ----------------------------------------------------------------------


def fresh(server, body, headers=None):
    """One request on a new connection, so that either worker may take it."""
    return requests.post(
        server.base_url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, **body},
        headers={"Connection": "close", **(headers or {})},
        timeout=30,
    )


def test_patch_config_changes_every_worker_at_once(server):
    patched = requests.patch(server.base_url + "/_mock/config", json={"responses": {"mode": "echo"}}, timeout=5)
    assert patched.ok and patched.json()["settings"]["responses"]["mode"] == "echo"
    try:
        with ThreadPoolExecutor(8) as pool:
            replies = list(
                pool.map(
                    lambda i: fresh(
                        server, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"n{i}"}]}
                    ),
                    range(16),
                )
            )
        assert [r.json()["choices"][0]["message"]["content"] for r in replies] == [f"n{i}" for i in range(16)]
    finally:
        requests.patch(server.base_url + "/_mock/config", json={"responses": None}, timeout=5)
    assert (
        fresh(server, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "n"}], "max_tokens": 3}).json()[
            "usage"
        ]["completion_tokens"]
        == 3
    )


def test_bad_runtime_config_is_a_400_naming_the_field(server):
    response = requests.patch(server.base_url + "/_mock/config", json={"latency": {"ttft_ms": "slow"}}, timeout=5)
    assert response.status_code == 400 and response.json()["error"]["param"] == "latency.ttft_ms"
    response = requests.patch(server.base_url + "/_mock/config", json={"server": {"port": 1}}, timeout=5)
    assert response.status_code == 400 and response.json()["error"]["param"] == "server"


# --- rate limits across workers --------------------------------------------------------------------------


def test_requests_per_minute_hold_across_two_workers(start_server):
    live = start_server("-w", "2", "--inter-token-latency", "0", "--rpm", "10")
    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda _: fresh(live, {"max_tokens": 1}), range(40)))
    ok = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 429]
    assert len(ok) == 10 and len(refused) == 30
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(10))
    error = refused[0].json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert "on requests per min (RPM): Limit 10, Used 10, Requested 1." in error["message"]
    waits = [int(r.headers["retry-after-ms"]) for r in refused]
    assert all(0 < w <= 6000 for w in waits)  # one request comes back every 6 s
    assert int(refused[0].headers["retry-after"]) == -(-int(refused[0].headers["retry-after-ms"]) // 1000)


def test_the_sdk_waits_out_a_tokens_per_minute_refusal(start_server):
    live = start_server("-w", "2", "--inter-token-latency", "0", "--tpm", "600")
    client = sdk(live, max_retries=1)
    first = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, max_tokens=580)
    assert first.headers["x-ratelimit-limit-tokens"] == "600"
    remaining = int(first.headers["x-ratelimit-remaining-tokens"])
    assert remaining == 600 - 580 - first.parse().usage.prompt_tokens
    started = time.monotonic()
    second = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    # It needed 20 + prompt tokens more than were left; they come back at 10 a second.
    needed = 20 + first.parse().usage.prompt_tokens - remaining
    assert second.usage.completion_tokens == 20
    assert needed / 10 - 0.2 <= time.monotonic() - started < needed / 10 + 1.0


# --- concurrent sequences --------------------------------------------------------------------------------


def test_max_concurrent_sequences_queue_and_refuse_across_workers(start_server):
    live = start_server(
        "-w", "2", "--inter-token-latency", "30", "--max-concurrent-sequences", "2", "--max-queued-sequences", "1"
    )
    body = {"max_tokens": 10, "stream": True}
    results = {}

    def run(i):
        started = time.monotonic()
        response = fresh(live, body)
        results[i] = (response.status_code, time.monotonic() - started, response)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # in this order: two run, one waits
    refused = fresh(live, body)
    for thread in threads:
        thread.join()
    assert refused.status_code == 503 and refused.json()["error"]["type"] == "server_error"
    assert [results[i][0] for i in range(3)] == [200, 200, 200]
    # The queued one started when a running one ended: about twice as long as the others.
    assert results[2][1] > results[0][1] * 1.5
    for i in range(3):
        assert parse_sse(results[i][2].content)[-1] == "[DONE]"


# --- timing as a client measures it ----------------------------------------------------------------------


def test_ttft_and_inter_token_gaps_match_the_settings(start_server):
    """TTFT 200 ms and ITL 20 ms, measured by the SDK's own stream reader on loopback. Tolerance: TTFT from the
    call to the first content chunk includes connecting, the request and parsing (a few ms here), so it must
    land in [200, 240) ms; the median gap between content chunks must be within 2 ms of 20 ms. Deadlines are
    absolute and gevent's timers have sub-millisecond resolution, so the median sits on the setting; the
    margin covers scheduling noise on a shared machine, never drift."""
    live = start_server("-w", "1", "--time-to-first-token", "200", "--inter-token-latency", "20")
    client = sdk(live)
    client.models.list()  # connect first
    ttfts, gaps = [], []
    for _ in range(3):
        started = time.monotonic()
        arrivals = []
        for chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=25, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic())
        ttfts.append(arrivals[0] - started)
        gaps += [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert 0.200 <= statistics.median(ttfts) < 0.240, ttfts
    assert abs(statistics.median(gaps) - 0.020) <= 0.002, statistics.median(gaps)


def test_a_body_takes_as_long_as_its_stream_would(start_server):
    live = start_server("-w", "1", "--time-to-first-token", "100", "--inter-token-latency", "10")
    started = time.monotonic()
    assert chat(live, max_tokens=21).status_code == 200
    assert 0.300 <= time.monotonic() - started < 0.380  # 100 + 20 x 10 ms


# --- scenarios, modes, record and replay ----------------------------------------------------------------


def test_a_scenario_chosen_at_start_up_and_one_per_request(start_server):
    live = start_server("-w", "2", "--scenario", "rate_limited")
    statuses = [fresh(live, {"max_tokens": 1}, {"X-Mock-ITL-Ms": "0"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    started = time.monotonic()
    fast = fresh(live, {"max_tokens": 20}, {"X-Mock-Scenario": "fast"})
    assert fast.status_code == 200 and time.monotonic() - started < 0.5  # "fast" has no rate limit either
    assert fresh(live, {}, {"X-Mock-Scenario": "warp"}).json()["error"]["param"] == "X-Mock-Scenario"


def test_an_unknown_scenario_stops_start_up(start_server):
    with pytest.raises(RuntimeError, match="unknown scenario"):
        start_server("--scenario", "warp")


def test_scripted_rules_answer_and_reload_when_the_file_changes(start_server, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nuser = "(?i)weather"\ncontent = "It is sunny."\n')
    live = start_server("-w", "2", "--mode", "scripted", "--rules", str(rules), "--inter-token-latency", "0")
    client = sdk(live)
    ask = [{"role": "user", "content": "What's the weather?"}]
    assert client.chat.completions.create(model="gpt-4o", messages=ask).choices[0].message.content == "It is sunny."
    rules.write_text('[[rules]]\nuser = "(?i)weather"\nerror = "insufficient_quota"\n')
    time.sleep(0.01)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=ask)
    assert caught.value.code == "insufficient_quota"
    rules.write_text('[[rules]]\nuser = "(unclosed"\ncontent = "x"\n')
    broken = fresh(live, {"model": "gpt-4o-mini", "messages": ask})
    assert broken.status_code == 500 and "line 2" in broken.json()["error"]["message"]


def test_a_bad_rules_file_stops_start_up_with_its_line(start_server, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - user: hello\n    content: hi\n  - usr: typo\n    content: x\n")
    with pytest.raises(RuntimeError, match=r"rules.yaml, line 4: unknown key 'usr'"):
        start_server("--mode", "scripted", "--rules", str(rules))


def test_realistic_mode_and_seed_through_the_sdk(live_server):
    client = sdk(live_server)
    question = [{"role": "user", "content": "How do I reverse a list in Python?"}]
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=question, seed=7, extra_headers={"X-Mock-Mode": "realistic"}
    )
    assert_valid("CreateChatCompletionResponse", json.loads(raw.text))
    first = raw.parse()
    content = first.choices[0].message.content
    assert "```python" in content and first.choices[0].finish_reason == "stop"
    again = client.chat.completions.create(
        model="gpt-4o", messages=question, seed=7, extra_headers={"X-Mock-Mode": "realistic"}
    )
    assert again.choices[0].message.content == content
    assert first.usage.completion_tokens == again.usage.completion_tokens


def test_record_from_a_second_server_then_replay_it(start_server, tmp_path):
    upstream = start_server("-w", "1", "--inter-token-latency", "20")
    fixtures = tmp_path / "fixtures"
    recorder = start_server("-w", "1", "--record-from", upstream.base_url, "--fixtures", str(fixtures))
    stream_body = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 5, "stream": True}
    secret = {"Authorization": "Bearer sk-very-secret-key"}
    recorded_stream = requests.post(
        recorder.base_url + "/v1/chat/completions", json=stream_body, headers=secret, timeout=10
    )
    recorded_body = chat(recorder, max_tokens=3)
    assert recorded_stream.status_code == 200 and recorded_body.status_code == 200
    # the journal shows the body the recorder forwarded, as it does any other request's
    journaled = requests.get(recorder.base_url + "/_mock/requests?limit=1", timeout=10).json()["data"][0]
    assert journaled["request"]["body"] == {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 3}
    files = sorted(p.name for p in fixtures.iterdir())
    assert len(files) == 2 and all(name.startswith("post-v1-chat-completions-") for name in files)
    assert not any("very-secret" in p.read_text() for p in fixtures.iterdir())
    stream_fixture = next(json.loads(p.read_text()) for p in fixtures.iterdir() if "stream" in p.read_text())
    chunks = stream_fixture["response"]["chunks"]
    times = [c["after_ms"] for c in chunks]
    assert len(chunks) >= 5 and times == sorted(times) and times[0] < times[-1]
    # The upstream sends its fifth token four gaps after its first one's deadline, never earlier, however late
    # the first one went out (on a loaded machine the first write can be late and the rest on time: the gap
    # between the first and the last recorded is then short of four, though every gap was kept)
    assert times[-1] >= 4 * 20

    replayer = start_server("-w", "1", "--replay", str(fixtures), "--replay-speed", "2")
    started = time.monotonic()
    replayed = requests.post(
        replayer.base_url + "/v1/chat/completions", json=dict(reversed(list(stream_body.items()))), timeout=10
    )  # key order: same hash
    elapsed = time.monotonic() - started
    assert replayed.content == recorded_stream.content
    assert replayed.headers["x-request-id"] == recorded_stream.headers["x-request-id"]
    recorded_span = (chunks[-1]["after_ms"]) / 1000
    assert recorded_span / 2 * 0.8 <= elapsed < recorded_span / 2 + 0.3
    assert chat(replayer, max_tokens=3).content == recorded_body.content
    unseen = chat(replayer, max_tokens=4)
    assert unseen.status_code == 404 and unseen.json()["error"]["code"] == "fixture_not_found"

    fallback = start_server("-w", "1", "--replay", str(fixtures), "--replay-fallback", "echo")
    assert chat(fallback, max_tokens=4).json()["choices"][0]["message"]["content"] == "Say hello"


def test_a_killed_worker_gives_its_sequences_back(start_server):
    import os
    import signal
    from pathlib import Path

    live = start_server("-w", "1", "--inter-token-latency", "50", "--max-concurrent-sequences", "1")
    with requests.post(
        live.base_url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 200, "stream": True},
        stream=True,
        timeout=10,
    ) as held:
        next(held.iter_content(64))
        assert fresh(live, {"max_tokens": 1}).status_code == 503  # the one sequence is taken, no queue
        master = live.process.pid
        worker = int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])
        os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # gunicorn forks a new worker
        try:
            response = fresh(live, {"max_tokens": 1})
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    assert response.status_code == 200


def test_per_request_ttft_and_echo_mode_through_the_sdk(server):
    client = sdk(server)
    client.models.list()
    started = time.monotonic()
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Repeat after me."}],
        stream=True,
        extra_headers={"X-Mock-TTFT-Ms": "250", "X-Mock-ITL-Ms": "0", "X-Mock-Mode": "echo"},
    )
    text, first = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.monotonic()
            text += chunk.choices[0].delta.content
    assert text == "Repeat after me." and 0.25 <= first - started < 0.3


def test_legacy_completions_get_the_same_faults(server):
    client = sdk(server)
    with pytest.raises(openai.RateLimitError):
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="x", extra_headers={"X-Mock-Error": "429"})
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="x",
            max_tokens=10,
            stream=True,
            extra_headers={"X-Mock-Stream-Error-After": "3"},
        ):
            received.append(chunk.choices[0].text)
    assert len(received) == 3


def test_record_and_replay_other_wire_formats(start_server, tmp_path):
    """Anthropic's and Gemini's exchanges are recorded and replayed like OpenAI's: keys in their own headers
    (or Gemini's ?key=) pass through and are never written down."""
    upstream = start_server("-w", "1", "--inter-token-latency", "0")
    fixtures = tmp_path / "fixtures"
    recorder = start_server("-w", "1", "--record-from", upstream.base_url, "--fixtures", str(fixtures))
    claude = {"model": "claude-haiku-4-5", "max_tokens": 4, "messages": MESSAGES, "stream": True}
    claude_headers = {"x-api-key": "sk-ant-very-secret", "anthropic-version": "2023-06-01"}
    gemini = {"contents": [{"parts": [{"text": "Say hello"}]}], "generationConfig": {"maxOutputTokens": 4}}
    gemini_path = "/v1beta/models/gemini-2.5-flash:generateContent"
    recorded_claude = requests.post(recorder.base_url + "/v1/messages", json=claude, headers=claude_headers, timeout=10)
    recorded_gemini = requests.post(recorder.base_url + gemini_path + "?key=g-very-secret", json=gemini, timeout=10)
    assert recorded_claude.status_code == 200 and recorded_gemini.status_code == 200
    assert recorded_claude.headers["request-id"] and "candidates" in recorded_gemini.json()
    assert len(list(fixtures.iterdir())) == 2
    assert not any("very-secret" in p.read_text() for p in fixtures.iterdir())

    replayer = start_server("-w", "1", "--replay", str(fixtures))
    replayed = requests.post(replayer.base_url + "/v1/messages", json=claude, headers=claude_headers, timeout=10)
    assert replayed.content == recorded_claude.content
    again = requests.post(replayer.base_url + gemini_path + "?key=another-key", json=gemini, timeout=10)
    assert again.json() == recorded_gemini.json()
