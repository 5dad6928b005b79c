"""Immich asset <-> Twinlens library file (pure functions over plain data).

Three keys, strongest first (NOTES.md §2, §5):
1. External-library assets: ``checksum == base64(sha1("path:" + originalPath))``. When
   that holds the asset *is* the file at originalPath, mapped through the path map.
2. Uploaded assets: the checksum is base64 of the content SHA-1, which the catalog holds.
3. The path map alone (e.g. an upload whose path happens to sit under a mapped prefix).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PathMap = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class FileKey:
    """How to find an asset's file in the catalog: by path and/or content SHA-1 (hex)."""

    path: str | None
    sha1: str | None
    external: bool = False


def _under(path: str, prefix: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _swap(path: str, old: str, new: str) -> str:
    if old == "/":
        rest = path.lstrip("/")
    else:
        rest = path[len(old.rstrip("/")) :].lstrip("/")
    base = new.rstrip("/") or "/"
    return base if not rest else (base.rstrip("/") + "/" + rest)


def to_twinlens(immich_path: str, path_map: PathMap) -> str:
    """Immich's originalPath -> Twinlens path (longest matching prefix; identity if none)."""
    for immich_prefix, tl_prefix in sorted(path_map, key=lambda p: -len(p[0])):
        if _under(immich_path, immich_prefix):
            return _swap(immich_path, immich_prefix, tl_prefix)
    return immich_path


def to_immich(tl_path: str, path_map: PathMap) -> str:
    """Twinlens path -> the path Immich would store for it (inverse of ``to_twinlens``)."""
    for immich_prefix, tl_prefix in sorted(path_map, key=lambda p: -len(p[1])):
        if _under(tl_path, tl_prefix):
            return _swap(tl_path, tl_prefix, immich_prefix)
    return tl_path


def checksum_bytes(checksum: str | None) -> bytes | None:
    """Immich accepts base64 (28 chars) or hex (40 chars); returns the 20 raw bytes."""
    if not checksum:
        return None
    try:
        if len(checksum) == 40:
            return bytes.fromhex(checksum)
        raw = base64.b64decode(checksum, validate=True)
    except (ValueError, binascii.Error):
        return None
    return raw if len(raw) == 20 else None


def path_checksum(immich_path: str) -> bytes:
    """SHA-1 of ``"path:" + path``: Immich's checksum of an external-library asset."""
    return hashlib.sha1(b"path:" + os.fsencode(immich_path)).digest()


def path_checksum_b64(immich_path: str) -> str:
    return base64.b64encode(path_checksum(immich_path)).decode()


def sha1_hex_to_b64(sha1_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha1_hex)).decode()


def file_key(asset: Mapping[str, Any], path_map: PathMap) -> FileKey:
    original = asset.get("originalPath")
    raw = checksum_bytes(asset.get("checksum"))
    if isinstance(original, str) and original:
        if raw is not None:
            # Filesystems may hand Immich NFD names while the catalog holds NFC (macOS/SMB).
            for form in (
                original,
                unicodedata.normalize("NFC", original),
                unicodedata.normalize("NFD", original),
            ):
                if path_checksum(form) == raw:
                    return FileKey(to_twinlens(original, path_map), None, external=True)
        sha1 = raw.hex() if raw is not None and not asset.get("libraryId") else None
        return FileKey(to_twinlens(original, path_map), sha1)
    return FileKey(None, raw.hex() if raw is not None else None)


def member_checksums(path: str, sha1_hex: str | None, path_map: PathMap) -> list[str]:
    """Checksums (base64) under which Immich may know a library file: path-based
    (external library) and content-based (upload)."""
    out = [path_checksum_b64(to_immich(path, path_map))]
    if sha1_hex:
        try:
            out.append(sha1_hex_to_b64(sha1_hex))
        except ValueError:
            pass
    return out


def batched(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
