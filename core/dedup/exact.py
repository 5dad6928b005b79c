"""Exact duplicates: byte-identical files, planned so that as few bytes as possible are read.

The catalog asks ``exact_candidates`` which files can have a twin at all (a size that
another distinct file shares); only those get a head/tail digest and then a full hash,
as fclones does. ``exact_groups`` then groups by SHA-256. Both are single passes over
dicts so they stay cheap at a million files.

Two rules shape both functions:

* zero-byte files are never duplicates of each other (every empty file would match);
* hard links (same device and inode) are one file seen under several names, not copies:
  deleting one name frees nothing. They collapse to one representative, the smallest
  path, so the choice is stable across scans.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.records import FileRecord


def _inode_key(f: FileRecord) -> tuple[int, int] | tuple[str, int]:
    if f.device is not None and f.inode is not None:
        return (f.device, f.inode)
    # Without device+inode each record is its own file.
    return ("id", f.id)


def collapse_hard_links(files: Iterable[FileRecord]) -> list[FileRecord]:
    """One record per (device, inode): the one with the smallest (path, id)."""
    best: dict[object, FileRecord] = {}
    for f in files:
        k = _inode_key(f)
        cur = best.get(k)
        if cur is None or (f.path, f.id) < (cur.path, cur.id):
            best[k] = f
    return list(best.values())


def hard_link_aliases(files: Iterable[FileRecord]) -> dict[int, tuple[int, ...]]:
    """For each file kept by ``collapse_hard_links`` that stood for others: the ids of
    every record of its (device, inode), itself included."""
    by_inode: dict[object, list[FileRecord]] = {}
    for f in files:
        by_inode.setdefault(_inode_key(f), []).append(f)
    out: dict[int, tuple[int, ...]] = {}
    for same in by_inode.values():
        if len(same) > 1:
            kept = min(same, key=lambda r: (r.path, r.id))
            out[kept.id] = tuple(r.id for r in same)
    return out


def _bucket(files: Iterable[FileRecord], key) -> list[list[FileRecord]]:
    buckets: dict[object, list[FileRecord]] = {}
    for f in collapse_hard_links(x for x in files if x.size > 0):
        k = key(f)
        if k is None:
            continue
        buckets.setdefault(k, []).append(f)
    out = [sorted(b, key=lambda r: (r.path, r.id)) for b in buckets.values() if len(b) > 1]
    return out


def exact_candidates(files: Iterable[FileRecord]) -> list[list[FileRecord]]:
    """Size buckets of two or more distinct, non-empty files: the only files that need
    a quick digest and possibly a full hash. Members sorted by path; buckets by size
    descending (big files first, where reading less pays most)."""
    out = _bucket(files, lambda f: f.size)
    out.sort(key=lambda b: (-b[0].size, b[0].path))
    return out


def exact_groups(files: Iterable[FileRecord]) -> list[list[FileRecord]]:
    """Files sharing a SHA-256 (two or more distinct non-empty files; hard links collapsed).
    Files without a sha256 are ignored. Groups sorted by sha256, members by path."""
    out = _bucket(files, lambda f: f.sha256.lower() if f.sha256 else None)
    out.sort(key=lambda b: b[0].sha256.lower())  # type: ignore[union-attr]
    return out


def exact_index(groups: Iterable[list[FileRecord]]) -> dict[int, str]:
    """file id -> exact group id (its sha256), the ``exact_of`` mapping perceptual
    clustering takes."""
    return {f.id: (f.sha256 or "").lower() for g in groups for f in g}
