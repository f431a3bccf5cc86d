"""gunicorn's gevent worker, with the connection limits of the original mock server.

- ``[server] client_request_timeout`` (``--client-request-timeout``): how long a new connection may take to
  send its first request head; a connection that sends none in time is closed. Between two requests on a
  kept-alive connection the limit is ``[server] keepalive``.
- ``[server] max_connection_rate`` (``--max-connection-rate``): new connections each worker starts serving per
  second; a burst of that many is served at once and later ones wait for their turn. 0 turns it off.
"""

from __future__ import annotations

from time import monotonic

import gevent
from gunicorn.workers.ggevent import GeventWorker

from app.config import load_settings


class ConnectionRate:
    """A token bucket: ``rate`` connections a second, bursts of up to ``rate``."""

    def __init__(self, rate: float):
        self.rate = rate
        self.tokens = rate
        self.updated = monotonic()

    def wait_turn(self) -> None:
        now = monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate) - 1
        self.updated = now
        if self.tokens < 0:  # the turn is reserved; sleep until it comes
            gevent.sleep(-self.tokens / self.rate)


class MockOpenAIWorker(GeventWorker):
    def init_process(self):
        server = load_settings().server
        self.client_request_timeout = server["client_request_timeout"]
        rate = server["max_connection_rate"]
        self.connection_rate = ConnectionRate(rate) if rate else None
        super().init_process()

    def timeout_ctx(self):
        connection = gevent.getcurrent()  # one greenlet per connection
        if getattr(connection, "served_first_request", False):
            return gevent.Timeout(self.cfg.keepalive, False)
        connection.served_first_request = True
        return gevent.Timeout(self.client_request_timeout, False)

    def handle(self, listener, client, addr):
        if self.connection_rate is not None:
            self.connection_rate.wait_turn()
        super().handle(listener, client, addr)
