"""Stored objects written together: the rows that a gevent worker's requests hand over at once go in one
transaction (one round trip on Redis), and nobody is answered before their own row is committed."""

from __future__ import annotations

import uuid

import gevent
import pytest

import app.shared
from app.shared import open_shared
from app.shared.group_commit import GroupCommit


@pytest.fixture
def in_a_worker(monkeypatch):
    """As in a gevent worker (the test process's sockets are not patched)."""
    monkeypatch.setattr(app.shared, "under_gevent", lambda: True)


def test_requests_that_store_at_once_share_a_transaction_and_each_returns_after_it(in_a_worker):
    events = []

    def write(rows):
        events.append(("written", list(rows)))

    commit = GroupCommit(write)

    def request(number):
        commit.submit(number)
        events.append(("answered", number))

    gevent.joinall([gevent.spawn(request, n) for n in range(5)], timeout=5)
    written = [rows for what, rows in events if what == "written"]
    assert sorted(row for rows in written for row in rows) == [0, 1, 2, 3, 4]
    assert len(written) < 5  # some shared a transaction
    for number in range(5):
        batch = next(i for i, (what, rows) in enumerate(events) if what == "written" and number in rows)
        assert events.index(("answered", number)) > batch


def test_a_request_alone_is_written_at_once(in_a_worker):
    written = []
    commit = GroupCommit(written.append)
    with gevent.Timeout(5):
        commit.submit("only")
        commit.submit("next")
    assert written == [["only"], ["next"]]


def test_a_failed_transaction_fails_every_request_in_it_and_the_next_ones_are_written(in_a_worker):
    failing = [True]
    written = []

    def write(rows):
        if failing[0]:
            raise OSError("disk full")
        written.append(rows)

    commit = GroupCommit(write)
    results = []

    def request(number):
        try:
            commit.submit(number)
            results.append(("ok", number))
        except OSError as error:
            results.append((str(error), number))

    gevent.joinall([gevent.spawn(request, n) for n in range(3)], timeout=5)
    assert sorted(results) == [("disk full", 0), ("disk full", 1), ("disk full", 2)]
    failing[0] = False
    with gevent.Timeout(5):
        commit.submit(3)
    assert written == [[3]]


def test_a_stopped_writer_is_replaced_by_the_next_request(in_a_worker):
    written = []
    commit = GroupCommit(written.append)
    with gevent.Timeout(5):
        commit.submit("first")
    commit._writer.kill()  # as when the worker stops its greenlets
    with gevent.Timeout(5):
        commit.submit("second")
    assert written == [["first"], ["second"]]


def test_a_writer_stopped_while_it_writes_fails_its_batch_and_what_was_handed_over_meanwhile(in_a_worker):
    class Stop(gevent.GreenletExit):
        """As the worker stopping its greenlets raises in the writer."""

    outcomes, written = {}, []

    def request(row):
        try:
            commit.submit(row)
            outcomes[row] = "written"
        except Stop:
            outcomes[row] = "stopped"

    def write(rows):
        if rows == ["first"]:
            gevent.spawn(request, "second")
            gevent.sleep(0)  # "second" is handed over while "first" is being written
            raise Stop
        written.append(rows)

    commit = GroupCommit(write)
    first = gevent.spawn(request, "first")
    gevent.sleep(0.01)
    assert first.dead and outcomes == {"first": "stopped", "second": "stopped"}  # nobody is left waiting
    with gevent.Timeout(5):
        request("third")
    assert outcomes["third"] == "written" and written == [["third"]]


def test_outside_a_gevent_worker_each_row_is_written_by_its_caller():
    written = []
    GroupCommit(written.append).submit("row")
    assert written == [["row"]]


@pytest.fixture(params=["local", "redis"])
def backend(request, tmp_path):
    """Opens the state of one test on either backend, as often as asked (each opening a connection of its own)."""
    if request.param == "local":
        path = str(tmp_path / "shared.sqlite3")
        return lambda: open_shared(path)
    url, prefix = request.getfixturevalue("redis_url"), f"test-{uuid.uuid4().hex}"
    return lambda: open_shared("", redis_url=url, redis_prefix=prefix)


def test_objects_stored_at_once_are_all_kept_and_seen_by_another_connection(in_a_worker, backend):
    writer, reader = backend(), backend()
    stores = [gevent.spawn(writer.put_object, "response", f"resp_{n}", {"id": f"resp_{n}", "n": n}) for n in range(50)]
    gevent.joinall(stores, timeout=5)
    assert all(store.successful() for store in stores)
    assert reader.get_object("response", "resp_7") == {"id": "resp_7", "n": 7}
    listed, has_more = reader.list_objects("response", newest_first=False, after=None, limit=100)
    assert [body["n"] for body in listed] == list(range(50)) and not has_more


def test_a_batch_past_the_limit_drops_the_oldest_objects(in_a_worker, backend, monkeypatch):
    from app.shared import local, redis_state

    monkeypatch.setattr(local, "MAX_OBJECTS", 30)
    monkeypatch.setattr(redis_state, "MAX_OBJECTS", 30)
    shared = backend()
    stores = [gevent.spawn(shared.put_object, "response", f"r{n}", {"n": n}) for n in range(120)]
    gevent.joinall(stores, timeout=5)
    listed, _ = shared.list_objects("response", newest_first=True, after=None, limit=1000)
    numbers = [body["n"] for body in listed]
    # one host prunes once past each 100th object, Redis on every one: the newest 30 are kept
    assert numbers[0] == 119 and 30 <= len(numbers) < 120
    assert numbers == sorted(numbers, reverse=True)
