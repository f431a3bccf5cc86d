"""The settings a request runs under: start-up settings, a named scenario, and the runtime layer.

Layers, later ones winning: the settings loaded at start-up; the active scenario (``[responses] scenario``,
or the one a request names in ``X-Mock-Scenario``) from ``[scenarios]``; then what ``PATCH /_mock/config``
set, shared by every worker. A worker rebuilds them only when the shared version number changes; the
request path compares one number.
"""

from __future__ import annotations

from app.config import ConfigError, Settings
from app.errors import OpenAIError


class Layers:
    def __init__(self, base: Settings, shared):
        self.base, self.shared = base, shared
        self.version = None
        self.runtime: dict = {}
        self.active: Settings = base
        self.by_scenario: dict[str, Settings] = {}

    def current(self, scenario: str | None = None) -> Settings:
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
