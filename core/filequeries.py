"""Catalog queries both services share: finding files by path or content SHA-1, paths
under a folder, the files the catalog could not read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.models import File
from core.paths import path_key, to_bytes

CHUNK = 1000  # bound IN (...) lists on both databases


def chunks(items: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def under(column: Any, prefix: str) -> Any:
    """``column`` (a path stored as bytes) is ``prefix`` or lies below it; portable
    between PostgreSQL (bytea) and SQLite (blob), unlike LIKE."""
    raw = to_bytes(prefix).rstrip(b"/") + b"/"
    return or_(column == to_bytes(prefix), func.substr(column, 1, len(raw)) == raw)


def with_problem() -> Any:
    """A file read with an error, or with a warning: read whole, but not what its name
    says (a HEIF named .jpg, a JPEG named .CR2). Both are a file's problem to list."""
    return or_(File.error.is_not(None), File.warning.is_not(None))


def problem_text(error: str | None, warning: str | None) -> str:
    """What is wrong with a file, its error first: both when it has both (a mis-named
    file cut short), so that a rename does not hide the damage nor the damage the name."""
    return "; ".join(t for t in (error, warning) if t)


@dataclass(frozen=True, slots=True)
class FileProblem:
    path: str
    kind: str
    size: int
    error: str
    read_failures: int  # failed reads in a row: later scans read it again
    updated_at: datetime
    misnamed: bool = False  # not what its name says: renaming it right reads it again


def files_with_errors(
    session: Session, *, path_prefix: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[FileProblem], int]:
    """A page of the library's files the catalog read with an error (unreadable,
    truncated, skipped) or found not what their name says, by path, and how many there
    are."""
    conds = [File.status == "present", with_problem()]
    if path_prefix:
        conds.append(under(File.path, path_prefix))
    cols = (
        File.path, File.kind, File.size, File.error, File.warning, File.read_failures,
        File.updated_at,
    )  # fmt: skip
    rows = session.execute(
        select(*cols).where(*conds).order_by(File.path).limit(limit).offset(offset)
    )
    total = session.scalar(select(func.count()).select_from(File).where(*conds))
    problems = [
        FileProblem(
            path, kind, size, problem_text(error, warning), int(again), when, warning is not None
        )
        for path, kind, size, error, warning, again, when in rows
    ]
    return problems, int(total or 0)


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
