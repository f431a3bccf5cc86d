"""What loading gives: :class:`Settings`, the models, and the one error a bad setting raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.config.defaults import DEFAULT_CORPUS, DEFAULT_MAX_OUTPUT_TOKENS, DEFAULTS


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
    endpoint: str = "chat"  # "chat", "completions" (legacy) or "embeddings"
    owned_by: str = "system"
    created: int = 1715367049
    snapshot: str = ""  # the dated name the real API answers with in ``model`` ("" for the id itself)
    context_window: int = 128000
    dimensions: int = 1536  # an embeddings model's vector length
    reasoning: bool = False  # o-series and gpt-5: reasoning tokens, and only the default temperature
    parent: str = ""  # a LoRA adapter's base model (app.adapters); "" for a model of its own
    root: str = ""  # and the path it was loaded from

    @property
    def answers_as(self) -> str:
        return self.snapshot or self.id

    @property
    def deletable(self) -> bool:
        """Only a fine-tune (``ft:...``) can be deleted, as in the real API."""
        return self.id.startswith("ft:")


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
    journal: dict
    logging: dict
    metrics: dict
    record: dict
    replay: dict
    azure: dict
    batch: dict
    prompt_cache: dict
    models: list[ModelSpec]
    allow_unknown_models: bool
    profiles: dict  # model id -> {latency or rate_limits key: value}
    scenarios: dict  # name -> a layer
    sources: dict = field(default_factory=dict, compare=False)
    raw: dict = field(default_factory=dict, compare=False, repr=False)  # merged, before validation

    def with_layer(self, layer: dict, source: str = "runtime") -> Settings:
        """These settings with ``layer`` on top, validated by the same schema; ConfigError if it does not fit."""
        from app.config import merge, validate  # the loader, which builds Settings

        merged, sources = merge([(source, layer)], base=self.raw, sources=self.sources)
        return validate(merged, sources)

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
        """The model named by its id or by its dated snapshot name."""
        return next((m for m in self.models if m.id == model_id or m.snapshot == model_id), None)
