"""What grouping has not seen yet: the folders a grouping pass over a root must regroup.

Grouping runs only as a scan's follower. A scan that ends cancelled or failed (a user's
cancel, retries run out, superseded as stale, interrupted) starts none, and the next scan
finds its files unchanged: their folders would never be grouped. So a follower does not
regroup "what its scan changed" but "what changed since the last grouping pass over this
root that finished" (the watermark that pass left in its summary): a superset that costs
the same when every scan finishes.

Light on purpose (no media readers): the grouping API imports the grouping service.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import jobs
from core.models import File, Job, Root

# Clock skew between hosts (NTP keeps it far below), as dedup's watermark allows.
CLOCK_SLACK = timedelta(seconds=2)
# The grouping rules' version, in each pass's summary: a pass of older rules leaves no
# watermark that counts, so the first scan after an upgrade regroups every folder, and a
# new rule (2: RAW folders) reaches folders that have not changed since.
RULES = 2


def last_watermark(session: Session, root: Root) -> datetime | None:
    """The time before which every file of ``root`` has been grouped: the highest
    watermark a finished grouping pass over it left. None when none did: every folder is
    due. A pass of a root since taken over by this one (its path differs) covered only
    that root's files, so it does not count."""
    marks: list[datetime] = []
    for path, summary in session.execute(
        select(Job.path, Job.summary)
        .where(Job.kind == "group", Job.root_id == root.id, Job.state == "done")
        .order_by(Job.finished_at.desc())
        .limit(20)
    ):
        mark = _summary_watermark(summary)
        if mark is not None and path == root.path:
            marks.append(mark)
    return max(marks, default=None)


def _summary_watermark(summary: str | None) -> datetime | None:
    try:
        done = json.loads(summary or "{}")
        mark = done.get("watermark")
        if done.get("rules", 1) != RULES:
            return None  # grouped by older rules: its folders are due again
        return datetime.fromisoformat(mark) if mark else None
    except (ValueError, AttributeError, TypeError):
        return None  # a summary of another shape (an older pass): no watermark


def since_for(
    session: Session, root: Root, scan: Job | None, slack: timedelta | None = None
) -> datetime | None:
    """Where a follower of ``scan`` starts: the root's watermark less ``slack`` (default
    ``CLOCK_SLACK``: a row stamped by a host whose clock lags), or the scan's start if
    earlier (never later: a safe bound). None: group every folder of the root."""
    mark = last_watermark(session, root)
    if mark is None:
        return None
    mark -= CLOCK_SLACK if slack is None else slack
    started = scan.started_at if scan is not None else None
    return min(mark, started) if started is not None else mark


def _changed_query(root: Root, since: datetime | None) -> Any:
    q = select(File.dir_key).where(File.root_id == root.id)
    return q if since is None else q.where(File.updated_at >= since)


def due(session: Session, scan: Job) -> bool:
    """Whether a finished scan needs a grouping pass: a file of its root changed since
    grouping last caught up (by this scan, or by one that never finished)."""
    root = session.get(Root, scan.root_id)
    if root is None or scan.started_at is None:
        return False
    # Without the slack: a rescan right after a pass must not find the files that pass
    # grouped "changed" again. A row the slack is for came from a scan that started
    # after that pass read, whose own start then counts here.
    since = since_for(session, root, scan, slack=timedelta(0))
    return session.scalar(_changed_query(root, since).limit(1)) is not None


def changed_folders(session: Session, root: Root, since: datetime | None) -> list[str]:
    """Folders (dir keys) of ``root`` with a file updated since ``since`` (None: all)."""
    return sorted(set(session.scalars(_changed_query(root, since))))


def next_watermark(session: Session, root: Root, read_at: datetime) -> datetime:
    """The watermark a pass that read the changed folders at ``read_at`` leaves: rows a
    scan still running then writes carry ``updated_at`` after its start, and may be
    committed after this read, so the next pass must read from that start. (The next pass
    also reads ``CLOCK_SLACK`` earlier, for a scan on a host whose clock lags.)"""
    starts = session.scalars(
        select(Job.started_at).where(
            Job.kind == "scan",
            Job.root_id == root.id,
            Job.state.in_(jobs.ACTIVE_STATES),
            Job.started_at.is_not(None),
        )
    )
    return min([read_at, *starts])
