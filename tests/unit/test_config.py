"""The one config loader: layers, precedence, env names, and one-line errors."""

from __future__ import annotations

import json

import pytest

from app.config import CLI_OVERRIDES_ENV, ConfigError, load_settings, parse_duration


def load(tmp_path, environ=None, files=None):
    (tmp_path / "config").mkdir(exist_ok=True)
    for name, text in (files or {}).items():
        (tmp_path / "config" / name).write_text(text)
    return load_settings(environ=environ or {}, folder=tmp_path)


def test_built_in_defaults(tmp_path):
    settings = load(tmp_path)
    assert settings.server["port"] == 8079 and settings.server["host"] == "0.0.0.0"
    assert settings.responses["max_tokens"] == 1000 and settings.latency["inter_token_latency_ms"] == 10
    assert settings.server["workers"] >= 1
    assert [m.id for m in settings.models][:2] == ["gpt-4o-mini", "gpt-5.4"]
    assert settings.server["strict_validation"] is True


def test_the_shipped_default_toml_agrees_with_the_built_in_defaults():
    from app.config import BUILT_IN_CONFIG, DEFAULTS, _read_toml

    assert _read_toml(BUILT_IN_CONFIG / "default.toml") == DEFAULTS


def test_layers_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MOCK_OPENAI_RESPONSES_MAX_TOKENS=30\nMOCK_OPENAI_SERVER_PORT=7000\n")
    files = {
        "default.toml": "[responses]\nmax_tokens = 10\ninter_token_latency_ms = 1\n[server]\nport = 1\n",
        "local.toml": "[responses]\nmax_tokens = 20\n",
    }
    environ = {
        "MOCK_OPENAI_SERVER_PORT": "9000",
        CLI_OVERRIDES_ENV: json.dumps({"responses": {"inter_token_latency_ms": 5}}),
    }
    settings = load(tmp_path, environ, files)
    assert settings.responses["max_tokens"] == 30  # .env over local.toml over default.toml
    assert settings.server["port"] == 9000  # environment over .env
    assert settings.latency["inter_token_latency_ms"] == 5  # command line over all (under the original's name)
    assert settings.sources["responses.max_tokens"] == ".env MOCK_OPENAI_RESPONSES_MAX_TOKENS"


def test_original_env_names_are_accepted(tmp_path):
    environ = {"MOCK_GPT_SERVER_PORT": "9000", "MOCK_GPT_RESPONSES_DEFAULT_DELAY_MS": "50"}
    settings = load(tmp_path, environ)
    assert settings.server["port"] == 9000 and settings.latency["ttft_ms"] == 50


def test_our_env_names_win_over_the_originals(tmp_path):
    settings = load(tmp_path, {"MOCK_GPT_SERVER_PORT": "9000", "MOCK_OPENAI_SERVER_PORT": "9001"})
    assert settings.server["port"] == 9001


def test_port_alias_for_heroku(tmp_path):
    assert load(tmp_path, {"PORT": "5555"}).server["port"] == 5555


def test_config_file_env(tmp_path):
    extra = tmp_path / "extra.toml"
    extra.write_text('[auth]\ntoken = "sk-x"\n')
    assert load(tmp_path, {"MOCK_OPENAI_CONFIG": str(extra)}).auth["token"] == "sk-x"


def test_bad_value_names_key_value_and_source(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"MOCK_GPT_SERVER_PORT": "abc"})
    assert str(caught.value) == (
        "invalid config server.port = 'abc' (from environment variable MOCK_GPT_SERVER_PORT): Not a valid integer."
    )


def test_unknown_key_in_a_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"responses.max_tokenz .* \(from config/local.toml\): unknown key"):
        load(tmp_path, files={"local.toml": "[responses]\nmax_tokenz = 5\n"})


def test_unknown_section_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config section \[respones\]"):
        load(tmp_path, files={"local.toml": "[respones]\nmax_tokens = 5\n"})


def test_models_with_limits_from_env(tmp_path):
    settings = load(tmp_path, {"MOCK_OPENAI_MODELS_AVAILABLE": "a:100, b-instruct"})
    assert [(m.id, m.max_output_tokens, m.endpoint) for m in settings.models] == [
        ("a", 100, "chat"),
        ("b-instruct", 16384, "completions"),
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("600s", 600), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("250ms", 0.25), (30, 30)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration(tmp_path):
    with pytest.raises(ConfigError, match="client_request_timeout"):
        load(tmp_path, {"MOCK_OPENAI_SERVER_CLIENT_REQUEST_TIMEOUT": "soon"})
