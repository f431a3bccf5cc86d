"""``/_mock/*``: control a running server from a test harness, for all its workers at once.

- ``GET /_mock/config``: the runtime layer, the settings it gives, and the known scenarios.
- ``PATCH /_mock/config``: a JSON merge patch of the sections ``responses``, ``latency``, ``faults`` and
  ``rate_limits`` (``null`` drops a key back to its start-up value), checked by the config schema and
  applied atomically: every worker's next request sees all of it.
- ``DELETE /_mock/config``: back to the start-up settings.
- ``GET /_mock/faults``, ``POST /_mock/faults``, ``DELETE /_mock/faults``: one-shot faults, served first in,
  first out to the next matching requests; a fault with a ``test_id`` only to requests tagged with it
  (``X-Mock-Test-Id``), so parallel tests against one server do not catch each other's.
- ``GET``, ``POST``, ``DELETE /_mock/metrics/pins``: vLLM gauges held at a value or ramped, for an autoscaler
  rule to be rehearsed without load (:mod:`app.metric_pins`).

With ``[admin] token`` set these routes need it as a bearer token (or the web UI's session cookie);
otherwise they need ``[auth] token`` when that is set. Bad input gets a 400 that names the field.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import Blueprint, Response, request

from app import metric_pins
from app.apikeys import presented_key
from app.auth import MISSING_KEY_MESSAGE
from app.config import FAULT_KINDS, RUNTIME_SECTIONS, STREAM_FAULT_KINDS, ConfigError
from app.errors import OpenAIError
from app.render import pretty
from app.schemas import json_body
from app.state import current_state

bp = Blueprint("admin", __name__, url_prefix="/_mock")


def admin_json(body, status: int = 200) -> Response:
    return Response(pretty(body) + "\n", status, mimetype="application/json")


def invalid(message: str, param: str) -> OpenAIError:
    return OpenAIError(400, message, param=param, code="invalid_value")


UI_COOKIE = "mock_openai_ui"


def admin_token() -> str:
    """The token ``/_mock`` and the web UI need: ``[admin] token``, else ``[auth] token`` ("" for none)."""
    settings = current_state().settings
    return settings.admin["token"] or settings.auth["token"]


def ui_session(token: str) -> str:
    """The web UI's cookie value for a token: derived from it, so the cookie never holds the token itself."""
    return hmac.new(token.encode(), b"mock-openai web UI session", hashlib.sha256).hexdigest()


def has_ui_session(token: str) -> bool:
    cookie = request.cookies.get(UI_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), ui_session(token).encode())


def require_admin_token() -> None:
    """A bearer token, or the web UI's session cookie (SameSite=Strict: another site cannot send it)."""
    token = admin_token()
    if not token or has_ui_session(token):
        return
    key = presented_key(request.headers.get("Authorization", ""))
    if not key:
        raise OpenAIError(401, MISSING_KEY_MESSAGE)
    if not hmac.compare_digest(key.encode(), token.encode()):
        raise OpenAIError(401, "Incorrect admin token provided for /_mock.", code="invalid_api_key")


bp.before_request(require_admin_token)


# --- runtime configuration ------------------------------------------------------------------------------


def _config_view() -> dict:
    state = current_state()
    settings = state.simulation.settings()
    return {
        "version": state.shared.version(),
        "runtime": state.shared.runtime_layer(),
        "settings": {section: getattr(settings, section) for section in RUNTIME_SECTIONS},
        "scenarios": sorted(settings.scenarios),
    }


@bp.get("/config")
def get_config():
    """200 ``{"version", "runtime", "settings", "scenarios"}``: what requests run under now."""
    return admin_json(_config_view())


@bp.patch("/config")
def patch_config():
    """200 with the new configuration, as ``GET``; 400 naming the field for a bad section, key or value."""
    patch = json_body()
    if not isinstance(patch, dict):
        raise invalid('Expected a JSON object of sections, e.g. {"latency": {"ttft_ms": 200}}.', "body")
    state = current_state()
    layer = state.shared.runtime_layer()
    for section, values in patch.items():
        if section not in RUNTIME_SECTIONS:
            raise invalid(f"Section '{section}' cannot change at run time; use {', '.join(RUNTIME_SECTIONS)}.", section)
        if values is None:
            layer.pop(section, None)
            continue
        if not isinstance(values, dict):
            raise invalid(f"Section '{section}' must be an object.", section)
        merged = dict(layer.get(section, {}))
        for key, value in values.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        layer[section] = merged
    try:
        state.settings.with_layer(layer, "PATCH /_mock/config")
    except ConfigError as exc:
        raise invalid(str(exc), exc.key or "body") from None
    state.shared.set_runtime_layer(layer)
    return admin_json(_config_view())


@bp.delete("/config")
def reset_config():
    """200 with the configuration, back to what the server started with."""
    current_state().shared.set_runtime_layer({})
    return admin_json(_config_view())


# --- one-shot faults ------------------------------------------------------------------------------------


def _fault(item, path: str) -> dict:
    """One fault, checked; ``path`` is where it sits in the body ("" for a body that is one fault)."""

    def name(key):
        return f"{path}.{key}" if path else key

    if not isinstance(item, dict):
        raise invalid(f"Expected a fault object at '{path or 'body'}'.", path or "body")
    unknown = [key for key in item if key not in ("error", "count", "model", "after", "test_id")]
    if unknown:
        raise invalid(f"Unknown field '{name(unknown[0])}'; use error, count, model, after, test_id.", name(unknown[0]))
    kind = item.get("error")
    if isinstance(kind, int) and not isinstance(kind, bool):
        kind = str(kind)
    if kind not in FAULT_KINDS:
        raise invalid(f"'{name('error')}' must be one of {', '.join(FAULT_KINDS)}.", name("error"))
    fault = {"error": kind, "count": item.get("count", 1)}
    if isinstance(fault["count"], bool) or not isinstance(fault["count"], int) or fault["count"] < 1:
        raise invalid(f"'{name('count')}' must be a whole number >= 1.", name("count"))
    if item.get("model") is not None:
        if not isinstance(item["model"], str):
            raise invalid(f"'{name('model')}' must be a model name.", name("model"))
        fault["model"] = item["model"]
    if item.get("test_id") is not None:
        if not isinstance(item["test_id"], str) or not item["test_id"]:
            message = f"'{name('test_id')}' must be a test id (the X-Mock-Test-Id of its requests)."
            raise invalid(message, name("test_id"))
        fault["test_id"] = item["test_id"]
    if item.get("after") is not None:
        after = item["after"]
        if kind not in STREAM_FAULT_KINDS:
            raise invalid(f"'{name('after')}' applies to {', '.join(STREAM_FAULT_KINDS)} only.", name("after"))
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise invalid(f"'{name('after')}' must be a whole number of tokens >= 0.", name("after"))
        fault["after"] = after
    return fault


def _faults_view() -> dict:
    shared = current_state().shared
    return {"object": "list", "data": shared.faults(), "pending": shared.pending_faults()}


@bp.get("/faults")
def list_faults():
    """200 ``{"object": "list", "data": [fault, ...], "pending": n}``: queued faults and how far each is used."""
    return admin_json(_faults_view())


@bp.post("/faults")
def add_faults():
    """201 with the queued faults. The body is one fault, a list of them, or ``{"faults": [...]}``; a fault is
    ``{"error": kind, "count": 1, "model": null, "after": null, "test_id": null}``: the next ``count``
    requests (to ``model``, or to any; tagged ``X-Mock-Test-Id: test_id``, or any) get ``error``; a mid-stream
    kind strikes ``after`` tokens."""
    body = json_body()
    if isinstance(body, dict) and "faults" in body:
        items, path = body["faults"], "faults"
    else:
        items, path = (body if isinstance(body, list) else [body]), None
    if not isinstance(items, list) or not items:
        raise invalid('Expected a fault, a non-empty list of faults, or {"faults": [...]}.', path or "body")
    single = not path and not isinstance(body, list)
    faults = [_fault(item, "" if single else f"{path or ''}[{i}]") for i, item in enumerate(items)]
    added = current_state().shared.add_faults(faults)
    return admin_json({"object": "list", "data": added, "pending": current_state().shared.pending_faults()}, 201)


@bp.delete("/faults")
def clear_faults():
    """200 ``{"cleared": n}``: every queued fault dropped (with ``?test_id=``, only that test's); ``n`` uses
    were still pending."""
    test_id = request.args.get("test_id") or None
    return admin_json({"cleared": current_state().shared.clear_faults(test_id)})


# --- pinned gauges --------------------------------------------------------------------------------------


def pins(shared) -> list[dict]:
    return shared.list_objects(metric_pins.KIND, newest_first=False, after=None, limit=1000)[0]


def _pins_view() -> dict:
    now = time.time()
    return {"object": "list", "data": [metric_pins.view(pin, now) for pin in pins(current_state().shared)]}


@bp.get("/metrics/pins")
def list_pins():
    """200 ``{"object": "list", "data": [pin, ...]}``, each with the value a scrape shows ``current``ly."""
    return admin_json(_pins_view())


@bp.post("/metrics/pins")
def add_pins():
    """201 with every pin. The body is a pin, a list of them, or ``{"pins": [...]}``; a pin is ``{"metric",
    "model", "value"}`` (held) or ``{"metric", "model", "from", "to", "over_s"}`` (ramped, then held). A pin
    replaces the one of the same metric and model; without a model it holds every model's series."""
    body = json_body()
    items = body["pins"] if isinstance(body, dict) and "pins" in body else body
    items = items if isinstance(items, list) else [items]
    if not items:
        raise invalid('Expected a pin, a non-empty list of pins, or {"pins": [...]}.', "body")
    checked = []
    for index, item in enumerate(items):
        try:
            checked.append(metric_pins.check(item))
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise invalid(f"Pin {index}: {message}.", field) from None
    shared = current_state().shared
    for pin in checked:
        shared.put_object(metric_pins.KIND, pin["id"], pin)
    return admin_json(_pins_view(), 201)


@bp.delete("/metrics/pins")
def clear_pins():
    """200 ``{"cleared": n}``: every pin gone (with ``?metric=``, that metric's; with ``&model=`` too, that
    model's), and a scrape shows what the server measures again."""
    metric, model = request.args.get("metric"), request.args.get("model")
    shared = current_state().shared
    cleared = 0
    for pin in pins(shared):
        if (metric is None or pin["metric"] == metric) and (model is None or pin["model"] == model):
            cleared += shared.delete_object(metric_pins.KIND, pin["id"])
    return admin_json({"cleared": cleared})
