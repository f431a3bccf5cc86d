"""The pixel size of an image sent inline (a ``data:`` URL), read from its header: PNG, GIF, JPEG, WebP.

Only the first bytes are decoded, except for JPEG, whose size sits in a frame header after its tables.
"""

from __future__ import annotations

import base64
import binascii
import struct

MAX_DECODED = 8 << 20  # a JPEG's frame header is near the start; an image beyond this is not searched


def data_url_size(url: str) -> tuple[int, int] | None:
    """``(width, height)`` of ``data:image/...;base64,...``, or None when it is not one or cannot be read."""
    if not url.startswith("data:") or ";base64," not in url[:100]:
        return None
    encoded = url.split(",", 1)[1]
    try:
        head = base64.b64decode(encoded[:64], validate=False)
        if head.startswith(b"\xff\xd8"):  # JPEG: read on
            head = base64.b64decode(encoded[: MAX_DECODED // 3 * 4], validate=False)
    except (binascii.Error, ValueError):
        return None
    return image_size(head)


def image_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame header
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    return None
