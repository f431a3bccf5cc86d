"""The worker's connection greenlets (app/server/connections.py): one greenlet serves one connection after another,
behind gevent's own server, and the pool still counts, joins and kills what it serves as gevent's Pool does."""

from __future__ import annotations

import gevent
from gevent import GreenletExit, getcurrent, socket
from gevent.event import Event
from gevent.server import StreamServer

from app.server.connections import ConnectionPool
from tests.hubs import own_hub


def served_by(pool: ConnectionPool, connections: int, at_once: bool = False):
    """Greenlets that served ``connections`` real connections to a gevent StreamServer spawning into ``pool``, and
    what each connection found set on its greenlet when it began."""
    seen, found = [], []
    all_in = Event()  # at once: no connection ends before every one has begun

    def handle(client, _address):
        connection = getcurrent()
        found.append(getattr(connection, "served_first_request", None))
        connection.served_first_request = True  # as the worker marks its connections
        seen.append(connection)
        if at_once:
            if len(seen) == connections:
                all_in.set()
            all_in.wait(5)
        client.sendall(client.recv(16))

    server = StreamServer(("127.0.0.1", 0), handle, spawn=pool)
    server.start()
    port = server.address[1]

    def talk():
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"ping")
            assert client.recv(16) == b"ping"

    if at_once:
        gevent.joinall([gevent.spawn(talk) for _ in range(connections)], raise_error=True)
    else:
        for _ in range(connections):
            talk()
            gevent.sleep(0.001)  # the connection's greenlet ends its connection
    gevent.sleep(0.01)
    server.stop()
    return seen, found


@own_hub
def test_one_greenlet_serves_connection_after_connection_with_nothing_left_from_the_last():
    pool = ConnectionPool(100)
    seen, found = served_by(pool, 5)
    assert len(seen) == 5
    assert len(set(map(id, seen))) == 1  # one greenlet, reused
    assert found == [None] * 5  # what a connection set on its greenlet went with it
    assert pool.free_count() == pool.size and len(pool) == 0
    assert pool.idle == [seen[0]]


@own_hub
def test_connections_at_once_each_get_a_greenlet_and_at_most_max_idle_wait_afterwards():
    pool = ConnectionPool(100, max_idle=3)
    seen, _ = served_by(pool, 8, at_once=True)
    assert len(set(map(id, seen))) == 8
    assert len(pool.idle) == 3 and all(not g.dead for g in pool.idle)
    assert sum(g.dead for g in seen) == 5  # the others ended, as gevent's own would have
    assert len(pool) == 0


@own_hub
def test_the_pool_counts_a_greenlet_only_while_it_serves():
    pool = ConnectionPool(4)
    release = Event()
    busy = [pool.spawn(release.wait) for _ in range(4)]
    gevent.sleep(0)
    assert pool.full() and pool.free_count() == 0 and len(pool) == 4
    release.set()
    pool.join(timeout=1)
    assert pool.free_count() == 4 and not pool.full()
    assert sorted(map(id, pool.idle)) == sorted(map(id, busy))


@own_hub
def test_a_failing_connection_is_reported_as_gevent_reports_it_and_its_greenlet_serves_on():
    pool = ConnectionPool(10)
    reported = []
    hub = gevent.get_hub()
    hub.handle_error = lambda context, kind, value, tb: reported.append((context.args, kind))

    def fail(*_args):
        raise ValueError("boom")

    first = pool.spawn(fail, "client", ("127.0.0.1", 1))
    gevent.sleep(0.001)
    assert reported == [(("client", ("127.0.0.1", 1)), ValueError)]
    ran = []
    second = pool.spawn(lambda: ran.append(getcurrent()))
    gevent.sleep(0.001)
    assert second is first and ran == [first] and len(pool) == 0


@own_hub
def test_killing_a_connection_ends_its_greenlet_and_frees_its_slot():
    pool = ConnectionPool(10)
    connection = pool.spawn(gevent.sleep, 30)
    gevent.sleep(0)
    pool.kill(timeout=1)
    assert connection.dead and len(pool) == 0 and pool.free_count() == 10
    assert connection not in pool.idle


@own_hub
def test_a_late_exception_meant_for_an_ended_connection_leaves_the_waiting_greenlet_waiting():
    pool = ConnectionPool(10)
    connection = pool.spawn(lambda: None)
    gevent.sleep(0.001)
    assert pool.idle == [connection]
    connection.kill(OSError("closed: the worker is stopping"), block=False)  # a kill that comes too late
    gevent.sleep(0.001)
    assert not connection.dead and pool.idle == [connection]
    ran = []
    assert pool.spawn(ran.append, 1) is connection
    gevent.sleep(0.001)
    assert ran == [1]
    connection.kill(GreenletExit, block=True, timeout=1)  # (killed while waiting: it ends and leaves the list)
    assert connection.dead and pool.idle == []


def test_gunicorns_gevent_worker_makes_its_pools_by_the_name_the_worker_replaces():
    # MockOpenAIWorker.run sets gunicorn.workers.ggevent.Pool; were gunicorn to make its pools otherwise, every
    # connection would quietly get a greenlet of its own again.
    import inspect

    from gunicorn.workers import ggevent

    assert "Pool(self.worker_connections)" in inspect.getsource(ggevent.GeventWorker.run)


@own_hub
def test_a_full_pool_accepts_again_once_a_connection_ends():
    # gevent's server stops accepting while the pool is full and starts again when a slot is given back: the
    # slot a connection frees as its greenlet goes back to waiting.
    pool = ConnectionPool(2)
    release, served = Event(), []

    def handle(client, _address):
        served.append(getcurrent())
        if len(served) <= 2:
            release.wait(5)
        client.sendall(client.recv(16))

    server = StreamServer(("127.0.0.1", 0), handle, spawn=pool)
    server.start()

    def talk():
        with socket.create_connection(("127.0.0.1", server.address[1])) as client:
            client.sendall(b"ping")
            return client.recv(16)

    talks = [gevent.spawn(talk) for _ in range(3)]
    gevent.sleep(0.05)
    assert len(served) == 2 and pool.full()  # the third waits, unaccepted
    release.set()
    gevent.joinall(talks, timeout=5, raise_error=True)
    assert [t.value for t in talks] == [b"ping"] * 3
    assert len(served) == 3 and served[2] in served[:2]  # served by a greenlet that had ended its connection
    server.stop()
