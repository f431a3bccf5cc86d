"""The settings a request runs under: start-up settings, a named scenario, and the runtime layer.

Layers, later ones winning: the settings loaded at start-up; the active scenario (``[responses] scenario``,
or the one a request names in ``X-Mock-Scenario``) from ``[scenarios]``; then what ``PATCH /_mock/config``
set, shared by every worker. A worker rebuilds them only when the shared version number changes; the
request path compares one number.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.config import ConfigError, Settings
from app.errors import OpenAIError
from app.simulation.latency import Timing


@dataclass(frozen=True, slots=True)
class PerModel:
    """What a model's requests share under one set of settings, worked out once."""

    latency: dict  # [latency] with the model's profile on top
    rate_limited: bool
    fixed_timing: Timing | None  # the timing of every reply, when nothing varies it (no jitter, prefill, load)


def per_model(settings: Settings, model: str) -> PerModel:
    latency = settings.for_model("latency", model)
    limits = settings.for_model("rate_limits", model)
    varies = (
        latency["ttft_jitter_ms"]
        or latency["inter_token_jitter_ms"]
        or latency["prefill_ms_per_1k_prompt_tokens"]
        or latency["max_concurrent_sequences"]
        or latency["kv_cache_blocks"]
        or latency["max_num_batched_tokens"]
    )
    fixed = None if varies else Timing(latency["ttft_ms"] / 1000, latency["inter_token_latency_ms"] / 1000)
    return PerModel(latency, bool(limits["requests_per_minute"] or limits["tokens_per_minute"]), fixed)


class Layers:
    def __init__(self, base: Settings, shared):
        self.base, self.shared = base, shared
        self.version = None
        self.runtime: dict = {}
        self.active: Settings = base
        self.by_scenario: dict[str, Settings] = {}
        self.models: dict[tuple[int, str], PerModel] = {}

    def per_model(self, settings: Settings, model: str) -> PerModel:
        """:class:`PerModel` of these settings, kept until the settings change."""
        key = (id(settings), model)
        found = self.models.get(key)
        if found is None:
            found = self.models[key] = per_model(settings, model)
        return found

    def current(self, scenario: str | None = None, version: int | None = None) -> Settings:
        """The settings now (of ``scenario``, if named); ``version`` is the shared one, when already read."""
        if version is None:
            version = self.shared.version()
        if version != self.version:
            self._refresh(version)
        if scenario is None:
            return self.active
        found = self.by_scenario.get(scenario)
        if found is None:
            found = self._build(scenario)
        return found

    def _refresh(self, version: int) -> None:
        self.runtime = self.shared.runtime_layer()
        self.by_scenario = {}
        self.models = {}  # keyed by id(): only ever for settings this object still holds
        self.version = version
        name = self.runtime.get("responses", {}).get("scenario", self.base.responses["scenario"])
        self.active = self._build(name) if name else self._with_runtime(self.base)

    def _build(self, name: str) -> Settings:
        layer = self.base.scenarios.get(name)
        if layer is None:
            known = ", ".join(sorted(self.base.scenarios)) or "none"
            raise OpenAIError(
                400,
                f"Unknown scenario '{name}' in header 'X-Mock-Scenario'. Known scenarios: {known}.",
                param="X-Mock-Scenario",
                code="invalid_header_value",
            )
        built = self.by_scenario[name] = self._with_runtime(self.base.with_layer(layer, f"scenario {name}"))
        return built

    def _with_runtime(self, settings: Settings) -> Settings:
        if not self.runtime:
            return settings
        try:
            return settings.with_layer(self.runtime)
        except ConfigError:  # the layer was checked against the base when it was set; keep serving
            return settings
