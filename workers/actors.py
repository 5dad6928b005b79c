"""Dramatiq actors. Thin by design: ids in, a session, one call into ``core``, commit.

Every actor is safe to run twice with the same message: the core functions check
the job's phase and each batch's state before doing or counting anything.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq

from core import catalog, dataversion, jobs
from core.grouping import watermark
from core.models import Job, Root
from workers import runtime

log = logging.getLogger("twinlens.workers")

MAX_RETRIES = 5
# The database or Redis away (a restart, a failover, SQLite locked by a long writer):
# retried for longer, ~10 minutes at the 15 s cap, rather than failing every job in flight
# after the ~30 s that five retries take.
TRANSIENT_RETRIES = 40


def transient(exc: BaseException) -> bool:
    """An error that says a server is away for now, not that the work is wrong."""
    import redis
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | redis.ConnectionError | redis.TimeoutError)


def retry_when(retries: int, exc: BaseException) -> bool:
    """Whether a message that failed ``retries`` times before this one runs again."""
    return retries < (TRANSIENT_RETRIES if transient(exc) else MAX_RETRIES)


RETRY: dict[str, Any] = dict(
    retry_when=retry_when, min_backoff=500, max_backoff=15_000, on_retry_exhausted="job_failed"
)
# Dramatiq stops a message after 10 minutes by default. Walking a share of a million files
# over SMB, or a full dedup pass over them, can take longer: such a pass would be killed
# and retried from the start until its retries ran out. A batch is bounded
# (TWINLENS_BATCH_FILES, TWINLENS_BATCH_BYTES), so an hour means a stuck read.
WHOLE_ROOT = dict(RETRY, time_limit=4 * 3600 * 1000)
BATCH = dict(RETRY, time_limit=3600 * 1000)


def _send(actor: str, *args: Any) -> None:
    jobs.enqueue(dramatiq.get_broker(), actor, *args)


def _kick(job_id: str) -> None:
    """Enqueue the current phase's queued batches, or move on when there are none.

    Every batch not done, on every (re)delivery, those sent before included: nothing
    records which batch messages wait in the broker, and the kick before may have sent
    none (a worker killed between its commit and its sends) or Redis may have lost them
    (a restart: the reconcile's scan_advance kicks again). A batch's second message finds
    it done, or being read and leaves it (jobs.delivery): cheap, and no file read twice.
    """
    with runtime.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return
        if job.state not in jobs.ACTIVE_STATES:
            followers = [(f.kind, f.id) for f in jobs.queued_followers(s, job)]
            for kind, fid in followers:
                # Ids only: grouping finds its folders itself (core.grouping.watermark).
                _send("group_run" if kind == "group" else "dedup_run", fid)
            return
        phase = job.phase
        seqs = catalog.queued_batches(s, job_id)
    if phase == "finish":
        _finish(job_id)
    elif seqs:
        for seq in seqs:
            _send("scan_batch", job_id, seq)
    elif phase != "plan":
        _send("scan_advance", job_id, phase)


def _finish(job_id: str) -> None:
    cfg = runtime.settings()
    follow: list[tuple[str, tuple[Any, ...]]] = []
    with runtime.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.state not in jobs.ACTIVE_STATES or job.phase != "finish":
            return
        # Also what an earlier scan that never finished cataloged: it started no grouping.
        changed = watermark.due(s, job) or job.trigger == "schedule"
        # And a dedup pass that was cancelled or failed: grouping's watermark moved on
        owed = changed or _dedup_due(s)
        if not jobs.finish_job(s, job_id, "done"):
            return  # cancelled meanwhile: its passes are not started either
        root = s.get(Root, job.root_id)
        path = root.path if root else None
        passes: list[Job] = []
        if changed:
            passes.append(
                Job(kind="group", root_id=job.root_id, path=path, trigger="scan", parent_id=job_id)
            )
        if owed:
            # A full or nightly scan also runs a full dedup pass: only that notices a
            # file group that was dissolved entirely (incremental passes see changed rows).
            full = job.full or job.trigger == "schedule"
            passes.append(
                Job(
                    kind="dedup",
                    root_id=job.root_id,
                    path=path,
                    trigger="scan",
                    full=full,
                    parent_id=job_id,
                )
            )
        s.add_all(passes)
        s.flush()
        follow = [("group_run" if p.kind == "group" else "dedup_run", (p.id,)) for p in passes]
    for actor, args in follow:
        _send(actor, *args)
    if follow:
        dataversion.bump(cfg.cache_url)


def _dedup_due(session: Any) -> bool:
    from core.dedup import service  # (its media readers: not at import)

    return service.due(session)


@dramatiq.actor(queue_name="catalog", **WHOLE_ROOT)
def scan_plan(job_id: str) -> None:
    with runtime.session() as s:
        # Behind an earlier scan of the same folders: planned once that one has
        # cataloged, so that no new file is read by both
        waiting = jobs.wait_behind(s, job_id)
        if not waiting:
            catalog.plan_scan(s, job_id, runtime.settings())
    if waiting:
        jobs.enqueue(dramatiq.get_broker(), "scan_plan", job_id, delay_ms=jobs.WAIT_BEHIND_MS)
        return
    _kick(job_id)


@dramatiq.actor(queue_name="catalog", **BATCH)
def scan_batch(job_id: str, seq: int) -> None:
    try:
        with runtime.session() as s:
            counted, complete = catalog.process_batch(s, job_id, seq, runtime.settings())
            phase = s.get(Job, job_id).phase if complete else None  # type: ignore[union-attr]
    except Exception:
        _ended_with_an_error(job_id, seq)
        raise
    if complete and phase:
        _send("scan_advance", job_id, phase)


def _ended_with_an_error(job_id: str, seq: int) -> None:
    """After the rollback (no lock held): this delivery is not a crash (jobs.begin_attempt)."""
    try:
        jobs.end_delivery(runtime.engine(), job_id, seq)
    except Exception:  # the database away: the error being raised is the one to report
        log.exception("could not mark batch %s/%s's delivery as ended", job_id, seq)


@dramatiq.actor(queue_name="catalog", **WHOLE_ROOT)
def scan_advance(job_id: str, phase: str) -> None:
    with runtime.session() as s:
        catalog.advance(s, job_id, phase, runtime.settings())
    _kick(job_id)


@dramatiq.actor(queue_name="group", **WHOLE_ROOT)
def group_run(job_id: str, dir_keys: list[str] | None = None) -> None:
    # ``dir_keys``: only in messages sent before the folders came from the job's root.
    from core.grouping import service

    with runtime.session() as s:
        ended = _ended(s, job_id)
        changed = service.run_job(s, job_id, dir_keys, runtime.settings())
    if changed or ended:
        dataversion.bump(runtime.settings().cache_url)


@dramatiq.actor(queue_name="dedup", **WHOLE_ROOT)
def dedup_run(job_id: str) -> None:
    from core.dedup import service

    with runtime.session() as s:
        ended = _ended(s, job_id)
        changed = service.run_job(s, job_id, runtime.settings())
    if changed or ended:
        dataversion.bump(runtime.settings().cache_url)


def _ended(session: Any, job_id: str) -> bool:
    """Whether a pass's job ended before this delivery of its message began: the delivery
    before it committed the pass and then died (the worker killed) or failed to bump the
    data version (Redis away; the error retries the message). Its bump is owed: without
    it the gateway would serve answers cached from before the pass until they expire. A
    bump when none was owed costs only a cache miss for each answer cached before it."""
    job = session.get(Job, job_id)
    return job is not None and job.state in jobs.FINAL_STATES


@dramatiq.actor(queue_name="catalog", max_retries=3)
def job_failed(message: dict[str, Any], info: dict[str, Any]) -> None:
    """Retries ran out: the job fails with the last error instead of hanging as running."""
    args = message.get("args") or []
    trace = (message.get("options") or {}).get("traceback") or ""
    last = trace.strip().splitlines()[-1] if trace.strip() else "unknown error"
    if not args:
        return
    with runtime.session() as s:
        jobs.finish_job(
            s,
            str(args[0]),
            "failed",
            error=f"{message.get('actor_name')} failed after {info.get('retries')} retries: {last}",
        )
    log.error("job %s failed in %s: %s", args[0], message.get("actor_name"), last)


ALL = (scan_plan, scan_batch, scan_advance, group_run, dedup_run, job_failed)


def bind(broker: dramatiq.Broker) -> None:
    """Re-home every actor on ``broker`` (the CLI and tests switch brokers)."""
    for actor in ALL:
        actor.broker = broker
        broker.declare_actor(actor)
