"""Every example in the README and the docs, run against a live server, so a page never shows a command
that no longer works.

- Python blocks run as scripts; a block that uses ``client`` without making one gets the client of the
  Getting started page (the docs' convention, so that each example shows only its point); a block that
  defines ``test_*`` functions is a test file of the reader's project and runs under pytest through the
  plugin. ``127.0.0.1:8079`` becomes the live server's address.
- Shell blocks: ``curl`` commands run (a 4xx or 5xx fails them); ``mock-openai`` command lines are parsed by
  the real parser, so a renamed flag fails. Other commands (installing, ``scripts/test``, docker, kubectl,
  starting servers in other ways) are not run here; each kind is run by its own test (the package, the
  deployment files) or by CI itself.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from app.cli import build_parser
from tests.conftest import LiveServer, clean_env, component
from tests.docs_examples import blocks, commands

pytestmark = pytest.mark.e2e
ADDRESS = "127.0.0.1:8079"
# The client every page's examples assume, as Getting started makes it.
CLIENT = 'from openai import OpenAI\n\nclient = OpenAI(base_url="http://127.0.0.1:8079/v1", api_key="sk-anything")\n'
# A block marked <!-- docs-test: not run: REASON --> (it needs certificates, nginx, a journal entry of the
# reader's own) is left out here; its reason names the test that covers it, and test_every_block_not_run_says_why
# keeps the reasons there.
RUN = [b for b in blocks() if not b.directive.startswith("not run")]
SHELL = [b for b in RUN if b.language in ("bash", "sh", "shell")]


def server_for(block, docs_server, tmp_path):
    """The shared server, or for a block marked <!-- docs-test: server FLAGS --> one started with FLAGS."""
    if not block.directive.startswith("server"):
        return docs_server, None
    flags = shlex.split(block.directive.removeprefix("server"))
    server = LiveServer(["-w", "1", "--inter-token-latency", "0", *flags], None, tmp_path)
    return server, server


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    server = LiveServer(["-w", "2", "--inter-token-latency", "0"], None, tmp_path_factory.mktemp("docs"))
    yield server
    server.stop()


def served(code: str, server) -> str:
    return code.replace(f"http://{ADDRESS}", server.base_url).replace(ADDRESS, server.base_url.split("//")[1])


def test_every_block_not_run_says_why():
    for block in blocks():
        if block.directive.startswith("not run"):
            assert len(block.directive.removeprefix("not run:").strip()) > 10, block.name


@pytest.mark.parametrize("block", [b for b in RUN if b.language == "python"], ids=lambda b: b.name)
def test_python_examples_run(block, docs_server, tmp_path):
    docs_server, own = server_for(block, docs_server, tmp_path)
    code = block.code if "client = " in block.code or "client." not in block.code else CLIENT + block.code
    code = served(code, docs_server)
    if "def test_" in code:
        (tmp_path / "test_example.py").write_text(code)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--mock-openai-url={docs_server.base_url}",
        ]
        result = subprocess.run(command, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
    else:
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True,
                                text=True, timeout=120)  # fmt: skip
    if own:
        own.stop()
    assert result.returncode == 0, f"{block.name}\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("block", [b for b in SHELL if any(c.startswith("curl ") for c in commands(b.code))],
                         ids=lambda b: b.name)  # fmt: skip
def test_curl_examples_run_and_get_the_status_they_show(block, docs_server, tmp_path):
    """Each ``curl`` line runs in bash as written; the status must be the one its comment shows
    (``# 414, as JSON``), else a success."""
    component("curl")
    docs_server, own = server_for(block, docs_server, tmp_path)
    try:
        check_curl_lines(block, docs_server)
    finally:
        if own:
            own.stop()


def check_curl_lines(block, docs_server):
    report = "curl() { command curl -w '\\nHTTP %{http_code}\\n' \"$@\"; }; "
    for command in commands(served(block.code, docs_server)):
        if not command.startswith("curl "):
            continue
        piped = " | " in command  # its output goes on to another program: that program must succeed
        script = "set -o pipefail; " + command if piped else report + command
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{block.name}: {command}\n{result.stdout}{result.stderr}"
        if piped:
            continue
        statuses = re.findall(r"^HTTP (\d{3})$", result.stdout, re.M)
        shown = re.search(r"#\s*(\d{3})\b", command)
        assert statuses, f"{block.name}: {command}\n{result.stdout}"
        if shown:
            assert statuses[-1] == shown.group(1), f"{block.name}: {command}\n{result.stdout}"
        else:
            assert statuses[-1] < "400", f"{block.name}: {command}\n{result.stdout}"


@pytest.mark.parametrize("block", [b for b in SHELL if any(c.startswith("mock-openai ") for c in commands(b.code))],
                         ids=lambda b: b.name)  # fmt: skip
def test_mock_openai_command_lines_parse(block):
    for command in commands(block.code):
        words = shlex.split(command.rstrip("&").strip())
        if words[0] == "mock-openai" and words[1:2] != ["certs"]:
            build_parser().parse_args(words[1:])
