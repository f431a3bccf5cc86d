"""The official SDK's own test files for files, batches and responses (from the pinned ``openai`` sdist, which
``scripts/test`` puts in ``.cache/``), run against a live server instead of the SDK's Prism mock. Those tests
call every method with made-up values (``file_id``, ``batch_id``, ``limit=0``), so many of their requests are
ones the real API refuses too: each failure must be one of those refusals, named below with the reason the
real API gives, and everything else must pass, with the SDK's strict and loose clients, sync and async."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_mock_openai import LiveServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / ".cache" / f"openai-{importlib.metadata.version('openai')}"
FILES = ("test_files.py", "test_batches.py", "test_responses.py")
# What the real API refuses as well: the SDK's tests send these values to show each parameter, not to succeed.
REFUSED_AS_BY_THE_REAL_API = {
    r"No such File object: (file_id|input_file_id)": "an id that names no file",
    r"No batch found with id 'batch_id'": "an id that names no batch",
    r"Response with id 'resp_677efb5139a88190b512bc3fef8e535d' not found": "an id that names no response",
    r"Previous response with id 'resp_123' not found": "a previous_response_id that names no response",
    r"Invalid 'limit': integer below minimum value": "limit=0 (lists take 1 and up)",
    r"Missing required parameter: 'model'": "responses.create() with no model",
    r"Cannot use both 'previous_response_id' and 'conversation'": "the two ways of continuing, at once",
}
MUST_PASS = ("test_method_compact", "test_raw_response_compact", "test_streaming_response_compact",
             "test_method_create", "test_method_create_with_all_params", "test_method_list")  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Any model: the SDK's tests name models of today (gpt-5.6-sol, gpt-6-astra) that the real API serves.
    live = LiveServer(["-w", "2", "--inter-token-latency", "0", "--any-model"], None, tmp_path_factory.mktemp("sdk"))
    yield live
    live.stop()


def test_the_sdks_own_tests_pass_wherever_the_real_api_accepts_the_request(server, tmp_path):
    assert (SDK / "tests" / "api_resources").is_dir(), f"{SDK} is missing: scripts/test fetches it"
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *(f"tests/api_resources/{name}" for name in FILES), "-o", "addopts=",
         "-p", "no:cacheprovider", "-q", f"--junitxml={report}"],
        cwd=SDK,
        env={**os.environ, "TEST_API_BASE_URL": server.base_url + "/v1"},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    cases = ET.parse(report).getroot().iter("testcase")
    passed, unexplained, refused = [], [], {reason: 0 for reason in REFUSED_AS_BY_THE_REAL_API.values()}
    for case in cases:
        name = f"{case.get('classname')}.{case.get('name')}"
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if case.find("skipped") is not None:
            continue
        if problem is None:
            passed.append(name)
            continue
        text = (problem.get("message") or "") + (problem.text or "")
        reason = next((r for p, r in REFUSED_AS_BY_THE_REAL_API.items() if re.search(p, text)), None)
        if reason is None:
            unexplained.append(f"{name}: {problem.get('message')}")
        else:
            refused[reason] += 1
    assert not unexplained, "\n".join(unexplained[:20]) + "\n" + run.stdout[-3000:]
    for test in MUST_PASS:  # in each file that has it, for every client the SDK's tests make
        assert any(re.search(rf"\.{test}\[", name) for name in passed), test
    assert len(passed) >= 120, (len(passed), refused)
