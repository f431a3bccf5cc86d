"""The ``mock_openai`` pytest fixture: a real server for a test suite, and what it saw, as Python objects.

Installed with the package (entry point ``pytest11``), so any project that has ``mock-openai`` installed can
write::

    def test_summary(mock_openai):
        reply = mock_openai.client.chat.completions.create(model="gpt-4o", messages=[...])
        assert mock_openai.last_request().body["model"] == "gpt-4o"

One server per test session (gunicorn with gevent workers on a free port), started on first use; or, with
``--mock-openai-url URL`` (or ``MOCK_OPENAI_URL``), a server that is already running, which is how several
pytest-xdist workers share one. Every request the fixture's clients send carries ``X-Mock-Test-Id`` (the
test's node id), and the journal reads are filtered by it, so tests running side by side do not see each
other's requests. A ``fault()`` is queued for the calling test's requests only, and cleared after it.
``configure()`` changes the whole server's settings (they cannot be scoped to one test's requests): it is
undone after the test, and refused where tests run side by side on one shared server.

This module imports nothing from the server's package (``app``): the project under test may have its own.

Flags for the server it starts: the ``mock_openai_args`` ini option (``mock_openai_args = -w 2 --any-model``)
or ``--mock-openai-args``.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

MOCK_OPENAI = Path(sys.executable).with_name("mock-openai")
TEST_ID_HEADER = "X-Mock-Test-Id"


def server_command() -> list[str]:
    """The ``mock-openai`` command of this Python: its script in a virtualenv, else the module."""
    return [str(MOCK_OPENAI)] if MOCK_OPENAI.exists() else [sys.executable, "-m", "app.cli"]


# --- a server on a free port ------------------------------------------------------------------------------


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
    command line that binds ``$PORT``, like the Procfile's). Its output goes to ``server-<port>.log`` in
    ``log_dir`` (by default ``cwd``), never into a checkout."""

    def __init__(self, args, env, cwd, scheme="http", ready_timeout=20.0, command=None, log_dir=None):
        self.port = free_port()
        self.scheme = scheme
        self.log_path = Path(log_dir or cwd) / f"server-{self.port}.log"
        self.log = self.log_path.open("wb")
        if command is None:
            command = [*server_command(), "-a", "127.0.0.1", "-p", str(self.port), *args]
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
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


# --- what a test holds ------------------------------------------------------------------------------------


class Entry(dict):
    """One journal entry (the JSON of ``GET /_mock/requests``), with shortcuts: ``body`` (the request's
    JSON), ``response_body``, ``text`` (a stream's assembled text, or a reply's message content)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def body(self):
        return self["request"]["body"]

    @property
    def response_body(self):
        return self["response"]["body"]

    @property
    def text(self) -> str | None:
        response = self["response"]
        if self["stream"]:
            return response.get("text")
        body = response.get("body")
        if not isinstance(body, dict):
            return None
        if body.get("type") == "message":  # Anthropic
            return "".join(b.get("text", "") for b in body.get("content") or () if b.get("type") == "text") or None
        if "candidates" in body:  # Gemini
            try:
                parts = body["candidates"][0]["content"]["parts"]
            except (KeyError, IndexError, TypeError):
                return None
            return "".join(p.get("text", "") for p in parts if not p.get("thought")) or None
        try:
            choice = body["choices"][0]
        except (TypeError, KeyError, IndexError):
            return None
        return choice["message"]["content"] if "message" in choice else choice.get("text")


AZURE_API_VERSION = "2024-10-21"  # the newest GA data-plane version


class MockOpenAI:
    """A test's handle on the server: URLs, ready clients, the journal of its own requests, runtime control."""

    def __init__(self, url: str, test_id: str, token: str = "", shared: bool = False):
        self.url = url.rstrip("/")
        self.shared = shared  # other test processes use this server at the same time
        self.base_url = self.url + "/v1"
        self.test_id = test_id
        self.token = token
        self.headers = {TEST_ID_HEADER: test_id}  # for a client of your own (httpx, requests, LangChain)
        self._http = requests.Session()
        self._http.headers.update(self.headers)
        if token:
            self._http.headers["Authorization"] = f"Bearer {token}"
        self._changed_config = self._added_faults = False
        self._client = self._async_client = None
        self._format_clients: dict = {}

    @property
    def client(self):
        """An ``openai.OpenAI`` client for this server, tagging its requests with this test's id."""
        if self._client is None:
            import openai

            self._client = openai.OpenAI(
                base_url=self.base_url, api_key=self.token or "sk-mock-openai", default_headers=self.headers
            )
        return self._client

    @property
    def anthropic_client(self):
        """An ``anthropic.Anthropic`` client for this server's Messages API (needs the ``anthropic`` package)."""

        def make():
            import anthropic

            return anthropic.Anthropic(
                base_url=self.url, api_key=self.token or "sk-ant-mock", default_headers=self.headers
            )

        return self._made("anthropic", make)

    @property
    def azure_client(self):
        """An ``openai.AzureOpenAI`` client for this server's Azure routes; ``model`` names the deployment."""

        def make():
            import openai

            return openai.AzureOpenAI(
                azure_endpoint=self.url,
                api_key=self.token or "azure-mock",
                api_version=AZURE_API_VERSION,
                default_headers=self.headers,
            )

        return self._made("azure", make)

    @property
    def gemini_client(self):
        """A ``google.genai.Client`` for this server's Gemini API (needs the ``google-genai`` package)."""

        def make():
            from google import genai
            from google.genai import types

            options = types.HttpOptions(base_url=self.url, headers=dict(self.headers))
            return genai.Client(api_key=self.token or "gemini-mock", http_options=options)

        return self._made("gemini", make)  # held: a Gemini client let go closes its connections

    def _made(self, name: str, make):
        client = self._format_clients.get(name)
        if client is None:
            client = self._format_clients[name] = make()
        return client

    @property
    def async_client(self):
        if self._async_client is None:
            import openai

            self._async_client = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self.token or "sk-mock-openai", default_headers=self.headers
            )
        return self._async_client

    def _call(self, method: str, path: str, **kwargs):
        response = self._http.request(method, self.url + path, timeout=30, **kwargs)
        if not response.ok:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    # --- the journal ------------------------------------------------------------------------------------------
    def requests(self, all_tests: bool = False, limit: int | None = None, **filters) -> list[Entry]:
        """This test's requests, newest first, filtered like ``GET /_mock/requests`` (``path``, ``method``,
        ``status``, ``model``, ``stream``, ``q``, ``since``); ``all_tests`` shows every test's."""
        params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in filters.items() if v is not None}
        if not all_tests:
            params["test_id"] = self.test_id
        found: list[Entry] = []
        cursor = None
        while True:
            page = self._call("GET", "/_mock/requests", params={**params, "limit": 1000, "cursor": cursor})
            found.extend(Entry(item) for item in page["data"])
            if not page["has_more"] or (limit is not None and len(found) >= limit):
                return found[:limit] if limit is not None else found
            cursor = page["next_cursor"]

    def last_request(self, **filters) -> Entry | None:
        """This test's newest request (matching the filters), or None."""
        found = self.requests(limit=1, **filters)
        return found[0] if found else None

    def request(self, entry_id: int) -> Entry:
        """One entry in full, with a stream's events and their times (``response["stream_events"]``)."""
        return Entry(self._call("GET", f"/_mock/requests/{entry_id}"))

    def stats(self, since: float | None = None) -> dict:
        """``GET /_mock/stats``: the whole server's, not only this test's."""
        return self._call("GET", "/_mock/stats", params={"since": since} if since is not None else None)

    # --- runtime control ----------------------------------------------------------------------------------
    def configure(self, patch: dict) -> dict:
        """``PATCH /_mock/config`` (a JSON merge patch of responses, latency, faults, rate_limits), undone after
        the test. It changes the settings of every request the server serves, not only this test's: so it is
        refused on a server shared by parallel tests (pytest-xdist with ``--mock-openai-url``). There, use
        ``fault()`` (scoped to this test) or the ``X-Mock-*`` request headers (scoped to one request)."""
        if self.shared:
            raise RuntimeError(
                "mock_openai.configure() changes the whole server's settings, which cannot be scoped to one test, "
                "and this server is shared by parallel tests (pytest-xdist with --mock-openai-url). Use "
                "mock_openai.fault() (this test's requests only), X-Mock-* request headers (one request), or let "
                "each xdist worker start its own server (drop --mock-openai-url)."
            )
        self._changed_config = True
        return self._call("PATCH", "/_mock/config", json=patch)

    def fault(self, error: str, count: int = 1, model: str | None = None, after: int | None = None) -> dict:
        """Queue a one-shot fault for this test's next ``count`` requests (to ``model``, or any): ``"429"``,
        ``"500"``, ``"disconnect"`` after ``after`` tokens, ...; only requests tagged with this test's id (its
        clients' requests) catch it, and what is left of it is cleared after the test."""
        self._added_faults = True
        fault = {"error": error, "count": count, "model": model, "after": after, "test_id": self.test_id}
        return self._call("POST", "/_mock/faults", json={k: v for k, v in fault.items() if v is not None})

    def reset(self) -> None:
        """Undo this test's runtime changes now."""
        if self._changed_config:
            self._call("DELETE", "/_mock/config")
            self._changed_config = False
        if self._added_faults:
            self._call("DELETE", "/_mock/faults", params={"test_id": self.test_id})
            self._added_faults = False

    def close(self) -> None:
        self.reset()
        for client in (self._client,):
            if client is not None:
                client.close()
        self._http.close()


# --- pytest -----------------------------------------------------------------------------------------------


def pytest_addoption(parser):
    group = parser.getgroup("mock-openai")
    group.addoption("--mock-openai-url", help="use this running mock-openai server (also MOCK_OPENAI_URL)")
    group.addoption("--mock-openai-args", help="flags for the server the mock_openai fixture starts")
    group.addoption("--mock-openai-token", help="the server's [auth] token, if it has one")
    parser.addini("mock_openai_args", "flags for the server the mock_openai fixture starts", default="")


@pytest.fixture(scope="session")
def mock_openai_server(pytestconfig):
    """``(url, token, shared)`` of the session's server: one given by URL (``shared`` when pytest-xdist runs
    this session's tests beside others against it), else one started now and stopped at the end."""
    url = pytestconfig.getoption("--mock-openai-url") or os.environ.get("MOCK_OPENAI_URL")
    token = pytestconfig.getoption("--mock-openai-token") or os.environ.get("MOCK_OPENAI_TOKEN", "")
    if url:
        yield url, token, bool(os.environ.get("PYTEST_XDIST_WORKER"))
        return
    args = shlex.split(pytestconfig.getoption("--mock-openai-args") or pytestconfig.getini("mock_openai_args"))
    if "--token" in args[:-1]:
        token = token or args[args.index("--token") + 1]
    folder = tempfile.mkdtemp(prefix="mock-openai-pytest-")
    server = LiveServer(args, None, folder)
    try:
        yield server.base_url, token, False
    finally:
        server.stop()


@pytest.fixture
def mock_openai(mock_openai_server, request):
    """This test's :class:`MockOpenAI`."""
    url, token, shared = mock_openai_server
    mock = MockOpenAI(url, request.node.nodeid, token, shared)
    yield mock
    mock.close()
