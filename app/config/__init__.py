"""The one configuration loader.

Layers, later ones winning: built-in defaults and the built-in scenarios (inside the package, so an
installed wheel has them); from the folder the server runs in, ``config/default.toml``,
``config/test_scenarios.toml`` and ``config/local.toml``, each optional; the file named by ``--config`` (or
``MOCK_OPENAI_CONFIG``); ``.env`` in that folder; environment variables; then command-line flags. The merged
result is validated by one marshmallow schema; a bad value stops start-up with a :class:`ConfigError` that
names the key and the layer it came from.

The same schema validates what changes at run time: :meth:`Settings.with_layer` puts a layer (a named
scenario, a ``PATCH /_mock/config``) on top of loaded settings and validates the result again.

gunicorn's master (through ``app/server/gunicorn_conf.py``) and every worker (through ``create_app``) call
:func:`load_settings` and so see the same settings. The CLI hands its flags to both through the
``MOCK_OPENAI_CLI_OVERRIDES`` environment variable, which forked workers inherit.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from dotenv import dotenv_values
from marshmallow import ValidationError

from app.config.defaults import (  # noqa: F401 (the package's face: what the rest of the app imports)
    ALIASES,
    BUILT_IN_CONFIG,
    CLI_OVERRIDES_ENV,
    CONFIG_FILE_ENV,
    DEFAULT_CORPUS,
    DEFAULT_MAX_OUTPUT_TOKENS,
    DEFAULTS,
    ENV_PREFIXES,
    ERROR_KINDS,
    FAULT_KINDS,
    KEY_ALIASES,
    RESPONSE_MODES,
    RUNTIME_SECTIONS,
    SONNETS_URL,
    STREAM_FAULT_KINDS,
    USER_CONFIG_FILES,
    sonnets_path,
)
from app.config.schema import SettingsSchema, parse_duration  # noqa: F401
from app.config.settings import ConfigError, ModelSpec, Settings  # noqa: F401

# --- loading ------------------------------------------------------------------------------------------


def load_settings(overrides: dict | None = None, environ: dict | None = None, folder: Path | None = None) -> Settings:
    """Merge every layer and validate. ``folder`` is where the user's ``config/`` and ``.env`` are read (the
    working folder by default); ``overrides`` is a layer above the CLI, for tests."""
    environ = os.environ if environ is None else environ
    folder = Path.cwd() if folder is None else folder
    layers: list[tuple[str, dict]] = [
        ("built-in defaults", DEFAULTS),
        ("built-in scenarios", _read_toml(BUILT_IN_CONFIG / "test_scenarios.toml")),
    ]
    for name in USER_CONFIG_FILES:
        path = folder / "config" / name
        if path.is_file():
            layers.append((f"config/{name}", _read_toml(path)))
    extra = environ.get(CONFIG_FILE_ENV)
    if extra:
        path = Path(extra)
        if not path.is_file():
            raise ConfigError(f"config file {extra} (from {CONFIG_FILE_ENV}) does not exist")
        layers.append((str(path), _read_toml(path)))
    dotenv_path = folder / ".env"
    if dotenv_path.is_file():
        dotenv = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
        layers.append((".env", _from_environment(dotenv)))
    layers.append(("environment variable", _from_environment(environ)))
    cli = environ.get(CLI_OVERRIDES_ENV)
    if cli:
        layers.append(("command line", json.loads(cli)))
    if overrides:
        layers.append(("overrides", overrides))
    merged, sources = merge(layers)
    return validate(merged, sources)


def validate(merged: dict, sources: dict) -> Settings:
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


def merge(layers, base: dict | None = None, sources: dict | None = None):
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
