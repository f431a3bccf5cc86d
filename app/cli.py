"""The ``mock-openai`` command: flags -> config -> gunicorn, in-process, with ``gunicorn.conf.py``.

Flags are the top layer of the one config loader. They reach gunicorn's master and every forked worker
through the ``MOCK_OPENAI_CLI_OVERRIDES`` environment variable, so all of them load the same settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from app import __version__, tls
from app.config import (
    CLI_OVERRIDES_ENV,
    CONFIG_FILE_ENV,
    ConfigError,
    load_settings,
    parse_duration,
    sonnets_path,
)
from app.textgen import CorpusError, download

# The gunicorn settings, inside the package: the CLI runs them wherever it is installed (a clone's top-level
# gunicorn.conf.py runs the same file).
GUNICORN_CONF = Path(__file__).resolve().with_name("gunicorn_conf.py")


def _duration(text: str) -> str:
    parse_duration(text)  # reject now, with argparse's usage line
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mock-openai",
        description="An OpenAI-compatible mock API server on gunicorn gevent workers.",
        epilog="Every flag has a config key and an environment variable; see the README. "
        "Make test certificates with: mock-openai certs --help",
    )
    add = parser.add_argument
    add("-p", "--port", type=int, help="port to listen on [8079]")
    add("-a", "--address", help="address to bind to [0.0.0.0]")
    add("-w", "--workers", type=int, help="gunicorn gevent workers [CPU count]")
    add(
        "--client-request-timeout",
        type=_duration,
        metavar="DURATION",
        help="time a new connection has to send its request head, e.g. 600s, 10m, 1h [600s]",
    )
    add(
        "--max-connection-rate",
        type=int,
        metavar="N",
        help="connections each worker may have being established at once (TLS handshake or first request head "
        "not yet read); more wait for a slot. 0 for no limit [512]",
    )
    add("--token", help="require this API key as 'Authorization: Bearer <token>'")
    add(
        "--inter-token-latency",
        type=float,
        metavar="MS",
        help="milliseconds between streamed tokens, 0 for none [10]",
    )
    add("--time-to-first-token", type=float, metavar="MS", help="milliseconds before the first token [0]")
    add("--corpus", type=Path, metavar="PATH", help="text file to draw replies from [assets/corpus.txt]")
    add(
        "--download-sonnets",
        action="store_true",
        help="fetch the Shakespeare sonnets (once, into ~/.cache/mock-openai/) and use them",
    )
    add("--any-model", action="store_true", help="answer any model name, echoing it back")
    add(
        "--lenient",
        action="store_true",
        help="accept minimal bodies (no model or messages) and ignore unknown arguments, for load tests",
    )
    sim = parser.add_argument_group("simulation (see the README's Simulation section)")
    sim.add_argument("--ttft-jitter", type=float, metavar="MS", help="std-dev of the time to first token [0]")
    sim.add_argument("--itl-jitter", type=float, metavar="MS", help="std-dev of each inter-token gap [0]")
    sim.add_argument("--prefill-ms-per-1k", type=float, metavar="MS", help="extra TTFT per 1000 prompt tokens [0]")
    sim.add_argument(
        "--non-stream-latency",
        choices=["total", "ttft"],
        help="a non-streamed body waits as long as its stream would (total) or only the TTFT [total]",
    )
    sim.add_argument(
        "--max-concurrent-sequences",
        type=int,
        metavar="N",
        help="running requests per model, all workers [0: no limit]",
    )
    sim.add_argument("--max-queued-sequences", type=int, metavar="N", help="requests that may wait for one [0]")
    sim.add_argument("--error-rate", type=float, metavar="PERCENT", help="share of completions that fail [0]")
    sim.add_argument("--error-mix", metavar="MIX", help="fault weights, e.g. 429:2,500:1,timeout:1 [500]")
    sim.add_argument("--rpm", type=int, metavar="N", help="requests per minute per API key and model [0: none]")
    sim.add_argument("--tpm", type=int, metavar="N", help="tokens per minute per API key and model [0: none]")
    sim.add_argument("--mode", choices=["corpus", "realistic", "echo", "scripted"], help="where replies come from")
    sim.add_argument("--rules", type=Path, metavar="FILE", help="the scripted mode's rules file (TOML or YAML)")
    sim.add_argument("--scenario", metavar="NAME", help="a named scenario: fast, slow, errors, timeout, rate_limited")
    sim.add_argument("--admin-token", metavar="TOKEN", help="bearer token for /_mock/* [the --token]")
    sim.add_argument("--record-from", metavar="URL", help="proxy /v1/* to this upstream and record each exchange")
    sim.add_argument("--fixtures", type=Path, metavar="DIR", help="where --record-from writes fixtures [fixtures]")
    sim.add_argument("--replay", type=Path, metavar="DIR", help="answer /v1/* from the fixtures in DIR")
    sim.add_argument("--replay-speed", type=float, metavar="X", help="replay X times as fast, 0 at once [1]")
    sim.add_argument(
        "--replay-fallback",
        choices=["corpus", "realistic", "echo", "scripted"],
        help="answer requests with no fixture in this mode instead of 404",
    )
    seen = parser.add_argument_group("observability (see the README's Observability section)")
    seen.add_argument("--journal", type=Path, metavar="PATH", help="keep the request journal in this SQLite file")
    seen.add_argument("--no-journal", action="store_true", help="keep no request journal")
    seen.add_argument("--journal-max-entries", type=int, metavar="N", help="the newest N are kept [10000]")
    seen.add_argument("--no-metrics", action="store_true", help="no /metrics")
    seen.add_argument("--log-file", type=Path, metavar="PATH", help="also log to this file, rotated [none]")
    seen.add_argument("--log-format", choices=["text", "json"], help="log lines as text or JSON [text]")
    add(
        "--log-level",
        choices=["debug", "info", "warning", "error", "critical"],
        help="info shows a line per request [warning]",
    )
    add("--config", type=Path, metavar="FILE", help="extra TOML config file, above config/*.toml")
    add("--tls-cert", type=Path, metavar="PATH", help="serve HTTPS with this certificate (PEM)")
    add("--tls-key", type=Path, metavar="PATH", help="the certificate's private key (PEM)")
    add("--tls-ca", type=Path, metavar="PATH", help="CA certificate that client certificates must be signed by")
    add("--require-client-cert", action="store_true", help="mutual TLS: refuse clients without a valid certificate")
    add("-V", "--version", action="version", version=f"mock-openai {__version__}")
    return parser


# Where each flag lands in the config: the one map from a flag's argparse name to its (section, key); the
# parser above declares the flags, and the generated configuration reference reads both.
FLAG_KEYS = {
    "port": ("server", "port"),
    "address": ("server", "host"),
    "workers": ("server", "workers"),
    "client_request_timeout": ("server", "client_request_timeout"),
    "max_connection_rate": ("server", "max_connection_rate"),
    "log_level": ("server", "log_level"),
    "token": ("auth", "token"),
    "inter_token_latency": ("latency", "inter_token_latency_ms"),
    "time_to_first_token": ("latency", "ttft_ms"),
    "corpus": ("responses", "corpus"),
    "ttft_jitter": ("latency", "ttft_jitter_ms"),
    "itl_jitter": ("latency", "inter_token_jitter_ms"),
    "prefill_ms_per_1k": ("latency", "prefill_ms_per_1k_prompt_tokens"),
    "non_stream_latency": ("latency", "non_stream"),
    "max_concurrent_sequences": ("latency", "max_concurrent_sequences"),
    "max_queued_sequences": ("latency", "max_queued_sequences"),
    "error_rate": ("faults", "error_rate_percent"),
    "error_mix": ("faults", "error_mix"),
    "rpm": ("rate_limits", "requests_per_minute"),
    "tpm": ("rate_limits", "tokens_per_minute"),
    "mode": ("responses", "mode"),
    "rules": ("responses", "rules_path"),
    "scenario": ("responses", "scenario"),
    "admin_token": ("admin", "token"),
    "record_from": ("record", "upstream"),
    "fixtures": ("record", "dir"),
    "replay": ("replay", "dir"),
    "replay_speed": ("replay", "speed"),
    "replay_fallback": ("replay", "fallback"),
    "tls_cert": ("tls", "cert_path"),
    "tls_key": ("tls", "key_path"),
    "tls_ca": ("tls", "ca_cert_path"),
    "journal": ("journal", "path"),
    "journal_max_entries": ("journal", "max_entries"),
    "log_file": ("logging", "file"),
    "log_format": ("logging", "format"),
    # switches: the value the key takes when the flag is given
    "any_model": ("models", "allow_unknown", True),
    "lenient": ("server", "strict_validation", False),
    "require_client_cert": ("tls", "require_client_cert", True),
    "no_journal": ("journal", "enabled", False),
    "no_metrics": ("metrics", "enabled", False),
}


def overrides_from(args: argparse.Namespace) -> dict:
    """The flags the user gave, as a config layer (``{"section": {"key": value}}``)."""
    layer: dict[str, dict] = {}
    for name, (section, key, *switch) in FLAG_KEYS.items():
        value = getattr(args, name)
        if switch:
            value = switch[0] if value else None
        if value is not None:
            layer.setdefault(section, {})[key] = str(value.resolve()) if isinstance(value, Path) else value
    return layer


def flags_by_key() -> dict[tuple[str, str], str]:
    """``(section, key)`` -> the flag that sets it (``--port``), for the configuration reference."""
    options = {action.dest: action.option_strings[-1] for action in build_parser()._actions if action.option_strings}
    return {(section, key): options[name] for name, (section, key, *_) in FLAG_KEYS.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["certs"]:
        from app import certs

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
