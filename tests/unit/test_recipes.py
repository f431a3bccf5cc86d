"""A stream of a table's events kept in the journal as its recipe (app.streaming.recipes): the entry read back
holds exactly the bytes the client received, in this process, in another that never made the tables, and on
both backends; every other stream is kept as its bytes."""

from __future__ import annotations

import uuid

import pytest

import app.streaming.recipes as recipes
from app.streaming import EndedEvents, NumberedEvents
from app.streaming.recipes import JOINED, NUMBERED, EventTable, expand

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
ANTHROPIC = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
MESSAGES = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
KEPT = 65536  # [journal] max_body_bytes
GEMINI = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
AZURE = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
RESPONSES = {"model": "gpt-4.1", "input": "Hi", "stream": True}

# (path, body, headers): streams whose events are a table's. 1,800 tokens run past the corpus's end (1,692).
TOLD = {
    "chat": ("/v1/chat/completions", {**CHAT, "max_tokens": 64}, {}),
    "chat, usage": ("/v1/chat/completions", {**CHAT, "max_tokens": 64, "stream_options": {"include_usage": True}}, {}),
    "chat, no obfuscation": ("/v1/chat/completions",
                             {**CHAT, "max_tokens": 5, "stream_options": {"include_obfuscation": False}}, {}),
    "chat, one token": ("/v1/chat/completions", {**CHAT, "max_tokens": 1}, {}),
    "chat, past the corpus's end": ("/v1/chat/completions", {**CHAT, "max_tokens": 1800}, {}),
    "anthropic": ("/v1/messages", {**MESSAGES, "max_tokens": 40}, ANTHROPIC),
    "gemini": (GEMINI, {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}, {"x-goog-api-key": "k"}),
    "legacy": ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Hi", "stream": True}, {}),
    "legacy, usage": ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Hi", "stream": True,
                                          "max_tokens": 9, "stream_options": {"include_usage": True}}, {}),
    "azure": (AZURE, {"messages": [{"role": "user", "content": "Hi"}], "stream": True, "max_tokens": 30}, {}),
    "responses": ("/v1/responses", {**RESPONSES, "max_output_tokens": 64}, {}),
    "responses, no obfuscation": ("/v1/responses",
                                  {**RESPONSES, "max_output_tokens": 16,
                                   "stream_options": {"include_obfuscation": False}}, {}),
    "responses, past the corpus's end": ("/v1/responses", {**RESPONSES, "max_output_tokens": 1800}, {}),
}  # fmt: skip


@pytest.fixture
def make_app(each_backend):
    from app import create_app

    return lambda overrides=None: create_app(
        {"latency": {"inter_token_latency_ms": 0}, **(overrides or {}), **each_backend}
    )


@pytest.fixture
def recipes_made(monkeypatch):
    """For every entry made, its stream's recipe, or None where it is kept as its bytes."""
    import app.journal
    from app.shared.journal_store import COLUMNS

    made, body = [], COLUMNS.index("response_body")
    row_of = app.journal.row_of

    def spy(*args):
        row = row_of(*args)
        made.append(row[body][0] if type(row[body]) is tuple else None)
        return row

    monkeypatch.setattr(app.journal, "row_of", spy)
    return made


def stored_body(app) -> bytes:
    """The newest entry's response body, as the store gives it to every reader."""
    client = app.test_client()
    (entry,) = client.get("/_mock/requests?limit=1").get_json()["data"]
    return app.extensions["mock_openai"].journal.store.get(entry["id"])["response_body"]


@pytest.mark.parametrize("asked", list(TOLD))
def test_a_stream_of_a_tables_events_is_kept_as_its_recipe_and_read_back_as_sent(make_app, recipes_made, asked):
    path, body, headers = TOLD[asked]
    app = make_app()
    sent = app.test_client().post(path, json=body, headers=headers).get_data()
    assert recipes_made[-1] is not None
    assert stored_body(app) == sent[:KEPT]


@pytest.mark.parametrize("itl_ms", [0, 0.01])
def test_a_stream_cut_at_max_body_bytes_reads_back_as_the_bytes_kept(make_app, recipes_made, itl_ms):
    app = make_app({"latency": {"inter_token_latency_ms": itl_ms}, "journal": {"max_body_bytes": 1000}})
    sent = app.test_client().post("/v1/chat/completions", json={**CHAT, "max_tokens": 300}).get_data()
    assert recipes_made[-1] is not None
    assert stored_body(app) == sent[:1000]


def test_a_reader_that_never_made_the_table_reads_it_from_the_store(make_app, recipes_made, monkeypatch):
    """Another worker, or a server started later with another corpus, reads the table the writer stored."""
    app = make_app()
    sent = app.test_client().post("/v1/chat/completions", json={**CHAT, "max_tokens": 64}).get_data()
    known = {}
    monkeypatch.setattr(recipes, "_KNOWN", known)
    assert recipes_made[-1] is not None and recipes.known(recipes_made[-1][0]) is None
    assert stored_body(app) == sent
    assert recipes_made[-1][0] in known  # read from the store, and known from then on


def test_a_table_redis_lost_is_stored_again_before_an_entry_names_it(redis_url, recipes_made, monkeypatch):
    """Redis restarted empty while a worker ran: the worker's next batch finds its table gone, and stores it
    again with the batch, so a reader that never made it reads every stream as sent."""
    import redis

    from app import create_app

    prefix = uuid.uuid4().hex
    app = create_app(
        {"latency": {"inter_token_latency_ms": 0}, "shared": {"redis_url": redis_url, "redis_prefix": prefix}}
    )
    client = app.test_client()
    first = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 8}).get_data()
    server = redis.Redis.from_url(redis_url)
    lost = server.keys(prefix + "*event_tables")
    assert len(lost) == 1 and server.delete(*lost) == 1
    second = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 9}).get_data()
    assert recipes_made[-2] is not None and recipes_made[-1] is not None
    monkeypatch.setattr(recipes, "_KNOWN", {})  # a reader elsewhere
    entries = client.get("/_mock/requests?limit=2").get_json()["data"]
    store = app.extensions["mock_openai"].journal.store
    assert [store.get(e["id"])["response_body"] for e in entries] == [second, first]


BYTES = {
    "a malformed chunk": ("/v1/chat/completions", {**CHAT, "max_tokens": 30}, {"X-Mock-Malformed-Chunk-After": "3"}),
    "a stream error": ("/v1/chat/completions", {**CHAT, "max_tokens": 30}, {"X-Mock-Stream-Error-After": "3"}),
    "two choices": ("/v1/chat/completions", {**CHAT, "max_tokens": 20, "n": 2}, {}),
    "responses, a tool call": ("/v1/responses", {**RESPONSES, "tool_choice": "required", "tools": [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]}, {}),
    "echoed": ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": "Hi " * 50}]},
               {"X-Mock-Mode": "echo"}),
}  # fmt: skip


@pytest.mark.parametrize("asked", list(BYTES))
def test_any_other_stream_is_kept_as_its_bytes(make_app, recipes_made, asked):
    path, body, headers = BYTES[asked]
    app = make_app()
    sent = app.test_client().post(path, json=body, headers=headers).get_data()
    assert recipes_made[-1] is None
    assert stored_body(app) == sent[:KEPT]


def test_a_stream_its_client_left_is_kept_as_the_bytes_that_went_out(make_app, recipes_made):
    app = make_app({"latency": {"inter_token_latency_ms": 5}})
    response = app.test_client().post("/v1/chat/completions", json={**CHAT, "max_tokens": 50}, buffered=False)
    writes = iter(response.response)
    received = b"".join(next(writes) for _ in range(4))
    response.close()
    assert recipes_made[-1] is None
    assert stored_body(app) == received


def test_a_stream_stalled_on_the_way_is_still_its_recipe(make_app, recipes_made):
    """A stall changes when the events go out, not what they are."""
    headers = {"X-Mock-Stall-After": "3", "X-Mock-Stall-Ms": "1"}
    app = make_app()
    sent = app.test_client().post("/v1/chat/completions", json={**CHAT, "max_tokens": 20}, headers=headers).get_data()
    assert recipes_made[-1] is not None
    assert stored_body(app) == sent


@pytest.mark.parametrize("last_suffix", [b">", b"!>"])
@pytest.mark.parametrize("start", [0, 5, 9])
@pytest.mark.parametrize("count", [0, 1, 4, 10, 25])
def test_a_recipe_expands_to_its_joined_events_around_the_tables_end(start, count, last_suffix):
    table = EventTable([b"a", b"bb", b"", b"dddd", b"e", b"ff", b"g", b"hhh", b"i", b"jj"])
    joined = EndedEvents(b"<", table, start, b">", count - 1, last_suffix)
    events = b"".join(joined(k) for k in range(count))
    assert table.span(start, count) == sum(len(table[(start + k) % len(table)]) for k in range(count))
    recipe = (table.digest, b"HEAD", b"<", start, count, b">", last_suffix, b"TAIL")
    assert expand((*recipe, 1000), JOINED, {table.digest: table}.get) == b"HEAD" + events + b"TAIL"
    assert expand((*recipe, 7), JOINED, {table.digest: table}.get) == (b"HEAD" + events + b"TAIL")[:7]


@pytest.mark.parametrize("first", [0, 7, 95, 998, 4090, 5000])  # (numbers from 4,096 on are not kept made)
@pytest.mark.parametrize("start", [0, 5, 9])
@pytest.mark.parametrize("count", [1, 4, 10, 25])
def test_numbered_events_expand_from_their_recipe_around_the_tables_ends(first, start, count):
    """Each event carries its number (the Responses API's sequence_number); the numbers cross a power of ten,
    and the last number kept made with its lead."""
    from app.streaming import PacedEvents
    from app.streaming.recipes import recipe_of

    tokens = EventTable([b"a", b"bb", b"", b"dddd", b"e", b"ff", b"g", b"hhh", b"i", b"jj"])
    ends = EventTable([b"}1", b"}22", b"}"])
    numbered = NumberedEvents(b"<", first, b":", tokens, start, count, ends)
    one_by_one = [b"<%d:%s%s" % (first + k, tokens[(start + k) % 10], ends[k % 3]) for k in range(count)]
    assert list(numbered) == one_by_one
    writer = PacedEvents(1)
    writer.parts, writer.steps, writer.whole = (b"HEAD", numbered, count, b"TAIL"), count, [b"HEAD", b"TAIL"]
    sent = b"HEAD" + b"".join(one_by_one) + b"TAIL"
    recipe, codec = recipe_of(writer, len(sent))
    assert codec == NUMBERED
    assert recipe_of(writer, len(sent) + 1) is None  # the byte count told must be the one sent
    tables = {tokens.digest: tokens, ends.digest: ends}.get
    assert expand((*recipe, 1000), NUMBERED, tables) == sent
    assert expand((*recipe, 9), NUMBERED, tables) == sent[:9]
    assert expand((*recipe, 1000), NUMBERED, {tokens.digest: tokens}.get) is None  # a table lost


def test_a_tables_digest_names_its_content():
    assert EventTable([b"a", b"b"]).digest == EventTable([b"a", b"b"]).digest != EventTable([b"a", b"c"]).digest


def test_a_recipe_whose_table_the_store_lost_reads_as_an_empty_body(caplog):
    import marshal

    from app.shared.journal_store import COLUMNS, unpack

    row = [None] * len(COLUMNS)
    row[COLUMNS.index("response_body")] = ((b"\0" * 16, b"", b"<", 0, 3, b">", b">", b"", 100), "events")
    (read,) = unpack(marshal.dumps([tuple(row)]), lambda digest: None)
    assert read[COLUMNS.index("response_body")] == b""
    assert "event table" in caplog.text
