"""gunicorn settings, read from the project's one config loader (:mod:`app.config`).

``mock-openai`` runs this file in-process, wherever the package is installed; a clone's top-level
``gunicorn.conf.py`` runs it too, for ``gunicorn -c gunicorn.conf.py wsgi:app``. gunicorn executes a config
file afresh on each start and reload (SIGHUP), so both read the settings again then.
"""

import atexit
import os
import resource
import secrets
import socket
import sys
import time

from app import metrics
from app.config import ConfigError, load_settings
from app.replies.scripted import load_rules
from app.server import tls
from app.shared import PATH_ENV, open_configured, shared_path
from app.shared.redis_state import INSTANCE_ENV, connect_redis
from app.textgen import Corpus, CorpusError
from app.tokens import load_vocabularies

try:
    settings = load_settings()
    Corpus.from_file(settings.corpus_path)  # fail here, once, rather than in every worker
    tls.check(settings.tls)
    if settings.responses["mode"] == "scripted":
        load_rules(settings.responses["rules_path"])
except (ConfigError, CorpusError) as exc:
    sys.exit(f"mock-openai: {exc}")

# The exact tokenizer's vocabularies (bpe-openai, where installed), loaded once here: the workers fork with
# them and share their pages, where each loaded its own (about 60 MB and half a second of CPU a worker).
load_vocabularies()

if settings.shared["redis_url"]:  # several instances share one Redis: say so now if it cannot be reached
    try:
        connect_redis(settings.shared["redis_url"]).ping()
    except Exception as exc:  # noqa: BLE001 (any failure to reach it stops the start)
        sys.exit(f"mock-openai: cannot reach Redis at {settings.shared['redis_url']} ([shared] redis_url): {exc}")

# State the workers share (app/shared): one file made here, in the master, before any worker forks; workers
# inherit its path as [shared] path. A reload (SIGHUP) runs this file again in the same master: keep it.
if os.environ.get(PATH_ENV + "_OWNER") != str(os.getpid()):
    os.environ[PATH_ENV] = shared_path(settings.shared["path"])
    os.environ[PATH_ENV + "_OWNER"] = str(os.getpid())
    os.environ["MOCK_OPENAI_STARTED_AT"] = str(time.time())  # the web UI's uptime
    # This server's name among instances sharing one Redis: its workers' pids may repeat on other hosts.
    os.environ[INSTANCE_ENV] = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    if settings.metrics["enabled"]:  # /metrics sums the workers' values from files in this folder
        metrics.prepare_multiprocess_dir()

server = settings.server
host = f"[{server['host']}]" if ":" in server["host"] else server["host"]
bind = [f"{host}:{server['port']}"]
workers = server["workers"]
# gunicorn's gevent worker, extended with the original's connection limits (app/server/worker.py).
worker_class = "app.server.worker.MockOpenAIWorker"
# Sizes each worker's gevent pool: the number of connections (and so streams) it holds at once.
worker_connections = server["max_connections"]
# The kernel's queue of connections not yet accepted, as long as the connections a worker holds (the kernel caps
# it at net.core.somaxconn, 4096 on current Linux): a load test that opens them all at once (wrk -c 10000) is not
# cut at gunicorn's 2,048, whose overflow waits for the client's SYN retries (1 s, then 3 s) and left the worker
# idle meanwhile (10,000 streams at once: ~2,500 against ~2,950 streams a second, alternating runs).
backlog = max(2048, worker_connections)
timeout = int(server["timeout"])
graceful_timeout = int(server["graceful_timeout"])
keepalive = int(server["keepalive"])
# Request heads as large as the real API takes (it sits behind Cloudflare: each header up to 16 KB); the
# request line at gunicorn's ceiling short of none at all, 8,190 bytes (the real API's is 16 KB). A request
# past a limit gets gunicorn's 414 or 431 in the API's JSON error shape (app/server/worker.py).
limit_request_line = 8190
limit_request_field_size = 16384
limit_request_fields = 200
loglevel = server["log_level"]
errorlog = "-"
accesslog = "-" if server["access_log"] else None
proc_name = "mock-openai"
# gunicorn 24+'s management socket lives at one fixed path per user, which several servers on one machine
# (a test suite, a load rig) would fight over; this server has nothing to manage through it.
control_socket_disable = True

# TLS and mutual TLS, from [tls]: on when a certificate is configured.
if settings.tls_enabled:
    certfile = settings.tls["cert_path"]
    keyfile = settings.tls["key_path"]
    ca_certs = settings.tls["ca_cert_path"] or None
    cert_reqs = tls.cert_reqs(settings.tls)


def ssl_context(config, default_ssl_context_factory):
    """gunicorn's context (certificate, CA, cert_reqs), with our minimum TLS version."""
    return tls.tune(default_ssl_context_factory(), settings.tls)


def on_starting(arbiter):
    """Raise the open-files limit so each worker can hold ``worker_connections`` sockets (workers inherit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = worker_connections + 256
    if hard != resource.RLIM_INFINITY and hard < wanted:
        arbiter.log.warning(
            "open-files limit %s is below the %s that max_connections=%s needs; raise it with ulimit -Hn",
            hard,
            wanted,
            worker_connections,
        )
        wanted = hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def worker_exit(arbiter, worker):
    """In the worker, as it stops: write the journal entries it still holds now, and say so if that fails
    (the flush at interpreter exit is the fallback, and it cannot log); then end the process quietly."""
    app = getattr(worker, "wsgi", None)
    state = getattr(app, "extensions", {}).get("mock_openai") if app is not None else None
    if state is not None and state.journal is not None:
        try:
            state.journal.flush()
        except Exception as exc:  # noqa: BLE001 (a stopping worker must still stop)
            worker.log.warning("mock-openai: could not write the journal's last entries: %r", exc)
    _exit_quietly(sys.exc_info()[1])


def _exit_quietly(stopping: BaseException | None) -> None:
    """End the worker with the status it was stopping with (gunicorn calls worker_exit while the worker's
    SystemExit is on its way out), its exit handlers run, but not the interpreter's teardown: there, logging's
    handlers are collected after gevent's patched locks are gone, and each worker printed a TypeError on every
    stop (gevent issue #2148). multiprocessing ends its children the same way."""
    code = stopping.code if isinstance(stopping, SystemExit) else 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def child_exit(arbiter, worker):
    """A worker is gone (stopped, crashed or killed): the sequences it held go back to the others, and its open
    streams stop counting. The shared state is opened and closed at once: the master forks the replacement
    next, and must not hand it an open SQLite connection."""
    shared = open_configured(settings, os.environ[PATH_ENV])
    try:
        shared.forget_process(worker.pid)
    finally:
        shared.close()
    metrics.forget_process(worker.pid)


def when_ready(arbiter):
    scheme = "https" if settings.tls_enabled else "http"
    shown = "127.0.0.1" if server["host"] in ("0.0.0.0", "::") else host
    port = arbiter.LISTENERS[0].sock.getsockname()[1] if arbiter.LISTENERS else server["port"]
    root = f"{scheme}://{shown}:{port}"
    print(
        f"mock-openai listening on {root}/v1 ({workers} workers); Anthropic, Azure OpenAI and Gemini clients: {root}",
        file=sys.stderr,
        flush=True,
    )
