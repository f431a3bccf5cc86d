"""The one configuration loader.

Layers, later ones winning: built-in defaults, ``config/default.toml``, ``config/test_scenarios.toml``,
``config/local.toml``, the file named by ``--config`` (or ``MOCK_OPENAI_CONFIG``), ``.env``, environment
variables, then command-line flags. The merged result is validated by one marshmallow schema; a bad value
stops start-up with a :class:`ConfigError` that names the key and the layer it came from.

The same schema validates what changes at run time: :meth:`Settings.with_layer` puts a layer (a named
scenario, a ``PATCH /_mock/config``) on top of loaded settings and validates the result again.

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
        "mode": "corpus",  # corpus, realistic, echo, scripted
        "scenario": "",  # a name from [scenarios]
        "rules_path": "",  # the rules file of the scripted mode
        "streaming_enabled": True,
        "max_tokens": 1000,
        "temperature": 1.0,
        "corpus": "",
        "sonnets_url": SONNETS_URL,
    },
    "latency": {
        "ttft_ms": 0,
        "ttft_jitter_ms": 0,
        "inter_token_latency_ms": 10,
        "inter_token_jitter_ms": 0,
        "prefill_ms_per_1k_prompt_tokens": 0,
        "non_stream": "total",  # total: a body waits as long as its stream would take; ttft: only the TTFT
        "max_concurrent_sequences": 0,  # per model, across all workers; 0: no limit
        "max_queued_sequences": 0,  # waiting in front of them; more get queue_full_error
        "queue_full_error": "503",
        "load_slowdown": 1.0,  # at full load, TTFT and inter-token latency are (1 + this) times the setting
    },
    "faults": {
        "error_rate_percent": 0,
        "error_mix": {"500": 1},
        "stream_fault_after_tokens": 10,  # where a mid-stream fault drawn from the mix strikes
        "retry_after_ms": 1000,  # on an injected 429 rate_limit_exceeded
        "timeout_ms": 600000,  # a "timeout" fault holds the request this long, then answers 504
        "stall_ms": 600000,  # a "stall" fault stops a stream this long, then it goes on
        "trickle_bytes_per_s": 0,  # > 0: every completion body goes out at this many bytes a second
        "request_headers": True,  # obey the X-Mock-* request headers
    },
    "rate_limits": {
        "requests_per_minute": 0,  # per API key and model, across all workers; 0: none
        "tokens_per_minute": 0,
    },
    "admin": {"token": ""},
    "shared": {"path": ""},
    "record": {"upstream": "", "dir": "fixtures"},
    "replay": {"dir": "", "speed": 1.0, "fallback": ""},
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
        "profiles": {},  # per model: any [latency] or [rate_limits] key
    },
    "scenarios": {},  # name -> a layer of settings; config/test_scenarios.toml ships five
}

# Environment variables that tools around us set by convention.
ALIASES = {"PORT": ("server", "port"), "LOG_LEVEL": ("server", "log_level")}
# The second original's names for settings that now live elsewhere; in any layer they set the new key.
KEY_ALIASES = {
    ("responses", "default_delay_ms"): ("latency", "ttft_ms"),
    ("responses", "inter_token_latency_ms"): ("latency", "inter_token_latency_ms"),
    ("responses", "error_rate_percent"): ("faults", "error_rate_percent"),
}
# Sections that may change at run time (PATCH /_mock/config, scenarios), and [models] profiles.
RUNTIME_SECTIONS = ("responses", "latency", "faults", "rate_limits")
RESPONSE_MODES = ("corpus", "realistic", "echo", "scripted")
ERROR_KINDS = ("429", "insufficient_quota", "500", "502", "503", "timeout")
STREAM_FAULT_KINDS = ("disconnect", "stream_error", "stall", "malformed")
FAULT_KINDS = ERROR_KINDS + STREAM_FAULT_KINDS


class ConfigError(Exception):
    """A setting that cannot be used; ``str()`` is the one line printed at start-up, ``key`` the setting
    (``section.key``) when there is one."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


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
    latency: dict
    faults: dict
    rate_limits: dict
    admin: dict
    shared: dict
    record: dict
    replay: dict
    models: list[ModelSpec]
    allow_unknown_models: bool
    profiles: dict  # model id -> {latency or rate_limits key: value}
    scenarios: dict  # name -> a layer
    sources: dict = field(default_factory=dict, compare=False)
    raw: dict = field(default_factory=dict, compare=False, repr=False)  # merged, before validation

    def with_layer(self, layer: dict, source: str = "runtime") -> Settings:
        """These settings with ``layer`` on top, validated by the same schema; ConfigError if it does not fit."""
        merged, sources = _merge([(source, layer)], base=self.raw, sources=self.sources)
        return _validate(merged, sources)

    def for_model(self, section: str, model_id: str) -> dict:
        """``[latency]`` or ``[rate_limits]`` with the model's profile on top."""
        profile = self.profiles.get(model_id)
        if not profile:
            return getattr(self, section)
        keys = DEFAULTS[section]
        return getattr(self, section) | {k: v for k, v in profile.items() if k in keys}

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


class JSONTable(fields.Dict):
    """A table; from an environment variable, its JSON text."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValidationError("expected a table (JSON text in an environment variable)") from None
        return super()._deserialize(value, attr, data, **kwargs)


class ErrorMix(JSONTable):
    """``{kind = weight}``; from the environment also ``500:2,429:1``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not value.strip().startswith("{"):
            try:
                value = {k.strip(): float(w or 1) for k, _, w in (i.partition(":") for i in value.split(",")) if k}
            except ValueError:
                raise ValidationError("expected kind:weight pairs, e.g. 500:2,429:1") from None
        mix = super()._deserialize(value, attr, data, **kwargs)
        for kind, weight in mix.items():
            if kind not in FAULT_KINDS:
                raise ValidationError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise ValidationError(f"the weight of {kind!r} must be a number >= 0")
        if not any(mix.values()):
            raise ValidationError("needs at least one fault with a weight above 0")
        return mix


class ModelTables(JSONTable):
    """``[models.profiles."<id>"]``: per model, keys of ``[latency]`` and ``[rate_limits]``."""

    def _deserialize(self, value, attr, data, **kwargs):
        profiles = super()._deserialize(value, attr, data, **kwargs)
        checked = {}
        for model_id, profile in profiles.items():
            if not isinstance(profile, dict):
                raise ValidationError(f"profile {model_id!r} must be a table")
            try:
                checked[model_id] = _ProfileSchema().load(profile)
            except ValidationError as exc:
                key, reason = next(iter(exc.messages.items()))
                reason = reason[0] if isinstance(reason, list) else reason
                raise ValidationError(f"profile {model_id!r}, {key}: {reason}") from None
        return checked


class Scenarios(JSONTable):
    """``[scenarios.<name>]``: a layer of runtime sections, checked when the settings are validated."""

    def _deserialize(self, value, attr, data, **kwargs):
        scenarios = super()._deserialize(value, attr, data, **kwargs)
        for name, layer in scenarios.items():
            if not isinstance(layer, dict):
                raise ValidationError(f"scenario {name!r} must be a table of sections")
            for section, values in layer.items():
                if section not in RUNTIME_SECTIONS or not isinstance(values, dict):
                    raise ValidationError(
                        f"scenario {name!r}: [{section}] cannot be set by a scenario; use {', '.join(RUNTIME_SECTIONS)}"
                    )
        return scenarios


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
    mode = fields.String(required=True, validate=validate.OneOf(RESPONSE_MODES))
    scenario = fields.String(required=True)
    rules_path = fields.String(required=True)
    streaming_enabled = fields.Boolean(required=True)
    max_tokens = fields.Integer(required=True, validate=validate.Range(min=1))
    temperature = fields.Float(required=True, validate=validate.Range(min=0, max=2))
    corpus = fields.String(required=True)
    sonnets_url = fields.String(required=True)


def _ms(**kw):
    return fields.Float(validate=validate.Range(min=0), **kw)


class LatencySchema(_Strict):
    ttft_ms = _ms(required=True)
    ttft_jitter_ms = _ms(required=True)
    inter_token_latency_ms = _ms(required=True)
    inter_token_jitter_ms = _ms(required=True)
    prefill_ms_per_1k_prompt_tokens = _ms(required=True)
    non_stream = fields.String(required=True, validate=validate.OneOf(["total", "ttft"]))
    max_concurrent_sequences = fields.Integer(required=True, validate=validate.Range(min=0))
    max_queued_sequences = fields.Integer(required=True, validate=validate.Range(min=0))
    queue_full_error = fields.String(required=True, validate=validate.OneOf(ERROR_KINDS))
    load_slowdown = fields.Float(required=True, validate=validate.Range(min=0))


class FaultsSchema(_Strict):
    error_rate_percent = fields.Float(required=True, validate=validate.Range(min=0, max=100))
    error_mix = ErrorMix(required=True)
    stream_fault_after_tokens = fields.Integer(required=True, validate=validate.Range(min=0))
    retry_after_ms = _ms(required=True)
    timeout_ms = _ms(required=True)
    stall_ms = _ms(required=True)
    trickle_bytes_per_s = fields.Integer(required=True, validate=validate.Range(min=0))
    request_headers = fields.Boolean(required=True)


class RateLimitsSchema(_Strict):
    requests_per_minute = fields.Integer(required=True, validate=validate.Range(min=0))
    tokens_per_minute = fields.Integer(required=True, validate=validate.Range(min=0))


def _optional(schema: type[Schema]) -> dict:
    """The fields of ``schema``, none of them required."""
    return {name: type(f)(validate=f.validate) for name, f in schema._declared_fields.items()}


# Every key optional: a profile names only what differs for its model.
_ProfileSchema = _Strict.from_dict({**_optional(LatencySchema), **_optional(RateLimitsSchema)}, name="ProfileSchema")


class AdminSchema(_Strict):
    token = fields.String(required=True)


class SharedSchema(_Strict):
    path = fields.String(required=True)


class RecordSchema(_Strict):
    upstream = fields.String(
        required=True, validate=validate.Regexp(r"^(https?://.+)?$", error="expected an http(s) URL")
    )
    dir = fields.String(required=True, validate=validate.Length(min=1))


class ReplaySchema(_Strict):
    dir = fields.String(required=True)
    speed = fields.Float(required=True, validate=validate.Range(min=0))
    fallback = fields.String(required=True, validate=validate.OneOf(["", *RESPONSE_MODES]))


class ModelsSchema(_Strict):
    available = ModelList(required=True)
    allow_unknown = fields.Boolean(required=True)
    profiles = ModelTables(required=True)


class SettingsSchema(_Strict):
    server = fields.Nested(ServerSchema, required=True)
    tls = fields.Nested(TLSSchema, required=True)
    auth = fields.Nested(AuthSchema, required=True)
    responses = fields.Nested(ResponsesSchema, required=True)
    latency = fields.Nested(LatencySchema, required=True)
    faults = fields.Nested(FaultsSchema, required=True)
    rate_limits = fields.Nested(RateLimitsSchema, required=True)
    admin = fields.Nested(AdminSchema, required=True)
    shared = fields.Nested(SharedSchema, required=True)
    record = fields.Nested(RecordSchema, required=True)
    replay = fields.Nested(ReplaySchema, required=True)
    models = fields.Nested(ModelsSchema, required=True)
    scenarios = Scenarios(required=True)

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
            latency=data["latency"],
            faults=data["faults"],
            rate_limits=data["rate_limits"],
            admin=data["admin"],
            shared=data["shared"],
            record=data["record"],
            replay=data["replay"],
            models=data["models"]["available"],
            allow_unknown_models=data["models"]["allow_unknown"],
            profiles=data["models"]["profiles"],
            scenarios=data["scenarios"],
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
    return _validate(merged, sources)


def _validate(merged: dict, sources: dict) -> Settings:
    try:
        settings = SettingsSchema().load(merged)
    except ValidationError as exc:
        raise ConfigError(*_describe(exc.messages, merged, sources)) from None
    object.__setattr__(settings, "sources", sources)
    object.__setattr__(settings, "raw", merged)
    if settings.responses["scenario"] and settings.responses["scenario"] not in settings.scenarios:
        known = ", ".join(sorted(settings.scenarios)) or "none defined"
        raise ConfigError(
            f"invalid config responses.scenario = {settings.responses['scenario']!r} "
            f"(from {sources.get('responses.scenario', 'built-in defaults')}): unknown scenario; known: {known}",
            "responses.scenario",
        )
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
    keys = [(section, key) for section, values in DEFAULTS.items() for key in values] + list(KEY_ALIASES)
    for prefix in ENV_PREFIXES[::-1]:  # MOCK_OPENAI_ wins over MOCK_GPT_
        for section, key in keys:
            variable = f"{prefix}{section.upper()}_{key.upper()}"
            if environ.get(variable) is not None:
                put(section, key, variable)
    return layer


# Tables merged key by key across layers (a later layer adds a model's profile, it does not drop the others).
MERGED_TABLES = {("models", "profiles")}


def _merge(layers, base: dict | None = None, sources: dict | None = None):
    merged = {section: dict(values) for section, values in (base or DEFAULTS).items()}
    sources = dict(sources or {})
    for source, layer in layers:
        if not isinstance(layer, dict):
            raise ConfigError(f"{source}: expected tables of settings")
        names = getattr(layer, "names", {})
        for section, values in layer.items():
            if section not in merged:
                raise ConfigError(f"unknown config section [{section}] (from {source})")
            if not isinstance(values, dict):
                raise ConfigError(f"[{section}] must be a table (from {source})")
            for key, value in values.items():
                name = f"{section}.{key}"
                target_section, target_key = KEY_ALIASES.get((section, key), (section, key))
                current = merged[target_section].get(target_key)
                if (target_section, target_key) in MERGED_TABLES and isinstance(current, dict):
                    if isinstance(value, dict):
                        value = current | value
                merged[target_section][target_key] = value
                where = f"{source} {names[name]}" if name in names else source
                sources[f"{target_section}.{target_key}"] = where
    return merged, sources


def _describe(messages: dict, merged: dict, sources: dict) -> tuple[str, str]:
    """The first validation error as one line (key, value, source, reason), and the key."""
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
        return f"invalid config {name} = {value!r} (from {sources.get(name, 'built-in defaults')}): {reason}", name
    reason = detail[0] if isinstance(detail, list) else detail
    return f"invalid config section [{section}]: {reason}", section
