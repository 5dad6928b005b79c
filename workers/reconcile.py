"""Jobs whose messages were lost are sent on again; jobs that stopped for good are failed.

Dramatiq retries a failed message by sending it again through the broker, and the
workers send each job's next message when a step ends. With Redis away at that moment (a
restart, an out-of-memory kill), the send fails and the message is gone: the job waits
in ``queued`` or ``running`` with nothing on its way to it, for ever. So the scheduler
looks every ``EVERY_SECONDS`` for active jobs that nothing has moved for
``QUIET_SECONDS`` (every step of a live job moves it: a batch, a walk's heartbeat, a
pass's progress, a deferred pass's wait) and sends each one's next message again. That
is safe because every handler is idempotent: batches are claimed, phases advance by
conditional updates, a finished job ignores its messages. A job that nothing has moved
for ``TWINLENS_JOB_STALE_SECONDS`` is failed instead (it would otherwise hold back the
dedup watermark, and every later dedup pass would widen).

Twin schedulers share the work through a lease; the embedded default runs it too.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core import catalog, jobs, leases
from core.config import Settings
from core.db import engine_for, session_scope
from core.models import Job, utcnow

log = logging.getLogger("twinlens.reconcile")

EVERY_SECONDS = 300.0
QUIET_SECONDS = 600.0
LEASE = "reconcile"


def _next_messages(session: Any, job: Job) -> list[tuple[str, tuple[Any, ...]]]:
    """The message(s) that move ``job`` on from where it stands."""
    if job.kind == "group":
        return [("group_run", (job.id,))]
    if job.kind == "dedup":
        return [("dedup_run", (job.id,))]
    if job.phase == "plan":
        return [("scan_plan", (job.id,))]  # a walk whose worker died: planning is claimed
    seqs = catalog.queued_batches(session, job.id)
    if seqs:
        return [("scan_batch", (job.id, seq)) for seq in seqs]
    return [("scan_advance", (job.id, job.phase))]


def reconcile(
    cfg: Settings, broker: Any, holder: str | None = None, quiet_seconds: float = QUIET_SECONDS
) -> dict[str, list[str]]:
    """Send quiet jobs on, fail stale ones. Returns their ids ({"resent", "failed"})."""
    holder = holder or leases.holder_id()
    sends: list[tuple[str, tuple[Any, ...]]] = []
    out: dict[str, list[str]] = {"resent": [], "failed": []}
    with session_scope(engine_for(cfg.database_url)) as s:
        if not leases.acquire(s, LEASE, holder, EVERY_SECONDS / 2):
            return out  # the other scheduler's turn
        quiet_since = utcnow() - timedelta(seconds=quiet_seconds)
        for job in s.scalars(
            select(Job).where(Job.state.in_(jobs.ACTIVE_STATES), Job.updated_at < quiet_since)
        ):
            if jobs.is_stale(job, cfg.job_stale_seconds):
                stopped = f"no progress for {cfg.job_stale_seconds:.0f} s: its work was lost"
                if jobs.finish_job(s, job.id, "failed", error=stopped):
                    out["failed"].append(job.id)
                continue
            sends.extend(_next_messages(s, job))
            out["resent"].append(job.id)
    for actor, args in sends:  # after the commit: a worker must find what was read
        jobs.enqueue(broker, actor, *args)
    if out["resent"] or out["failed"]:
        log.warning("jobs with lost messages: sent on %s, failed %s", out["resent"], out["failed"])
    return out


def attempt(cfg: Settings, broker: Any) -> None:
    """The scheduler's interval job: a failure (the database away) waits for the next."""
    try:
        reconcile(cfg, broker)
    except Exception:  # noqa: BLE001 - logged; the next round tries again
        log.exception("could not look for jobs with lost messages")
