"""The package as another project gets it: a wheel built from this checkout, installed into a fresh virtualenv
in a temporary folder, far from the clone. From there the server starts, answers, writes only into the
folder it runs in, and the pytest plugin runs a scratch project's tests, alone and with ``-n 4`` against one
shared server.

Nothing is downloaded: the fresh virtualenv gets the wheel alone (``--no-deps``) and borrows its dependencies
from the test environment's site-packages through a ``.pth`` line, which comes after its own site-packages,
so ``app`` and the plugin are the wheel's copies (checked), never the clone's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, LiveServer, clean_env

pytestmark = pytest.mark.e2e

COPIED = ("app", "pytest_mock_openai.py", "pyproject.toml", "README.md")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel .`` of a copy of the checkout (so the build writes nothing into the clone)."""
    source = tmp_path_factory.mktemp("source")
    for name in COPIED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, source / name)
    out = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    subprocess.run([*pip, str(source)], check=True, capture_output=True, timeout=120)
    (built,) = out.glob("mock_openai-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed; its dependencies borrowed from this environment."""
    folder = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=60)
    python = folder / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=120)
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], folder).strip())
    (site / "zz_borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return folder


def run(command, cwd, env=None, timeout=180) -> str:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=clean_env(env), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_wheel_ships_what_the_server_needs_at_run_time(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "app/server/gunicorn_conf.py",
        "app/config/default.toml",
        "app/config/test_scenarios.toml",
        "app/assets/corpus.txt",
        "app/ui/templates/requests.html",
        "pytest_mock_openai.py",
    ):
        assert needed in names


def test_the_installed_command_starts_answers_and_writes_nothing_into_site_packages(venv, tmp_path):
    site = venv / "lib"
    before = sorted(p for p in site.rglob("*") if "__pycache__" not in p.parts)
    where = run([venv / "bin" / "python", "-c", "import app; print(app.__file__)"], tmp_path)
    assert where.startswith(str(venv)), where
    server = LiveServer([], None, tmp_path, command=[str(venv / "bin" / "mock-openai"), "-a", "127.0.0.1", "-w", "1"])
    try:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
        reply = requests.post(server.base_url + "/v1/chat/completions", json=body, timeout=10)
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 3
        scenarios = requests.get(server.base_url + "/_mock/config", timeout=10).json()["scenarios"]
        assert "rate_limited" in scenarios  # the built-in scenarios came with the wheel
        assert requests.get(server.base_url + "/ui/requests", timeout=10).status_code == 200
    finally:
        server.stop()
    run([venv / "bin" / "mock-openai", "certs"], tmp_path)
    assert (tmp_path / "certs" / "server.crt").is_file()
    after = sorted(p for p in site.rglob("*") if "__pycache__" not in p.parts)
    assert after == before


def test_a_working_folder_config_is_read_where_the_server_runs(venv, tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "local.toml").write_text('[models]\nallow_unknown = true\n[responses]\nmode = "echo"\n')
    server = LiveServer([], None, tmp_path, command=[str(venv / "bin" / "mock-openai"), "-a", "127.0.0.1", "-w", "1"])
    try:
        body = {"model": "my-own-model", "messages": [{"role": "user", "content": "echo me"}]}
        reply = requests.post(server.base_url + "/v1/chat/completions", json=body, timeout=10).json()
        assert reply["model"] == "my-own-model" and reply["choices"][0]["message"]["content"] == "echo me"
    finally:
        server.stop()


# A project of the user's own, with its own package named ``app`` (as many Flask projects have).
PROJECT_APP = """
def create_app():
    return "the project's own app"
"""

PROJECT_TESTS = """
import openai
import pytest

from app import create_app


def test_the_project_keeps_its_own_app_package():
    assert create_app() == "the project's own app"


@pytest.mark.parametrize("n", range(8))
def test_a_fault_reaches_only_its_own_test(mock_openai, n):
    client = mock_openai.client.with_options(max_retries=0)
    ask = dict(model="gpt-4o", messages=[{"role": "user", "content": f"test {n}"}], max_tokens=2)
    if n % 2:
        mock_openai.fault("500", count=2)
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(**ask)
        assert [e.status for e in mock_openai.requests()] == [500, 500]
    for _ in range(3):
        assert client.chat.completions.create(**ask).choices[0].finish_reason == "length"
    assert [e.status for e in mock_openai.requests()][:3] == [200, 200, 200]
"""

CONFIGURE_TEST = """
import pytest


def test_configure_on_a_shared_server_says_why_not(mock_openai):
    with pytest.raises(RuntimeError, match="cannot be scoped to one test"):
        mock_openai.configure({"latency": {"ttft_ms": 100}})
"""


def scratch_project(folder: Path) -> Path:
    (folder / "app").mkdir(parents=True)
    (folder / "app" / "__init__.py").write_text(PROJECT_APP)
    (folder / "tests").mkdir()
    (folder / "tests" / "test_with_mock.py").write_text(PROJECT_TESTS)
    (folder / "pyproject.toml").write_text('[tool.pytest.ini_options]\nmock_openai_args = "-w 1"\n')
    return folder


def test_the_plugin_runs_a_projects_tests_from_the_installed_package(venv, tmp_path):
    project = scratch_project(tmp_path / "project")
    out = run([venv / "bin" / "python", "-m", "pytest", "-p", "no:cacheprovider", "-q"], project)
    assert "9 passed" in out, out


def test_the_plugin_with_four_xdist_workers_against_one_shared_server(venv, tmp_path, start_server):
    server = start_server("-w", "2", "--inter-token-latency", "0")
    project = scratch_project(tmp_path / "project")
    (project / "tests" / "test_configure.py").write_text(CONFIGURE_TEST)
    command = [venv / "bin" / "python", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "4"]
    out = run([*command, f"--mock-openai-url={server.base_url}"], project)
    assert "10 passed" in out, out
    assert requests.get(server.base_url + "/_mock/faults", timeout=10).json()["pending"] == 0


def test_the_module_form_runs_too(venv, tmp_path):
    server = LiveServer([], None, tmp_path, command=[str(venv / "bin" / "python"), "-m", "app.cli", "-w", "1"])
    try:
        assert requests.get(server.base_url + "/health", timeout=5).ok
    finally:
        server.stop()
