"""Content digests: SHA-256 (our identity) and SHA-1 (Immich's checksum) in one pass.

Both digests are fed the same 1 MiB chunk while it is still in the CPU cache, so a
file is read once and its bytes are touched twice in cache rather than twice from
RAM or disk. ``quick_digest`` is the fclones-style prefilter: first and last 4 KiB
plus the size, enough to split most same-size files without reading them.
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

CHUNK = 1 << 20
QUICK_BLOCK = 4096


def hash_buffer(data: bytes | bytearray | memoryview) -> tuple[str, str]:
    """(sha256 hex, sha1 hex) of an in-memory buffer."""
    view = memoryview(data)
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1()
    for start in range(0, len(view), CHUNK):
        chunk = view[start : start + CHUNK]
        sha256.update(chunk)
        sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()


def hash_stream(fh: BinaryIO, prefix: bytes = b"") -> tuple[str, str, int]:
    """(sha256, sha1, bytes read) of ``prefix`` followed by the rest of ``fh``.

    ``prefix`` is what the caller already read from the start of the file (the head
    used for sniffing); it is hashed, not re-read, and not counted again.
    """
    sha256 = hashlib.sha256(prefix)
    sha1 = hashlib.sha1(prefix)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    while True:
        n = fh.readinto(buf)  # type: ignore[attr-defined]
        if not n:
            break
        total += n
        sha256.update(view[:n])
        sha1.update(view[:n])
    return sha256.hexdigest(), sha1.hexdigest(), total


def hash_file(path: str) -> tuple[str, str, int]:
    """(sha256, sha1, bytes read) of a whole file, streamed in 1 MiB chunks."""
    with open(path, "rb", buffering=0) as fh:
        return hash_stream(fh)


def _quick(first: bytes, last: bytes, size: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(size.to_bytes(8, "little"))
    h.update(first)
    h.update(last)
    return h.hexdigest()


def quick_digest_buffer(data: bytes | bytearray | memoryview) -> str:
    """Quick digest of content already in memory (same value as ``quick_digest``)."""
    size = len(data)
    first = bytes(data[:QUICK_BLOCK])
    last = bytes(data[max(QUICK_BLOCK, size - QUICK_BLOCK) :]) if size > QUICK_BLOCK else b""
    return _quick(first, last, size)


def quick_digest_fh(fh: BinaryIO, size: int, head: bytes = b"") -> tuple[str, int]:
    """Quick digest through an open file; ``head`` is the file's first bytes when
    already read (at least min(size, 4 KiB) of them). Returns (hex, bytes read here)."""
    read = 0
    if len(head) >= min(size, QUICK_BLOCK):
        first = head[:QUICK_BLOCK]
    else:
        fh.seek(0)
        first = fh.read(QUICK_BLOCK)
        read += len(first)
    last = b""
    if size > QUICK_BLOCK:
        start = max(QUICK_BLOCK, size - QUICK_BLOCK)
        if len(head) >= size:
            last = head[start:size]
        else:
            fh.seek(start)
            last = fh.read(size - start)
            read += len(last)
    return _quick(first, last, size), read


def quick_digest(path: str, size: int | None = None) -> tuple[str, int]:
    """(hex digest of first+last 4 KiB and the size, bytes read)."""
    with open(path, "rb", buffering=0) as fh:
        if size is None:
            size = os.fstat(fh.fileno()).st_size
        return quick_digest_fh(fh, size)
