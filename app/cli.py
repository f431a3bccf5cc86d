"""The ``mock-openai`` command: flags -> config -> gunicorn, in-process, with ``gunicorn.conf.py``.

Flags are the top layer of the one config loader. They reach gunicorn's master and every forked worker
through the ``MOCK_OPENAI_CLI_OVERRIDES`` environment variable, so all of them load the same settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from app.config import (
    CLI_OVERRIDES_ENV,
    CONFIG_FILE_ENV,
    DEFAULTS,
    ConfigError,
    load_settings,
    parse_duration,
    sonnets_path,
)
from app.server import tls
from app.textgen import CorpusError, download
from app.version import __version__

# The gunicorn settings, inside the package: the CLI runs them wherever it is installed (a clone's top-level
# gunicorn.conf.py runs the same file).
GUNICORN_CONF = Path(__file__).resolve().parent / "server" / "gunicorn_conf.py"


MODES = ["corpus", "realistic", "echo", "scripted"]


@dataclass(frozen=True)
class Flag:
    """One command-line flag, declared once: its names, the config key it sets (``switch``: the value a
    flag without an argument gives it), its help, its argparse options, and its group in ``--help``."""

    names: tuple[str, ...]
    key: tuple[str, str] | None
    help: str
    group: str = ""
    switch: object = None
    shown: str | None = None  # the default as --help shows it, where the config's own would mislead
    options: dict = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.names[-1].lstrip("-").replace("-", "_")


SIMULATION = "simulation (see the docs' Simulation pages)"
OBSERVABILITY = "observability (see the docs' Observability pages)"
MS = {"type": float, "metavar": "MS"}
N = {"type": int, "metavar": "N"}
FLAGS = [
    Flag(("-p", "--port"), ("server", "port"), "port to listen on", options={"type": int}),
    Flag(("-a", "--address"), ("server", "host"), "address to bind to"),
    Flag(("-w", "--workers"), ("server", "workers"), "gunicorn gevent workers", shown="CPU count",
         options={"type": int}),
    Flag(("--client-request-timeout",), ("server", "client_request_timeout"),
         "time a new connection has to send its request head, e.g. 600s, 10m, 1h",
         options={"type": "duration", "metavar": "DURATION"}),
    Flag(("--max-connection-rate",), ("server", "max_connection_rate"),
         "connections each worker may have being established at once (TLS handshake or first request head not "
         "yet read); more wait for a slot. 0 for no limit", options=N),
    Flag(("--token",), ("auth", "token"), "require this API key as 'Authorization: Bearer <token>'", shown="none"),
    Flag(("--inter-token-latency",), ("latency", "inter_token_latency_ms"),
         "milliseconds between streamed tokens, 0 for none", options=MS),
    Flag(("--time-to-first-token",), ("latency", "ttft_ms"), "milliseconds before the first token", options=MS),
    Flag(("--corpus",), ("responses", "corpus"), "text file to draw replies from", shown="the built-in corpus",
         options={"type": Path, "metavar": "PATH"}),
    Flag(("--download-sonnets",), None, "fetch the Shakespeare sonnets (once, into ~/.cache/mock-openai/) and use them",
         options={"action": "store_true"}),
    Flag(("--any-model",), ("models", "allow_unknown"), "answer any model name, echoing it back", switch=True),
    Flag(("--lenient",), ("server", "strict_validation"),
         "accept minimal bodies (no model or messages) and ignore unknown arguments, for load tests", switch=False),
    Flag(("--ttft-jitter",), ("latency", "ttft_jitter_ms"), "std-dev of the time to first token", SIMULATION,
         options=MS),
    Flag(("--itl-jitter",), ("latency", "inter_token_jitter_ms"), "std-dev of each inter-token gap", SIMULATION,
         options=MS),
    Flag(("--prefill-ms-per-1k",), ("latency", "prefill_ms_per_1k_prompt_tokens"),
         "extra TTFT per 1000 prompt tokens", SIMULATION, options=MS),
    Flag(("--non-stream-latency",), ("latency", "non_stream"),
         "a non-streamed body waits as long as its stream would (total) or only the TTFT", SIMULATION,
         options={"choices": ["total", "ttft"]}),
    Flag(("--max-concurrent-sequences",), ("latency", "max_concurrent_sequences"),
         "running requests per model, all workers", SIMULATION, shown="0: no limit", options=N),
    Flag(("--max-queued-sequences",), ("latency", "max_queued_sequences"), "requests that may wait for one",
         SIMULATION, options=N),
    Flag(("--error-rate",), ("faults", "error_rate_percent"), "share of completions that fail", SIMULATION,
         options={"type": float, "metavar": "PERCENT"}),
    Flag(("--error-mix",), ("faults", "error_mix"), "fault weights, e.g. 429:2,500:1,timeout:1", SIMULATION,
         shown="500", options={"metavar": "MIX"}),
    Flag(("--rpm",), ("rate_limits", "requests_per_minute"), "requests per minute per API key and model",
         SIMULATION, shown="0: none", options=N),
    Flag(("--tpm",), ("rate_limits", "tokens_per_minute"), "tokens per minute per API key and model", SIMULATION,
         shown="0: none", options=N),
    Flag(("--mode",), ("responses", "mode"), "where replies come from", SIMULATION, options={"choices": MODES}),
    Flag(("--rules",), ("responses", "rules_path"), "the scripted mode's rules file (TOML or YAML)", SIMULATION,
         shown="none", options={"type": Path, "metavar": "FILE"}),
    Flag(("--scenario",), ("responses", "scenario"), "a named scenario: fast, slow, errors, timeout, rate_limited",
         SIMULATION, shown="none", options={"metavar": "NAME"}),
    Flag(("--admin-token",), ("admin", "token"), "bearer token for /_mock/*", SIMULATION, shown="the --token",
         options={"metavar": "TOKEN"}),
    Flag(("--record-from",), ("record", "upstream"), "proxy /v1/* to this upstream and record each exchange",
         SIMULATION, shown="none", options={"metavar": "URL"}),
    Flag(("--fixtures",), ("record", "dir"), "where --record-from writes fixtures", SIMULATION,
         options={"type": Path, "metavar": "DIR"}),
    Flag(("--replay",), ("replay", "dir"), "answer /v1/* from the fixtures in DIR", SIMULATION, shown="none",
         options={"type": Path, "metavar": "DIR"}),
    Flag(("--replay-speed",), ("replay", "speed"), "replay X times as fast, 0 at once", SIMULATION,
         options={"type": float, "metavar": "X"}),
    Flag(("--replay-fallback",), ("replay", "fallback"), "answer requests with no fixture in this mode, not 404",
         SIMULATION, shown="none", options={"choices": MODES}),
    Flag(("--journal",), ("journal", "path"), "keep the request journal in this SQLite file", OBSERVABILITY,
         shown="beside the shared state", options={"type": Path, "metavar": "PATH"}),
    Flag(("--no-journal",), ("journal", "enabled"), "keep no request journal", OBSERVABILITY, switch=False),
    Flag(("--journal-max-entries",), ("journal", "max_entries"), "the newest N are kept", OBSERVABILITY, options=N),
    Flag(("--no-metrics",), ("metrics", "enabled"), "no /metrics", OBSERVABILITY, switch=False),
    Flag(("--log-file",), ("logging", "file"), "also log to this file, rotated", OBSERVABILITY, shown="none",
         options={"type": Path, "metavar": "PATH"}),
    Flag(("--log-format",), ("logging", "format"), "log lines as text or JSON", OBSERVABILITY,
         options={"choices": ["text", "json"]}),
    Flag(("--log-level",), ("server", "log_level"), "info shows a line per request",
         options={"choices": ["debug", "info", "warning", "error", "critical"]}),
    Flag(("--config",), None, "extra TOML config file, above config/*.toml in this folder",
         options={"type": Path, "metavar": "FILE"}),
    Flag(("--tls-cert",), ("tls", "cert_path"), "serve HTTPS with this certificate (PEM)", shown="none",
         options={"type": Path, "metavar": "PATH"}),
    Flag(("--tls-key",), ("tls", "key_path"), "the certificate's private key (PEM)", shown="none",
         options={"type": Path, "metavar": "PATH"}),
    Flag(("--tls-ca",), ("tls", "ca_cert_path"), "CA certificate that client certificates must be signed by",
         shown="none", options={"type": Path, "metavar": "PATH"}),
    Flag(("--require-client-cert",), ("tls", "require_client_cert"),
         "mutual TLS: refuse clients without a valid certificate", switch=True),
]  # fmt: skip


def _duration(text: str) -> str:
    parse_duration(text)  # reject now, with argparse's usage line
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mock-openai",
        description="An OpenAI-compatible mock API server on gunicorn gevent workers.",
        epilog="Every flag has a config key and an environment variable (docs: Reference, Configuration keys). "
        "Make test certificates with: mock-openai certs --help",
    )
    groups = {"": parser}
    for flag in FLAGS:
        group = groups.get(flag.group) or groups.setdefault(flag.group, parser.add_argument_group(flag.group))
        options = dict(flag.options)
        if options.get("type") == "duration":
            options["type"] = _duration
        if flag.switch is not None:
            options["action"] = "store_true"
        text = flag.help
        if flag.key is not None and flag.switch is None:
            text += f" [{flag.shown if flag.shown is not None else DEFAULTS[flag.key[0]][flag.key[1]]}]"
        group.add_argument(*flag.names, help=text, **options)
    parser.add_argument("-V", "--version", action="version", version=f"mock-openai {__version__}")
    return parser


def overrides_from(args: argparse.Namespace) -> dict:
    """The flags the user gave, as a config layer (``{"section": {"key": value}}``)."""
    layer: dict[str, dict] = {}
    for flag in FLAGS:
        value = getattr(args, flag.dest)
        if flag.key is None or value is None or value is False:
            continue
        section, key = flag.key
        value = flag.switch if flag.switch is not None else value
        layer.setdefault(section, {})[key] = str(value.resolve()) if isinstance(value, Path) else value
    return layer


def flags_by_key() -> dict[tuple[str, str], str]:
    """``(section, key)`` -> the flag that sets it (``--port``), for the configuration reference."""
    return {flag.key: flag.names[-1] for flag in FLAGS if flag.key is not None}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["certs"]:
        from app.server import certs

        return certs.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.config is not None:
        os.environ[CONFIG_FILE_ENV] = str(args.config.resolve())
    layer = overrides_from(args)
    os.environ[CLI_OVERRIDES_ENV] = json.dumps(layer)
    try:
        settings = load_settings()
        tls.check(settings.tls)
        if args.download_sonnets:
            sonnets = sonnets_path()
            if not sonnets.is_file():
                print(f"mock-openai: downloading {settings.responses['sonnets_url']}", file=sys.stderr)
                download(settings.responses["sonnets_url"], sonnets)
            layer.setdefault("responses", {})["corpus"] = str(sonnets)
            os.environ[CLI_OVERRIDES_ENV] = json.dumps(layer)
    except (ConfigError, CorpusError) as exc:
        print(f"mock-openai: {exc}", file=sys.stderr)
        return 2
    run_gunicorn()
    return 0


def run_gunicorn() -> None:
    """Run gunicorn in this process with ``gunicorn.conf.py``, serving :func:`app.create_app`."""
    from gunicorn.app.base import Application

    class MockOpenAIServer(Application):
        def init(self, parser, opts, args):
            return None

        def load_config(self):
            # Only the config file: our own flags are not gunicorn's and are already in the environment.
            self.load_config_from_file(str(GUNICORN_CONF))

        def load(self):
            from app import create_app

            return create_app()

    sys.argv = [sys.argv[0]]
    MockOpenAIServer().run()


if __name__ == "__main__":
    sys.exit(main())
