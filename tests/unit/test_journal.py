"""The request journal through the Flask test client: what an entry holds, the admin API that reads it, and
the statistics over it."""

from __future__ import annotations

import json

import pytest

from tests.anthropic_sse import parse_anthropic_sse
from tests.gemini_sse import parse_gemini_sse
from tests.sse import parse_response_events, parse_sse

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello <script>alert(1)</script>"}]}


@pytest.fixture
def make_client(each_backend):
    """A test client for an app built with these overrides, on each backend of the shared state."""
    from app import create_app

    return lambda overrides: create_app({**overrides, **each_backend}).test_client()


@pytest.fixture
def journal_client(make_client):
    return make_client({"latency": {"inter_token_latency_ms": 0}})


def chat(client, **extra):
    headers = extra.pop("headers", {})
    response = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5, **extra}, headers=headers)
    response.get_data()  # the entry is made once the whole response has gone out
    return response


def entries(client, query: str = "") -> dict:
    response = client.get("/_mock/requests" + query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("itl_ms", [0.01, 0])
def test_a_stream_cut_at_max_body_bytes_still_counts_every_event_it_sent(make_client, itl_ms):
    """Paced, the stream goes out an event a write: those past the kept bytes are counted as they pass, the
    one cut in two at the limit with those kept. Unpaced, it is one write, counted whole. 1,800 tokens run
    past the end of the corpus's tokens, where the writer starts them again."""
    client = make_client({"latency": {"inter_token_latency_ms": itl_ms}, "journal": {"max_body_bytes": 1000}})
    sent = chat(client, stream=True, max_tokens=40 if itl_ms else 1800)
    events = parse_sse(sent.get_data())
    entry = entries(client)["data"][0]
    assert entry["response"]["truncated"] is True and len(events) > 40
    assert entry["response"]["events"] == len(events)


ANTHROPIC = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], "generationConfig": {"maxOutputTokens": 300}}
LEGACY = {"model": "gpt-3.5-turbo-instruct", "prompt": "Hi", "stream": True, "max_tokens": 300}
CHAT_STREAM = {**CHAT, "stream": True, "max_tokens": 300}
MESSAGES = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 300,
    "stream": True,
    "messages": [{"role": "user", "content": "Hi"}],
}
# A stream long enough to be cut at 1,000 bytes: (path, body, settings, headers, its parser)
LONG_STREAMS = {
    "chat": ("/v1/chat/completions", CHAT_STREAM, {}, {}, parse_sse),
    "chat, two choices": ("/v1/chat/completions", {**CHAT_STREAM, "n": 2}, {}, {}, parse_sse),
    "chat, echoed": ("/v1/chat/completions", {**CHAT, "stream": True}, {"responses": {"mode": "echo"}}, {}, parse_sse),
    "legacy": ("/v1/completions", LEGACY, {}, {}, parse_sse),
    "responses": ("/v1/responses", {"model": "gpt-4.1", "input": "Hi", "stream": True, "max_output_tokens": 300}, {},
                  {}, parse_response_events),
    "anthropic": ("/v1/messages", MESSAGES, {}, ANTHROPIC, parse_anthropic_sse),
    "anthropic, echoed": ("/v1/messages", {**MESSAGES, "messages": [{"role": "user", "content": "Hi " * 200}]},
                          {"responses": {"mode": "echo"}}, ANTHROPIC, parse_anthropic_sse),
    "gemini": (GEMINI_STREAM, GEMINI, {}, {"x-goog-api-key": "test"}, parse_gemini_sse),
}  # fmt: skip


@pytest.mark.parametrize("itl_ms", [0, 0.01])
@pytest.mark.parametrize("asked", list(LONG_STREAMS))
def test_a_stream_whose_writer_counts_its_events_is_not_scanned(make_client, monkeypatch, asked, itl_ms):
    """A stream whose every token step is one event is told by its writer how many events it sent (scanning
    2,048 tokens' bytes took as long as making them), whether it went out in one write or a write a token;
    two choices interleaved are counted from their bytes."""
    import app.journal
    import app.journal.entries

    scanned = []
    for module in (app.journal, app.journal.entries):
        counted = module.count_events
        monkeypatch.setattr(module, "count_events", lambda data, c=counted: scanned.append(len(data)) or c(data))
    path, body, settings, headers, parse = LONG_STREAMS[asked]
    client = make_client(
        {"latency": {"inter_token_latency_ms": itl_ms}, "journal": {"max_body_bytes": 1000}, **settings}
    )
    events = parse(client.post(path, json=body, headers=headers).get_data())
    entry = entries(client)["data"][0]
    assert entry["response"]["truncated"] is True and entry["response"]["events"] == len(events)
    assert bool(scanned) == (asked == "chat, two choices")


@pytest.mark.parametrize(
    "data, events",
    [
        (b"", 0),
        (b"data: {}\n\n" * 3, 3),
        (b"event: response.created\ndata: {}\n\nevent: response.done\ndata: {}\n\n", 2),  # lines of their own
        (b"data: {}\r\n\r\n" * 2, 2),  # Gemini's CRLF
        (b": keep-alive\n\ndata: {}\n\n: keep-alive\n\n", 1),  # a comment is not an event
        (b"\n\ndata: {}\n\n", 2),  # a blank line first ends an (empty) event too, as it always counted
        (b"data: {}\n", 0),  # a write cut before its blank line ...
        (b"\ndata: {}\n\n", 1),  # ... and the rest of it
        (b'data: {"a":"\\n\\n"}\n\ndata: [DONE]\n\n', 2),  # newlines in JSON text are escaped
    ],
)
def test_events_are_counted_by_the_blank_lines_that_end_them(data, events):
    from app.streaming import count_events

    assert count_events(data) == events


def test_a_completion_is_recorded_with_its_request_and_response(journal_client):
    journal_client.set_cookie("session", "secret-cookie")
    sent = chat(journal_client, headers={"Authorization": "Bearer sk-secret-key-1234"})
    page = entries(journal_client)
    assert page["object"] == "list" and page["total"] == 1 and page["has_more"] is False
    entry = page["data"][0]
    assert entry["method"] == "POST" and entry["path"] == "/v1/chat/completions" and entry["status"] == 200
    assert entry["model"] == "gpt-4o" and entry["stream"] is False
    assert entry["request_id"] == sent.headers["x-request-id"]
    usage = sent.get_json()["usage"]
    assert entry["usage"] == {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    assert entry["request"]["body"] == {**CHAT, "max_tokens": 5}
    assert entry["response"]["body"] == sent.get_json()
    assert entry["response"]["ending"] == "complete"
    assert entry["latency_ms"] > 0 and entry["client"].startswith("127.0.0.1")
    headers = entry["request"]["headers"]
    assert headers["Authorization"] == "Bearer [redacted]" and headers["Cookie"] == "[redacted]"
    assert "sk-secret" not in str(entry) and "secret-cookie" not in str(entry)


def test_each_entry_has_its_own_headers_when_a_client_repeats_and_varies_them(journal_client):
    """Header lines are made once per set of values (a load test repeats them): a value that changes is seen,
    a repeated one is the same, and a credential is redacted either way."""
    sent = [("sk-first-key", "one"), ("sk-second-key", "two"), ("sk-first-key", "one"), ("sk-first-key", "three")]
    for key, value in sent:
        chat(journal_client, headers={"Authorization": f"Bearer {key}", "X-Custom": value})
    page = entries(journal_client)
    headers = [entry["request"]["headers"] for entry in reversed(page["data"])]
    assert [h["X-Custom"] for h in headers] == ["one", "two", "one", "three"]
    assert {h["Authorization"] for h in headers} == {"Bearer [redacted]"}
    assert "-key" not in str(page)


def test_a_stream_entry_has_its_events_their_times_and_the_text_it_assembled(journal_client):
    sent = chat(journal_client, stream=True)
    events = parse_sse(sent.get_data())
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e != "[DONE]" and e["choices"])
    entry = entries(journal_client)["data"][0]
    assert entry["stream"] is True and entry["ttft_ms"] is not None
    assert entry["response"]["events"] == len(events) and entry["response"]["ending"] == "done"
    assert entry["response"]["text"] == text
    detail = journal_client.get(f"/_mock/requests/{entry['id']}").get_json()
    stream_events = detail["response"]["stream_events"]
    assert [e["data"] for e in stream_events] == events
    times = [e["t_ms"] for e in stream_events]
    assert times == sorted(times) and times[0] >= 0


@pytest.mark.parametrize("stream", [False, True])
def test_an_entry_is_there_before_the_last_bytes_of_its_response_go_out(journal_client, stream):
    # A client may read the journal the instant its response arrives, from another worker: the entry is made
    # when the server is handed the last chunk, not after it has sent it.
    sent = journal_client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 3, "stream": stream}, buffered=False)
    chunks = iter(sent.response)
    received = next(chunks)
    while stream and not received.endswith(b"data: [DONE]\n\n"):
        received += next(chunks)
    page = entries(journal_client)  # the server has not asked for anything past the last chunk
    assert page["total"] == 1 and page["data"][0]["status"] == 200
    assert page["data"][0]["response"]["ending"] == ("done" if stream else "complete")
    assert b"".join(chunks) == b""
    sent.close()
    assert entries(journal_client)["total"] == 1


def test_a_responses_stream_entry_has_its_output_text(journal_client):
    sent = journal_client.post(
        "/v1/responses", json={"model": "gpt-4.1", "input": "Hi", "stream": True, "max_output_tokens": 20}
    )
    blocks = [b for b in sent.get_data(as_text=True).strip().split("\n\n")]
    deltas = [json.loads(b.split("data: ", 1)[1]) for b in blocks]
    text = "".join(e["delta"] for e in deltas if e["type"] == "response.output_text.delta")
    entry = next(e for e in entries(journal_client)["data"] if e["path"] == "/v1/responses")
    assert entry["stream"] is True and text and entry["response"]["text"] == text
    assert entry["response"]["ending"] == "done"  # its last event, not [DONE], which this API never sends


def test_an_injected_fault_and_a_scenario_are_recorded(journal_client):
    chat(journal_client, stream=True, headers={"X-Mock-Stream-Error-After": "2", "X-Mock-Scenario": "fast"})
    chat(journal_client, headers={"X-Mock-Error": "429"})
    refused, cut = entries(journal_client)["data"]
    assert refused["status"] == 429 and refused["fault"] == "429" and refused["model"] == "gpt-4o"
    assert cut["fault"] == "stream_error" and cut["scenario"] == "fast"
    assert cut["response"]["ending"] == "stream_error"


def test_x_mock_test_id_tags_entries_and_changes_nothing_else(journal_client):
    assert chat(journal_client, headers={"X-Mock-Test-Id": "tests/test_a.py::test_one"}).status_code == 200
    chat(journal_client)
    page = entries(journal_client, "?test_id=tests/test_a.py::test_one")
    assert page["total"] == 1 and page["data"][0]["test_id"] == "tests/test_a.py::test_one"


def test_refused_requests_are_recorded_with_the_body_that_was_sent(make_client):
    client = make_client({"auth": {"token": "sk-right"}, "latency": {"inter_token_latency_ms": 0}})
    assert chat(client, headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
    entry = entries_with_token(client)["data"][0]
    assert entry["status"] == 401 and entry["model"] == "gpt-4o"
    assert entry["request"]["body"]["messages"] == CHAT["messages"]


def entries_with_token(client) -> dict:
    return client.get("/_mock/requests", headers={"Authorization": "Bearer sk-right"}).get_json()


def test_the_admin_api_needs_the_token_when_one_is_set(make_client):
    client = make_client({"auth": {"token": "sk-right"}})
    assert client.get("/_mock/requests").status_code == 401
    assert client.get("/_mock/stats", headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
    assert entries_with_token(client)["object"] == "list"


def test_own_routes_are_not_journaled(journal_client):
    journal_client.get("/_mock/config")
    journal_client.get("/_mock/stats")
    journal_client.get("/health").get_data()
    assert [e["path"] for e in entries(journal_client)["data"]] == ["/health"]


def test_filters_and_text_search(journal_client):
    chat(journal_client)
    chat(journal_client, model="nope")
    journal_client.get("/v1/models").get_data()
    assert entries(journal_client, "?status=404")["data"][0]["model"] == "nope"
    assert entries(journal_client, "?method=get")["data"][0]["path"] == "/v1/models"
    assert entries(journal_client, "?model=gpt-4o")["total"] == 1
    assert entries(journal_client, "?path=/v1/chat/completions")["total"] == 2
    assert entries(journal_client, "?q=ALERT(1)")["total"] == 2  # searched in bodies, ignoring case
    assert entries(journal_client, "?since=2020-01-01T00:00:00Z")["total"] == 3
    assert entries(journal_client, "?since=4102444800")["total"] == 0


def test_pages_by_cursor_and_by_number_newest_first(journal_client):
    for _ in range(5):
        chat(journal_client)
    first = entries(journal_client, "?limit=2")
    assert first["total"] == 5 and first["has_more"] is True
    ids = [e["id"] for e in first["data"]]
    assert ids == sorted(ids, reverse=True)
    second = entries(journal_client, f"?limit=2&cursor={first['next_cursor']}")
    third = entries(journal_client, f"?limit=2&cursor={second['next_cursor']}")
    seen = ids + [e["id"] for e in second["data"]] + [e["id"] for e in third["data"]]
    assert len(set(seen)) == 5 and third["has_more"] is False and third["next_cursor"] is None
    assert [e["id"] for e in entries(journal_client, "?limit=2&page=2")["data"]] == [e["id"] for e in second["data"]]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("?status=abc", "status"),
        ("?status=700", "status"),
        ("?limit=0", "limit"),
        ("?limit=5000", "limit"),
        ("?cursor=x", "cursor"),
        ("?page=0", "page"),
        ("?page=1&cursor=3", "page"),
        ("?since=yesterday", "since"),
        ("?stream=maybe", "stream"),
        ("?colour=red", "colour"),
    ],
)
def test_bad_query_values_get_a_400_that_names_the_parameter(journal_client, query, param):
    response = journal_client.get("/_mock/requests" + query)
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == param


def test_one_entry_or_a_404_and_clearing(journal_client):
    chat(journal_client)
    entry_id = entries(journal_client)["data"][0]["id"]
    assert journal_client.get(f"/_mock/requests/{entry_id}").get_json()["id"] == entry_id
    assert journal_client.get("/_mock/requests/999999").status_code == 404
    assert journal_client.delete("/_mock/requests").get_json() == {"deleted": 1}
    assert entries(journal_client)["total"] == 0
    assert journal_client.get(f"/_mock/requests/{entry_id}").status_code == 404


def test_retention_keeps_the_newest_and_bodies_are_cut_at_the_limit(make_client):
    client = make_client(
        {"journal": {"max_entries": 3, "max_body_bytes": 64}, "latency": {"inter_token_latency_ms": 0}}
    )
    for n in range(5):
        chat(client, user=f"user-{n}")
    page = entries(client)
    assert page["total"] == 3
    assert [e["request"]["body"] for e in page["data"]][0].startswith('{"model"')  # cut: no longer JSON
    assert all(e["request"]["truncated"] and e["response"]["truncated"] for e in page["data"])
    assert len(page["data"][0]["response"]["body"]) == 64


def test_stats_count_by_status_method_path_and_model(journal_client):
    chat(journal_client)
    chat(journal_client, stream=True)
    chat(journal_client, model="nope")
    stats = journal_client.get("/_mock/stats").get_json()
    assert stats["total_requests"] == 3 and stats["streams"] == 1
    assert stats["by_status"] == {"200": 2, "404": 1}
    assert stats["by_method"] == {"POST": 3} and stats["by_path"] == {"/v1/chat/completions": 3}
    assert stats["by_model"] == {"gpt-4o": 2, "nope": 1}
    assert stats["success_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert stats["latency_ms"]["p50"] <= stats["latency_ms"]["p95"] <= stats["latency_ms"]["p99"]
    assert stats["ttft_ms"]["p50"] is not None
    assert stats["tokens"]["completion"] == 10 and stats["tokens"]["prompt"] > 0
    assert stats["active_streams"] == 0 and sum(stats["timeline"]["requests"]) == 3
    assert journal_client.get("/_mock/stats?window=1").status_code == 400


def test_a_disabled_journal_records_nothing_and_says_so(make_client):
    client = make_client({"journal": {"enabled": False}})
    chat(client)
    response = client.get("/_mock/requests")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "journal_disabled"


def test_percentile_is_nearest_rank():
    from app.journal.stats import percentile

    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0


def test_unread_batches_stay_bounded_and_reads_keep_the_newest(tmp_path):
    from app.shared.journal_store import COLUMNS, JournalStore

    store = JournalStore(str(tmp_path / "journal.sqlite3"), max_entries=10)
    try:
        row = dict.fromkeys(COLUMNS)
        for n in range(100):  # a long load test that nobody reads: 100 flushes of 3 entries
            store.append([tuple({**row, "time": n + k / 10, "path": f"/{n}.{k}"}.values()) for k in range(3)])
            assert store._own.count() <= 10 + 1 + 3  # this worker's newest, an eighth more (at least one), a flush
        rows, total = store.query({}, None, None, None, 50, 0)
        assert total == 10
        assert [r["path"] for r in rows][:4] == ["/99.2", "/99.1", "/99.0", "/98.2"]  # newest first, by time
        assert store._own.count() == 0
    finally:
        store.close()


def test_each_worker_writes_a_file_of_its_own_and_a_read_takes_every_one(tmp_path):
    """Two processes write at once, each to its own batches file; once they are gone and read, their files go."""
    import multiprocessing
    import os

    from app.shared.journal_store import COLUMNS, JournalStore

    store = JournalStore(str(tmp_path / "journal.sqlite3"), max_entries=1000)
    row = dict.fromkeys(COLUMNS)

    def write(worker):
        for n in range(50):
            store.append([tuple({**row, "time": n + worker / 10, "path": f"/{worker}/{n}"}.values())])

    children = [multiprocessing.get_context("fork").Process(target=write, args=(w,)) for w in (1, 2)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    try:
        files = sorted(name for name in os.listdir(store.folder) if "." not in name and "journal" not in name)
        assert sorted(int(name.split("-")[0]) for name in files) == sorted(child.pid for child in children)
        store.append([tuple({**row, "time": 99.0, "path": "/parent"}.values())])
        rows, total = store.query({}, None, None, None, 1, 0)
        assert total == 101 and rows[0]["path"] == "/parent"
        assert store.query({"path": "/2/49"}, None, None, None, 1, 0)[1] == 1
        # the children's files, read and left by workers that are gone, are removed; the parent's stays
        assert [name for name in os.listdir(store.folder) if "." not in name and "journal" not in name] == [
            os.path.basename(store._own.path)
        ]
    finally:
        store.close()


def test_a_workers_counts_are_seen_by_another_process_as_it_changes_them(tmp_path):
    """What a reader waits on: each worker's entries captured and committed and its streams open, changed in
    place in the mapped table by the worker, read by any other process."""
    import multiprocessing

    from app.shared.journal_store import COLUMNS, JournalStore

    store = JournalStore(str(tmp_path / "journal.sqlite3"), max_entries=1000)
    context = multiprocessing.get_context("fork")
    counted, written, done, seen = (context.Event() for _ in range(4))

    def worker():
        store.captured(3)
        store.stream_opened()
        store.stream_opened()
        store.stream_closed()
        counted.set()
        written.wait(10)
        store.append([tuple(dict.fromkeys(COLUMNS, 0).values())] * 3)
        done.set()
        seen.wait(10)  # alive while the reader looks: a dead worker's counts are not waited for

    child = context.Process(target=worker)
    child.start()
    try:
        assert counted.wait(10)
        assert store.open_streams() == 1
        assert not store.wait_committed(0.05)  # 3 captured, none committed
        written.set()
        assert done.wait(10)
        assert store.wait_committed(1)
        assert store.open_streams() == 1
    finally:
        written.set()
        seen.set()
        child.join(10)
        store.close()


def test_a_journal_file_kept_from_before_the_batches_file_keeps_its_waiting_entries(tmp_path):
    """A ``[journal] path`` written by an older version held its waiting batches in the journal file itself."""
    import marshal
    import os
    import sqlite3

    from app.shared.journal_store import _SCHEMA, COLUMNS, JournalStore

    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA + "create table batches (id integer primary key autoincrement, count, rows);")
        rows = [tuple({**dict.fromkeys(COLUMNS), "time": n, "path": f"/old/{n}"}.values()) for n in range(3)]
        db.execute("insert into batches (count, rows) values (?, ?)", (3, marshal.dumps(rows)))
    with sqlite3.connect(f"{path}.batches") as db:  # and the version after it, in a file of their own
        db.execute("create table batches (id integer primary key autoincrement, count integer, rows blob)")
        db.execute("insert into batches (count, rows) values (?, ?)", (1, marshal.dumps(rows[:1])))
    store = JournalStore(str(path), max_entries=10)
    try:
        found, total = store.query({}, None, None, None, 10, 0)
        assert total == 4 and [r["path"] for r in found] == ["/old/2", "/old/1", "/old/0", "/old/0"]
        assert not os.path.exists(f"{path}.batches")
    finally:
        store.close()


def test_each_wire_format_is_recorded_with_its_api_preview_and_stream_text(journal_client):
    claude = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "Ask Claude"}]}
    journal_client.post("/v1/messages", json=claude, headers={"anthropic-version": "2023-06-01"}).get_data()
    journal_client.post(
        "/v1/messages", json=claude | {"stream": True}, headers={"anthropic-version": "2023-06-01"}
    ).get_data()
    gemini = {"contents": [{"parts": [{"text": "Ask Gemini"}]}], "generationConfig": {"maxOutputTokens": 5}}
    journal_client.post(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=secret", json=gemini
    ).get_data()
    chat(journal_client)
    listed = entries(journal_client, "?api=anthropic")["data"]
    assert [e["api"] for e in listed] == ["anthropic", "anthropic"]
    streamed, whole = listed
    assert whole["preview"]["asked"] == "Ask Claude" and whole["preview"]["answered"]
    assert streamed["response"]["text"] and streamed["preview"]["answered"] == _cut(streamed["response"]["text"])
    assert streamed["response"]["ending"] == "done"  # a stream that ends well, though no [DONE] ends it
    assert whole["request_id"] == whole["response"]["headers"]["request-id"]
    (google,) = entries(journal_client, "?api=gemini")["data"]
    assert google["preview"]["asked"] == "Ask Gemini" and google["response"]["text"]
    assert google["response"]["ending"] == "done"
    assert "secret" not in google["query"] and "key=[redacted]" in google["query"]
    assert entries(journal_client, "?api=openai")["data"][0]["path"] == "/v1/chat/completions"


def _cut(text: str) -> str:
    from app.journal.preview import _cut as cut

    return cut(text)


def test_a_batch_keeps_every_body_byte_for_byte_and_a_load_tests_repeats_packed_small():
    from app.shared.journal_store import COLUMNS, pack, unpack

    stream = b"".join(b'data: {"choices":[{"delta":{"content":" w%d"}}]}\n\n' % i for i in range(600))
    text = " ".join(f"word{i}" for i in range(2000))
    reply = json.dumps({"choices": [{"message": {"content": text}}]}).encode()
    prompt = json.dumps({"messages": [{"role": "user", "content": text.upper()}]}).encode()
    rows = []
    for is_stream, request_body, response_body in ((1, b'{"model":"m"}', stream), (0, prompt, reply),
                                                   (1, b"", b"{}"), (0, b"{}", None)):  # fmt: skip
        row = dict.fromkeys(COLUMNS, 1)
        row["stream"], row["request_body"], row["response_body"] = is_stream, request_body, response_body
        rows.append(tuple(row.values()))
    blob = pack(rows)
    assert unpack(blob) == rows
    assert stream not in blob and len(blob) < len(prompt) + len(reply) + len(stream) // 4  # compressed whole
    # A load test: the same request over and over, each answered with its own id. The batch's repeats cost
    # next to nothing.
    answers = [reply.replace(b"choices", b"%032d" % n) for n in range(100)]
    repeated = [(*rows[1][:COLUMNS.index("response_body")], answer, *rows[1][COLUMNS.index("response_body") + 1 :])
                for answer in answers]  # fmt: skip
    assert unpack(pack(repeated)) == repeated
    assert len(pack(repeated)) < 2 * len(blob)


def test_batches_written_by_earlier_versions_still_read():
    """Batches waiting in a worker's file when the server is upgraded hold an earlier version's format:
    marshal's bytes as they are, a long stream's events compressed on their own, with zstd as (data, "zstd")
    until the batch was compressed whole (2026-12-07), raw deflate as (data, wbits) before (2026-12-06), and
    zlib's own format as a 1-tuple before that."""
    import marshal
    import zlib

    import zstandard

    from app.shared.journal_store import COLUMNS, unpack

    stream = b"".join(b'data: {"choices":[{"delta":{"content":" w%d"}}]}\n\n' % i for i in range(600))
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
    zstd = (zstandard.ZstdCompressor(level=-1).compress(stream), "zstd")
    for stored in ((zlib.compress(stream, 1),), (deflate.compress(stream) + deflate.flush(), -15), zstd):
        row = dict.fromkeys(COLUMNS, 1)
        row["request_body"], row["response_body"] = b'{"model":"m"}', stored
        (read,) = unpack(marshal.dumps([tuple(row.values())]))
        assert read[COLUMNS.index("response_body")] == stream
