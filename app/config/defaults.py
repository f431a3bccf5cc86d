"""The built-in defaults, the names the loader reads, and the vocabularies settings are checked against."""

from __future__ import annotations

import os
from pathlib import Path

# What ships inside the package, so an installed wheel runs as a clone does: the built-in scenarios (and
# default.toml, every default written out with its meaning), and the default corpus.
BUILT_IN_CONFIG = Path(__file__).resolve().parent
DEFAULT_CORPUS = BUILT_IN_CONFIG.parent / "assets" / "corpus.txt"
# What the user adds is read from the folder they run the server in: config/default.toml,
# config/test_scenarios.toml and config/local.toml there, each optional, as the original read them.
USER_CONFIG_FILES = ("default.toml", "test_scenarios.toml", "local.toml")
SONNETS_URL = (
    "https://raw.githubusercontent.com/martin-gorner/tensorflow-rnn-shakespeare/master/shakespeare/sonnets.txt"
)


def sonnets_path() -> Path:
    """Where ``--download-sonnets`` keeps its copy: the user's cache folder, never the installed package."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mock-openai" / "sonnets.txt"


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
        "max_connection_rate": 512,  # connections being established at once, per worker (0: unlimited)
        "client_request_timeout": "600s",
        "keepalive": 75,
        "timeout": 30,
        "graceful_timeout": 30,
        "max_body_bytes": 32 * 1024 * 1024,
        "strict_validation": True,  # --lenient: accept minimal bodies (no model, no messages)
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
        "max_num_batched_tokens": 0,  # per model, across all workers: prefill in steps of this budget; 0: per 1k
        "kv_cache_blocks": 0,  # per model, across all workers: the KV cache running sequences fill; 0: none
        "block_size": 16,  # tokens per KV cache block
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
    "shared": {"path": "", "redis_url": "", "redis_prefix": "mock-openai"},
    "journal": {
        "enabled": True,
        "path": "",  # "": journal.sqlite3 beside the shared state
        "max_entries": 10000,  # the newest are kept
        "max_body_bytes": 65536,  # request and response bodies are cut above this
        "flush_interval_ms": 100,  # how long a worker gathers entries before it writes them in one go
    },
    "logging": {
        "requests": True,  # one info line per request (shown when log_level is info or debug)
        "format": "text",  # text or json (one JSON object a line)
        "file": "",  # also write to this file, rotated at max_bytes
        "max_bytes": 10 * 1024 * 1024,
        "backups": 5,
    },
    "metrics": {"enabled": True},  # GET /metrics, Prometheus text, summed over workers
    "record": {"upstream": "", "dir": "fixtures"},
    "replay": {"dir": "", "speed": 1.0, "fallback": ""},
    # Azure OpenAI's routes (/openai/deployments/{name}/...): each deployment and the model it serves. Every
    # configured model is also a deployment of its own name.
    "azure": {"deployments": {}, "region": "East US"},
    # The Batch API's clock: a batch is validated, runs its lines and is finalized within duration_s (the real
    # API takes up to 24 hours); one still running when window_s has passed since it was made expires.
    "batch": {"duration_s": 2.0, "window_s": 86400.0},
    # Prompt caching as OpenAI does it: a prompt's prefixes of min_tokens and more, in steps of step_tokens, are
    # cached per model (and prompt_cache_key) for every worker and instance, and forgotten after retention_s
    # unused; a repeated prefix is reported as cached_tokens and skips prefill.
    "prompt_cache": {"enabled": True, "min_tokens": 1024, "step_tokens": 128, "retention_s": 300.0},
    "models": {
        # Context windows, output limits, owners, creation times and the dated snapshot each alias answers as,
        # as the real /v1/models and completions report them.
        "available": [
            {
                "id": "gpt-4o-mini",
                "snapshot": "gpt-4o-mini-2024-07-18",
                "context_window": 128000,
                "max_output_tokens": 16384,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1721172741,
            },
            {
                "id": "gpt-5.4",
                "snapshot": "gpt-5.4",
                "context_window": 1050000,
                "max_output_tokens": 128000,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1772654400,
                "reasoning": True,
            },
            {
                "id": "gpt-5.4-mini",
                "snapshot": "gpt-5.4-mini-2026-03-17",
                "context_window": 400000,
                "max_output_tokens": 128000,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1773705600,
                "reasoning": True,
            },
            {
                "id": "gpt-5.4-nano",
                "snapshot": "gpt-5.4-nano-2026-03-17",
                "context_window": 400000,
                "max_output_tokens": 128000,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1773705600,
                "reasoning": True,
            },
            {
                "id": "gpt-5",
                "snapshot": "gpt-5-2025-08-07",
                "context_window": 400000,
                "max_output_tokens": 128000,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1754425777,
                "reasoning": True,
            },
            {
                "id": "gpt-5-mini",
                "snapshot": "gpt-5-mini-2025-08-07",
                "context_window": 400000,
                "max_output_tokens": 128000,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1754425928,
                "reasoning": True,
            },
            {
                "id": "gpt-5-nano",
                "snapshot": "gpt-5-nano-2025-08-07",
                "context_window": 400000,
                "max_output_tokens": 128000,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1754426384,
                "reasoning": True,
            },
            {
                "id": "gpt-4.1",
                "snapshot": "gpt-4.1-2025-04-14",
                "context_window": 1047576,
                "max_output_tokens": 32768,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1744316542,
            },
            {
                "id": "gpt-4.1-mini",
                "snapshot": "gpt-4.1-mini-2025-04-14",
                "context_window": 1047576,
                "max_output_tokens": 32768,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1744318173,
            },
            {
                "id": "gpt-4.1-nano",
                "snapshot": "gpt-4.1-nano-2025-04-14",
                "context_window": 1047576,
                "max_output_tokens": 32768,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1744321707,
            },
            {
                "id": "o3",
                "snapshot": "o3-2025-04-16",
                "context_window": 200000,
                "max_output_tokens": 100000,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1744225308,
                "reasoning": True,
            },
            {
                "id": "o4-mini",
                "snapshot": "o4-mini-2025-04-16",
                "context_window": 200000,
                "max_output_tokens": 100000,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1744225351,
                "reasoning": True,
            },
            {
                "id": "gpt-4o",
                "snapshot": "gpt-4o-2024-08-06",
                "context_window": 128000,
                "max_output_tokens": 16384,
                "endpoint": "chat",
                "owned_by": "system",
                "created": 1715367049,
            },
            {
                "id": "gpt-3.5-turbo",
                "snapshot": "gpt-3.5-turbo-0125",
                "context_window": 16385,
                "max_output_tokens": 4096,
                "endpoint": "chat",
                "owned_by": "openai",
                "created": 1677610602,
            },
            {
                "id": "gpt-3.5-turbo-instruct",
                "snapshot": "gpt-3.5-turbo-instruct",
                "context_window": 4096,
                "max_output_tokens": 4096,
                "endpoint": "completions",
                "owned_by": "system",
                "created": 1692901427,
            },
            {
                "id": "text-embedding-3-small",
                "snapshot": "text-embedding-3-small",
                "context_window": 8192,
                "max_output_tokens": 1,
                "endpoint": "embeddings",
                "owned_by": "system",
                "created": 1705948997,
                "dimensions": 1536,
            },
            {
                "id": "text-embedding-3-large",
                "snapshot": "text-embedding-3-large",
                "context_window": 8192,
                "max_output_tokens": 1,
                "endpoint": "embeddings",
                "owned_by": "system",
                "created": 1705953180,
                "dimensions": 3072,
            },
            {
                "id": "text-embedding-ada-002",
                "snapshot": "text-embedding-ada-002",
                "context_window": 8192,
                "max_output_tokens": 1,
                "endpoint": "embeddings",
                "owned_by": "openai-internal",
                "created": 1671217299,
                "dimensions": 1536,
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
ERROR_KINDS = ("429", "insufficient_quota", "500", "502", "503", "timeout", "content_filter")
# "filtered": the provider's content filter stops the output (finish_reason "content_filter") after N tokens.
STREAM_FAULT_KINDS = ("disconnect", "stream_error", "stall", "malformed", "filtered")
FAULT_KINDS = ERROR_KINDS + STREAM_FAULT_KINDS
