"""Jobs: rows people watch, and the message contract the processes share.

A message names a queue, an actor and ids; it never carries objects. The API
enqueues by this contract without importing the workers (so it never loads image
decoders); workers declare actors with these names.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from core import leases
from core.db import begin_write
from core.models import File, Job, JobBatch, JobError, Root, utcnow
from core.paths import is_inside, path_key, relative_posix

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("done", "failed", "cancelled")
JOB_KINDS = ("scan", "group", "dedup")


@dataclass(frozen=True)
class Route:
    queue: str
    actor: str


# The message contract: actor name -> queue. Arguments are listed beside each.
ROUTES = {
    "scan_plan": Route("catalog", "scan_plan"),  # (job_id)
    "scan_batch": Route("catalog", "scan_batch"),  # (job_id, seq)
    "scan_advance": Route("catalog", "scan_advance"),  # (job_id, phase)
    "group_run": Route("group", "group_run"),  # (job_id,)
    "dedup_run": Route("dedup", "dedup_run"),  # (job_id,)
    "watch_paths": Route("catalog", "watch_paths"),  # (root, [paths])
}
QUEUES = sorted({r.queue for r in ROUTES.values()})


def enqueue(broker: Any, actor: str, *args: Any, delay_ms: int | None = None) -> None:
    """Send a message by name, without importing the actor's module."""
    import dramatiq

    route = ROUTES[actor]
    broker.declare_queue(route.queue)
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=route.queue, actor_name=route.actor, args=args, kwargs={}, options={}
    )
    broker.enqueue(message, delay=delay_ms)


# --- roots -----------------------------------------------------------------


def get_or_create_root(session: Session, path: str) -> Root:
    """The root at ``path``, created if new. A new root takes over the roots already
    cataloged inside it (``twinlens scan`` of a folder, then of its parent): their files
    and jobs become its own, so that no file has two rows and no scan of either undoes
    the other's."""
    key = path_key(path)
    root = session.scalar(select(Root).where(Root.path_key == key))
    if root is None:
        root = Root(path=path, path_key=key)
        session.add(root)
        session.flush()
        inner = [
            r for r in session.scalars(select(Root)) if r.id != root.id and is_inside(r.path, path)
        ]
        for r in inner:
            session.execute(update(File).where(File.root_id == r.id).values(root_id=root.id))
            session.execute(update(Job).where(Job.root_id == r.id).values(root_id=root.id))
            session.delete(r)
        session.flush()
    return root


def known_roots(session: Session) -> list[str]:
    """The paths of every root the catalog holds."""
    return list(session.scalars(select(Root.path)))


# --- jobs --------------------------------------------------------------------


def find_active(
    session: Session, kind: str, root_id: int | None, target: str | None = None
) -> Job | None:
    """The queued or running job of this kind on this root that covers ``target`` (a
    folder, or the root itself), if any. A scan of one folder does not cover the root: a
    nightly full scan handed the watcher's folder scan would scan nothing else."""
    q = select(Job).where(Job.kind == kind, Job.state.in_(ACTIVE_STATES))
    if root_id is not None:
        q = q.where(Job.root_id == root_id)
    for job in session.scalars(q.order_by(Job.created_at)):
        if _covers(job.path, target):
            return job
    return None


def _covers(scanned: str | None, target: str | None) -> bool:
    return scanned is None or target is None or is_inside(target, scanned)


def start_job(
    session: Session,
    kind: str,
    *,
    root: Root | None,
    path: str | None = None,
    trigger: str = "cli",
    full: bool = False,
    exclusive: bool = True,
    stale_seconds: float = 3600.0,
) -> tuple[Job, bool]:
    """Create a job, or return the one already active on this root.

    Returns (job, created). A lock is taken first so that two processes starting a job
    at once (the API, the scheduler, ``twinlens scan``) cannot both find none active and
    both insert one: the root's row on PostgreSQL, the database's write lock on SQLite.
    ``exclusive=False`` always creates a job (the watcher's folder scans: a running
    full scan may already have walked past the folder that just changed). An active
    job without progress for ``stale_seconds`` is failed and replaced.
    """
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    if session.get_bind().dialect.name == "sqlite":
        # FOR UPDATE is a no-op there: without the write lock first, the reads below
        # would each see the database as it is, and two starters could both insert
        begin_write(session)
    elif root is not None:
        session.execute(select(Root.id).where(Root.id == root.id).with_for_update())
    target = path if path is not None else (root.path if root else None)
    existing = find_active(session, kind, root.id if root else None, target) if exclusive else None
    if existing is not None and stale_seconds and is_stale(existing, stale_seconds):
        # Its messages were lost (a broker restarted without persistence, a queue
        # flushed): without this, every later request would be handed a dead job.
        finish_job(
            session,
            existing.id,
            "failed",
            error=f"no progress for {stale_seconds:.0f} s; presumed lost, superseded",
        )
        existing = None
    if existing is not None:
        return existing, False
    job = Job(
        kind=kind,
        root_id=root.id if root else None,
        path=target,
        trigger=trigger,
        full=full,
        state="queued",
    )
    session.add(job)
    session.flush()
    with _created_lock:
        _created_here.add(job.id)
    return job, True


# Jobs this process created (start_job), for the embedded default, whose in-process broker
# dies with the process: which jobs it may fail as its own when it stops beside another
# live process, and which are never another, dead process's orphans. An id is added at
# the insert, before its commit: a query that sees the row committed finds it here.
_created_here: set[str] = set()
_created_lock = threading.Lock()


def created_here() -> set[str]:
    with _created_lock:
        return set(_created_here)


# How often a scan waiting behind another scan of its folders looks again, and how often
# it tells its row it is alive meanwhile (the reconcile fails a job nothing moves).
WAIT_BEHIND_MS = 2000
WAIT_TOUCH_SECONDS = 60.0


def scan_ahead(session: Session, job: Job) -> Job | None:
    """An earlier folder scan, still active, of ``job``'s folder, one inside it or one
    holding it, that ``job`` should wait for before it plans. Two such scans at once read
    the same new files twice (the watcher's scan of a folder still being copied into,
    then the one when it settles: the later plans before the earlier has cataloged). A
    scan of a whole root is waited for by no folder scan: it may run for hours, and a
    folder that changed meanwhile would wait with it (it may have walked past it)."""
    if job.kind != "scan" or job.state != "queued" or job.phase != "plan" or job.root_id is None:
        return None
    root = session.get(Root, job.root_id)
    mine = job.path or (root.path if root else None)
    if root is None or mine is None:
        return None
    candidates = session.scalars(
        select(Job)
        .where(
            Job.kind == "scan",
            Job.root_id == job.root_id,
            Job.state.in_(ACTIVE_STATES),
            Job.id != job.id,
            Job.created_at <= job.created_at,
        )
        .order_by(Job.created_at, Job.id)
    )
    for other in candidates:
        if other.created_at == job.created_at and other.id > job.id:
            continue  # the later of two made in the same instant waits, not both
        theirs = other.path or root.path
        if is_inside(root.path, theirs):
            continue  # a whole-root scan
        if is_inside(mine, theirs) or is_inside(theirs, mine):
            return other
    return None


def wait_behind(session: Session, job_id: str) -> bool:
    """Whether the scan ``job_id`` waits (``scan_ahead``): its plan message is sent
    again later. Its row is touched now and then, so that a long wait is not taken for a
    lost or stuck job."""
    job = session.get(Job, job_id)
    if job is None or scan_ahead(session, job) is None:
        return False
    if (utcnow() - job.updated_at).total_seconds() >= WAIT_TOUCH_SECONDS:
        job.updated_at = utcnow()
    return True


def is_stale(job: Job, seconds: float) -> bool:
    """Active, but nothing has moved it for ``seconds`` (every batch updates it)."""
    return job.state in ACTIVE_STATES and (utcnow() - job.updated_at).total_seconds() > seconds


def mark_running(session: Session, job_id: str) -> None:
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "queued")
        .values(state="running", started_at=now, updated_at=now)
    )


def touch(engine: Engine, job_id: str) -> bool:
    """Tell an active job's row that it is alive, in a transaction of its own (a long
    step in the middle of the job's own session commits nothing for a long time).
    False: the job is no longer active (cancelled, failed as stale)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_(ACTIVE_STATES))
            .values(updated_at=utcnow())
        )
    return bool(result.rowcount)


# The error of a job the embedded process held when it stopped (Ctrl-C, SIGTERM): its
# in-memory messages are gone, so no other process can run it.
INTERRUPTED = "interrupted: the process running it stopped"


def unplanned(job: Job) -> bool:
    """A scan queued and not planned yet. Its plan message may have been lost (a send
    that failed after the commit), so whoever finds it sends one again: planning twice is
    a no-op."""
    return job.state == "queued" and job.phase == "plan"


def fail_orphans(session: Session, keep: Collection[str] = ()) -> list[str]:
    """Fail every active job but those in ``keep`` (the caller's own), as interrupted.
    Only for the embedded default, once no other process that runs the in-process broker
    is alive (``leases.others_alive``): their messages died with the process that held
    them, and waiting for them to go stale would hold the next scan up for
    ``TWINLENS_JOB_STALE_SECONDS``."""
    active = list(session.scalars(select(Job.id).where(Job.state.in_(ACTIVE_STATES))))
    mine = set(keep) | created_here()  # after the query: a job made meanwhile is in it
    ids = [job_id for job_id in active if job_id not in mine]
    for job_id in ids:
        finish_job(session, job_id, "failed", error=INTERRUPTED)
    return ids


def finish_job(
    session: Session,
    job_id: str,
    state: str = "done",
    error: str | None = None,
    summary: dict[str, Any] | None = None,
) -> bool:
    now = utcnow()
    values: dict[str, Any] = {"state": state, "finished_at": now, "updated_at": now}
    if error is not None:
        values["error"] = error
    if summary is not None:
        values["summary"] = json.dumps(summary)
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.state.in_(ACTIVE_STATES)).values(**values)
    )
    # False: the job had already ended (a cancel that won the race, a redelivery).
    return bool(getattr(result, "rowcount", 0))


def cancel_job(session: Session, job_id: str) -> Job | None:
    """Cancel an active job; batches still queued see the state and do nothing."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    if job.state in ACTIVE_STATES:
        finish_job(session, job_id, "cancelled")
        session.flush()
        session.refresh(job)
    return job


def add_progress(
    session: Session,
    job_id: str,
    *,
    done: int = 0,
    failed: int = 0,
    bytes_read: int = 0,
    batches: int = 0,
) -> tuple[int, int] | None:
    """Atomically add to an active job's counters; returns (batches_done, batches_total),
    or None when the job has ended (cancelled, failed): its counters stay as they were
    when it ended, whatever batches were still reading then."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(ACTIVE_STATES))
        .values(
            done=Job.done + done,
            failed=Job.failed + failed,
            bytes_read=Job.bytes_read + bytes_read,
            batches_done=Job.batches_done + batches,
            updated_at=utcnow(),
        )
    )
    if not getattr(result, "rowcount", 0):
        return None
    row = session.execute(select(Job.batches_done, Job.batches_total).where(Job.id == job_id)).one()
    return int(row[0]), int(row[1])


# The batches a delivery in this process is reading right now (``delivery``)
_reading: set[tuple[str, int]] = set()
_reading_lock = threading.Lock()


@contextmanager
def delivery(session: Session, job_id: str, seq: int) -> Iterator[int | None]:
    """Take a batch for this delivery of its message to read, for the ``with`` block.

    Yields how many deliveries before it died with their process (``begin_attempt``), or
    None when the batch is not this delivery's to read: another delivery is reading it
    right now, or has just finished it. A batch's message is often sent twice (a scan's
    plan or advance that runs again kicks its phase's batches again), and with more than
    one worker thread both may run at once.

    A delivery counts as reading while that is known: in this process, while its ``with``
    block runs; on PostgreSQL, while its session's transaction is open (an advisory lock,
    which the commit, the rollback after an error or the time limit, and the death of its
    process or host all release). SQLite has no such lock: there a delivery of another
    process counts while that process is alive (the in-process broker retries in it).
    """
    key = (job_id, seq)
    with _reading_lock:
        here = key in _reading
        _reading.add(key)
    try:
        yield None if here else _take(session, job_id, seq)
    finally:
        if not here:
            with _reading_lock:
                _reading.discard(key)


def _take(session: Session, job_id: str, seq: int) -> int | None:
    bind = session.get_bind()
    if bind.dialect.name == "postgresql" and not _lock_batch(session, job_id, seq):
        return None
    return begin_attempt(bind.engine, job_id, seq)


# A worker host that dies (power, kernel panic) sends no FIN: PostgreSQL sees its
# connection gone, and drops the batch's lock, only when keepalive probes go unanswered.
# The operating system's default waits over two hours; these, about 35 s, less than the
# broker's minute before it hands the dead worker's message on.
_LOCK_BATCH = text(
    "SELECT set_config('tcp_keepalives_idle', '20', true),"
    " set_config('tcp_keepalives_interval', '5', true),"
    " set_config('tcp_keepalives_count', '3', true),"
    " pg_try_advisory_xact_lock(:key)"
)


def _lock_batch(session: Session, job_id: str, seq: int) -> bool:
    """Lock a batch until the session's transaction ends, unless another holds it."""
    name = f"batch:{job_id}:{seq}".encode()
    key = int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)
    return bool(session.execute(_LOCK_BATCH, {"key": key}).one()[-1])


def begin_attempt(engine: Engine, job_id: str, seq: int) -> int | None:
    """Record a delivery of a batch as it begins, in a transaction of its own, and return
    how many deliveries before it died with their process (a worker killed mid-batch: no
    error, no retry count, the broker just hands the message on). The previous delivery
    counts only when its process is known gone: one that failed with an error (retried as
    usual), or runs still (a second delivery), is not a crash.

    None: the batch is not this delivery's to read (``delivery``): done meanwhile, or on
    SQLite taken by a delivery of another process that is alive."""
    holder = leases.process_holder("batch")
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        if sqlite:
            # The write lock before the look: two processes cannot both take the batch
            conn.execute(text("UPDATE job_batches SET seq = seq WHERE 0"))
        row = conn.execute(
            select(JobBatch.state, JobBatch.attempts, JobBatch.delivered_to).where(
                JobBatch.job_id == job_id, JobBatch.seq == seq
            )
        ).one_or_none()
        if row is None:
            return 0
        if row.state == "done" or (sqlite and _read_elsewhere(row.delivered_to, holder)):
            return None
        crashes = row.attempts + (
            row.delivered_to is not None and leases.holder_dead(row.delivered_to)
        )
        conn.execute(
            update(JobBatch)
            .where(JobBatch.job_id == job_id, JobBatch.seq == seq)
            .values(attempts=crashes, delivered_to=holder)
        )
    return int(crashes)


def _read_elsewhere(delivered_to: str | None, holder: str) -> bool:
    """The batch went to another process that is alive (SQLite: nothing else tells)."""
    return delivered_to not in (None, holder) and not leases.holder_dead(delivered_to)


def end_delivery(engine: Engine, job_id: str, seq: int) -> None:
    """A delivery of this process ended with an error (its session rolled back): it is no
    crash, even if this process is gone by the retry (a deploy during the retries)."""
    with engine.begin() as conn:
        conn.execute(
            update(JobBatch)
            .where(
                JobBatch.job_id == job_id,
                JobBatch.seq == seq,
                JobBatch.delivered_to == leases.process_holder("batch"),
            )
            .values(delivered_to=None)
        )


def claim_batch(session: Session, job_id: str, seq: int) -> bool:
    """Mark a batch done exactly once; False when a redelivery finds it done already."""
    result = session.execute(
        update(JobBatch)
        .where(JobBatch.job_id == job_id, JobBatch.seq == seq, JobBatch.state != "done")
        .values(state="done")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_errors(session: Session, job_id: str, errors: list[tuple[str, str]]) -> int:
    """Remember the files a job could not read (idempotent per job and path). Returns
    how many files it had not named yet: what its ``failed`` count grows by, so that a
    file that fails in more than one phase (its catalog read, then its hashing) or twice
    in one batch counts once."""
    if not errors:
        return 0
    keys = {path_key(p): (p, e) for p, e in errors}
    seen = set(
        session.scalars(
            select(JobError.path_key).where(JobError.job_id == job_id, JobError.path_key.in_(keys))
        )
    )
    for key, (p, e) in keys.items():
        if key not in seen:
            session.add(JobError(job_id=job_id, path=p, path_key=key, error=e))
    return len(keys) - len(seen)


def list_jobs(
    session: Session,
    *,
    kind: str | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    q = select(Job)
    cq = select(func.count()).select_from(Job)
    if kind:
        q, cq = q.where(Job.kind == kind), cq.where(Job.kind == kind)
    if state:
        q, cq = q.where(Job.state == state), cq.where(Job.state == state)
    # id breaks ties: jobs created in the same instant keep one order across pages.
    order = (Job.created_at.desc(), Job.id.desc())
    rows = list(session.scalars(q.order_by(*order).limit(limit).offset(offset)))
    return rows, int(session.scalar(cq) or 0)


def job_errors(session: Session, job_id: str, limit: int | None = 1000) -> list[JobError]:
    """The files a job could not read, oldest first; ``limit=None`` for all of them (the
    scan report file), the first 1,000 otherwise (an HTTP answer stays small)."""
    q = select(JobError).where(JobError.job_id == job_id).order_by(JobError.id)
    return list(session.scalars(q if limit is None else q.limit(limit)))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def job_view(
    job: Job, errors: list[JobError] | None = None, root: str | None = None
) -> dict[str, Any]:
    """The JSON shape of a job (API, CLI report)."""
    end = job.finished_at or utcnow()
    elapsed = (end - job.started_at).total_seconds() if job.started_at else 0.0
    rate = job.done / elapsed if elapsed > 0 else 0.0
    remaining = max(job.total - job.done, 0)
    eta = remaining / rate if rate > 0 and job.state in ACTIVE_STATES else None
    out: dict[str, Any] = {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "phase": job.phase,
        "trigger": job.trigger,
        "full": job.full,
        "root": root,
        "path": job.path,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "bytes_read": job.bytes_read,
        "elapsed_seconds": round(elapsed, 3),
        "rate": round(rate, 2),
        "bytes_per_second": round(job.bytes_read / elapsed, 1) if elapsed > 0 else 0.0,
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "summary": json.loads(job.summary) if job.summary else None,
        "error": job.error,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }
    if errors is not None:
        base = root or job.path
        out["errors"] = [
            {"path": relative_posix(e.path, base) if base else e.path, "error": e.error}
            for e in errors
        ]
    return out


def followers(session: Session, scan: Job) -> list[Job]:
    """The grouping and dedup jobs a scan's finish started."""
    return list(session.scalars(select(Job).where(Job.parent_id == scan.id).order_by(Job.kind)))


def queued_followers(session: Session, scan: Job) -> list[Job]:
    """The grouping and dedup jobs a finished scan queued that have not started.

    The scan's finish commits them, then sends their messages; a worker killed in
    between (or a failed send, retried) leaves them queued with no message. A redelivery
    of the scan's last message sends them again: running a job twice is safe.
    """
    if scan.state != "done":
        return []
    return [f for f in followers(session, scan) if f.state == "queued"]
