"""Database reads for grouping: catalog rows as FileRecords, stored groups as plain rows.

Everything here returns records or small dataclasses, never JSON; the service and the
API build on them. Folder lists are queried in chunks (``IN`` lists of at most
``CHUNK`` keys), so a pass costs one query per batch of folders, never one per file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.filequeries import (  # noqa: F401  (lookup re-exported for the API)
    CHUNK,
    LookupFile,
    chunks,
    lookup_files,
    under,
)
from core.models import File, FileGroup, GroupMember, GroupOverride
from core.paths import path_key, to_bytes
from core.records import FileRecord

# --- the catalog -------------------------------------------------------------------

# What the rules look at (by name: FileRecord grows fields other rules need).
_RECORD_COLUMNS = (
    File.id,
    File.path,
    File.kind,
    File.size,
    File.format,
    File.sha256,  # a split keeps the split file's byte copies apart too (rules._apart)
    File.taken_at,
    File.taken_offset,
    File.make,
    File.model,
    File.serial,
    File.width,
    File.height,
    File.content_id,
    File.device,
    File.inode,
    File.error,  # a broken file is never a group's primary while a healthy member exists
    File.read_failures,  # ... but one whose last read failed is not broken (FileRecord.broken)
)
_RECORD_NAMES = tuple(c.key for c in _RECORD_COLUMNS)


def records_in_folders(session: Session, dir_keys: Iterable[str]) -> list[FileRecord]:
    """Present files of these folders. Unreadable files come too (with whatever the
    catalog knows): the rules pair a broken RAW with its JPEG by name."""
    keys = sorted(set(dir_keys))
    out: list[FileRecord] = []
    for chunk in chunks(keys):
        rows = session.connection().execute(
            select(*_RECORD_COLUMNS).where(File.dir_key.in_(chunk), File.status == "present")
        )
        out.extend(FileRecord(**dict(zip(_RECORD_NAMES, r, strict=True))) for r in rows)
    return out


def folder_keys(session: Session, root_id: int | None = None) -> list[str]:
    """Every folder that holds or held a cataloged file (of one root, or all)."""
    q = select(File.dir_key)
    if root_id is not None:
        q = q.where(File.root_id == root_id)
    return sorted(session.scalars(q.distinct()))


def files_per_folder(session: Session, dir_keys: Iterable[str] | None) -> dict[str, int]:
    """Present files by folder key (of these folders, or of all)."""
    q = select(File.dir_key, func.count()).where(File.status == "present").group_by(File.dir_key)
    if dir_keys is None:
        return {dk: n for dk, n in session.execute(q)}
    out: dict[str, int] = {}
    for chunk in chunks(sorted(set(dir_keys))):
        out.update((dk, n) for dk, n in session.execute(q.where(File.dir_key.in_(chunk))))
    return out


def folder_paths(session: Session, dir_keys: Iterable[str] | None) -> dict[str, str]:
    """The path of each of these folders (or of all), by folder key: from one of its
    cataloged files, present or not."""
    # (by the smallest id: no min() of a path, which PostgreSQL stores as bytea)
    q = select(File.dir_key, func.min(File.id)).group_by(File.dir_key)
    first: dict[int, str] = {}
    if dir_keys is None:
        first.update((fid, dk) for dk, fid in session.execute(q))
    else:
        for chunk in chunks(sorted(set(dir_keys))):
            first.update((fid, dk) for dk, fid in session.execute(q.where(File.dir_key.in_(chunk))))
    out: dict[str, str] = {}
    for chunk in chunks(sorted(first)):
        for fid, path in session.execute(select(File.id, File.path).where(File.id.in_(chunk))):
            out[first[fid]] = os.path.dirname(path)
    return out


def group_links(session: Session, dir_keys: Iterable[str] | None) -> set[tuple[str, str]]:
    """(group folder, member folder) pairs of the stored groups that touch these folders,
    either by their own folder or by holding a file that now lies in one of them (a
    file moved in). Regrouping must take both folders together.

    ``None``: every pair of two different folders, in one query (a full pass). Asked
    folder by folder, a thousand folders a query, each query joined the three tables
    whole: at 50,000 folders 100 such joins, most of an unchanged full pass's time."""
    links = (
        select(FileGroup.dir_key, File.dir_key)
        .join(GroupMember, GroupMember.group_id == FileGroup.group_id)
        .join(File, File.id == GroupMember.file_id)
        .distinct()
    )
    if dir_keys is None:
        return {(g, f) for g, f in session.execute(links.where(FileGroup.dir_key != File.dir_key))}
    keys = sorted(set(dir_keys))
    out: set[tuple[str, str]] = set()
    for chunk in chunks(keys):
        for col in (File.dir_key, FileGroup.dir_key):
            out.update((g, f) for g, f in session.execute(links.where(col.in_(chunk))))
    return out


# --- overrides --------------------------------------------------------------------------


@dataclass(frozen=True)
class OverrideRow:
    id: int
    action: str  # split | merge
    dir_key: str
    members: tuple[str, ...]
    primary_path: str | None
    created_at: datetime

    @property
    def folders(self) -> frozenset[str]:
        return frozenset(path_key(os.path.dirname(to_bytes(p))) for p in self.members)


def _override(row: GroupOverride) -> OverrideRow:
    return OverrideRow(
        row.id,
        row.action,
        row.dir_key,
        tuple(json.loads(row.members)),
        row.primary_path,
        row.created_at,
    )


def merge_overrides(session: Session) -> list[OverrideRow]:
    """Every merge: few (each is a user's click) and they may link any folders."""
    rows = session.scalars(
        select(GroupOverride).where(GroupOverride.action == "merge").order_by(GroupOverride.id)
    )
    return [_override(r) for r in rows]


def split_overrides(session: Session, dir_keys: Iterable[str]) -> list[OverrideRow]:
    keys = sorted(set(dir_keys))
    out: list[OverrideRow] = []
    for chunk in chunks(keys):
        rows = session.scalars(
            select(GroupOverride)
            .where(GroupOverride.action == "split", GroupOverride.dir_key.in_(chunk))
            .order_by(GroupOverride.id)
        )
        out.extend(_override(r) for r in rows)
    return out


# --- stored groups ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredMember:
    file_id: int
    path: str
    kind: str
    role: str
    is_primary: bool
    size: int


@dataclass
class StoredGroup:
    id: str
    key: str
    type: str
    source: str
    dir_key: str
    members: list[StoredMember] = field(default_factory=list)


def stored_groups(
    session: Session, dir_keys: Sequence[str], file_ids: Iterable[int]
) -> dict[str, StoredGroup]:
    """Stored groups (by key) of these folders, or holding one of ``file_ids`` (the
    present files of these folders: one moved in, whose old group must lose it).

    The folders' own groups come by their folder (an index); a file's group by the file
    (an index) only for the files none of those holds. (One query with ``OR group_id IN
    (the groups of the folders' files)`` read the whole of file_groups for every batch:
    PostgreSQL cannot use an index for that OR.) A group that holds a file of these
    folders from another folder is tied to them (``group_links``) and comes by its
    folder; asking by file is for a file moved in since the pass's scope was read."""
    keys = sorted(set(dir_keys))
    groups: dict[str, StoredGroup] = {}
    for chunk in chunks(keys):
        _add_groups(session, groups, FileGroup.dir_key.in_(chunk))
    held = _add_members(session, groups, sorted(groups))
    others = sorted(set(file_ids) - held)
    found: set[str] = set()
    for chunk in chunks(others):
        found.update(
            session.scalars(select(GroupMember.group_id).where(GroupMember.file_id.in_(chunk)))
        )
    extra = sorted(found - groups.keys())
    if extra:
        more: dict[str, StoredGroup] = {}
        for chunk in chunks(extra):
            _add_groups(session, more, FileGroup.group_id.in_(chunk))
        _add_members(session, more, sorted(more))
        groups.update(more)
    return {g.key: g for g in groups.values()}


def _add_groups(session: Session, groups: dict[str, StoredGroup], where: Any) -> None:
    for gid, key, gtype, source, dk in session.execute(
        select(
            FileGroup.group_id,
            FileGroup.group_key,
            FileGroup.group_type,
            FileGroup.source,
            FileGroup.dir_key,
        ).where(where)
    ):
        groups[gid] = StoredGroup(gid, key, gtype, source, dk)


def _add_members(session: Session, groups: dict[str, StoredGroup], ids: list[str]) -> set[int]:
    """Read these groups' members into them; returns their file ids."""
    held: set[int] = set()
    for chunk in chunks(ids):
        for gid, fid, p, kind, role, prim, size in session.execute(
            select(
                GroupMember.group_id,
                GroupMember.file_id,
                GroupMember.file_path,
                GroupMember.file_type,
                GroupMember.role,
                GroupMember.is_primary,
                GroupMember.file_size,
            ).where(GroupMember.group_id.in_(chunk))
        ):
            groups[gid].members.append(StoredMember(fid, p, kind, role, bool(prim), size))
            held.add(fid)
    return held


# --- views for the API ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberView:
    file_id: int
    path: str
    kind: str
    role: str
    is_primary: bool
    size: int
    sha1: str | None
    taken_at: datetime | None
    taken_offset: str | None


@dataclass
class GroupView:
    id: str
    type: str
    source: str
    created_at: datetime
    updated_at: datetime
    members: list[MemberView] = field(default_factory=list)

    @property
    def primary(self) -> str | None:
        return next(
            (m.path for m in self.members if m.is_primary),
            self.members[0].path if self.members else None,
        )


def group_views(session: Session, group_ids: Sequence[str]) -> list[GroupView]:
    """Groups with their members (primary first), in the order of ``group_ids``."""
    found: dict[str, GroupView] = {}
    for chunk in chunks(list(dict.fromkeys(group_ids))):
        for row in session.scalars(select(FileGroup).where(FileGroup.group_id.in_(chunk))):
            found[row.group_id] = GroupView(
                row.group_id, row.group_type, row.source, row.created_at, row.updated_at
            )
        rows = session.execute(
            select(
                GroupMember.group_id,
                GroupMember.file_id,
                GroupMember.file_path,
                File.kind,
                GroupMember.role,
                GroupMember.is_primary,
                File.size,
                File.sha1,
                File.taken_at,
                File.taken_offset,
            )
            .join(File, File.id == GroupMember.file_id)
            .where(GroupMember.group_id.in_(chunk))
        )
        for gid, *rest in rows:
            if gid in found:
                found[gid].members.append(MemberView(*rest))
    out = []
    for gid in group_ids:
        g = found.get(gid)
        if g is not None:
            g.members.sort(key=lambda m: (not m.is_primary, m.role != "raw", m.path))
            out.append(g)
    return out


def list_groups(
    session: Session,
    *,
    group_type: str | None = None,
    path_prefix: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[GroupView], int]:
    """A page of groups ordered by their primary's path, and the total count."""
    primary = (
        select(GroupMember.group_id, GroupMember.file_path)
        .where(GroupMember.is_primary.is_(True))
        .subquery()
    )
    q = select(FileGroup.group_id).join(primary, primary.c.group_id == FileGroup.group_id)
    cq = select(func.count()).select_from(FileGroup)
    conds = []
    if group_type:
        conds.append(FileGroup.group_type == group_type)
    if path_prefix:
        conds.append(
            FileGroup.group_id.in_(
                select(GroupMember.group_id).where(under(GroupMember.file_path, path_prefix))
            )
        )
    for c in conds:
        q, cq = q.where(c), cq.where(c)
    ids = list(
        session.scalars(
            q.order_by(primary.c.file_path, FileGroup.group_id).limit(limit).offset(offset)
        )
    )
    return group_views(session, ids), int(session.scalar(cq) or 0)


def file_by_path(session: Session, path: str) -> File | None:
    return session.scalar(select(File).where(File.path_key == path_key(path)))


def group_id_of_files(session: Session, file_ids: Sequence[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for chunk in chunks(list(file_ids)):
        for fid, gid in session.execute(
            select(GroupMember.file_id, GroupMember.group_id).where(GroupMember.file_id.in_(chunk))
        ):
            out[fid] = gid
    return out
