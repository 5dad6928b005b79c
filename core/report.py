"""The `twinlens scan --json` report. Keep this format stable.

{"library": str, "job": {...},
 "files": [{"path", "size", "kind", "sha256", "phash", "taken_at", "error"}],
 "groups": [{"id", "type", "primary", "members": [str]}],
 "duplicates": [{"id", "type", "members": [{"path", "similarity"}], "keep": str}]}
Paths are relative to the library root, with forward slashes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import jobs
from core.models import DuplicateGroup, DuplicateMember, File, FileGroup, GroupMember, Job, Root
from core.paths import relative_posix


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
                "error": f.error or f.warning,
            }
            for f in files
        ),
        key=lambda r: r["path"],
    )
    return {
        "library": base,
        # Every failed file: the report is a file, not an HTTP answer to keep small.
        "job": jobs.job_view(job, jobs.job_errors(session, job_id, limit=None), root=base),
        # The grouping and dedup passes the scan started: a failed one leaves the groups
        # and duplicates below out of date, and the CLI says so.
        "passes": [
            {
                "id": f.id,
                "kind": f.kind,
                "state": f.state,
                "error": f.error,
                "elapsed_seconds": jobs.job_view(f)["elapsed_seconds"],
            }
            for f in jobs.followers(session, job)
        ],
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
