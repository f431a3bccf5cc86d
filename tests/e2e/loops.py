"""Servers on either connection loop, for the tests that run both: the worker's lean loop (app/server/http1.py)
and gunicorn's own. gunicorn is started with a config file of the project's settings plus an access log
format of every atom that is the same from run to run, and, for gunicorn's own loop, a request hook
(``pre_request`` or ``post_request``): the lean loop runs neither, so with one, gunicorn's loop serves every
connection. The hook says so in the log (:data:`OWN_LOOP_MARK`), so a test can check which loop served it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
OWN_LOOP_MARK = "a request hook ran: gunicorn's own loop"
ACCESS_LOG_FORMAT = (
    '%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s %(B)s %(m)s %(U)s %(q)s %(H)s "%(f)s" "%(a)s" '
    '"%({content-type}i)s" %({x-test-case}i)s "%({content-type}o)s" %({content-length}o)s %({REQUEST_METHOD}e)s'
)
# An access line in that format: h l u r s b B m U q H f a, then the headers and the environ's atom
ACCESS_LINE = re.compile(
    r'(?P<h>\S+) (?P<l>\S+) (?P<u>\S+) "(?P<r>[^"]*)" (?P<s>\d+) (?P<b>\S+) (?P<B>\S+) (?P<m>\S+) (?P<U>\S+) '
    r'(?P<q>\S*) (?P<H>\S+) "(?P<f>[^"]*)" "(?P<a>[^"]*)" "(?P<type_in>[^"]*)" (?P<test_in>\S+) '
    r'"(?P<type_out>[^"]*)" (?P<length_out>\S+) (?P<method_env>\S+)'
)
CONFIG = """
import importlib.util
import runpy

globals().update(runpy.run_path(importlib.util.find_spec("app.server.gunicorn_conf").origin))
access_log_format = {format!r}
"""
HOOK = """
def {hook}(worker, req, *rest):
    worker.log.warning("%s (%s): %s %s", {mark!r}, {hook!r}, req.method, req.path)
"""


def start(tmp_path: Path, own_loop: bool, env=None, hook: str = "pre_request", settings: str = ""):
    """A LiveServer with one worker, no latency and the access log on, served by the loop asked for (gunicorn's
    own by way of ``hook``); ``settings``, more lines of gunicorn settings."""
    from pytest_mock_openai import LiveServer

    config = tmp_path / "gunicorn.conf.py"
    hooked = HOOK.format(hook=hook, mark=OWN_LOOP_MARK) if own_loop else ""
    config.write_text(CONFIG.format(format=ACCESS_LOG_FORMAT) + hooked + settings)
    env = {
        "MOCK_OPENAI_SERVER_WORKERS": "1",
        "MOCK_OPENAI_SERVER_HOST": "127.0.0.1",
        "MOCK_OPENAI_SERVER_ACCESS_LOG": "true",
        "MOCK_OPENAI_LATENCY_INTER_TOKEN_LATENCY_MS": "0",
        **(env or {}),
    }
    command = [sys.executable, "-m", "gunicorn", "-c", str(config), "--chdir", str(CHECKOUT), "wsgi:app"]
    return LiveServer([], env, tmp_path, command=command)
