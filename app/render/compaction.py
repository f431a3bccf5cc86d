"""What a compaction item carries: the real API's ``encrypted_content`` is opaque to the client, and only the
model reads it back. Ours is the summary text the simulation composed for it, packed (zlib, then URL-safe
base64, behind a version tag), so that a later request given the item counts its tokens as the summary's,
not the whole conversation's."""

from __future__ import annotations

import base64
import binascii
import zlib

TAG = "mock-cmp-1."


def seal(summary: str) -> str:
    return TAG + base64.urlsafe_b64encode(zlib.compress(summary.encode(), 6)).decode()


def opened(encrypted_content: str) -> str:
    """The summary a compaction item stands for; another server's (or a made-up) item, as the text it is."""
    if not encrypted_content.startswith(TAG):
        return encrypted_content
    try:
        return zlib.decompress(base64.urlsafe_b64decode(encrypted_content[len(TAG) :])).decode()
    except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError):
        return encrypted_content
