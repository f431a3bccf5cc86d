"""Fixtures: ``app`` and ``client`` (Flask test client), and real servers (``live_server``, ``start_server``)
that run ``mock-openai`` with gunicorn gevent workers on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app import create_app

ROOT = Path(__file__).resolve().parents[1]
MOCK_OPENAI = Path(sys.executable).with_name("mock-openai")


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(extra: dict | None = None) -> dict:
    """The environment without any mock-openai settings of the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOCK_OPENAI_", "MOCK_GPT_"))}
    env.pop("PORT", None)
    env.update(extra or {})
    return env


class LiveServer:
    """A server in its own process group on a free port: ``mock-openai`` with ``args``, or ``command`` (a whole
    command line that binds ``$PORT``, like the Procfile's)."""

    def __init__(self, args, env, cwd, scheme="http", ready_timeout=20.0, command=None, log_dir=None):
        self.port = free_port()
        self.scheme = scheme
        # In the test's own temporary folder, not always cwd: the Procfile's command runs in the repository.
        self.log_path = Path(log_dir or cwd) / f"server-{self.port}.log"
        self.log = self.log_path.open("wb")
        if command is None:
            command = [str(MOCK_OPENAI), "-a", "127.0.0.1", "-p", str(self.port), *args]
        else:
            env = {**(env or {}), "PORT": str(self.port)}
        self.process = subprocess.Popen(
            command,
            env=clean_env(env),
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base_url = f"{scheme}://127.0.0.1:{self.port}"
        self._wait_ready(ready_timeout)

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                if self.scheme == "https" or requests.get(self.base_url + "/health", timeout=2).ok:
                    return
            except (OSError, requests.RequestException):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


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
