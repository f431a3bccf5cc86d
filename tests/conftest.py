"""Fixtures: ``app`` and ``client`` (Flask test client), and real servers (``live_server``, ``start_server``)
that run ``mock-openai`` with gunicorn gevent workers on a free port, through the one ``LiveServer`` that the
package's pytest plugin also uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import create_app
from app.pytest_plugin import MOCK_OPENAI, LiveServer, clean_env, free_port  # noqa: F401 (the tests' helpers)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app():
    """The app with defaults, but no pacing so streams return at once."""
    return create_app({"latency": {"inter_token_latency_ms": 0}})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_client():
    """A test client for an app built with the given config overrides."""

    def make(overrides: dict):
        return create_app(overrides).test_client()

    return make


@pytest.fixture
def start_server(tmp_path):
    """Start ``mock-openai`` with the given flags (and environment); stopped after the test."""
    servers = []

    def start(*args, env=None, cwd=None, scheme="http", command=None):
        server = LiveServer(list(args), env, cwd or tmp_path, scheme=scheme, command=command, log_dir=tmp_path)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """One shared server: two gevent workers, 1 ms between tokens."""
    server = LiveServer(["-w", "2", "--inter-token-latency", "1"], None, tmp_path_factory.mktemp("live"))
    yield server
    server.stop()
