"""The one configuration loader.

Layers, later ones winning: built-in defaults, ``config/default.toml``, ``config/test_scenarios.toml``,
``config/local.toml``, the file named by ``--config`` (or ``MOCK_OPENAI_CONFIG``), ``.env``, environment
variables, then command-line flags. The merged result is validated by one marshmallow schema; a bad value
stops start-up with a :class:`ConfigError` that names the key and the layer it came from.

gunicorn's master (through ``gunicorn.conf.py``) and every worker (through ``create_app``) call
:func:`load_settings` and so see the same settings. The CLI hands its flags to both through the
``MOCK_OPENAI_CLI_OVERRIDES`` environment variable, which forked workers inherit.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT / "assets" / "corpus.txt"
SONNETS_PATH = ROOT / "assets" / "sonnets.txt"
SONNETS_URL = (
    "https://raw.githubusercontent.com/martin-gorner/tensorflow-rnn-shakespeare/master/shakespeare/sonnets.txt"
)
CLI_OVERRIDES_ENV = "MOCK_OPENAI_CLI_OVERRIDES"
CONFIG_FILE_ENV = "MOCK_OPENAI_CONFIG"
ENV_PREFIXES = ("MOCK_OPENAI_", "MOCK_GPT_")  # ours, then the original mock's
DEFAULT_MAX_OUTPUT_TOKENS = 16384

DEFAULTS: dict[str, dict] = {
    "server": {
        "host": "0.0.0.0",
        "port": 8079,
        "workers": 0,  # 0: one per CPU
        "max_connections": 10000,  # per worker: gunicorn's worker_connections
        "max_connection_rate": 512,  # new connections per second, per worker (0: unlimited)
        "client_request_timeout": "600s",
        "keepalive": 75,
        "timeout": 30,
        "graceful_timeout": 30,
        "max_body_bytes": 32 * 1024 * 1024,
        "strict_validation": False,
        "log_level": "warning",
        "access_log": False,
    },
    "tls": {
        "cert_path": "",
        "key_path": "",
        "ca_cert_path": "",
        "require_client_cert": False,
        "min_version": "1.2",
    },
    "auth": {"token": ""},
    "responses": {
        "default_delay_ms": 0,
        "inter_token_latency_ms": 10,
        "error_rate_percent": 0,
        "streaming_enabled": True,
        "max_tokens": 1000,
        "temperature": 1.0,
        "corpus": "",
        "sonnets_url": SONNETS_URL,
    },
    "models": {
        # Output limits, owners and creation times as the real /v1/models reports them.
        "available": [
            {"id": "gpt-4o-mini", "max_output_tokens": 16384, "owned_by": "system", "created": 1721172741},
            {"id": "gpt-4o", "max_output_tokens": 16384, "owned_by": "system", "created": 1715367049},
            {"id": "gpt-3.5-turbo", "max_output_tokens": 4096, "owned_by": "openai", "created": 1677610602},
            {
                "id": "gpt-3.5-turbo-instruct",
                "max_output_tokens": 4096,
                "endpoint": "completions",
                "owned_by": "system",
                "created": 1692901427,
            },
        ],
        "allow_unknown": False,
    },
}

# Environment variables that tools around us set by convention.
ALIASES = {"PORT": ("server", "port"), "LOG_LEVEL": ("server", "log_level")}


class ConfigError(Exception):
    """A setting that cannot be used; ``str()`` is the one line printed at start-up."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    id: str
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    # Which endpoint serves it: instruct-style models answer only /v1/completions, as in the real API.
    endpoint: str = "chat"
    owned_by: str = "system"
    created: int = 1715367049


@dataclass(frozen=True, slots=True)
class Settings:
    server: dict
    tls: dict
    auth: dict
    responses: dict
    models: list[ModelSpec]
    allow_unknown_models: bool
    sources: dict = field(default_factory=dict, compare=False)

    @property
    def corpus_path(self) -> Path:
        return Path(self.responses["corpus"]) if self.responses["corpus"] else DEFAULT_CORPUS

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls["cert_path"])

    def model(self, model_id: str) -> ModelSpec | None:
        return next((m for m in self.models if m.id == model_id), None)


# --- validation ---------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|m|min|mins|h|hr|hrs|d)?", re.IGNORECASE)
_UNIT_SECONDS = {
    None: 1,
    "ms": 0.001,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "d": 86400,
}


def parse_duration(text: str | int | float) -> float:
    """Seconds in a human duration: ``600``, ``600s``, ``10m``, ``1h``, ``1h30m``, ``250ms``."""
    if isinstance(text, bool):
        raise ValueError("not a duration")
    if isinstance(text, int | float):
        return float(text)
    text = text.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"not a duration: {text!r} (use e.g. 600s, 10m, 1h)")
        total += float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "").lower() or None]
        pos = match.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    if not text:
        raise ValueError("empty duration")
    return total


class Duration(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class ModelList(fields.Field):
    """``[models] available``: names, tables ``{id, max_output_tokens, endpoint}``, or ``a:4096,b`` text."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list) or not value:
            raise ValidationError("expected a non-empty list of models")
        models = []
        for item in value:
            if isinstance(item, str):
                name, _, limit = item.partition(":")
                item = {"id": name.strip()}
                if limit:
                    item["max_output_tokens"] = limit.strip()
            if not isinstance(item, dict):
                raise ValidationError(f"expected a model name or table, got {item!r}")
            loaded = _ModelSchema().load(item)
            loaded.setdefault("endpoint", _default_endpoint(loaded["id"]))
            models.append(ModelSpec(**loaded))
        return models


def _default_endpoint(model_id: str) -> str:
    legacy = ("instruct" in model_id) or model_id in ("davinci-002", "babbage-002")
    return "completions" if legacy else "chat"


class _ModelSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=validate.Length(min=1))
    max_output_tokens = fields.Integer(validate=validate.Range(min=1))
    endpoint = fields.String(validate=validate.OneOf(["chat", "completions"]))
    owned_by = fields.String()
    created = fields.Integer()


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ServerSchema(_Strict):
    host = fields.String(required=True)
    port = fields.Integer(required=True, validate=validate.Range(min=0, max=65535))
    workers = fields.Integer(required=True, validate=validate.Range(min=0, max=512))
    max_connections = fields.Integer(required=True, validate=validate.Range(min=1))
    max_connection_rate = fields.Integer(required=True, validate=validate.Range(min=0))
    client_request_timeout = Duration(required=True, validate=validate.Range(min=0.001))
    keepalive = Duration(required=True, validate=validate.Range(min=0))
    timeout = Duration(required=True, validate=validate.Range(min=0))
    graceful_timeout = Duration(required=True, validate=validate.Range(min=0))
    max_body_bytes = fields.Integer(required=True, validate=validate.Range(min=1024))
    strict_validation = fields.Boolean(required=True)
    log_level = fields.String(required=True, validate=validate.OneOf(["debug", "info", "warning", "error", "critical"]))
    access_log = fields.Boolean(required=True)


class TLSSchema(_Strict):
    cert_path = fields.String(required=True)
    key_path = fields.String(required=True)
    ca_cert_path = fields.String(required=True)
    require_client_cert = fields.Boolean(required=True)
    min_version = fields.String(required=True, validate=validate.OneOf(["1.2", "1.3"]))


class AuthSchema(_Strict):
    token = fields.String(required=True)


class ResponsesSchema(_Strict):
    default_delay_ms = fields.Float(required=True, validate=validate.Range(min=0))
    inter_token_latency_ms = fields.Float(required=True, validate=validate.Range(min=0))
    error_rate_percent = fields.Float(required=True, validate=validate.Range(min=0, max=100))
    streaming_enabled = fields.Boolean(required=True)
    max_tokens = fields.Integer(required=True, validate=validate.Range(min=1))
    temperature = fields.Float(required=True, validate=validate.Range(min=0, max=2))
    corpus = fields.String(required=True)
    sonnets_url = fields.String(required=True)


class ModelsSchema(_Strict):
    available = ModelList(required=True)
    allow_unknown = fields.Boolean(required=True)


class SettingsSchema(_Strict):
    server = fields.Nested(ServerSchema, required=True)
    tls = fields.Nested(TLSSchema, required=True)
    auth = fields.Nested(AuthSchema, required=True)
    responses = fields.Nested(ResponsesSchema, required=True)
    models = fields.Nested(ModelsSchema, required=True)

    @post_load
    def to_settings(self, data, **kwargs):
        server = dict(data["server"])
        if server["workers"] == 0:
            server["workers"] = os.cpu_count() or 1
        server["log_level"] = server["log_level"].lower()
        return Settings(
            server=server,
            tls=data["tls"],
            auth=data["auth"],
            responses=data["responses"],
            models=data["models"]["available"],
            allow_unknown_models=data["models"]["allow_unknown"],
        )


# --- loading ------------------------------------------------------------------------------------------


def load_settings(overrides: dict | None = None, environ: dict | None = None, root: Path | None = None) -> Settings:
    """Merge every layer and validate. ``overrides`` is a layer above the CLI, for tests."""
    environ = os.environ if environ is None else environ
    root = ROOT if root is None else root
    layers: list[tuple[str, dict]] = [("built-in defaults", DEFAULTS)]
    for name in ("default.toml", "test_scenarios.toml", "local.toml"):
        path = root / "config" / name
        if path.is_file():
            layers.append((f"config/{name}", _read_toml(path)))
    extra = environ.get(CONFIG_FILE_ENV)
    if extra:
        path = Path(extra)
        if not path.is_file():
            raise ConfigError(f"config file {extra} (from {CONFIG_FILE_ENV}) does not exist")
        layers.append((str(path), _read_toml(path)))
    dotenv_path = Path.cwd() / ".env"
    if dotenv_path.is_file():
        dotenv = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
        layers.append((".env", _from_environment(dotenv)))
    layers.append(("environment variable", _from_environment(environ)))
    cli = environ.get(CLI_OVERRIDES_ENV)
    if cli:
        layers.append(("command line", json.loads(cli)))
    if overrides:
        layers.append(("overrides", overrides))
    merged, sources = _merge(layers)
    try:
        settings = SettingsSchema().load(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.messages, merged, sources)) from None
    object.__setattr__(settings, "sources", sources)
    return settings


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


class _EnvLayer(dict):
    """A layer read from variables; ``names`` says which variable gave each key, for error messages."""

    names: dict


def _from_environment(environ) -> dict:
    """``MOCK_OPENAI_<SECTION>_<KEY>`` (or ``MOCK_GPT_...``) and the conventional aliases, as a layer."""
    layer = _EnvLayer()
    layer.names = {}

    def put(section, key, variable):
        layer.setdefault(section, {})[key] = environ[variable]
        layer.names[f"{section}.{key}"] = variable

    for variable, (section, key) in ALIASES.items():
        if environ.get(variable):
            put(section, key, variable)
    for prefix in ENV_PREFIXES[::-1]:  # MOCK_OPENAI_ wins over MOCK_GPT_
        for section, keys in DEFAULTS.items():
            for key in keys:
                variable = f"{prefix}{section.upper()}_{key.upper()}"
                if environ.get(variable) is not None:
                    put(section, key, variable)
    return layer


def _merge(layers):
    merged = {section: dict(values) for section, values in DEFAULTS.items()}
    sources = {}
    for source, layer in layers:
        if not isinstance(layer, dict):
            raise ConfigError(f"{source}: expected tables of settings")
        for section, values in layer.items():
            if section not in merged:
                raise ConfigError(f"unknown config section [{section}] (from {source})")
            if not isinstance(values, dict):
                raise ConfigError(f"[{section}] must be a table (from {source})")
            names = getattr(layer, "names", {})
            for key, value in values.items():
                merged[section][key] = value
                name = f"{section}.{key}"
                sources[name] = f"{source} {names[name]}" if name in names else source
    return merged, sources


def _describe(messages: dict, merged: dict, sources: dict) -> str:
    """The first validation error as one line: key, value, source, reason."""
    section, detail = next(iter(messages.items()))
    if isinstance(detail, dict):
        key, reason = next(iter(detail.items()))
        while isinstance(reason, dict):
            reason = next(iter(reason.values()))
        reason = reason[0] if isinstance(reason, list) else reason
        if reason == "Unknown field.":
            reason = "unknown key"
        name = f"{section}.{key}"
        value = merged.get(section, {}).get(key, "<missing>")
        return f"invalid config {name} = {value!r} (from {sources.get(name, 'built-in defaults')}): {reason}"
    reason = detail[0] if isinstance(detail, list) else detail
    return f"invalid config section [{section}]: {reason}"
