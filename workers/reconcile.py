"""Jobs whose messages were lost are sent on again; jobs that stopped for good are failed.

Dramatiq retries a failed message by sending it again through the broker, and the
workers send each job's next message when a step ends. With Redis away at that moment (a
restart, an out-of-memory kill), the send fails and the message is gone: the job waits
in ``queued`` or ``running`` with nothing on its way to it, for ever. So the scheduler
looks every ``EVERY_SECONDS`` for active jobs that nothing has moved for
``QUIET_SECONDS`` and that has no message waiting in Redis (listed or delayed; one only
in a live worker's hands does not count: a worker running it would move its job, and a
Redis stall mid-fetch leaves one there undelivered for ever): such a job's messages were
lost, and it gets its next message again.
That is safe because every handler is idempotent: batches are claimed, phases advance
by conditional updates, a finished job ignores its messages. (A job with a message
waiting may just be waiting its turn: a nightly scan's second root behind its first. Once
its message is sent again it waits, so it is not sent twice.) A job that nothing
has moved for ``TWINLENS_JOB_STALE_SECONDS``, with no message waiting, is failed instead (it
would otherwise hold back the dedup watermark, and every later dedup pass would widen);
past twice that, it is failed whatever its queue holds (a read hung on a hard-mounted
share never gives its message back).
A grouping or dedup job queued behind a scan that is still running is left to that scan,
which sends it when it finishes.

Twin schedulers share the work through a lease. The embedded default has nothing to do
here: its in-process broker loses no message while the process lives, and what a dead
process left is failed at the next start (``runtime.fail_orphans``).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core import jobs, leases
from core.config import Settings
from core.db import engine_for, session_scope
from core.models import Job, utcnow

log = logging.getLogger("twinlens.reconcile")

EVERY_SECONDS = 300.0
QUIET_SECONDS = 600.0
LEASE = "reconcile"
QUEUES = {"scan": "catalog", "group": "group", "dedup": "dedup"}  # workers/actors.py


def waiting_jobs(broker: Any, queue: str) -> set[str]:
    """The jobs with a message of ``queue`` waiting its turn in Redis: in the queue's list,
    or delayed (a retry's backoff, a pass deferred). Not one only in a worker's hands: that
    worker is running it, and then moves its job, or lost it (a Redis stall past the
    client's timeout, mid-fetch, leaves the message in a live worker's acks, never
    delivered and never given back). Every actor's first argument is its job's id."""
    client, ns = broker.client, broker.namespace
    listed = {i.decode() for i in client.lrange(f"{ns}:{queue}", 0, -1)}
    out: set[str] = set()
    for key, waiting in ((f"{ns}:{queue}.msgs", listed), (f"{ns}:{queue}.DQ.msgs", None)):
        for message_id, data in client.hscan_iter(key):
            if waiting is not None and message_id.decode() not in waiting:
                continue
            try:
                args = json.loads(data).get("args") or []
            except (ValueError, AttributeError):
                continue
            if args and isinstance(args[0], str):
                out.add(args[0])
    return out


def _parent_active(session: Any, job: Job) -> bool:
    parent = session.get(Job, job.parent_id) if job.parent_id else None
    return parent is not None and parent.state in jobs.ACTIVE_STATES


def _next_message(job: Job) -> tuple[str, tuple[Any, ...]]:
    """The message that moves ``job`` on from where it stands. Past planning, a scan's
    ``scan_advance`` for its own phase does: it moves on once the phase's batches are done,
    and its ``_kick`` sends those still queued (or finishes the job)."""
    if job.kind == "group":
        return "group_run", (job.id,)
    if job.kind == "dedup":
        return "dedup_run", (job.id,)
    if job.phase == "plan":
        return "scan_plan", (job.id,)  # a walk whose worker died: planning is claimed
    return "scan_advance", (job.id, job.phase)


def reconcile(
    cfg: Settings, broker: Any, holder: str | None = None, quiet_seconds: float = QUIET_SECONDS
) -> dict[str, list[str]]:
    """Send quiet jobs on, fail stale ones. Returns their ids ({"resent", "failed"})."""
    holder = holder or leases.holder_id()
    sends: list[tuple[str, tuple[Any, ...]]] = []
    out: dict[str, list[str]] = {"resent": [], "failed": []}
    if cfg.embedded:
        return out
    waiting: dict[str, set[str]] = {}
    with session_scope(engine_for(cfg.database_url)) as s:
        # Held past the next round by a live scheduler (which renews it): a twin never acts
        if not leases.acquire(s, LEASE, holder, EVERY_SECONDS + 60):
            return out
        quiet_since = utcnow() - timedelta(seconds=quiet_seconds)
        for job in s.scalars(
            select(Job).where(Job.state.in_(jobs.ACTIVE_STATES), Job.updated_at < quiet_since)
        ):
            queue = QUEUES.get(job.kind)
            if queue is None or _parent_active(s, job):
                continue
            if queue not in waiting:
                waiting[queue] = waiting_jobs(broker, queue)
            # Past twice the stale limit, even a message waiting is no excuse: a read hung
            # on a hard-mounted share holds the worker threads ahead of it for ever
            if job.id in waiting[queue] and not jobs.is_stale(job, 2 * cfg.job_stale_seconds):
                continue  # its message waits its turn there
            if jobs.is_stale(job, cfg.job_stale_seconds):
                stopped = f"no progress for {cfg.job_stale_seconds:.0f} s: its work was lost"
                if jobs.finish_job(s, job.id, "failed", error=stopped):
                    out["failed"].append(job.id)
                continue
            sends.append(_next_message(job))
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
