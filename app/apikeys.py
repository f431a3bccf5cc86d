"""The API key a request presents: ``Authorization: Bearer <key>``, or Basic auth with the key as password
(which the real API also takes). Used by the auth check and by the rate limits, which are per key."""

from __future__ import annotations

import base64
import binascii

PRESENTED = "mock_openai.api_key"  # environ key: the key a wire format's own header presented (app.formats)


def request_key(environ) -> str:
    """The key this request presents, in whichever header its wire format reads: for the rate limits."""
    return environ.get(PRESENTED) or presented_key(environ.get("HTTP_AUTHORIZATION", ""))


def presented_key(header: str) -> str:
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    return ""
