"""The one marshmallow schema every layer of settings is validated by, and its custom fields."""

from __future__ import annotations

import json
import os
import re

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from app.config.defaults import ERROR_KINDS, FAULT_KINDS, RESPONSE_MODES, RUNTIME_SECTIONS
from app.config.settings import ModelSpec, Settings

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
                name, _, limit = item.rpartition(":")  # "name:4096"; a fine-tune's "ft:a:b::c" has colons too
                if not limit.strip().isdigit():
                    name, limit = item, ""
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
    if "embedding" in model_id:
        return "embeddings"
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
    endpoint = fields.String(validate=validate.OneOf(["chat", "completions", "embeddings"]))
    owned_by = fields.String()
    created = fields.Integer()
    snapshot = fields.String()
    context_window = fields.Integer(validate=validate.Range(min=1))
    dimensions = fields.Integer(validate=validate.Range(min=1))
    reasoning = fields.Boolean()


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
    kv_cache_blocks = fields.Integer(required=True, validate=validate.Range(min=0))
    max_num_batched_tokens = fields.Integer(required=True, validate=validate.Range(min=0))
    block_size = fields.Integer(required=True, validate=validate.Range(min=1))


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


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class SharedSchema(_Strict):
    path = fields.String(required=True)
    redis_url = fields.String(required=True, validate=lambda url: url == "" or url.startswith(_REDIS_SCHEMES))
    redis_prefix = fields.String(required=True, validate=validate.Length(min=1))


class JournalSchema(_Strict):
    enabled = fields.Boolean(required=True)
    path = fields.String(required=True)
    max_entries = fields.Integer(required=True, validate=validate.Range(min=1))
    max_body_bytes = fields.Integer(required=True, validate=validate.Range(min=0))
    flush_interval_ms = fields.Integer(required=True, validate=validate.Range(min=0, max=60000))


class LoggingSchema(_Strict):
    requests = fields.Boolean(required=True)
    format = fields.String(required=True, validate=validate.OneOf(["text", "json"]))
    file = fields.String(required=True)
    max_bytes = fields.Integer(required=True, validate=validate.Range(min=0))
    backups = fields.Integer(required=True, validate=validate.Range(min=0))


class MetricsSchema(_Strict):
    enabled = fields.Boolean(required=True)


class RecordSchema(_Strict):
    upstream = fields.String(
        required=True, validate=validate.Regexp(r"^(https?://.+)?$", error="expected an http(s) URL")
    )
    dir = fields.String(required=True, validate=validate.Length(min=1))


class ReplaySchema(_Strict):
    dir = fields.String(required=True)
    speed = fields.Float(required=True, validate=validate.Range(min=0))
    fallback = fields.String(required=True, validate=validate.OneOf(["", *RESPONSE_MODES]))


class AzureSchema(_Strict):
    deployments = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1)), values=fields.String(), required=True
    )
    region = fields.String(required=True)


class BatchSchema(_Strict):
    duration_s = fields.Float(required=True, validate=validate.Range(min=0, max=7 * 86400))
    window_s = fields.Float(required=True, validate=validate.Range(min=0, max=7 * 86400))


class PromptCacheSchema(_Strict):
    enabled = fields.Boolean(required=True)
    min_tokens = fields.Integer(required=True, validate=validate.Range(min=1))
    step_tokens = fields.Integer(required=True, validate=validate.Range(min=1))
    retention_s = fields.Float(required=True, validate=validate.Range(min=0, max=7 * 86400))


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
    journal = fields.Nested(JournalSchema, required=True)
    logging = fields.Nested(LoggingSchema, required=True)
    metrics = fields.Nested(MetricsSchema, required=True)
    record = fields.Nested(RecordSchema, required=True)
    replay = fields.Nested(ReplaySchema, required=True)
    azure = fields.Nested(AzureSchema, required=True)
    batch = fields.Nested(BatchSchema, required=True)
    prompt_cache = fields.Nested(PromptCacheSchema, required=True)
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
            journal=data["journal"],
            logging=data["logging"],
            metrics=data["metrics"],
            record=data["record"],
            replay=data["replay"],
            azure=data["azure"],
            batch=data["batch"],
            prompt_cache=data["prompt_cache"],
            models=data["models"]["available"],
            allow_unknown_models=data["models"]["allow_unknown"],
            profiles=data["models"]["profiles"],
            scenarios=data["scenarios"],
        )
