"""End to end: ``mock-openai`` starts real gunicorn gevent workers; requests and the SDK talk to them."""

from __future__ import annotations

import asyncio
import http.server
import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest
import requests

from tests.conftest import MOCK_OPENAI, ROOT, clean_env, free_port
from tests.openapi import assert_valid, assert_valid_legacy_chunk
from tests.sse import parse_sse

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "Say hello"}]


def sdk(server, **kwargs) -> openai.OpenAI:
    kwargs.setdefault("api_key", "sk-test")
    return openai.OpenAI(base_url=server.base_url + "/v1", _strict_response_validation=True, max_retries=0, **kwargs)


# --- the wire, with requests ----------------------------------------------------------------------------


def test_stream_over_the_wire_parses_and_matches_the_spec(live_server):
    body = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 20, "stream": True}
    body["stream_options"] = {"include_usage": True}
    response = requests.post(live_server.base_url + "/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["transfer-encoding"] == "chunked"
    events = parse_sse(response.content)
    for chunk in events[:-1]:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    assert sum(1 for e in events[:-1] if e["choices"] and "content" in e["choices"][0]["delta"]) == 21  # role + 20
    assert events[-2]["usage"]["completion_tokens"] == 20


def test_non_stream_over_the_wire(live_server):
    response = requests.post(
        live_server.base_url + "/v1/completions",
        json={"model": "gpt-3.5-turbo-instruct", "prompt": "x", "max_tokens": 5},
        timeout=10,
    )
    assert_valid("CreateCompletionResponse", response.json())
    assert response.text.startswith('{\n  "id": "cmpl-')


def test_the_original_load_test_request_with_lenient(start_server):
    server = start_server("-w", "1", "--lenient", "--inter-token-latency", "0")
    response = requests.post(
        server.base_url + "/v1/chat/completions", json={"stream": False, "max_tokens": 2048}, timeout=10
    )
    assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] == 2048


def test_errors_over_the_wire_are_json_not_html(live_server):
    response = requests.get(live_server.base_url + "/v1/nope", timeout=5)
    assert response.status_code == 404 and response.json()["error"]["message"] == "Invalid URL (GET /v1/nope)"
    response = requests.post(live_server.base_url + "/v1/chat/completions", data=b"x" * (33 * 1024 * 1024), timeout=30)
    assert response.status_code == 413
    assert_valid("ErrorResponse", response.json())


def test_a_client_that_disconnects_mid_stream_does_not_hurt_the_worker(live_server):
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 2000, "stream": True}
    for _ in range(5):
        with requests.post(live_server.base_url + "/v1/chat/completions", json=body, stream=True, timeout=10) as r:
            next(r.iter_content(256))
    assert requests.get(live_server.base_url + "/health", timeout=5).ok
    assert "Traceback" not in live_server.output()


# --- the official SDK -----------------------------------------------------------------------------------


def test_sdk_chat_completion(live_server):
    completion = sdk(live_server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=8)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 8
    assert completion.choices[0].message.content


def test_sdk_chat_stream_with_usage(live_server):
    stream = sdk(live_server).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage.completion_tokens == 12 and chunks[-1].choices == []
    assert chunks[-2].choices[0].finish_reason == "length"
    assert text


def test_sdk_stream_helper_and_parse_work_when_nothing_was_cut(start_server):
    server = start_server("-w", "1", "--inter-token-latency", "0", env={"MOCK_OPENAI_RESPONSES_MAX_TOKENS": "25"})
    client = sdk(server)
    options = {"include_usage": True}
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES, stream_options=options) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "stop" and final.usage.completion_tokens == 25
    parsed = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES)
    assert parsed.choices[0].message.content


def test_sdk_async_chat_stream_and_not(live_server):
    async def run():
        client = openai.AsyncOpenAI(
            base_url=live_server.base_url + "/v1",
            api_key="sk",
            _strict_response_validation=True,
            max_retries=0,
        )
        completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=3)
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=3, stream=True)
        texts = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
        await client.close()
        return completion, texts

    completion, texts = asyncio.run(run())
    assert completion.usage.completion_tokens == 3
    assert texts[0] == "" and len(texts) == 1 + 3 + 1


def test_sdk_legacy_completions(live_server):
    completion = sdk(live_server).completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi", max_tokens=4)
    assert completion.choices[0].finish_reason == "length" and completion.usage.completion_tokens == 4
    # The real legacy stream has null finish_reasons, which strict validation rejects: use a lenient client.
    lenient = openai.OpenAI(base_url=live_server.base_url + "/v1", api_key="sk", max_retries=0)
    chunks = list(lenient.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi", max_tokens=4, stream=True))
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, "length"]
    for chunk in chunks:
        assert_valid_legacy_chunk(chunk.model_dump(exclude_unset=True))


def test_sdk_models(live_server):
    client = sdk(live_server)
    assert [m.id for m in client.models.list()][:3] == ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gpt-5.4"]
    assert client.models.retrieve("gpt-4o").owned_by == "system"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("nope")
    assert caught.value.code == "model_not_found"


def test_sdk_sees_bad_requests_as_the_real_exceptions(live_server):
    client = sdk(live_server)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=999999)
    assert caught.value.param == "max_tokens" and caught.value.code == "invalid_value"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    assert caught.value.request_id.startswith("req_")


# --- flags and ways of running --------------------------------------------------------------------------


def test_token_flag_with_the_sdk(start_server):
    server = start_server("-w", "1", "--token", "sk-secret-token-1234")
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(server, api_key="sk-wrong-key-000000abcd").models.list()
    assert caught.value.code == "invalid_api_key" and "abcd" in caught.value.message
    assert [m.id for m in sdk(server, api_key="sk-secret-token-1234").models.list()]
    assert requests.get(server.base_url + "/health", timeout=5).ok
    assert "sk-secret-token-1234" not in server.output()


def stream_timings(server, max_tokens):
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": max_tokens, "stream": True}
    start = time.monotonic()
    arrivals = []
    with requests.post(server.base_url + "/v1/chat/completions", json=body, stream=True, timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith(b"data: {"):
                arrivals.append(time.monotonic() - start)
    return arrivals


def test_inter_token_latency_and_time_to_first_token_flags(start_server):
    server = start_server("-w", "1", "--inter-token-latency", "20", "--time-to-first-token", "150")
    arrivals = stream_timings(server, 26)
    assert arrivals[0] >= 0.15  # the role chunk comes with the first token
    # The last token is due 150 ms + 25 x 20 ms after the request: on time, and not drifting late.
    assert 0.65 <= arrivals[-1] < 0.65 + 0.15
    gaps = sorted(b - a for a, b in zip(arrivals[1:-2], arrivals[2:-1], strict=True))
    assert 0.010 < gaps[len(gaps) // 2] < 0.030  # the median gap is the 20 ms asked for


def test_zero_inter_token_latency_streams_at_once(start_server):
    server = start_server("-w", "1", "--inter-token-latency", "0")
    assert stream_timings(server, 1000)[-1] < 1.0


def test_port_address_workers_and_config_flags(start_server, tmp_path):
    config = tmp_path / "mine.toml"
    config.write_text('[responses]\nmax_tokens = 7\n[models]\navailable = ["my-model"]\n')
    server = start_server("-w", "3", "--config", str(config))
    assert requests.get(server.base_url + "/tokens", timeout=5).text == "Max tokens: 7"
    assert [m["id"] for m in requests.get(server.base_url + "/v1/models", timeout=5).json()["data"]] == ["my-model"]
    deadline = time.monotonic() + 15
    while True:  # workers boot one after another
        workers = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True)
        if len(workers.stdout.split()) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(workers.stdout.split()) == 3


def test_corpus_flag(start_server, tmp_path):
    corpus = tmp_path / "mine.txt"
    corpus.write_text("Alpha beta gamma delta. " * 10)
    server = start_server("--corpus", str(corpus), "--any-model")
    body = {"model": "anything-goes", "messages": MESSAGES, "max_tokens": 4, "temperature": 0}
    reply = requests.post(server.base_url + "/v1/chat/completions", json=body, timeout=5).json()
    assert reply["choices"][0]["message"]["content"] == "Alpha beta gamma delta"
    assert reply["model"] == "anything-goes"


def test_download_sonnets_from_a_local_server_into_the_user_cache(start_server, tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "sonnets.txt").write_text("Shall I compare thee to a summer's day? " * 5)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/sonnets.txt"
    try:
        env = {"MOCK_OPENAI_RESPONSES_SONNETS_URL": url, "XDG_CACHE_HOME": str(cache)}
        server = start_server("--download-sonnets", env=env)
        body = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 5, "temperature": 0}
        reply = requests.post(server.base_url + "/v1/chat/completions", json=body, timeout=5).json()
        assert reply["choices"][0]["message"]["content"] == "Shall I compare thee to"
        assert (cache / "mock-openai" / "sonnets.txt").is_file()
    finally:
        httpd.shutdown()


def test_download_sonnets_without_network_fails_clearly(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/sonnets.txt"  # nothing listens there
    result = subprocess.run(
        [str(MOCK_OPENAI), "--download-sonnets"],
        env=clean_env({"MOCK_OPENAI_RESPONSES_SONNETS_URL": url, "XDG_CACHE_HOME": str(tmp_path)}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"mock-openai: could not download {url} (ConnectionError)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_stops_start_up_with_one_line(tmp_path):
    result = subprocess.run(
        [str(MOCK_OPENAI)],
        env=clean_env({"MOCK_GPT_SERVER_PORT": "not-a-port"}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "mock-openai: invalid config server.port = 'not-a-port' "
        "(from environment variable MOCK_GPT_SERVER_PORT): Not a valid integer."
    )


def test_version_and_help():
    version = subprocess.run([str(MOCK_OPENAI), "-V"], capture_output=True, text=True, timeout=30)
    assert version.stdout.strip() == f"mock-openai {importlib.metadata.version('mock-openai')}"  # one version
    help_text = subprocess.run([str(MOCK_OPENAI), "-h"], capture_output=True, text=True, timeout=30).stdout
    for flag in (
        "--port",
        "--address",
        "--workers",
        "--client-request-timeout",
        "--max-connection-rate",
        "--token",
        "--inter-token-latency",
        "--corpus",
        "--download-sonnets",
        "--config",
    ):
        assert flag in help_text


def test_client_request_timeout_closes_silent_connections(start_server):
    server = start_server("-w", "1", "--client-request-timeout", "1s")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(5)
        start = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, having sent nothing
        assert 0.9 <= time.monotonic() - start < 3


def test_max_connection_rate_bounds_connections_being_established(start_server):
    """The original's limit: at most N connections per worker whose first request is not read yet. Two silent
    connections hold both slots; a third is served only once one of them has sent its request."""
    server = start_server("-w", "1", "--max-connection-rate", "2")
    request = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
    time.sleep(0.2)  # both accepted, each holding a slot
    with socket.create_connection(("127.0.0.1", server.port)) as third:
        third.settimeout(0.5)
        third.sendall(request)
        with pytest.raises(TimeoutError):
            third.recv(100)  # waits, unread, for a slot
        silent[0].sendall(request)  # established: its slot goes to the third connection
        third.settimeout(5)
        assert third.recv(100).startswith(b"HTTP/1.1 200 OK")
    for sock in silent:
        sock.close()


def test_max_connection_rate_does_not_limit_connections_per_second(start_server):
    """N is not a count per second: with a limit of 5, a hundred short connections one after the other do not
    take twenty seconds."""
    server = start_server("-w", "1", "--max-connection-rate", "5")
    start = time.monotonic()
    for _ in range(100):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200 OK")
    assert time.monotonic() - start < 8


def test_the_procfile_command_serves_on_port(start_server):
    """The Procfile's own line (gunicorn -c gunicorn.conf.py wsgi:app), run as Heroku would, binds $PORT."""
    line = (ROOT / "Procfile").read_text().strip().removeprefix("web:").split()
    command = [str(Path(sys.executable).with_name(line[0])), *line[1:]]
    server = start_server(command=command, cwd=ROOT, env={"MOCK_OPENAI_SERVER_WORKERS": "1"})
    reply = requests.post(
        server.base_url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 3},
        timeout=5,
    )
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 3


def test_thousands_of_concurrent_streams_on_one_worker(start_server):
    """2000 streams open at once on a single gevent worker, every one complete and in order."""
    server = start_server("-w", "1", "--inter-token-latency", "20")
    request = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: {length}\r\nConnection: close\r\n\r\n{body}"
    )
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 50, "stream": true}'
    raw = request.format(length=len(body), body=body).encode()
    sockets = []
    for _ in range(2000):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(raw)
        sockets.append(sock)
    received = {sock: bytearray() for sock in sockets}
    import selectors

    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + 30
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            data = key.fileobj.recv(65536)
            if data:
                received[key.fileobj] += data
            else:
                selector.unregister(key.fileobj)
                key.fileobj.close()
    assert not selector.get_map(), "some streams did not finish in time"
    for data in received.values():
        assert data.count(b"data: {") == 52 and data.rstrip().endswith(b"0\r\n\r\n".rstrip())
        assert b"data: [DONE]" in data


def test_the_largest_embeddings_batch_is_served_while_the_worker_serves_others(start_server):
    """2,048 inputs in floats (the most a request may send) took longer than the worker's 30 s timeout, which
    killed the worker. Now they take a few seconds, in turns: no other client waits for all of it (each waited
    as long as the vectors took, 2.6 s of a 2.9 s batch, before they took turns; about 0.1 s since)."""
    server = start_server("-w", "1", "--inter-token-latency", "0")
    url = server.base_url + "/v1/embeddings"
    texts = [f"passage {i} about the weather in Paris" for i in range(2048)]
    batch = {}

    def embed_all():
        body = {"model": "text-embedding-3-small", "input": texts, "encoding_format": "float"}
        started = time.monotonic()
        batch["response"] = requests.post(url, json=body, timeout=60)
        batch["took"] = time.monotonic() - started

    thread = threading.Thread(target=embed_all)
    thread.start()
    waits = []
    while thread.is_alive():
        started = time.monotonic()
        assert requests.get(server.base_url + "/v1/models", timeout=30).status_code == 200
        waits.append(time.monotonic() - started)
    thread.join()
    assert max(waits) < batch["took"] / 4
    response = batch["response"]
    assert response.status_code == 200
    data = response.json()["data"]
    assert [item["index"] for item in data] == list(range(2048))
    for index in (0, 2047):
        alone = requests.post(url, json={"model": "text-embedding-3-small", "input": texts[index]}, timeout=10)
        assert data[index]["embedding"] == alone.json()["data"][0]["embedding"]


def test_responses_stored_at_once_are_found_next_by_any_worker(live_server):
    """Stored objects are written in batches (``app.shared.group_commit``): 48 clients at once each create a
    response on a connection of its own, then retrieve it and continue its conversation on new ones, which
    either of the two workers may take. Each must be found: none is answered before its object is written."""
    from concurrent.futures import ThreadPoolExecutor

    url = live_server.base_url + "/v1/responses"

    def conversation(number: int) -> tuple[int, int, int]:
        body = {"model": "gpt-4o-mini", "input": f"Question {number}", "max_output_tokens": 16}
        created = requests.post(url, json=body, headers={"Connection": "close"}, timeout=30).json()
        retrieved = requests.get(f"{url}/{created['id']}", headers={"Connection": "close"}, timeout=30)
        body["previous_response_id"] = created["id"]
        followed = requests.post(url, json=body, headers={"Connection": "close"}, timeout=30)
        return retrieved.status_code, followed.status_code, retrieved.json().get("id") == created["id"]

    with ThreadPoolExecutor(48) as pool:
        outcomes = list(pool.map(conversation, range(48)))
    assert outcomes == [(200, 200, True)] * 48


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_prints_no_traceback(start_server, stop):
    """Ctrl-C in a terminal sends SIGINT to the master and to every worker at once (and the master then sends
    each worker SIGQUIT); a process manager sends SIGTERM. Either way the server stops, with no traceback: a
    second quit used to print SystemExit's, and each worker's interpreter teardown a TypeError (gevent #2148)."""
    server = start_server("-w", "2")
    assert requests.get(server.base_url + "/health", timeout=10).ok
    os.killpg(server.process.pid, getattr(signal, stop))
    assert server.process.wait(timeout=30) == 0
    output = server.output()
    assert "Traceback" not in output and "Exception ignored" not in output, output
