"""A worker's memory back to its baseline after a large request body.

Two things keep it high otherwise. werkzeug's request and its environ refer to each other and hold the
body, its text and its parsed JSON, so they wait for the garbage collector's next pass. And glibc's
malloc raises its mmap threshold each time a large block is freed, so the next large blocks come from
the heap, which rarely shrinks: a worker that read a 20 MB body three times stayed 150 MB above its
start. Fixing the threshold at 1 MB keeps large blocks in their own mappings, returned when freed.
"""

from __future__ import annotations

import ctypes
import gc

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 1 << 20

try:
    _libc = ctypes.CDLL(None)
    _mallopt, _malloc_trim = _libc.mallopt, _libc.malloc_trim
except (OSError, AttributeError):  # not glibc (musl, macOS): the collector alone
    _mallopt = _malloc_trim = None


def fix_mmap_threshold() -> None:
    """Once per worker, before it serves."""
    if _mallopt is not None:
        _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def release() -> None:
    """After a large request: free what it held now, and give the heap's free pages back."""
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)
