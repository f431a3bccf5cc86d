"""Gauges pinned by a test, for every worker: held at a value, or ramped from one value to another.

An autoscaler rule (KEDA, an HPA on vLLM's metrics) or a load-aware router reacts to a few gauges; rehearsing
it should not need the load that would move them. ``POST /_mock/metrics/pins`` pins a gauge of a model (or
of every model it has a series for), ``DELETE`` lets go: a scrape then shows what the server measures again.
Pins are stored objects of the shared state, so every worker's and every instance's scrape shows them; they
are read by a scrape, never by a request.
"""

from __future__ import annotations

import time

KIND = "metric_pin"
# What can be pinned: vLLM's scheduler gauges, including the KV cache's (measured where a model has one).
KV_USAGE = "vllm:kv_cache_usage_perc"
PINNABLE = ("vllm:num_requests_running", "vllm:num_requests_waiting", KV_USAGE)
HELP = {KV_USAGE: "KV-cache usage. 1 means 100 percent usage."}


def pin_id(metric: str, model: str | None) -> str:
    return f"{metric}@{model or '*'}"


def check(item) -> dict:
    """A pin as stored, or ValueError naming what is wrong: ``{"metric", "model", "value"}`` holds the gauge;
    ``{"metric", "model", "from", "to", "over_s"}`` ramps it from ``from`` to ``to`` over ``over_s`` seconds,
    then holds ``to``."""
    if not isinstance(item, dict):
        raise ValueError('body: expected a pin, a list of pins, or {"pins": [...]}')
    metric = item.get("metric")
    if metric not in PINNABLE:
        raise ValueError(f"metric: one of {', '.join(PINNABLE)}")
    model = item.get("model")
    if model is not None and not isinstance(model, str):
        raise ValueError("model: a model name, or leave it out for every model")
    numbers = {key: item[key] for key in ("value", "from", "to", "over_s") if key in item}
    for key, number in numbers.items():
        if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
            raise ValueError(f"{key}: a number, 0 or more")
    if "value" in numbers:
        if len(numbers) > 1:
            raise ValueError("value: give a value, or from, to and over_s, not both")
        shape = {"value": numbers["value"]}
    elif {"from", "to", "over_s"} <= numbers.keys():
        shape = {"from": numbers["from"], "to": numbers["to"], "over_s": numbers["over_s"]}
    else:
        raise ValueError("value: give a value, or from, to and over_s")
    unknown = set(item) - {"metric", "model", "value", "from", "to", "over_s"}
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}: not a field of a pin")
    return {"id": pin_id(metric, model), "metric": metric, "model": model, **shape, "pinned_at": time.time()}


def value_at(pin: dict, now: float) -> float:
    if "value" in pin:
        return float(pin["value"])
    span = pin["over_s"]
    done = 1.0 if span <= 0 else min(1.0, max(0.0, (now - pin["pinned_at"]) / span))
    return pin["from"] + (pin["to"] - pin["from"]) * done


def view(pin: dict, now: float) -> dict:
    """A pin as ``GET`` shows it: with the value a scrape shows now."""
    return {**pin, "current": value_at(pin, now)}
