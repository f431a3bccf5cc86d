"""The deployment files (Dockerfile, deploy/compose.yaml, deploy/k8s/, deploy/nginx.conf): what can be checked
without a container engine or a cluster. Every setting they pass is one the server reads, the health check
they call answers for a live server and fails for a dead one, and nginx accepts the balancer's config."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from app.config import load_settings
from pytest_mock_openai import clean_env, free_port
from tests.conftest import ROOT, component


def _compose_env() -> dict:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    return compose["services"]["mock-openai"]["environment"]


def _k8s_env() -> dict:
    manifest = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "mock-openai.yaml").read_text()))
    (deployment,) = [m for m in manifest if m["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def _dockerfile_env() -> dict:
    text = (ROOT / "Dockerfile").read_text()
    block = re.search(r"^ENV (.+?)\n(?=\S)", text, re.S | re.M).group(1)
    return dict(re.findall(r"(MOCK_OPENAI_\w+)=(\S+)", block))


@pytest.mark.parametrize("read", [_compose_env, _k8s_env, _dockerfile_env])
def test_every_setting_the_deployment_files_pass_is_read(read):
    environ = read()
    assert environ and all(name.startswith("MOCK_OPENAI_") for name in environ)
    settings = load_settings(environ=environ)
    names = {
        f"MOCK_OPENAI_{section.upper()}_{key.upper()}": (section, key)
        for section in ("server", "shared")
        for key in getattr(settings, section)
    }
    for name, value in environ.items():
        section, key = names[name]  # a name the loader does not know would be silently ignored
        read = getattr(settings, section)[key]
        assert read == type(read)(value)


def test_the_image_health_check_answers_for_a_live_server_and_fails_for_a_dead_one(live_server):
    def check(port):
        env = clean_env({"MOCK_OPENAI_SERVER_PORT": str(port)})
        return subprocess.run([sys.executable, "-m", "app.server.healthcheck"], env=env, cwd=ROOT, capture_output=True)

    assert check(live_server.port).returncode == 0
    dead = check(free_port())
    assert dead.returncode == 1 and b"Connection refused" in dead.stderr


def test_nginx_accepts_the_balancer_config(tmp_path):
    binary = component("nginx")
    # the compose service's name resolves only inside compose: an address stands in for it here
    conf = (ROOT / "deploy" / "nginx.conf").read_text().replace("mock-openai:8079", "127.0.0.1:8079")
    (tmp_path / "nginx.conf").write_text(conf)
    test = subprocess.run(
        [binary, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
         "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert test.returncode == 0, test.stderr
