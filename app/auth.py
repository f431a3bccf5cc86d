"""Optional API-key check, as the real API answers it.

With ``[auth] token`` set (``--token``, config or ``MOCK_OPENAI_AUTH_TOKEN``), ``/v1/*``, ``/echo`` and
``/tokens`` need ``Authorization: Bearer <token>`` (or Basic auth with the key as password, which the real
API also takes). ``/health`` stays open for probes. The token is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac

from flask import Blueprint

from app.apikeys import presented_key
from app.context import this_request
from app.errors import OpenAIError
from app.state import current_state

bp = Blueprint("auth", __name__)

PROTECTED_EXACT = ("/echo", "/tokens")
MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer "
    "auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're "
    "accessing the API from your browser and are prompted for a username. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


OWN_AUTH: set[str] = set()  # blueprints of wire formats that check the key in their own header (app.formats)


def key_problem(key: str) -> str | None:
    """Why ``key`` is refused (``"missing"``, ``"invalid"``), or None: the one check, for every wire format."""
    token = current_state().settings.auth["token"]
    if not token:
        return None
    if not key:
        return "missing"
    if not hmac.compare_digest(key.encode(), token.encode()):
        return "invalid"
    return None


@bp.before_app_request
def require_api_key() -> None:
    if not current_state().settings.auth["token"]:
        return
    request = this_request()
    if not _is_protected(request.path):
        return
    if request.blueprint in OWN_AUTH:
        return
    key = presented_key(request.headers.get("Authorization", ""))
    problem = key_problem(key)
    if problem == "missing":
        raise OpenAIError(401, MISSING_KEY_MESSAGE)
    if problem == "invalid":
        raise OpenAIError(
            401,
            f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )


def _is_protected(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1" or path in PROTECTED_EXACT


def mask_key(key: str) -> str:
    """The real API's mask: the first eight characters and the last four, stars between.
    Keys too short for that keep only their last four characters."""
    if len(key) > 12:
        return key[:8] + "*" * (len(key) - 12) + key[-4:]
    return "*" * max(0, len(key) - 4) + key[-4:]
