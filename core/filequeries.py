"""Catalog queries both services share: finding files by path or content SHA-1."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import File
from core.paths import path_key

CHUNK = 1000  # bound IN (...) lists on both databases


def chunks(items: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


@dataclass
class LookupFile:
    id: int
    path: str
    sha1: str | None
    size: int
    kind: str


def lookup_files(session: Session, paths: Sequence[str], sha1s: Sequence[str]) -> list[LookupFile]:
    """Present files by path or SHA-1, each once, in request order (paths first)."""
    cols = (File.id, File.path, File.sha1, File.size, File.kind, File.path_key)
    by_key: dict[str, LookupFile] = {}
    keys = [path_key(p) for p in paths]
    for chunk in chunks(sorted(set(keys))):
        for fid, path, sha1, size, kind, key in session.execute(
            select(*cols).where(File.path_key.in_(chunk), File.status == "present")
        ):
            by_key[key] = LookupFile(fid, path, sha1, size, kind)
    by_sha: dict[str, list[LookupFile]] = defaultdict(list)
    wanted = [s.lower() for s in sha1s]
    for chunk in chunks(sorted(set(wanted))):
        for fid, path, sha1, size, kind, _key in session.execute(
            select(*cols).where(File.sha1.in_(chunk), File.status == "present").order_by(File.id)
        ):
            by_sha[(sha1 or "").lower()].append(LookupFile(fid, path, sha1, size, kind))
    out: dict[int, LookupFile] = {}
    for k in keys:
        if k in by_key:
            out.setdefault(by_key[k].id, by_key[k])
    for s in wanted:
        for f in by_sha.get(s, []):
            out.setdefault(f.id, f)
    return list(out.values())
