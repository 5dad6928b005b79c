"""Grouping against the database: regroup folders, write the difference, run jobs,
record the user's corrections.

``regroup(session, dir_keys, policy)`` is the one write path. It is incremental (only
the named folders, plus the folders tied to them, are read and written) and idempotent
(a second run with nothing changed writes nothing):

* Scope. The folders asked for, plus every folder tied to one of them: by a manual
  group (a merge may span folders), or by a stored group that holds a file now in a
  scoped folder (a file moved in: its old group must lose it) or whose members lie in
  other folders. Tied folders are processed in the same batch, so a file is never
  claimed by two groups at once.
* Rules. ``core.grouping.rules.group_folder`` on the present files of the batch, with
  the stored overrides (splits -> forced_apart pairs, merges -> forced_together).
* Write. Stored groups are matched to results by their deterministic key: equal ->
  untouched, members differ -> members rewritten, same group id. A new key whose files
  are exactly those of a stored group that lost its key (its files moved to another
  folder) takes over that group's id. Stored groups left over are deleted (a group left
  with one member dissolves). Bulk statements, one per kind of change per batch.

Overrides are stored in ``group_overrides``: ``split`` rows (members = the group's
paths at the time; ``primary_path`` = the file taken out, or NULL when every member
was taken apart from every other) and ``merge`` rows (members = the paths put
together, ``primary_path`` = the chosen primary or NULL). Paths in ``members`` are a
JSON list, ASCII-escaped, so names that are not UTF-8 survive.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from core import jobs
from core.config import Settings
from core.grouping import queries as Q
from core.grouping import watermark as W
from core.grouping.rules import (
    GroupResult,
    ManualGroup,
    Overrides,
    companion_folders,
    group_folder,
    split_all,
    split_out,
)
from core.models import (
    File,
    FileGroup,
    GroupMember,
    GroupOverride,
    Job,
    Root,
    new_id,
    utcnow,
)
from core.paths import dir_key, path_key
from core.records import FileRecord

log = logging.getLogger(__name__)

BATCH_FOLDERS = 200  # folders per rules call and write batch (bounded memory, few queries)
# ... and files: a batch holds its records, results and stored groups, ~2 KB a file, and
# 200 folders of a professional's 1,000-file shoots made batches of 430 MB
BATCH_FILES = 20_000


class GroupingError(ValueError):
    """A correction that cannot be applied; ``status`` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Stats:
    folders: int = 0
    files: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    groups: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def as_dict(self) -> dict[str, int]:
        return {
            k: getattr(self, k)
            for k in ("folders", "files", "groups", "created", "updated", "deleted", "unchanged")
        }


# --- scope -------------------------------------------------------------------------------


class _Union:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class _Scope:
    folders: set[str]
    union: _Union
    merges: list[Q.OverrideRow] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)  # present files by folder

    def batches(self, size: int = BATCH_FOLDERS) -> list[list[str]]:
        """Folders in batches of at most ``size`` folders and ``BATCH_FILES`` files; tied
        folders always together (a bigger batch then)."""
        comps: dict[str, list[str]] = defaultdict(list)
        for f in sorted(self.folders):
            comps[self.union.find(f)].append(f)
        out: list[list[str]] = []
        cur: list[str] = []
        n_files = 0
        for comp in sorted(comps.values()):
            n = sum(self.files.get(f, 0) for f in comp)
            if cur and (len(cur) + len(comp) > size or n_files + n > BATCH_FILES):
                out.append(cur)
                cur, n_files = [], 0
            cur.extend(comp)
            n_files += n
        if cur:
            out.append(cur)
        return out


def _raw_folder_links(
    session: Session, dir_keys: Iterable[str], *, whole: bool = False
) -> set[tuple[str, str]]:
    """(folder, companion folder) keys that the rules' RAW-folder pairing needs in one
    batch (``rules.companion_folders``), for these folders. ``whole``: they are every
    folder of the pass (a full one), so the companions are looked for among them, their
    paths read in one query; else each candidate's key is asked of the catalog."""
    if whole:
        keys = set(dir_keys)
        paths = {dk: p for dk, p in Q.folder_paths(session, None).items() if dk in keys}
        by_path = {p: dk for dk, p in paths.items()}
        return {
            (dk, by_path[c])
            for dk, p in paths.items()
            for c in companion_folders(p)
            if c in by_path
        }
    wanted: dict[str, list[str]] = defaultdict(list)
    for dk, p in Q.folder_paths(session, dir_keys).items():
        for c in companion_folders(p):
            wanted[path_key(c)].append(dk)
    return {(dk, c) for c in Q.files_per_folder(session, wanted) for dk in wanted[c]}


def _scope(session: Session, dir_keys: Iterable[str], *, expand: bool = True) -> _Scope:
    folders = set(dir_keys)
    union = _Union()
    merges = Q.merge_overrides(session)
    if not expand:
        # Every folder is in scope already: only tie them for batching.
        for m in merges:
            fs = sorted(m.folders)
            for f in fs[1:]:
                union.join(fs[0], f)
            folders.update(fs)
        # Every link at once (one query), those touching these folders kept: as asking
        # for these folders' links would give, but for the pairs of a folder with itself.
        # Kept by the folders before any link (not as the loop adds them): whatever order
        # the links come in, the same ones
        start = frozenset(folders)
        for g, f in Q.group_links(session, None):
            if g in start or f in start:
                union.join(g, f)
                folders.update((g, f))
        counts = Q.files_per_folder(session, None)
        for a, b in _raw_folder_links(session, folders, whole=True):
            union.join(a, b)
            folders.update((a, b))
        return _Scope(folders, union, merges, counts)
    frontier = set(folders)
    while frontier:
        new: set[str] = set()
        for m in merges:
            linked = m.folders
            if linked & (folders | frontier):
                ordered = sorted(linked)
                for f in ordered[1:]:
                    union.join(ordered[0], f)
                new |= linked - folders
        for g, f in Q.group_links(session, frontier) | _raw_folder_links(session, frontier):
            union.join(g, f)
            new |= {g, f} - folders
        folders |= new
        frontier = new
    return _Scope(folders, union, merges, Q.files_per_folder(session, folders))


def _overrides(session: Session, batch: Sequence[str], merges: list[Q.OverrideRow]) -> Overrides:
    keys = set(batch)
    apart: set[frozenset[str]] = set()
    for s in Q.split_overrides(session, batch):
        if s.primary_path:
            apart |= split_out(s.primary_path, s.members)
        else:
            apart |= split_all(s.members)
    together = tuple(
        ManualGroup(frozenset(m.members), m.primary_path) for m in merges if m.folders & keys
    )
    return Overrides(frozenset(apart), together)


# --- regrouping --------------------------------------------------------------------------


def _member_sig(members: Iterable[tuple[int, str, str, str, bool, int]]) -> tuple:
    return tuple(sorted(members))


def carry_ids(fresh: list[frozenset[int]], stored: dict[str, frozenset[int]]) -> dict[int, str]:
    """Which stored group (by key) each new group (by place in ``fresh``, as file ids)
    continues, among groups whose keys found no match: the one with the same files, else
    the one that holds all of its files or all of whose files it holds (it lost or gained
    members), when neither shares files with any other group. A group split in two, two
    merged into one, or a file that left one pair for another (moved beside another RAW)
    is no continuation: those get new ids."""
    out: dict[int, str] = {}
    by_files = {files: key for key, files in stored.items()}
    for i, files in enumerate(fresh):
        key = by_files.pop(files, None)
        if key is not None:
            out[i] = key
    taken = set(out.values())
    left = {key: files for key, files in stored.items() if key not in taken}
    owner = {f: key for key, files in left.items() for f in files}
    touched: dict[str, list[int]] = defaultdict(list)
    shares: dict[int, set[str]] = {}
    for i, files in enumerate(fresh):
        if i in out:
            continue
        shares[i] = {owner[f] for f in files if f in owner}
        for key in shares[i]:
            touched[key].append(i)
    for i, keys in shares.items():
        if len(keys) != 1:
            continue
        (key,) = keys
        if len(touched[key]) == 1 and (fresh[i] <= left[key] or left[key] <= fresh[i]):
            out[i] = key
    return out


def _write(
    session: Session,
    results: list[GroupResult],
    files: dict[int, FileRecord],
    stored: dict[str, Q.StoredGroup],
    stats: Stats,
) -> None:
    now = utcnow()
    wanted: dict[str, tuple[GroupResult, str, tuple]] = {}
    for r in results:
        sig = _member_sig(
            (m.file_id, m.path, files[m.file_id].kind, m.role, m.is_primary, files[m.file_id].size)
            for m in r.members
        )
        wanted[r.key] = (r, dir_key(r.primary.path), sig)

    rewrite: list[tuple[str, GroupResult, str, tuple]] = []  # (group id, result, dir key, sig)
    fresh: list[tuple[GroupResult, str, tuple]] = []
    # Every file the stored groups held: those in no group now have left one (below)
    held = {m.file_id for g in stored.values() for m in g.members}
    for key, (r, dk, sig) in wanted.items():
        old = stored.pop(key, None)
        if old is None:
            fresh.append((r, dk, sig))
            continue
        old_sig = _member_sig(
            (m.file_id, m.path, m.kind, m.role, m.is_primary, m.size) for m in old.members
        )
        if old_sig == sig and (old.type, old.dir_key) == (r.type, dk):
            stats.unchanged += 1
        else:
            rewrite.append((old.id, r, dk, sig))
    # A shot whose key changed keeps its group id: its files moved folder, or it gained or
    # lost a member that changed its key (a RAW arriving in RAW/ becomes the root of its
    # JPEG's group)
    carried = carry_ids(
        [frozenset(m.file_id for m in r.members) for r, _dk, _sig in fresh],
        {g.key: frozenset(m.file_id for m in g.members) for g in stored.values()},
    )
    inserts: list[tuple[GroupResult, str, tuple]] = []
    for i, (r, dk, sig) in enumerate(fresh):
        if i in carried:
            old = stored.pop(carried[i])
            rewrite.append((old.id, r, dk, sig))
        else:
            inserts.append((r, dk, sig))
    gone = [g.id for g in stored.values()]
    # A file that left a group of versions (its partner deleted, moved, or split off)
    # is a change for the dedup pass: its keeper may have been chosen for that group
    # (the "file_group" rule), and its group's rows, gone now, cannot say so
    left = held - {m.file_id for r in results for m in r.members}
    for chunk in Q.chunks(sorted(left)):
        session.execute(update(File).where(File.id.in_(chunk)).values(updated_at=now))

    # Members first: a file may move from a deleted or rewritten group to another.
    for chunk in Q.chunks(gone + [gid for gid, *_ in rewrite]):
        session.execute(delete(GroupMember).where(GroupMember.group_id.in_(chunk)))
    for chunk in Q.chunks(gone):
        session.execute(delete(FileGroup).where(FileGroup.group_id.in_(chunk)))
    for gid, r, dk, _sig in rewrite:
        session.execute(
            update(FileGroup)
            .where(FileGroup.group_id == gid)
            .values(
                group_key=r.key,
                group_type=r.type,
                dir_key=dk,
                source="manual" if r.type == "manual" else "auto",
                updated_at=now,
            )
        )
    new_groups = []
    members: list[dict[str, Any]] = []
    for r, dk, _sig in inserts:
        gid = new_id()
        new_groups.append(
            dict(
                group_id=gid,
                group_type=r.type,
                group_key=r.key,
                dir_key=dk,
                source="manual" if r.type == "manual" else "auto",
                created_at=now,
                updated_at=now,
            )
        )
        members.extend(_members(gid, r, files))
    for gid, r, _dk, _sig in rewrite:
        members.extend(_members(gid, r, files))
    bulk_insert(session, FileGroup.__table__, new_groups)
    bulk_insert(session, GroupMember.__table__, members)
    stats.created += len(inserts)
    stats.updated += len(rewrite)
    stats.deleted += len(gone)
    stats.groups += len(results)


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    text = str(value)
    if any(c in text for c in "\\\t\n\r"):
        text = (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return text


def bulk_insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows: COPY on PostgreSQL (several times faster than multi-row
    INSERTs at 100k rows), batched executemany elsewhere (SQLite)."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        for chunk in Q.chunks(rows, 5000):
            conn.execute(insert(table), list(chunk))
        return
    cols = list(rows[0])
    buf = io.StringIO()
    for row in rows:
        values = [row[c] for c in cols]
        values = [
            os.fsencode(v) if c == "file_path" else v for c, v in zip(cols, values, strict=True)
        ]
        buf.write("\t".join(_copy_text(v) for v in values))
        buf.write("\n")
    buf.seek(0)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cur: Any = raw.cursor()
    try:
        cur.copy_expert(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN", buf)
    finally:
        cur.close()


def _members(gid: str, r: GroupResult, files: dict[int, FileRecord]) -> list[dict[str, Any]]:
    return [
        dict(
            group_id=gid,
            file_id=m.file_id,
            file_path=m.path,
            file_type=files[m.file_id].kind,
            role=m.role,
            is_primary=m.is_primary,
            file_size=files[m.file_id].size,
        )
        for m in r.members
    ]


def regroup(
    session: Session,
    dir_keys: Iterable[str] | None,
    *,
    policy: str = "rendition",
    root_id: int | None = None,
    progress: Callable[[int, int], bool] | None = None,
) -> Stats:
    """Regroup these folders (``None``: every folder, of ``root_id`` or of all roots).

    ``progress(done, total)`` is called after each batch of folders with the folders
    done so far; returning False stops early (a cancelled job). Does not commit.
    """
    everything = dir_keys is None
    keys = Q.folder_keys(session, root_id) if dir_keys is None else list(dir_keys)
    scope = _scope(session, keys, expand=not everything)
    stats = Stats(folders=len(scope.folders))
    done = 0
    for batch in scope.batches():
        _regroup_batch(session, batch, scope.merges, policy, stats)
        done += len(batch)
        if progress is not None and not progress(done, stats.folders):
            return stats
    # The merges were read at the start; a long pass commits batch by batch, so a user's
    # merge or split that landed meanwhile was undone in the batches after it. Regroup
    # what the merges that changed touch, with the merges as they are now (a few rounds:
    # corrections keep being clicked while this runs).
    for _ in range(3):
        changed = _changed_merge_folders(scope.merges, Q.merge_overrides(session))
        if not changed:
            break
        scope = _scope(session, changed)
        for batch in scope.batches():
            _regroup_batch(session, batch, scope.merges, policy, stats)
    return stats


def _regroup_batch(
    session: Session, batch: list[str], merges: list[Q.OverrideRow], policy: str, stats: Stats
) -> None:
    records = Q.records_in_folders(session, batch)
    results = group_folder(records, policy=policy, overrides=_overrides(session, batch, merges))
    stored = Q.stored_groups(session, batch, (r.id for r in records))
    _write(session, results, {r.id: r for r in records}, stored, stats)
    stats.files += len(records)


def _changed_merge_folders(before: list[Q.OverrideRow], now: list[Q.OverrideRow]) -> set[str]:
    """Folders of the merges added, removed or edited between two readings."""

    def sig(m: Q.OverrideRow) -> tuple:
        return (m.id, m.members, m.primary_path)

    old, new = {sig(m): m for m in before}, {sig(m): m for m in now}
    folders: set[str] = set()
    for key in old.keys() ^ new.keys():
        folders |= (old.get(key) or new[key]).folders
    return folders


def _due_folders(session: Session, job: Job) -> tuple[list[str] | None, datetime | None]:
    """The folders a pass over ``job``'s root must regroup (None: all of them), and the
    watermark it leaves if it finishes: the folders changed since the last pass that
    finished, not only since the scan that started this one, so that files cataloged by
    a scan that never finished (cancelled, failed, interrupted) are grouped too."""
    root = session.get(Root, job.root_id) if job.root_id is not None else None
    if root is None:
        return None, None  # not a root's pass: every folder, and no watermark to leave
    scan = session.get(Job, job.parent_id) if job.parent_id else None
    read_at = utcnow()
    since = W.since_for(session, root, scan)
    watermark = W.next_watermark(session, root, read_at)
    if since is None:
        return None, watermark
    return W.changed_folders(session, root, since), watermark


def run_job(
    session: Session, job_id: str, dir_keys: Sequence[str] | None, settings: Settings
) -> bool:
    """The ``group_run`` actor's body: regroup, with the job row as progress.

    ``dir_keys`` None (a scan's follower): the folders of the root changed since the last
    pass over it that finished, which this pass's summary then moves on (its watermark).

    Commits after each batch so the progress shows; a redelivered message for a job
    that finished does nothing. Returns whether any group changed.
    """
    job = session.get(Job, job_id)
    if job is None or job.state not in jobs.ACTIVE_STATES:
        return False
    jobs.mark_running(session, job_id)
    # Only while it is active: a second delivery of the message (at least once) that
    # got here as the first finished must not reset the finished job's progress
    active = (Job.id == job_id, Job.state.in_(jobs.ACTIVE_STATES))
    session.execute(update(Job).where(*active).values(phase="group", done=0))
    session.commit()
    watermark: datetime | None = None
    if dir_keys is None:
        dir_keys, watermark = _due_folders(session, job)

    def progress(done: int, total: int) -> bool:
        # Checked before the batch's commit, under the job row's lock: a cancel either
        # lands first (the batch is rolled back) or waits for this commit.
        state = session.scalar(select(Job.state).where(Job.id == job_id).with_for_update())
        if state not in jobs.ACTIVE_STATES:
            session.rollback()
            return False
        session.execute(
            update(Job).where(Job.id == job_id).values(total=total, done=done, updated_at=utcnow())
        )
        session.commit()
        return True

    stats = regroup(
        session, dir_keys, policy=settings.primary_policy, root_id=job.root_id, progress=progress
    )
    session.execute(update(Job).where(*active).values(total=stats.folders, done=stats.folders))
    summary: dict[str, Any] = stats.as_dict()
    if watermark is not None:
        summary["watermark"] = watermark.isoformat()
        summary["rules"] = W.RULES
    jobs.finish_job(session, job_id, "done", summary=summary)
    session.commit()
    log.info("grouping job %s: %s", job_id, stats.as_dict())
    # Also after a cancel: the batches before it are committed. (It may overstate by the
    # batch rolled back; a needless cache-version bump costs one cold read.)
    return stats.changed


# --- corrections -------------------------------------------------------------------------


def _present_file(session: Session, path: str) -> File:
    f = Q.file_by_path(session, path)
    if f is None or f.status != "present":
        raise GroupingError(f"{path!r} is not a cataloged file", 404)
    return f


def _group_row(session: Session, group_id: str) -> FileGroup:
    g = session.get(FileGroup, group_id)
    if g is None:
        raise GroupingError(f"no group {group_id}", 404)
    return g


def _dumps(paths: Iterable[str]) -> str:
    return json.dumps(sorted(set(paths)))


def split_group(
    session: Session, group_id: str, paths: Sequence[str] | None, settings: Settings
) -> Stats:
    """Take ``paths`` out of the group (each on its own), or dissolve it (``None``).

    Kept across scans: automatic rules never pair those files with the rest again.
    Splitting a manual group also takes the files out of the merge that made it.
    Regroups the folders concerned at once. Does not commit.
    """
    group = _group_row(session, group_id)
    members = list(
        session.scalars(select(GroupMember.file_path).where(GroupMember.group_id == group_id))
    )
    if paths:
        unknown = [p for p in paths if p not in members]
        if unknown:
            raise GroupingError(f"not members of group {group_id}: {unknown[:5]!r}")
        if len(set(paths)) >= len(members) - 1:
            paths = None  # taking all files but one out is dissolving the group
    out = set(paths) if paths else set(members)
    folders = {dir_key(p) for p in members} | {group.dir_key}
    now = utcnow()
    if paths:
        for p in sorted(out):
            session.add(
                GroupOverride(
                    action="split",
                    dir_key=dir_key(p),
                    members=_dumps(members),
                    primary_path=p,
                    created_at=now,
                )
            )
    else:
        by_folder: dict[str, list[str]] = defaultdict(list)
        for p in members:
            by_folder[dir_key(p)].append(p)
        for dk in sorted(by_folder):
            session.add(
                GroupOverride(
                    action="split",
                    dir_key=dk,
                    members=_dumps(members),
                    primary_path=None,
                    created_at=now,
                )
            )
        # A split row is read by the folders it names, so a cross-folder group gets
        # one per folder; rules only use pairs whose files they see.
    # The merges that made the group lose the files taken out. What stays of them stays
    # one group: a group made by two merges sharing a file ([A, B] then [B, C]) is held
    # together by B, so taking B out must not leave A and C each in a merge of one.
    rest: list[str] = []
    primaries: list[str] = []
    for m in Q.merge_overrides(session):
        if not set(m.members) & out:
            continue
        rest += [p for p in m.members if p not in out]
        if m.primary_path and m.primary_path not in out:
            primaries.append(m.primary_path)
        row = session.get(GroupOverride, m.id)
        assert row is not None
        session.delete(row)
        folders |= m.folders
    rest = list(dict.fromkeys(rest))
    if paths and len(rest) >= 2:
        session.add(
            GroupOverride(
                action="merge",
                dir_key=dir_key(rest[0]),
                members=_dumps(rest),
                primary_path=primaries[-1] if primaries else None,
                created_at=now,
            )
        )
    session.flush()
    return regroup(session, folders, policy=settings.primary_policy)


def merge_files(
    session: Session, paths: Sequence[str], primary: str | None, settings: Settings
) -> tuple[str, Stats]:
    """Put these files into one manual group (kept across scans); returns its group id.

    Files may lie in different folders. Files already in a manual group bring that
    group's other files along (two manual groups sharing a file are one). Does not commit.
    """
    wanted = list(dict.fromkeys(paths))
    if len(wanted) < 2:
        raise GroupingError("a merge needs at least two different paths")
    if primary is not None and primary not in wanted:
        raise GroupingError("primary must be one of paths")
    for p in wanted:
        _present_file(session, p)
    anchor = primary or wanted[0]
    if primary is not None:
        # The latest choice of primary wins: merges this one joins (sharing a file, or
        # through another merge) give theirs up, or the rules would pick among them.
        linked = set(wanted)
        rows = Q.merge_overrides(session)
        grew = True
        while grew:
            grew = False
            for m in rows:
                if set(m.members) & linked and not set(m.members) <= linked:
                    linked |= set(m.members)
                    grew = True
        for m in rows:
            if m.primary_path and set(m.members) & linked:
                row = session.get(GroupOverride, m.id)
                assert row is not None
                row.primary_path = None
    session.add(
        GroupOverride(
            action="merge",
            dir_key=dir_key(anchor),
            members=_dumps(wanted),
            primary_path=primary,
            created_at=utcnow(),
        )
    )
    session.flush()
    stats = regroup(session, {dir_key(p) for p in wanted}, policy=settings.primary_policy)
    fid = _present_file(session, anchor).id
    gid = Q.group_id_of_files(session, [fid]).get(fid)
    if gid is None:  # pragma: no cover - the rules always honour a merge of present files
        raise GroupingError("the merge did not produce a group", 500)
    return gid, stats


def group_of_path(session: Session, path: str) -> str | None:
    f = Q.file_by_path(session, path)
    if f is None:
        return None
    return Q.group_id_of_files(session, [f.id]).get(f.id)


__all__ = [
    "GroupingError",
    "Stats",
    "regroup",
    "run_job",
    "split_group",
    "merge_files",
    "group_of_path",
]
