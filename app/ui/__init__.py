"""The web UI: ``/ui/dashboard``, ``/ui/requests`` (and one request's detail), ``/ui/health``.

Pages are Jinja templates (everything a client sent is escaped by Jinja, or set as text by the script) with
one stylesheet and one script of our own under ``/ui/static``: no CDN, it works offline. The dashboard
and the request list update live from ``/ui/events``, an SSE stream of the journal's statistics; the list
and the detail view read ``/_mock/requests``.

With a token set (``[admin] token``, else ``[auth] token``) every page asks for it once at ``/ui/login`` and
keeps a value derived from it in an HttpOnly, SameSite=Strict cookie; without that cookie no page or data
is shown.
"""

from __future__ import annotations

import hmac
import os
import time

from flask import Blueprint, Response, redirect, render_template, request, url_for
from gevent import sleep

from app.api.admin import UI_COOKIE, admin_token, has_ui_session, ui_session
from app.errors import OpenAIError
from app.journal.entries import entry_of
from app.journal.stats import stats
from app.render import compact, pretty
from app.state import current_state
from app.ui.curl import curl_command
from app.version import __version__

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates", static_folder="static")
STARTED_ENV = "MOCK_OPENAI_STARTED_AT"  # set by gunicorn's master; else the time this worker started
_STARTED = float(os.environ.get(STARTED_ENV) or time.time())
LIVE_INTERVAL_S = 1.0
SECRET_SETTINGS = (("auth", "token"), ("admin", "token"))


class Live:
    """Whether live streams should end: set when the worker begins a graceful stop."""

    stopping = False


@bp.before_request
def require_session():
    token = admin_token()
    if not token or request.endpoint in ("ui.login", "ui.static") or has_ui_session(token):
        return None
    if request.endpoint == "ui.events":
        raise OpenAIError(401, "Log in to the web UI first (/ui/login).", code="invalid_api_key")
    return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))


@bp.after_request
def no_framing(response: Response) -> Response:
    # The pages show what clients sent: no inline scripts run, none from elsewhere, and no framing.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/")
def index():
    return redirect(url_for("ui.dashboard"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The token form; a right token sets the session cookie and goes on to ``next``."""
    token = admin_token()
    target = request.values.get("next", "")
    if not target.startswith("/ui/") or target.startswith("//"):
        target = url_for("ui.dashboard")
    if not token:
        return redirect(target)
    if request.method == "GET":
        return render_template("login.html", next=target, error=None)
    given = request.form.get("token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return render_template("login.html", next=target, error="That token is not right."), 401
    response = redirect(target)
    response.set_cookie(
        UI_COOKIE,
        ui_session(token),
        httponly=True,
        samesite="Strict",
        secure=request.scheme == "https",
        path="/",
    )
    return response


@bp.post("/logout")
def logout():
    response = redirect(url_for("ui.login"))
    response.delete_cookie(UI_COOKIE, path="/")
    return response


@bp.get("/dashboard")
def dashboard():
    return render_template("dashboard.html", page="dashboard", journal=_journal_on())


@bp.get("/requests")
def requests_page():
    return render_template("requests.html", page="requests", journal=_journal_on())


@bp.get("/requests/<int:entry_id>")
def request_detail(entry_id: int):
    journal = current_state().journal
    if not _journal_on():
        return render_template("requests.html", page="requests", journal=False), 404
    journal.settled()
    row = journal.store.get(entry_id)
    if row is None:
        return render_template("detail.html", page="requests", entry=None, entry_id=entry_id), 404
    entry = entry_of(row, events=True)
    curl = curl_command(entry, request.host_url)
    return render_template("detail.html", page="requests", entry=entry, entry_id=entry_id, pretty=_pretty, curl=curl)


@bp.get("/health")
def health():
    state = current_state()
    settings = state.simulation.settings()
    tls = settings.tls
    facts = {
        "status": "healthy",
        "version": __version__,
        "uptime_s": int(time.time() - _STARTED),
        "workers": settings.server["workers"],
        "this_worker": os.getpid(),
        "tls": settings.tls_enabled,
        "mtls": settings.tls_enabled and bool(tls["ca_cert_path"]),
        "client_certificate_required": settings.tls_enabled and tls["require_client_cert"],
        "auth": bool(settings.auth["token"]),
        "admin_token": bool(settings.admin["token"]),
        "journal": _journal_on(),
        "metrics": state.metrics is not None,
        "mode": settings.responses["mode"],
    }
    return render_template("health.html", page="health", facts=facts, config=pretty(effective_config(settings)))


def effective_config(settings) -> dict:
    """Every section as requests run under it now (runtime changes included), secrets shown as set or not."""
    sections = ("server", "tls", "auth", "admin", "responses", "latency", "faults", "rate_limits", "shared",
                "journal", "logging", "metrics", "record", "replay")  # fmt: skip
    config = {name: dict(getattr(settings, name)) for name in sections}
    for section, key in SECRET_SETTINGS:
        if config[section][key]:
            config[section][key] = "[redacted]"
    config["models"] = {
        "available": [m.id for m in settings.models],
        "allow_unknown": settings.allow_unknown_models,
        "profiles": settings.profiles,
    }
    config["scenarios"] = sorted(settings.scenarios)
    return config


@bp.get("/events")
def events():
    """SSE: a ``stats`` event (the JSON of ``GET /_mock/stats``) each second while anything changed, a
    comment otherwise; it ends when the worker stops, and the browser reconnects."""
    journal = current_state().journal
    if not _journal_on():
        raise OpenAIError(404, "The request journal is off ([journal] enabled = false).", code="journal_disabled")
    store = journal.store

    def live():
        yield b"retry: 1000\n\n"
        last = None
        while not Live.stopping:
            data = compact(stats(store))
            if data != last:
                yield b"event: stats\ndata: " + data + b"\n\n"
                last = data
            else:
                yield b": idle\n\n"
            sleep(LIVE_INTERVAL_S)

    return Response(live(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


def _journal_on() -> bool:
    journal = current_state().journal
    return journal is not None and journal.store is not None


def _pretty(value) -> str:
    """A body as indented JSON, or as the text it is."""
    if isinstance(value, dict | list):
        return pretty(value)
    return "" if value is None else str(value)
