"""Database reads for dedup: catalog rows as FileRecords, stored duplicate groups as
plain rows, and the views the dedup API answers with.

Catalog reads select columns, never ORM objects (a full pass reads two columns of the
whole catalog, then its candidates' rows), and ``IN`` lists are chunked (at most
``CHUNK`` values per statement).
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

import numpy as np
from sqlalchemy import and_, func, select, true
from sqlalchemy.orm import Session

from core.dedup.groups import covers, member_names
from core.dedup.keeper import METADATA
from core.filequeries import CHUNK, LookupFile, chunks, lookup_files, under  # noqa: F401  (lookup re-exported for the API)
from core.models import (
    DuplicateGroup,
    DuplicateMember,
    DuplicateResolution,
    File,
    FileGroup,
    GroupMember,
)
from core.paths import path_key
from core.records import FileRecord

STATUSES = ("open", "resolved", "dismissed")


# --- the catalog ---------------------------------------------------------------------------

# Everything the dedup rules (exact, perceptual, keeper, colour check) look at (the
# columns after ``serial`` last: positions of the others are read in core.dedup.service).
# Files the catalog marked with an error come too: a broken copy that still has a hash (a
# RAW cut short keeps its preview's pHash) belongs in its intact twin's group, as the copy
# that is not kept (the keeper's "intact" rule reads ``error`` and ``read_failures``: a
# copy whose last read failed is judged on the facts of its last good read).
_COLUMNS = (
    File.id, File.path, File.kind, File.size, File.format, File.sha256, File.phash,
    File.colour, File.taken_at, File.taken_offset, File.make, File.model, File.width,
    File.height, File.device, File.inode, File.serial, File.error, File.read_failures,
    File.jpeg_quality,
)  # fmt: skip


def record(row: Sequence[Any]) -> FileRecord:
    (fid, path, kind, size, fmt, sha, phash, colour, taken, offset, make, model, w, h,
     dev, ino, serial, error, read_failures, jpeg_quality) = row  # fmt: skip
    return FileRecord(
        id=fid, path=path, kind=kind, size=size, format=fmt, sha256=sha, phash=phash,
        colour=colour, taken_at=taken, taken_offset=offset, make=make, model=model,
        width=w, height=h, device=dev, inode=ino, serial=serial, error=error,
        read_failures=read_failures or 0, jpeg_quality=jpeg_quality,
    )  # fmt: skip


def shared_sha_rows(session: Session) -> list[tuple[int, str | None, int, int]]:
    """(id, sha256, device, inode) of the present, non-empty files whose SHA-256 another
    present file has too: one GROUP BY, so a full pass never loads every file's hash
    (hard links, one file under two names, are for the caller to tell apart)."""
    present = (File.status == "present", File.size > 0, File.sha256.is_not(None))
    twice = select(File.sha256).where(*present).group_by(File.sha256).having(func.count() > 1)
    return [
        (fid, sha, dev, ino)
        for fid, sha, dev, ino in session.execute(
            select(File.id, File.sha256, File.device, File.inode).where(
                *present, File.sha256.in_(twice)
            )
        )
    ]


def rows_by_ids(session: Session, ids: Iterable[int]) -> list[tuple[Any, ...]]:
    """Present files among ``ids`` (missing ones are left out)."""
    out: list[tuple[Any, ...]] = []
    for chunk in chunks(sorted(set(ids))):
        out.extend(
            tuple(r)
            for r in session.execute(
                select(*_COLUMNS).where(File.id.in_(chunk), File.status == "present")
            )
        )
    return out


def ids_by_sha256(session: Session, shas: Iterable[str]) -> set[int]:
    """Present files holding any of these SHA-256 values (indexed column)."""
    out: set[int] = set()
    for chunk in chunks(sorted(set(shas))):
        out.update(
            session.scalars(select(File.id).where(File.sha256.in_(chunk), File.status == "present"))
        )
    return out


def phash_table(session: Session) -> tuple[np.ndarray, np.ndarray]:
    """(file ids int64, pHashes uint64) of every present file with a pHash: two columns,
    enough to build the similarity index an incremental pass queries."""
    # Typed arrays, not lists of Python ints: 16 bytes a file instead of ~80; and rows
    # streamed from the cursor (Core), where the ORM's execute fetches them all first
    ids, hashes = array("q"), array("Q")
    for fid, ph in session.connection().execute(
        select(File.id, File.phash).where(File.status == "present", File.phash.is_not(None))
    ):
        try:
            value = int(ph or "", 16)
        except ValueError:
            continue
        hashes.append(value)
        ids.append(fid)
    return np.frombuffer(ids, dtype=np.int64), np.frombuffer(hashes, dtype=np.uint64)


def changed_file_ids(session: Session, since: datetime) -> set[int]:
    """Files (any status) whose catalog row changed since ``since`` (a file that left a
    group of versions is stamped so by the grouping pass), and the members of file
    groups written since then (a file that joined one, or stayed in one that changed)."""
    out = set(session.scalars(select(File.id).where(File.updated_at >= since)))
    out.update(
        session.scalars(
            select(GroupMember.file_id)
            .join(FileGroup, FileGroup.group_id == GroupMember.group_id)
            .where(FileGroup.updated_at >= since)
        )
    )
    return out


def file_group_of(session: Session, ids: Iterable[int] | None = None) -> dict[int, str]:
    """file id -> file group id (RAW+JPEG, Live Photo, edit...): versions, not duplicates."""
    q = select(GroupMember.file_id, GroupMember.group_id)
    if ids is None:
        return {fid: gid for fid, gid in session.execute(q)}
    out: dict[int, str] = {}
    for chunk in chunks(sorted(set(ids))):
        out.update(
            (fid, gid) for fid, gid in session.execute(q.where(GroupMember.file_id.in_(chunk)))
        )
    return out


def file_group_kinds(session: Session, group_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """file group id -> the kinds of its members (raw, image, video, sidecar...), sorted:
    what the keeper's "file_group" rule weighs (a copy whose group holds its RAW, its
    Live Photo video or its sidecar is the one those files belong with). A JSON sidecar
    (Google Takeout's ``IMG_1.JPG.json``) is given the kind ``keeper.METADATA``: it is
    metadata an export wrote beside the photo, and binds nothing."""
    q = select(GroupMember.group_id, GroupMember.file_type, GroupMember.file_path)
    found: dict[str, list[str]] = defaultdict(list)
    for chunk in chunks(sorted(set(group_ids))):
        for gid, kind, path in session.execute(q.where(GroupMember.group_id.in_(chunk))):
            if kind == "sidecar" and os.path.splitext(path or "")[1].lower() == ".json":
                kind = METADATA
            found[gid].append(kind)
    return {gid: tuple(sorted(kinds)) for gid, kinds in found.items()}


# --- stored duplicate groups ---------------------------------------------------------------


# A duplicate member as a pass compares it: (file_id, path, sha256, phash, similarity, size)
MemberRow = tuple[int, str, str | None, str | None, float, int]


def member_digest(rows: Iterable[MemberRow]) -> tuple[tuple[int, ...], bytes]:
    """(the file ids, sorted; a digest of the members, sorted, similarity to 6 places):
    what a pass compares a stored group with its result by. Holding every stored
    member's path and hashes instead took ~90 MB of a full pass at a million files."""
    norm = sorted(
        (int(fid), path, sha, ph, round(float(score), 6), int(size))
        for fid, path, sha, ph, score, size in rows
    )
    text = repr(norm).encode("utf-8", "surrogateescape")  # (repr escapes lone surrogates)
    return tuple(r[0] for r in norm), hashlib.blake2b(text, digest_size=16).digest()


@dataclass
class StoredGroup:
    id: str
    type: str
    key: str
    status: str
    similarity: float
    keeper_id: int | None
    keeper_reason: str | None
    reclaimable: int
    file_ids: tuple[int, ...] = ()  # sorted
    digest: bytes = b""  # member_digest of its members


def _select_in(session: Session, wanted: Any, column: Any, values: Iterable[Any]) -> set[Any]:
    """Values of ``wanted`` in rows whose ``column`` is one of ``values`` (chunked IN)."""
    out: set[Any] = set()
    for chunk in chunks(sorted(set(values))):
        out.update(session.scalars(select(wanted).where(column.in_(chunk))))
    return out


def group_ids_with_files(session: Session, ids: Iterable[int]) -> set[str]:
    return _select_in(session, DuplicateMember.group_id, DuplicateMember.file_id, ids)


def group_ids_with_keys(session: Session, keys: Iterable[str]) -> set[str]:
    return _select_in(session, DuplicateGroup.group_id, DuplicateGroup.group_key, keys)


def member_ids_of_groups(session: Session, group_ids: Iterable[str]) -> set[int]:
    return _select_in(session, DuplicateMember.file_id, DuplicateMember.group_id, group_ids)


def stored_groups(
    session: Session, group_ids: Iterable[str] | None = None
) -> dict[str, StoredGroup]:
    """Stored groups by key: these ids, or every group (``None``)."""
    gq = select(
        DuplicateGroup.group_id, DuplicateGroup.duplicate_type, DuplicateGroup.group_key,
        DuplicateGroup.status, DuplicateGroup.similarity, DuplicateGroup.keeper_file_id,
        DuplicateGroup.keeper_reason, DuplicateGroup.reclaimable_bytes,
    )  # fmt: skip
    mq = select(
        DuplicateMember.group_id, DuplicateMember.file_id, DuplicateMember.file_path,
        DuplicateMember.file_hash, DuplicateMember.perceptual_hash,
        DuplicateMember.similarity_score, DuplicateMember.file_size,
    )  # fmt: skip
    by_id: dict[str, StoredGroup] = {}
    if group_ids is None:
        parts: list[Sequence[str] | None] = [None]
    else:
        parts = list(chunks(sorted(set(group_ids))))
    for chunk in parts:
        q = gq if chunk is None else gq.where(DuplicateGroup.group_id.in_(chunk))
        for gid, t, key, status, sim, keeper, reason, reclaim in session.execute(q):
            by_id[gid] = StoredGroup(gid, t, key, status, float(sim), keeper, reason, int(reclaim))
        q2 = mq if chunk is None else mq.where(DuplicateMember.group_id.in_(chunk))
        # One group's members at a time, summed up as they come
        # (streamed, as phash_table's rows: every stored member at once was ~35 MB at 500k)
        members = session.connection().execute(q2.order_by(DuplicateMember.group_id))
        for gid, rows in groupby(members, _first):
            g = by_id.get(gid)
            if g is not None:
                g.file_ids, g.digest = member_digest(
                    (fid, path, sha, ph, score, size) for _, fid, path, sha, ph, score, size in rows
                )
    return {g.key: g for g in by_id.values()}


def _first(row: Sequence[Any]) -> Any:
    return row[0]


@dataclass(frozen=True)
class Decision:
    action: str  # trash | not_duplicate
    identities: frozenset[str]


def decisions(session: Session) -> list[Decision]:
    """Every recorded resolution as the identity set it covers (members JSON)."""
    out = []
    for action, members in session.execute(
        select(DuplicateResolution.action, DuplicateResolution.members)
    ):
        try:
            ids = frozenset(str(x) for x in json.loads(members or "[]"))
        except ValueError:
            continue
        if ids:
            out.append(Decision(action, ids))
    return out


# --- API views -----------------------------------------------------------------------------


@dataclass
class MemberView:
    file_id: int
    path: str
    size: int
    similarity: float
    sha256: str | None
    sha1: str | None
    kind: str | None
    format: str | None
    width: int | None
    height: int | None
    taken_at: datetime | None
    taken_offset: str | None
    make: str | None
    model: str | None
    file_status: str | None
    exact_group: str | None = None  # for a perceptual member standing for byte-identical copies


@dataclass
class DupView:
    id: str
    type: str
    key: str
    status: str
    similarity: float
    keeper_id: int | None
    keeper_reason: str | None
    reclaimable: int
    created_at: datetime
    updated_at: datetime
    members: list[MemberView] = field(default_factory=list)
    resolution: dict[str, Any] | None = None
    # An open group's last decision, made before a new copy joined and reopened it: what
    # it sent to Immich's trash can still be brought back (undo)
    previous_resolution: dict[str, Any] | None = None

    @property
    def keep(self) -> str | None:
        return next((m.path for m in self.members if m.file_id == self.keeper_id), None)


def _filters(dup_type: str | None, status: str | None, min_similarity: float | None) -> list[Any]:
    conds = []
    if dup_type:
        conds.append(DuplicateGroup.duplicate_type == dup_type)
    if status:
        conds.append(DuplicateGroup.status == status)
    if min_similarity is not None:
        conds.append(DuplicateGroup.similarity >= min_similarity - 1e-9)
    return conds


def list_group_ids(
    session: Session,
    *,
    dup_type: str | None = None,
    status: str | None = None,
    min_similarity: float | None = None,
    path_prefix: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[str], int]:
    """A page of group ids, most reclaimable first (ties by id, so pages are stable);
    with ``path_prefix``, the groups with a member in that folder."""
    conds = _filters(dup_type, status, min_similarity)
    if path_prefix:
        conds.append(
            DuplicateGroup.group_id.in_(
                select(DuplicateMember.group_id).where(
                    under(DuplicateMember.file_path, path_prefix)
                )
            )
        )
    where = and_(true(), *conds)
    total = int(session.scalar(select(func.count()).select_from(DuplicateGroup).where(where)) or 0)
    ids = list(
        session.scalars(
            select(DuplicateGroup.group_id).where(where)
            .order_by(DuplicateGroup.reclaimable_bytes.desc(), DuplicateGroup.group_id)
            .limit(limit).offset(offset)
        )
    )  # fmt: skip
    return ids, total


def dup_views(session: Session, group_ids: Sequence[str]) -> list[DupView]:
    """Groups with their members' catalog facts, in the order of ``group_ids``."""
    if not group_ids:
        return []
    views: dict[str, DupView] = {}
    for chunk in chunks(list(dict.fromkeys(group_ids))):
        for g in session.execute(
            select(
                DuplicateGroup.group_id,
                DuplicateGroup.duplicate_type,
                DuplicateGroup.group_key,
                DuplicateGroup.status,
                DuplicateGroup.similarity,
                DuplicateGroup.keeper_file_id,
                DuplicateGroup.keeper_reason,
                DuplicateGroup.reclaimable_bytes,
                DuplicateGroup.created_at,
                DuplicateGroup.updated_at,
            ).where(DuplicateGroup.group_id.in_(chunk))
        ):
            views[g[0]] = DupView(g[0], g[1], g[2], g[3], float(g[4]), g[5], g[6], int(g[7]),
                                  g[8], g[9])  # fmt: skip
        for row in session.execute(
            select(
                DuplicateMember.group_id,
                DuplicateMember.file_id,
                DuplicateMember.file_path,
                DuplicateMember.file_size,
                DuplicateMember.similarity_score,
                DuplicateMember.file_hash,
                File.sha1,
                File.kind,
                File.format,
                File.width,
                File.height,
                File.taken_at,
                File.taken_offset,
                File.make,
                File.model,
                File.status,
            )
            .join(File, File.id == DuplicateMember.file_id, isouter=True)
            .where(DuplicateMember.group_id.in_(chunk))
        ):
            v = views.get(row[0])
            if v is not None:
                v.members.append(MemberView(row[1], row[2], int(row[3]), float(row[4]), *row[5:]))  # type: ignore[call-arg]
    perceptual_shas = {m.sha256 for v in views.values() if v.type == "perceptual"
                       for m in v.members if m.sha256}  # fmt: skip
    exact_of = _exact_groups_by_key(session, perceptual_shas)
    by_id = _latest_resolutions(session, DuplicateResolution.group_id, list(views))
    by_key = _latest_resolutions(
        session, DuplicateResolution.group_key, [v.key for v in views.values()]
    )
    for v in views.values():
        v.members.sort(key=lambda m: (m.file_id != v.keeper_id, m.path, m.file_id))
        if v.type == "perceptual":
            for m in v.members:
                m.exact_group = exact_of.get(m.sha256 or "")
        # As shown_decision chooses, by id then by key (read for the whole page at once)
        if v.status != "open":
            v.resolution = by_id.get(v.id) or by_key.get(v.key)
        else:
            v.previous_resolution = by_id.get(v.id) or by_key.get(v.key)
    # ... and, rarely, a group decided by a decision that still covers it (found again
    # under a new id and key): what that decision trashed is what undo restores
    rows: list[DecisionRow] | None = None
    for view in views.values():
        if view.status != "open" and view.resolution is None:
            rows = decision_rows(session) if rows is None else rows
            shown, _ = shown_decision(session, view.id, view.key, view.status, view.type, rows)
            view.resolution = shown.as_json() if shown else None
    return [views[g] for g in group_ids if g in views]


def _exact_groups_by_key(session: Session, shas: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in chunks(sorted(set(shas))):
        out.update(
            (k, gid)
            for k, gid in session.execute(
                select(DuplicateGroup.group_key, DuplicateGroup.group_id).where(
                    DuplicateGroup.group_key.in_(chunk), DuplicateGroup.duplicate_type == "exact"
                )
            )
        )
    return out


def _latest_resolutions(
    session: Session, column: Any, keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The latest decision recorded under each of ``keys`` (group ids or group keys)."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in chunks(sorted(set(keys))):
        for key, *row in session.execute(
            select(column, *_DECISION_COLUMNS).where(column.in_(chunk)).order_by(*_DECISION_ORDER)
        ):
            out[key] = decision_row(row).as_json()
    return out


# --- the decision a group shows (and undo withdraws) -----------------------------------------


_DECISION_COLUMNS = (
    DuplicateResolution.id, DuplicateResolution.group_id, DuplicateResolution.group_key,
    DuplicateResolution.action, DuplicateResolution.keep, DuplicateResolution.trashed,
    DuplicateResolution.members, DuplicateResolution.created_at,
)  # fmt: skip
_DECISION_ORDER = (DuplicateResolution.created_at, DuplicateResolution.id)


@dataclass(frozen=True)
class DecisionRow:
    id: int
    group_id: str | None
    group_key: str
    action: str
    keep: list[str]
    trashed: list[dict[str, Any]] | None
    members: frozenset[str]  # the identities it covers (empty when unreadable)
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "keep": self.keep,
                "trashed": self.trashed, "created_at": self.created_at.isoformat() + "Z"}  # fmt: skip


def decision_row(row: Sequence[Any]) -> DecisionRow:
    rid, gid, key, action, keep, trashed, members, created = row
    try:
        recorded = frozenset(str(x) for x in json.loads(members or "[]"))
    except ValueError:
        recorded = frozenset()
    return DecisionRow(rid, gid, key, action, json.loads(keep or "[]"),
                       None if trashed is None else json.loads(trashed), recorded, created)  # fmt: skip


def decision_rows(session: Session) -> list[DecisionRow]:
    """Every recorded decision, oldest first."""
    return [
        decision_row(r)
        for r in session.execute(select(*_DECISION_COLUMNS).order_by(*_DECISION_ORDER))
    ]


def group_members(session: Session, group_id: str) -> list[tuple[str, str | None, int]]:
    """(path, sha256, file id) of each member of a stored group."""
    return [
        (p, s, fid)
        for p, s, fid in session.execute(
            select(DuplicateMember.file_path, DuplicateMember.file_hash, DuplicateMember.file_id)
            .where(DuplicateMember.group_id == group_id)
        )
    ]  # fmt: skip


def member_identities(
    session: Session, duplicate_type: str, members: list[tuple[str, str | None, int]]
) -> list[str]:
    """The identities of a group's members as core.dedup.groups.member_identity gives them."""
    if duplicate_type == "exact":
        return [path_key(p) for p, _, _ in members]
    exact_keys: set[str] = set()
    shas = [s for _, s, _ in members if s]
    if shas:
        exact_keys = {
            k for (k,) in session.execute(
                select(DuplicateGroup.group_key).where(
                    DuplicateGroup.group_key.in_(shas), DuplicateGroup.duplicate_type == "exact")
            )
        }  # fmt: skip
    out = []
    for path, sha, _ in members:
        x = sha if sha in exact_keys else None
        out.append(f"sha256:{x}" if x else path_key(path))
    return out


def covering_decisions(
    session: Session, group_id: str, duplicate_type: str, rows: Sequence[DecisionRow]
) -> list[DecisionRow]:
    """Those of ``rows`` that still cover the group's members, each member as status_of
    knows it (core.dedup.groups.still_dismissed)."""
    members = group_members(session, group_id)
    idents = set(member_identities(session, duplicate_type, members))
    content = duplicate_type != "exact"
    names = [member_names(p, fid, (sha,) if content else ()) for p, sha, fid in members]
    return [r for r in rows if covers(r.members, idents, names)]


def shown_decision(
    session: Session,
    group_id: str,
    group_key: str,
    status: str,
    duplicate_type: str,
    rows: Sequence[DecisionRow],
) -> tuple[DecisionRow | None, list[DecisionRow]]:
    """The decision a group shows, and those that still cover it (a group not open only).

    The latest under the group's id: a look-alike group that lost a member since the
    decision has a new key but keeps its id (and its decision, which undo restores from);
    else under its key, for a group dissolved and found again; else, for a group that a
    decision still covers (found again under a new id and key), the latest of those.
    An open group shows its last decision as the one made before a new copy joined."""
    covering = (
        covering_decisions(session, group_id, duplicate_type, rows) if status != "open" else []
    )
    candidates = (
        [r for r in rows if r.group_id == group_id]
        or [r for r in rows if r.group_key == group_key]
        or covering
    )
    return (candidates[-1] if candidates else None), covering


def stats(session: Session) -> dict[str, Any]:
    """Counts by type and status, and the bytes resolving the open groups would free."""
    by_type = {"exact": 0, "perceptual": 0}
    by_status = {s: 0 for s in STATUSES}
    reclaim = {"exact_bytes": 0, "perceptual_bytes": 0}
    for t, s, n, b in session.execute(
        select(DuplicateGroup.duplicate_type, DuplicateGroup.status, func.count(),
               func.coalesce(func.sum(DuplicateGroup.reclaimable_bytes), 0))
        .group_by(DuplicateGroup.duplicate_type, DuplicateGroup.status)
    ):  # fmt: skip
        by_type[t] = by_type.get(t, 0) + int(n)
        by_status[s] = by_status.get(s, 0) + int(n)
        if s == "open":
            reclaim[f"{t}_bytes"] = reclaim.get(f"{t}_bytes", 0) + int(b)
    # A file can be a non-keeper of an exact group and of a perceptual one (as the
    # representative of its copies): the total counts each file once.
    sub = (
        select(DuplicateMember.file_id.label("fid"), DuplicateMember.file_size.label("size"))
        .join(DuplicateGroup, DuplicateGroup.group_id == DuplicateMember.group_id)
        .where(DuplicateGroup.status == "open",
               DuplicateMember.file_id != func.coalesce(DuplicateGroup.keeper_file_id, -1))
        .distinct()
        .subquery()
    )  # fmt: skip
    total_bytes = int(session.scalar(select(func.coalesce(func.sum(sub.c.size), 0))) or 0)
    return {
        "groups": sum(by_type.values()),
        "open": by_status.get("open", 0),
        "reclaimable_bytes": total_bytes,
        "by_type": by_type,
        "by_status": by_status,
        "reclaimable": reclaim,
    }


def groups_of_files(session: Session, file_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
    """file id -> [(group id, type)], exact groups first."""
    out: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for chunk in chunks(sorted(set(file_ids))):
        for fid, gid, t in session.execute(
            select(DuplicateMember.file_id, DuplicateMember.group_id, DuplicateGroup.duplicate_type)
            .join(DuplicateGroup, DuplicateGroup.group_id == DuplicateMember.group_id)
            .where(DuplicateMember.file_id.in_(chunk))
        ):  # fmt: skip
            out[fid].append((gid, t))
    for v in out.values():
        v.sort(key=lambda x: (x[1] != "exact", x[0]))
    return out
