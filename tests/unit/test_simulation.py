"""The simulation through Flask's test client: faults, X-Mock-* headers, timing, rate limits, scenarios, modes."""

from __future__ import annotations

import random
import statistics

import pytest

from app.simulation.faults import draw, go_duration
from app.simulation.latency import plan
from tests.openapi import assert_valid
from tests.sse import parse_sse

FAST = {"latency": {"inter_token_latency_ms": 0}}


def chat(client, headers=None, **body):
    body.setdefault("messages", [{"role": "user", "content": "Hello there"}])
    body.setdefault("model", "gpt-4o-mini")
    return client.post("/v1/chat/completions", json=body, headers=headers or {})


def content_of(response) -> str:
    return response.get_json()["choices"][0]["message"]["content"]


@pytest.fixture
def waits(monkeypatch):
    """The waits before each non-streamed body, instead of sleeping them."""
    seen = []
    monkeypatch.setattr("app.delivery.sleep", seen.append)
    return seen


def merged(*layers):
    out = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


# --- latency ---------------------------------------------------------------------------------------------

LATENCY = {
    "ttft_ms": 200,
    "ttft_jitter_ms": 0,
    "inter_token_latency_ms": 20,
    "inter_token_jitter_ms": 0,
    "prefill_ms_per_1k_prompt_tokens": 0,
}


def test_plan_without_jitter_is_exact():
    timing = plan(LATENCY, prompt_tokens=50, count=11, load_factor=1.0, rng=random)
    assert timing.ttft_s == pytest.approx(0.2) and timing.inter_token_latency_s == pytest.approx(0.02)
    assert timing.offsets is None and timing.generation_s(11) == pytest.approx(0.2)


def test_prefill_delays_long_prompts():
    timing = plan(LATENCY | {"prefill_ms_per_1k_prompt_tokens": 100}, 3000, 1, 1.0, random)
    assert timing.ttft_s == pytest.approx(0.2 + 0.3)


def test_jitter_is_normal_around_the_setting_and_never_negative():
    rng = random.Random(1)
    ttfts = [plan(LATENCY | {"ttft_jitter_ms": 50}, 0, 1, 1.0, rng).ttft_s for _ in range(4000)]
    assert statistics.mean(ttfts) == pytest.approx(0.2, abs=0.005)
    assert statistics.stdev(ttfts) == pytest.approx(0.05, abs=0.005)
    timing = plan(LATENCY | {"inter_token_jitter_ms": 30}, 0, 2001, 1.0, rng)
    gaps = [b - a for a, b in zip(timing.offsets, timing.offsets[1:], strict=False)]
    assert min(gaps) >= 0 and gaps.count(0.0) > 100  # clamped at zero, about 25% of N(20, 30) is below 0
    assert statistics.median(gaps) == pytest.approx(0.020, abs=0.002)  # clamping keeps the median
    assert statistics.mean(gaps) == pytest.approx(0.0245, abs=0.0015)  # and lifts the mean: E[max(0, X)]
    assert timing.generation_s(2001) == pytest.approx(timing.offsets[-1])


def test_load_stretches_ttft_and_gaps_and_headers_are_exact():
    timing = plan(LATENCY, 0, 5, 1.5, random)
    assert timing.ttft_s == pytest.approx(0.3) and timing.inter_token_latency_s == pytest.approx(0.03)
    exact = plan(LATENCY | {"ttft_jitter_ms": 99}, 0, 5, 2.0, random, ttft_ms=7, inter_token_latency_ms=3)
    assert exact.ttft_s == pytest.approx(0.007) and exact.inter_token_latency_s == pytest.approx(0.003)


def test_a_body_waits_as_long_as_its_stream_would(make_client, waits):
    client = make_client({"latency": {"ttft_ms": 100, "inter_token_latency_ms": 10}})
    assert chat(client, max_tokens=21).status_code == 200
    assert waits == [pytest.approx(0.1 + 20 * 0.01)]
    client = make_client({"latency": {"ttft_ms": 100, "inter_token_latency_ms": 10, "non_stream": "ttft"}})
    chat(client, max_tokens=21)
    assert waits[-1] == pytest.approx(0.1)


def test_per_model_profiles_and_header_overrides(make_client, waits):
    profiles = {"gpt-4o": {"ttft_ms": 300, "inter_token_latency_ms": 0}}
    client = make_client({"latency": {"ttft_ms": 50, "inter_token_latency_ms": 0}, "models": {"profiles": profiles}})
    chat(client, model="gpt-4o-mini", max_tokens=3)
    chat(client, model="gpt-4o", max_tokens=3)
    chat(client, {"X-Mock-TTFT-Ms": "5", "X-Mock-ITL-Ms": "2"}, model="gpt-4o", max_tokens=3)
    assert waits == [pytest.approx(0.05), pytest.approx(0.3), pytest.approx(0.005 + 2 * 0.002)]


# --- injected errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "type_", "code"),
    [
        ("429", 429, "requests", "rate_limit_exceeded"),
        ("insufficient_quota", 429, "insufficient_quota", "insufficient_quota"),
        ("500", 500, "server_error", None),
        ("502", 502, "cf_bad_gateway", 502),
        ("503", 503, "server_error", None),
    ],
)
def test_x_mock_error_answers_the_real_error(make_client, kind, status, type_, code):
    response = chat(make_client(FAST), {"X-Mock-Error": kind})
    assert response.status_code == status
    error = response.get_json()["error"]
    assert (error["type"], error["code"], error["param"]) == (type_, code, None)
    if kind != "502":  # the edge proxy's body has a numeric code, which the spec's Error does not allow
        assert_valid("ErrorResponse", response.get_json())
    if kind == "429":
        assert response.headers["retry-after"] == "1" and response.headers["retry-after-ms"] == "1000"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert error["message"].endswith(
            "on requests per min (RPM): Limit 10000, Used 10000, Requested 1. Please try again in 1s. "
            "Visit https://platform.openai.com/account/rate-limits to learn more."
        )
    else:
        assert "retry-after" not in response.headers


def test_the_error_mix_draws_kinds_by_weight():
    faults = {"error_rate_percent": 50, "error_mix": {"500": 3, "429": 1}}
    rng = random.Random(3)
    drawn = [draw(faults, rng) for _ in range(8000)]
    assert drawn.count(None) == pytest.approx(4000, rel=0.05)
    assert drawn.count("500") == pytest.approx(3000, rel=0.08) and drawn.count("429") == pytest.approx(1000, rel=0.1)


def test_error_rate_with_a_mix_answers_only_those_kinds(make_client):
    client = make_client(merged(FAST, {"faults": {"error_rate_percent": 100, "error_mix": {"502": 1, "503": 1}}}))
    assert {chat(client).status_code for _ in range(30)} == {502, 503}


def test_the_originals_error_rate_key_still_works(make_client):
    client = make_client({"responses": {"error_rate_percent": 100}})
    assert chat(client).status_code == 500


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Mock-Error", "418"),
        ("X-Mock-Stream-Error-After", "-1"),
        ("X-Mock-Disconnect-After", "two"),
        ("X-Mock-Malformed-Chunk-After", "1.5"),
        ("X-Mock-Stall-Ms", "forever"),
        ("X-Mock-Trickle-Bytes-Per-S", "0"),
        ("X-Mock-TTFT-Ms", "-5"),
        ("X-Mock-ITL-Ms", "nan"),
        ("X-Mock-Mode", "poetry"),
        ("X-Mock-Scenario", "warp"),
        ("X-Mock-Colour", "blue"),
    ],
)
def test_a_bad_control_header_is_a_400_that_names_it(client, header, value):
    response = chat(client, {header: value})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["param"] == header and header in error["message"]


def test_whether_a_request_has_control_headers_is_its_own_whichever_came_before(client):
    # read_controls remembers it by the environ's keys: the same headers without X-Mock ones, then with one,
    # then without again, each answered for what it sent
    assert chat(client, {"X-Other": "1"}, max_tokens=2).status_code == 200
    assert chat(client, {"X-Mock-Error": "500"}, max_tokens=2).status_code == 500
    assert chat(client, {"X-Other": "1"}, max_tokens=2).status_code == 200
    assert chat(client, {"X-Mock-Error": "429"}, max_tokens=2).status_code == 429
    assert chat(client, {"X-Mock-Test-Id": "t"}, max_tokens=2).status_code == 200  # the journal's tag alone


def test_control_headers_can_be_turned_off(make_client):
    client = make_client(merged(FAST, {"faults": {"request_headers": False}}))
    assert chat(client, {"X-Mock-Error": "500", "X-Mock-Colour": "blue"}, max_tokens=2).status_code == 200


# --- faults in a stream ----------------------------------------------------------------------------------


def stream(client, headers, **body):
    return chat(client, headers, max_tokens=6, stream=True, stream_options={"include_usage": True}, **body)


def contents(events):
    return [
        e["choices"][0]["delta"]["content"]
        for e in events
        if isinstance(e, dict)
        and e.get("choices")
        and "content" in e["choices"][0]["delta"]
        and "role" not in e["choices"][0]["delta"]
    ]


def test_an_error_event_ends_the_stream_after_k_tokens(client):
    raw = stream(client, {"X-Mock-Stream-Error-After": "2"}).get_data(as_text=True)
    blocks = raw.split("\n\n")[:-1]
    assert len(blocks) == 1 + 2 + 1 and "[DONE]" not in raw
    import json

    error = json.loads(blocks[-1][6:])
    assert list(error) == ["error"] and error["error"]["type"] == "server_error"
    assert_valid("ErrorResponse", error)


def test_a_disconnect_without_a_socket_just_ends_the_stream(client):
    raw = stream(client, {"X-Mock-Disconnect-After": "3"}).get_data(as_text=True)
    assert raw.count("\n\n") == 1 + 3 and "[DONE]" not in raw


def test_one_malformed_chunk_then_the_rest(client):
    raw = stream(client, {"X-Mock-Malformed-Chunk-After": "3"}).get_data(as_text=True)
    blocks = raw.split("\n\n")[:-1]
    assert len(blocks) == 1 + 6 + 1 + 1 + 1 + 1  # role, tokens, malformed, finish, usage, [DONE]
    bad = [b for b in blocks if not b.endswith("}") and b != "data: [DONE]"]
    assert len(bad) == 1 and blocks.index(bad[0]) == 4


def test_faults_strike_in_order_and_a_stall_only_delays(client):
    headers = {"X-Mock-Stall-After": "1", "X-Mock-Stall-Ms": "20", "X-Mock-Stream-Error-After": "4"}
    raw = stream(client, headers).get_data(as_text=True)
    assert raw.count("\n\n") == 1 + 4 + 1


def test_a_queued_mid_stream_fault_names_its_own_k(client):
    client.post("/_mock/faults", json={"error": "stream_error", "after": 1})
    raw = stream(client, {}).get_data(as_text=True)
    assert raw.count("\n\n") == 1 + 1 + 1
    events = parse_sse(stream(client, {}).get_data())  # used up: the next one is whole
    assert len(contents(events)) == 6


def test_mid_stream_faults_on_a_body(client, waits):
    assert chat(client, {"X-Mock-Stream-Error-After": "1"}).status_code == 500
    malformed = chat(client, {"X-Mock-Malformed-Chunk-After": "1"}, max_tokens=5)
    assert malformed.status_code == 200 and malformed.get_data(as_text=True).count("{") > 0
    with pytest.raises(ValueError):
        malformed.get_json(force=True, silent=False)
    chat(client, {"X-Mock-Stall-After": "0", "X-Mock-Stall-Ms": "40"}, max_tokens=1)
    assert waits[-1] == pytest.approx(0.04)


# --- one-shot faults and runtime config (the admin API) -------------------------------------------------


def test_queued_faults_serve_the_next_requests_then_stop(client):
    queued = client.post("/_mock/faults", json=[{"error": "429", "count": 2}, {"error": "502"}])
    assert queued.status_code == 201 and queued.get_json()["pending"] == 3
    assert [chat(client, max_tokens=1).status_code for _ in range(4)] == [429, 429, 502, 200]
    listed = client.get("/_mock/faults").get_json()
    assert [(f["error"], f["used"], f["remaining"]) for f in listed["data"]] == [("429", 2, 0), ("502", 1, 0)]
    client.post("/_mock/faults", json={"faults": [{"error": "500", "count": 5}]})
    assert client.delete("/_mock/faults").get_json() == {"cleared": 5}
    assert chat(client, max_tokens=1).status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"error": "418"}, "error"),
        ({"error": "500", "count": 0}, "count"),
        ({"error": "500", "model": 4}, "model"),
        ({"error": "500", "after": 3}, "after"),
        ({"error": "disconnect", "after": -1}, "after"),
        ({"error": "500", "colour": "red"}, "colour"),
        ([{"error": "500"}, {"error": "nope"}], "[1].error"),
        ({"faults": [{"count": 2}]}, "faults[0].error"),
        ({"faults": []}, "faults"),
    ],
)
def test_a_bad_fault_is_a_400_naming_the_field(client, body, param):
    response = client.post("/_mock/faults", json=body)
    assert response.status_code == 400 and response.get_json()["error"]["param"] == param


def test_patch_config_is_a_merge_patch_and_delete_resets(client):
    patched = client.patch("/_mock/config", json={"latency": {"ttft_ms": 5, "inter_token_latency_ms": 0}})
    assert patched.get_json()["settings"]["latency"]["ttft_ms"] == 5
    client.patch("/_mock/config", json={"latency": {"ttft_ms": None}, "responses": {"mode": "echo"}})
    view = client.get("/_mock/config").get_json()
    assert view["runtime"] == {"latency": {"inter_token_latency_ms": 0}, "responses": {"mode": "echo"}}
    assert view["settings"]["latency"]["ttft_ms"] == 0 and "slow" in view["scenarios"]
    assert content_of(chat(client)) == "Hello there"
    assert client.delete("/_mock/config").get_json()["runtime"] == {}
    assert content_of(chat(client, max_tokens=2)) != "Hello there"


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"latency": {"ttft_ms": -1}}, "latency.ttft_ms"),
        ({"latency": {"warp": 1}}, "latency.warp"),
        ({"faults": {"error_mix": {"418": 1}}}, "faults.error_mix"),
        ({"responses": {"mode": "poetry"}}, "responses.mode"),
        ({"responses": {"scenario": "warp"}}, "responses.scenario"),
        ({"tls": {"cert_path": "x"}}, "tls"),
        ({"latency": 5}, "latency"),
        ([1], "body"),
    ],
)
def test_bad_runtime_config_is_a_400_naming_the_field(client, patch, param):
    response = client.patch("/_mock/config", json=patch)
    assert response.status_code == 400 and response.get_json()["error"]["param"] == param


def test_the_admin_api_needs_the_admin_token_or_else_the_api_token(make_client):
    client = make_client({"auth": {"token": "sk-api"}})
    assert client.get("/_mock/config").status_code == 401
    assert client.get("/_mock/config", headers={"Authorization": "Bearer sk-api"}).status_code == 200
    client = make_client({"auth": {"token": "sk-api"}, "admin": {"token": "sk-admin"}})
    assert client.get("/_mock/faults", headers={"Authorization": "Bearer sk-api"}).status_code == 401
    assert client.get("/_mock/faults", headers={"Authorization": "Bearer sk-admin"}).status_code == 200
    assert make_client({}).get("/_mock/faults").status_code == 200


# --- rate limits -----------------------------------------------------------------------------------------


def test_requests_per_minute_count_down_then_refuse_with_a_computed_retry_after(make_client):
    client = make_client(merged(FAST, {"rate_limits": {"requests_per_minute": 3}}))
    remaining = [chat(client, max_tokens=1).headers["x-ratelimit-remaining-requests"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = chat(client, max_tokens=1)
    assert refused.status_code == 429
    wait_ms = int(refused.headers["retry-after-ms"])
    assert 19000 < wait_ms <= 20000  # one request comes back every 20 s
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    error = refused.get_json()["error"]
    assert error["type"] == "requests" and error["code"] == "rate_limit_exceeded"
    assert "Limit 3, Used 3, Requested 1. Please try again in 19." in error["message"]


def test_limits_are_per_api_key_and_per_model(make_client):
    client = make_client(merged(FAST, {"rate_limits": {"requests_per_minute": 1}}))
    assert chat(client, {"Authorization": "Bearer sk-a"}, max_tokens=1).status_code == 200
    assert chat(client, {"Authorization": "Bearer sk-a"}, max_tokens=1).status_code == 429
    assert chat(client, {"Authorization": "Bearer sk-b"}, max_tokens=1).status_code == 200
    assert chat(client, {"Authorization": "Bearer sk-a"}, model="gpt-4o", max_tokens=1).status_code == 200


def test_tokens_per_minute_reserve_prompt_plus_max_tokens(make_client):
    client = make_client(merged(FAST, {"rate_limits": {"tokens_per_minute": 1000}}))
    first = chat(client, max_tokens=500)
    prompt = first.get_json()["usage"]["prompt_tokens"]
    assert first.headers["x-ratelimit-remaining-tokens"] == str(1000 - 500 - prompt)
    assert first.headers["x-ratelimit-limit-requests"] == "10000"  # no request limit: the tier's figure
    refused = chat(client, max_tokens=500)
    assert refused.status_code == 429 and refused.get_json()["error"]["type"] == "tokens"
    assert "on tokens per min (TPM): Limit 1000" in refused.get_json()["error"]["message"]
    short = (500 + prompt) - (1000 - 500 - prompt)  # tokens missing; they come back at 1000 a minute
    assert int(refused.headers["retry-after-ms"]) == pytest.approx(short * 60, abs=60)
    too_large = chat(client, max_tokens=1200)
    assert too_large.status_code == 429 and "Request too large" in too_large.get_json()["error"]["message"]
    assert "retry-after" not in too_large.headers


def test_per_model_profiles_set_their_own_limits(make_client):
    profiles = {"gpt-4o": {"requests_per_minute": 1}}
    client = make_client(merged(FAST, {"models": {"profiles": profiles}}))
    assert [chat(client, model="gpt-4o", max_tokens=1).status_code for _ in range(2)] == [200, 429]
    assert chat(client, model="gpt-4o-mini", max_tokens=1).status_code == 200


def test_without_limits_the_headers_show_a_high_tier(client):
    headers = chat(client, max_tokens=10).headers
    assert headers["x-ratelimit-limit-requests"] == "10000" and headers["x-ratelimit-remaining-requests"] == "9999"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.006, "6ms"), (0.12, "120ms"), (1, "1s"), (1.5, "1.5s"), (59.9994, "59.999s"), (360, "6m0s"), (3725, "1h2m5s")],
)
def test_durations_are_written_as_the_real_headers_write_them(seconds, text):
    assert go_duration(seconds) == text


# --- scenarios -------------------------------------------------------------------------------------------


def test_a_scenario_from_config_and_one_per_request(make_client, waits):
    client = make_client({"responses": {"scenario": "rate_limited"}, "latency": {"inter_token_latency_ms": 0}})
    assert [chat(client, max_tokens=1).status_code for _ in range(4)] == [200, 200, 200, 429]
    random.seed(1)  # fast's TTFT is drawn around 20 ms, and one draw in forty is clamped at 0: no wait at all
    assert chat(client, {"X-Mock-Scenario": "fast"}, max_tokens=1).status_code == 200
    assert 0 < waits[-1] < 0.1  # fast: 20 ms +- 10


def test_runtime_config_sits_above_the_scenario(client, waits):
    client.patch("/_mock/config", json={"responses": {"scenario": "slow"}, "latency": {"ttft_jitter_ms": 0}})
    chat(client, max_tokens=1)
    assert waits[-1] == pytest.approx(5.0)  # slow's 5000 ms, without its jitter
    assert client.get("/_mock/config").get_json()["settings"]["responses"]["scenario"] == "slow"


def test_the_errors_scenario_fails_about_one_in_ten(make_client):
    client = make_client({"responses": {"scenario": "errors"}, "latency": {"inter_token_latency_ms": 0}})
    random.seed(5)
    statuses = [chat(client, max_tokens=1).status_code for _ in range(300)]
    failures = [s for s in statuses if s != 200]
    assert 10 <= len(failures) <= 55 and set(failures) <= {429, 500, 502, 503}


# --- modes -----------------------------------------------------------------------------------------------


def test_echo_returns_the_last_user_message(client):
    body = {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
        ]
    }
    reply = chat(client, {"X-Mock-Mode": "echo"}, **body).get_json()
    assert reply["choices"][0]["message"]["content"] == "second" and reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"]["completion_tokens"] == 1
    cut = chat(
        client, {"X-Mock-Mode": "echo"}, messages=[{"role": "user", "content": "one two three four"}], max_tokens=2
    ).get_json()
    assert cut["choices"][0]["message"]["content"] == "one two" and cut["choices"][0]["finish_reason"] == "length"
    legacy = client.post(
        "/v1/completions",
        json={"model": "gpt-3.5-turbo-instruct", "prompt": "say it back"},
        headers={"X-Mock-Mode": "echo"},
    )
    assert legacy.get_json()["choices"][0]["text"] == "say it back"


def test_echo_streams_carry_exactly_the_text(client):
    events = parse_sse(
        chat(
            client, {"X-Mock-Mode": "echo"}, stream=True, messages=[{"role": "user", "content": "Stream me, please."}]
        ).get_data()
    )
    for event in events[:-1]:
        assert_valid("CreateChatCompletionStreamResponse", event)
    assert "".join(contents(events)) == "Stream me, please."


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Hello!", "!"),
        ("How do I parse JSON in Python?", "```python"),
        ("Write a SQL query for the top customers", "```sql"),
        ("What is the capital of France?", "**"),
        ("Can you help me plan a trip?", ("1.", "\n- **")),  # a numbered or a bulleted list, by variation
    ],
)
def test_realistic_answers_fit_the_question(client, question, expected):
    reply = chat(client, {"X-Mock-Mode": "realistic"}, messages=[{"role": "user", "content": question}]).get_json()
    content = reply["choices"][0]["message"]["content"]
    assert any(e in content for e in ((expected,) if isinstance(expected, str) else expected)), content
    assert reply["choices"][0]["finish_reason"] == "stop" and reply["usage"]["completion_tokens"] > 5


def test_realistic_varies_and_max_tokens_caps_it(client):
    ask = [{"role": "user", "content": "What is TCP?"}]
    texts = {content_of(chat(client, {"X-Mock-Mode": "realistic"}, messages=ask)) for _ in range(20)}
    assert len(texts) > 1
    cut = chat(client, {"X-Mock-Mode": "realistic"}, messages=ask, max_tokens=5).get_json()
    assert cut["usage"]["completion_tokens"] == 5 and cut["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("mode", ["corpus", "realistic", "echo"])
def test_a_seed_makes_every_mode_deterministic(client, mode):
    ask = {"messages": [{"role": "user", "content": "What is TCP?"}], "max_tokens": 30}
    same = {content_of(chat(client, {"X-Mock-Mode": mode}, seed=42, **ask)) for _ in range(5)}
    assert len(same) == 1
    if mode == "corpus":
        others = {content_of(chat(client, {"X-Mock-Mode": mode}, seed=s, **ask)) for s in range(10)}
        assert len(others) > 1


def test_scripted_rules_match_on_model_system_prompt_and_tools(make_client, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rules]]\nmodel = "gpt-4o"\nuser = "(?i)weather"\ncontent = "4o says sunny"\n\n'
        '[[rules]]\nsystem = "pirate"\ncontent = ["Arr!", "Ahoy!"]\n\n'
        '[[rules]]\ntools = true\ncontent = "I see tools"\n\n'
        '[[rules]]\nuser = "refuse"\nerror = { status = 400, message = "No.", code = "content_policy" }\n'
    )
    client = make_client(merged(FAST, {"responses": {"mode": "scripted", "rules_path": str(rules)}}))
    weather = [{"role": "user", "content": "Weather?"}]
    assert content_of(chat(client, model="gpt-4o", messages=weather)) == "4o says sunny"
    assert content_of(chat(client, model="gpt-4o-mini", messages=weather, max_tokens=3)) not in ("4o says sunny",)
    pirate = [{"role": "system", "content": "You are a pirate"}, {"role": "user", "content": "hi"}]
    assert {content_of(chat(client, messages=pirate)) for _ in range(20)} == {"Arr!", "Ahoy!"}
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert content_of(chat(client, tools=tools)) == "I see tools"
    refused = chat(client, messages=[{"role": "user", "content": "please refuse"}])
    assert refused.status_code == 400 and refused.get_json()["error"] == {
        "message": "No.",
        "type": "invalid_request_error",
        "param": None,
        "code": "content_policy",
    }
