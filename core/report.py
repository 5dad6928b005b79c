"""The `twinlens scan --json` report (``build``), and the summary that the terminal
shows after every scan (``summary``). Keep the report's format stable.

{"library": str, "folder": str | None, "library_files": int, "job": {...},
 "totals": {"files", "kinds", "groups", "duplicates", "files_with_errors"},
 "passes": [{"id", "kind", "state", "error", "elapsed_seconds"}],
 "files": [{"path", "size", "kind", "sha256", "phash", "taken_at", "error"}],
 "groups": [{"id", "type", "primary", "members": [str]}],
 "duplicates": [{"id", "type", "members": [{"path", "similarity"}], "keep": str}]}
Paths are relative to the library root, with forward slashes.

The report lists every file: ~1.7 KB of memory a file while it is built (a million-file
library: ~1.7 GB, and ~45 s), so it is built only when asked for (``--json``).
The summary is counts from SQL and the first few files with errors, whatever the
library's size.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from core import jobs
from core.filequeries import chunks, problem_text, under, with_problem
from core.models import DuplicateGroup, DuplicateMember, File, FileGroup, GroupMember, Job, Root
from core.paths import path_key, relative_posix

# Files with errors the summary names; the rest are counted ("see --json").
SUMMARY_ERRORS = 20


def summary(
    session: Session, root_id: int, job_id: str, folder: str | None = None
) -> dict[str, Any]:
    """The scan's job and passes, and what the library (or ``folder`` of it) holds now, as
    counts: what `twinlens scan` and `twinlens up` print. ``folder`` is absolute, None for
    the whole library. Keys as the report's (``library``, ``folder`` relative or None,
    ``library_files``, ``job``, ``passes``), plus ``totals`` (``files``, ``kinds``,
    ``groups``, ``duplicates``, ``files_with_errors``: files read with an error or a
    warning, and paths the job could not catalog at all) and ``file_errors`` (the first
    ``SUMMARY_ERRORS`` files with one, by path, and then the job's errors that are no
    such file: a folder it could not list, a file gone before it was read)."""
    root = session.get(Root, root_id)
    job = session.get(Job, job_id)
    assert root is not None and job is not None
    base = root.path
    rel_folder = relative_posix(folder, base) if folder is not None else "."
    present = [File.root_id == root_id, File.status == "present"]
    here = present + ([under(File.path, folder)] if folder and rel_folder != "." else [])
    bad = with_problem()
    kinds: dict[str, int] = {
        k: n
        for k, n in session.execute(
            select(File.kind, func.count()).where(*here).group_by(File.kind)
        )
    }
    with_errors = session.scalar(select(func.count()).select_from(File).where(*here, bad)) or 0
    first = session.execute(
        select(File.path, File.error, File.warning)
        .where(*here, bad)
        .order_by(File.path)
        .limit(SUMMARY_ERRORS)
    ).all()
    errors = jobs.job_errors(session, job_id)
    # A job error on a file that carries its error is that file's, counted once
    carried = _paths_with_errors(session, root_id, [e.path for e in errors])
    others = [e for e in errors if e.path not in carried]
    view = jobs.job_view(job, errors, root=base)
    return {
        "library": base,
        "folder": None if rel_folder == "." else rel_folder,
        "library_files": session.scalar(select(func.count()).select_from(File).where(*present)),
        "job": view,
        "passes": _passes(session, job),
        "totals": {
            "files": sum(kinds.values()),
            "kinds": dict(sorted(kinds.items())),
            "groups": _count_groups(session, GroupMember.group_id, GroupMember.file_id, here),
            "duplicates": _count_groups(
                session, DuplicateMember.group_id, DuplicateMember.file_id, here
            ),
            "files_with_errors": with_errors + len({e.path for e in others}),
        },
        "file_errors": [
            {"path": relative_posix(p, base), "error": problem_text(e, w)} for p, e, w in first
        ]
        + [{"path": relative_posix(e.path, base), "error": e.error} for e in others],
    }


def _paths_with_errors(session: Session, root_id: int, paths: list[str]) -> set[str]:
    """Those of ``paths`` that are present files of the root with an error or warning."""
    out: set[str] = set()
    for chunk in chunks(sorted({path_key(p) for p in paths})):
        out.update(
            session.scalars(
                select(File.path).where(
                    File.root_id == root_id,
                    File.path_key.in_(chunk),
                    File.status == "present",
                    with_problem(),
                )
            )
        )
    return out


def _count_groups(session: Session, group_id: Any, file_id: Any, files: list[Any]) -> int:
    """Groups with a member among ``files`` (conditions on File), as the report lists."""
    q = select(func.count(distinct(group_id))).join(File, File.id == file_id).where(*files)
    return session.scalar(q) or 0


def _passes(session: Session, job: Job) -> list[dict[str, Any]]:
    """The grouping and dedup passes the scan started: a failed one leaves the groups and
    duplicates out of date, and the CLI says so."""
    return [
        {
            "id": f.id,
            "kind": f.kind,
            "state": f.state,
            "error": f.error,
            "elapsed_seconds": jobs.job_view(f)["elapsed_seconds"],
        }
        for f in jobs.followers(session, job)
    ]


def build(session: Session, root_id: int, job_id: str) -> dict[str, Any]:
    root = session.get(Root, root_id)
    job = session.get(Job, job_id)
    assert root is not None and job is not None
    base = root.path

    def rel(p: str) -> str:
        return relative_posix(p, base)

    files = session.execute(
        select(
            File.id,
            File.path,
            File.size,
            File.kind,
            File.sha256,
            File.phash,
            File.taken_at,
            File.taken_offset,
            File.error,
            File.warning,
        ).where(File.root_id == root_id, File.status == "present")
    ).all()
    ids = {f.id for f in files}
    file_rows = sorted(
        (
            {
                "path": rel(f.path),
                "size": f.size,
                "kind": f.kind,
                "sha256": f.sha256,
                "phash": f.phash,
                "taken_at": (f.taken_at.isoformat() + (f.taken_offset or ""))
                if f.taken_at
                else None,
                # A mis-named file is read and hashed like any other, and its mismatch
                # is still reported: the report has one place for problems.
                "error": problem_text(f.error, f.warning) or None,
            }
            for f in files
        ),
        key=lambda r: r["path"],
    )
    return {
        "library": base,
        # Every failed file: the report is a file, not an HTTP answer to keep small.
        "job": jobs.job_view(job, jobs.job_errors(session, job_id, limit=None), root=base),
        "passes": _passes(session, job),
        "files": file_rows,
        "groups": _groups(session, ids, rel),
        "duplicates": _duplicates(session, ids, rel),
    }


def _groups(session: Session, ids: set[int], rel: Any) -> list[dict[str, Any]]:
    members: dict[str, list[Any]] = defaultdict(list)
    types: dict[str, str] = {}
    for gid, gtype, fid, path, is_primary in session.execute(
        select(
            FileGroup.group_id,
            FileGroup.group_type,
            GroupMember.file_id,
            GroupMember.file_path,
            GroupMember.is_primary,
        ).join(GroupMember, GroupMember.group_id == FileGroup.group_id)
    ):
        if fid in ids:
            members[gid].append((not is_primary, rel(path)))
            types[gid] = gtype
    out = []
    for gid, ms in members.items():
        ms.sort()
        out.append(
            {"id": gid, "type": types[gid], "primary": ms[0][1], "members": [m[1] for m in ms]}
        )
    return sorted(out, key=lambda g: g["primary"])


def _duplicates(session: Session, ids: set[int], rel: Any) -> list[dict[str, Any]]:
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    groups: dict[str, Any] = {}
    for g, fid, path, score in session.execute(
        select(
            DuplicateGroup,
            DuplicateMember.file_id,
            DuplicateMember.file_path,
            DuplicateMember.similarity_score,
        ).join(DuplicateMember, DuplicateMember.group_id == DuplicateGroup.group_id)
    ):
        if fid in ids:
            members[g.group_id].append(
                {"path": rel(path), "similarity": round(float(score), 4), "_id": fid}
            )
            groups[g.group_id] = g
    out = []
    for gid, ms in members.items():
        g = groups[gid]
        ms.sort(key=lambda m: m["path"])
        keep = next((m["path"] for m in ms if m["_id"] == g.keeper_file_id), ms[0]["path"])
        for m in ms:
            del m["_id"]
        out.append(
            {
                "id": gid,
                "type": g.duplicate_type,
                "members": ms,
                "keep": keep,
                "keep_reason": g.keeper_reason,
                "status": g.status,
            }
        )
    return sorted(out, key=lambda d: (d["type"], d["keep"]))
