"""Fixtures: ``app`` and ``client`` (Flask test client), and real servers (``live_server``, ``start_server``)
that run ``mock-openai`` with gunicorn gevent workers on a free port, through the one ``LiveServer`` that the
package's pytest plugin also uses."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from app import create_app
from pytest_mock_openai import MOCK_OPENAI, LiveServer, clean_env, free_port  # noqa: F401 (the tests' helpers)

ROOT = Path(__file__).resolve().parents[1]
# The components the end-to-end tests drive, each with the Debian package that brings it. scripts/test
# installs them; a test that finds one missing fails saying so (it is never skipped in silence).
COMPONENTS = {
    "nginx": ("nginx-light", ["/usr/sbin/nginx"]),
    "redis-server": ("redis-server", ["/usr/bin/redis-server"]),
    "chromium": ("chromium", ["/usr/bin/chromium"]),
    "curl": ("curl", ["/usr/bin/curl"]),
}


def component(name: str) -> str:
    """The path of a program a test needs, or the test fails with the line that installs it."""
    package, places = COMPONENTS[name]
    found = shutil.which(name) or next((p for p in places if Path(p).exists()), None)
    if found is None:
        pytest.fail(
            f"{name} is needed by this test and is not installed. scripts/test installs it, or run: "
            f"sudo apt-get install -y {package}",
            pytrace=False,
        )
    return found


@pytest.fixture
def app():
    """The app with defaults, but no pacing so streams return at once."""
    return create_app(UNPACED)


@pytest.fixture
def client(app):
    return app.test_client()


# As the app fixture: no pacing, so a reply of the default 1,000 tokens does not wait 10 s. A test about
# timing sets its own latency.
UNPACED = {"latency": {"inter_token_latency_ms": 0}}


@pytest.fixture
def make_client():
    """A test client for an app built with the given config overrides (unpaced unless they set latency)."""

    def make(overrides: dict):
        latency = UNPACED["latency"] | overrides.get("latency", {})
        return create_app({**overrides, "latency": latency}).test_client()

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


def start_redis(folder, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """A real ``redis-server`` (Debian's) on a free port (or ``port``: one that went away, back), saving nothing
    to disk, once it answers PING."""
    import redis

    binary = component("redis-server")
    port = port or free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
            time.sleep(0.02)
    client.close()
    return process, f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """One Redis for the session; tests keep apart by key prefix."""
    process, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture(params=["local", "redis"])
def each_backend(request) -> dict:
    """App settings for each backend of the shared state in turn: the one-host default, then the session's
    Redis under a key prefix of this test's own."""
    if request.param == "local":
        return {}
    return {"shared": {"redis_url": request.getfixturevalue("redis_url"), "redis_prefix": uuid.uuid4().hex}}
