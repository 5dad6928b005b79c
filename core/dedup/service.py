"""Dedup against the database: find duplicates, write the difference, run jobs, record
the user's decisions.

``dedupe(session, settings, since=...)`` is the one write path; ``run_job`` is the
``dedup_run`` actor's body. What a pass reads:

* Full (``since=None``; a job with ``full``, the first job ever, a scope too big, or
  the first after an upgrade of the rules): only files that can be in a group are read
  and go on to the rules: a SHA-256 another distinct file shares (the database names
  those values), or an informative pHash with a neighbour within the threshold (the
  pHash column alone, one ``pairs_within`` over the distinct hashes, numba, not Python
  pairs). Every stored group is diffed.
* Incremental (``since`` = the previous pass's watermark): the files whose catalog row
  changed since then (new, changed, moved, missing) and the members of file groups
  written since then are the seeds. The scope is their closure under three relations,
  so the rules see every file whose group could change and nothing else:
  same SHA-256 (exact groups), pHash within the threshold (queried against a
  ``SimilarityIndex`` of every present pHash: two columns, ~0.1 s per million to
  build) and co-membership in a stored duplicate group (a group that loses a file is
  rewritten whole). Complete linkage only ever merges clusters joined by edges, so the
  clusters of a closed scope are exactly those the full pass would find there. Only the
  stored groups with a member in the scope (or a key the pass produces) are diffed.
  A scope above ``max(SCOPE_MIN, SCOPE_FRACTION x catalog)`` falls back to a full pass.

Write: stored groups are matched to results by ``group_key``: equal -> untouched;
different members, keeper or status -> rewritten under the same id. A perceptual group
whose membership changed gets a new key; it takes over the id of the stored group it
shares most files with, so the UI's links survive a copy joining. Stored groups left
over are deleted (fewer than two files remain). One transaction, bulk statements.

Status is derived from ``duplicate_resolutions`` on every write: ``dismissed`` when a
``not_duplicate`` decision covered every member identity (``still_dismissed``),
``resolved`` when a ``trash`` decision did, else ``open`` (a file the user never saw
joining is a new question). The decisions themselves are never rewritten by a pass.

Concurrency: passes are serialised by the ``dedup`` lease (a second job defers itself,
re-enqueued with a delay that grows as it waits, instead of blocking a worker thread).
A lease whose holder's process is known dead (a worker killed mid-pass, on this machine
or restarted with its pid) is taken over at once rather than left to expire. The watermark a pass
leaves is ``min(read time, start of every catalog or grouping job running then)`` minus
``CLOCK_SLACK``: rows an in-flight job writes carry ``updated_at`` after its start, so
they are re-read by the next pass even if committed after this one read. A scan's
finish enqueues grouping and dedup together; a dedup job defers (up to
``GROUPING_WAIT``) while a grouping job created before it is active, so it sees the
versions (RAW+JPEG, edits) the scan produced. Groups changed later (a user's split or
merge) are picked up by the next pass through ``file_groups.updated_at``; a file that
left a group (one dissolved, or that lost it) through its own ``updated_at``, which the
grouping pass stamps.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from core import jobs, leases
from core.config import Settings
from core.dedup import queries as Q
from core.dedup.groups import (
    DupGroup,
    find_duplicates,
    member_identity,
    still_dismissed,
)
from core.dedup.perceptual import HASH_BITS, MIN_BITS, informative
from core.models import (
    DuplicateGroup,
    DuplicateMember,
    DuplicateResolution,
    File,
    Job,
    new_id,
    utcnow,
)

log = logging.getLogger(__name__)

LEASE = "dedup"
LEASE_TTL = 900.0  # seconds; renewed at every phase, so only a dead holder lets it lapse
DEFER_MS = 250  # a deferred pass re-checks this often (a cheap query); grouping is usually quick
GROUPING_WAIT = timedelta(minutes=10)
CLOCK_SLACK = timedelta(seconds=2)  # clock skew between hosts (NTP keeps it far below)
SCOPE_MIN = 50_000
SCOPE_FRACTION = 0.25
ACTIONS = ("trash", "not_duplicate")

Progress = Callable[[str, int, int], None]


class Cancelled(Exception):
    """The job was cancelled while its pass ran."""


class LeaseLost(Exception):
    """Another pass took the dedup lease while this one ran (its lease had lapsed)."""


class DedupError(ValueError):
    """A request that cannot be applied; ``status`` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Stats:
    mode: str = "incremental"
    seeds: int = 0  # changed files an incremental pass started from
    files: int = 0  # files the rules looked at
    exact: int = 0
    perceptual: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- scope ---------------------------------------------------------------------------------


def _informative_mask(hashes: np.ndarray) -> np.ndarray:
    bits = np.bitwise_count(hashes)
    return (bits >= MIN_BITS) & (bits <= HASH_BITS - MIN_BITS)


def full_candidate_ids(session: Session, threshold: int) -> set[int]:
    """The files that can be in a group at all (see module doc), found without loading
    the catalog's rows (a full pass over a million files would hold them all): the
    database names the SHA-256 values held twice, and the pHash column alone, as two
    numpy arrays, is searched for pairs within the threshold (one numba pair search over
    the distinct informative hashes)."""
    from core.simindex import pairs_within

    shared = Q.shared_sha_rows(session)
    inodes: dict[str | None, set[tuple[Any, ...]]] = {}
    for fid, sha, device, inode in shared:
        inodes.setdefault(sha, set()).add((device, inode) if device is not None else ("id", fid))
    ids = {fid for fid, sha, _d, _i in shared if len(inodes[sha]) > 1}
    fids, hashes = Q.phash_table(session)
    if len(hashes):
        mask = _informative_mask(hashes)
        fids, hashes = fids[mask], hashes[mask]
        uniq, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
        hit = counts > 1
        if uniq.size > 1:
            i, j, _d = pairs_within(uniq, threshold)
            hit[i] = True
            hit[j] = True
        ids.update(int(x) for x in fids[hit[inverse]])
    return ids


def incremental_scope(
    session: Session, seeds: set[int], threshold: int, limit: int
) -> tuple[list[tuple[Any, ...]], set[str]] | None:
    """(rows of the closed scope, stored group ids touching it), or None above ``limit``."""
    from core.simindex import SimilarityIndex

    ids, hashes = Q.phash_table(session)
    mask = _informative_mask(hashes)
    index = SimilarityIndex(hashes[mask], ids[mask])
    scope: set[int] = set()
    rows: dict[int, tuple[Any, ...]] = {}
    shas_done: set[str] = set()
    groups_done: set[str] = set()
    frontier = set(seeds)
    while frontier:
        new = frontier - scope
        if not new:
            break
        scope |= new
        if len(scope) > limit:
            return None
        fetched = Q.rows_by_ids(session, new)
        rows.update((r[0], r) for r in fetched)
        nxt: set[int] = set()
        shas = {r[5] for r in fetched if r[5] and r[3] > 0} - shas_done
        shas_done |= shas
        nxt |= Q.ids_by_sha256(session, shas)
        query = [int(r[6], 16) for r in fetched if r[6] and informative(r[6])]
        if query and len(index):
            _qi, found, _d = index.query(np.array(query, dtype=np.uint64), threshold)
            nxt.update(int(x) for x in np.unique(found))
        gids = Q.group_ids_with_files(session, new) - groups_done
        groups_done |= gids
        nxt |= Q.member_ids_of_groups(session, gids)
        frontier = nxt - scope
    return [rows[i] for i in sorted(rows)], groups_done


# --- the pass ------------------------------------------------------------------------------


def dedupe(
    session: Session,
    settings: Settings,
    *,
    since: datetime | None,
    progress: Progress | None = None,
) -> Stats:
    """One dedup pass (``since=None``: full). Writes the difference; does not commit."""
    threshold = settings.phash_threshold
    stats = Stats(mode="full" if since is None else "incremental")
    note = progress or (lambda phase, done, total: None)
    rows: list[tuple[Any, ...]] | None = None
    touched: set[str] | None = None
    if since is not None:
        seeds = Q.changed_file_ids(session, since)
        stats.seeds = len(seeds)
        if not seeds:
            return stats
        limit = max(SCOPE_MIN, int(SCOPE_FRACTION * _present_count(session)))
        found = incremental_scope(session, seeds, threshold, limit)
        if found is None:
            stats.mode = "full (scope too large)"
        else:
            rows, touched = found
            del found  # else it keeps the rows alive past their own del below
    if rows is None:
        rows = Q.rows_by_ids(session, full_candidate_ids(session, threshold))
    note("cluster", 0, len(rows))
    # A sidecar (XMP, AAE, a Takeout JSON) is never a duplicate on its own: two photos'
    # identical XMPs are not copies of one picture, and Immich, which holds no sidecar as
    # an asset, could not trash one. It follows its photo (the keeper's file_group rule).
    records = [Q.record(r) for r in rows if r[2] != "sidecar"]
    del rows  # the records hold its values; its tuples were ~15% of a full pass's peak
    stats.files = len(records)
    same = Q.file_group_of(session, [r.id for r in records])
    kinds = Q.file_group_kinds(session, same.values())
    colour_of = {r.id: r.colour for r in records if r.colour}
    groups = find_duplicates(
        records, threshold=threshold, same_group=same,
        format_preference=settings.format_preference,
        preferred_folders=settings.preferred_folders, colour_of=colour_of,
        file_groups={fid: kinds[gid] for fid, gid in same.items() if gid in kinds},
    )  # fmt: skip
    note("write", len(records) // 2, len(records))
    stored = Q.stored_groups(session, touched)  # None: every stored group
    extra = {g.key for g in groups if g.key not in stored}
    if extra:
        stored.update(Q.stored_groups(session, Q.group_ids_with_keys(session, extra)))
    _write(session, groups, stored, Q.decisions(session), stats)
    stats.exact = sum(1 for g in groups if g.type == "exact")
    stats.perceptual = len(groups) - stats.exact
    note("write", len(records), len(records))
    return stats


def _present_count(session: Session) -> int:
    return int(
        session.scalar(select(func.count()).select_from(File).where(File.status == "present")) or 0
    )


def status_of(group: DupGroup, decisions: Iterable[Q.Decision]) -> str:
    decisions = list(decisions)
    if still_dismissed(group, [d.identities for d in decisions if d.action == "not_duplicate"]):
        return "dismissed"
    if still_dismissed(group, [d.identities for d in decisions if d.action == "trash"]):
        return "resolved"
    return "open"


def _sig(g: DupGroup) -> bytes:
    rows = ((m.file_id, m.path, m.sha256, m.phash, m.similarity_score, m.size) for m in g.members)
    return Q.member_digest(rows)[1]


def _write(
    session: Session,
    groups: list[DupGroup],
    stored: dict[str, Q.StoredGroup],
    decisions: list[Q.Decision],
    stats: Stats,
) -> None:
    now = utcnow()
    rewrite: list[tuple[str, DupGroup, str]] = []  # (group id, result, status)
    fresh: list[tuple[DupGroup, str]] = []
    for g in groups:
        status = status_of(g, decisions)
        old = stored.pop(g.key, None)
        if old is None:
            fresh.append((g, status))
            continue
        same = (
            old.type == g.type and old.status == status
            and round(old.similarity, 6) == round(g.similarity_score, 6)
            and old.keeper_id == g.keeper_id and old.keeper_reason == g.keeper_rule
            and old.reclaimable == g.reclaimable_bytes and old.digest == _sig(g)
        )  # fmt: skip
        if same:
            stats.unchanged += 1
        else:
            rewrite.append((old.id, g, status))
    # A perceptual group whose membership changed has a new key: keep the id of the
    # stored group it shares most files with (each stored id is taken over once).
    owner: dict[int, Q.StoredGroup] = {}
    for sg in stored.values():
        if sg.type == "perceptual":
            for fid in sg.file_ids:
                owner.setdefault(fid, sg)
    inserts: list[tuple[DupGroup, str]] = []
    for g, status in fresh:
        votes: dict[str, int] = {}
        if g.type == "perceptual":
            for dm in g.members:
                prev = owner.get(dm.file_id)
                if prev is not None and prev.key in stored:
                    votes[prev.key] = votes.get(prev.key, 0) + 1
        if votes:
            key = max(sorted(votes), key=lambda k: votes[k])
            old = stored.pop(key)
            rewrite.append((old.id, g, status))
        else:
            inserts.append((g, status))
    gone = [s.id for s in stored.values()]

    for chunk in Q.chunks(gone + [gid for gid, _g, _s in rewrite]):
        session.execute(delete(DuplicateMember).where(DuplicateMember.group_id.in_(chunk)))
    for chunk in Q.chunks(gone):
        session.execute(delete(DuplicateGroup).where(DuplicateGroup.group_id.in_(chunk)))
    for gid, g, status in rewrite:
        session.execute(
            update(DuplicateGroup).where(DuplicateGroup.group_id == gid).values(
                group_key=g.key, duplicate_type=g.type, status=status,
                similarity=g.similarity_score, keeper_file_id=g.keeper_id,
                keeper_reason=g.keeper_rule[:32], reclaimable_bytes=g.reclaimable_bytes,
                updated_at=now,
            )
        )  # fmt: skip
    # Rows made WRITE_GROUPS groups at a time: a first pass at a million files made every
    # group's and member's dict at once (~800 bytes a member)
    for part in Q.chunks(inserts, WRITE_GROUPS):
        new_rows: list[dict[str, Any]] = []
        members: list[dict[str, Any]] = []
        for g, status in part:
            gid = new_id()
            new_rows.append(dict(
                group_id=gid, duplicate_type=g.type, group_key=g.key, status=status,
                similarity=g.similarity_score, keeper_file_id=g.keeper_id,
                keeper_reason=g.keeper_rule[:32], reclaimable_bytes=g.reclaimable_bytes,
                created_at=now, updated_at=now,
            ))  # fmt: skip
            members.extend(_member_rows(gid, g))
        session.execute(insert(DuplicateGroup), new_rows)
        _insert_members(session, members)
    for part in Q.chunks(rewrite, WRITE_GROUPS):
        _insert_members(session, [row for gid, g, _ in part for row in _member_rows(gid, g)])
    stats.created += len(inserts)
    stats.updated += len(rewrite)
    stats.deleted += len(gone)


WRITE_GROUPS = 1000


def _insert_members(session: Session, members: list[dict[str, Any]]) -> None:
    for chunk in Q.chunks(members, 5000):
        session.execute(insert(DuplicateMember), list(chunk))


def _member_rows(gid: str, g: DupGroup) -> list[dict[str, Any]]:
    return [
        dict(group_id=gid, file_id=m.file_id, file_path=m.path, file_hash=m.sha256,
             perceptual_hash=m.phash, similarity_score=m.similarity_score, file_size=m.size)
        for m in g.members
    ]  # fmt: skip


# --- jobs ----------------------------------------------------------------------------------


# The dedup rules' version, kept in each pass's summary. It moves when a change of the
# rules leaves stored groups wrong until every file is looked at again; the first pass
# after such an upgrade is then full. 2: sidecars are no duplicates on their own, a file
# that left a group of versions has its keeper chosen again, and an export renamed and
# resized is a look-alike of its frame though their capture second has no fraction.
RULES = 2


def _rules_of(summary: str | None) -> int | None:
    try:
        rules = json.loads(summary or "{}").get("rules")
    except (ValueError, AttributeError):
        return None
    return rules if isinstance(rules, int) else None


def _previous_watermark(session: Session) -> datetime | None:
    """Where the last pass left off; None (a full pass) when it ran older rules."""
    for summary in session.scalars(
        select(Job.summary).where(Job.kind == "dedup", Job.state == "done",
                                  Job.summary.is_not(None))
        .order_by(Job.finished_at.desc()).limit(20)
    ):  # fmt: skip
        try:
            last = json.loads(summary or "{}")
            mark = last.get("watermark")
        except (ValueError, AttributeError):
            continue
        if mark:
            return datetime.fromisoformat(mark) if last.get("rules") == RULES else None
    return None


def due(session: Session) -> bool:
    """Whether a dedup pass is owed: a file changed since the last pass that finished
    read the catalog (or none finished, or it ran older rules). A pass cancelled or
    failed leaves it owed, and a scan that then finds every file unchanged must still
    run one: grouping's watermark does not say so. Not while a pass is queued or
    running: it covers what changed before it reads."""
    active = select(Job.id).where(Job.kind == "dedup", Job.state.in_(jobs.ACTIVE_STATES))
    if session.scalar(active.limit(1)) is not None:
        return False
    # The last pass to end finished, under these rules: what changed since it read is
    # grouping's news too, so the scan that asks knows already. Asked of the jobs (an
    # index), not of the files (no index on updated_at: a scan of the catalog at every
    # finish of a watcher's folder scan).
    last = session.execute(
        select(Job.state, Job.summary)
        .where(Job.kind == "dedup", Job.finished_at.is_not(None))
        .order_by(Job.finished_at.desc())
        .limit(1)
    ).first()
    if last is not None and last.state == "done" and _rules_of(last.summary) == RULES:
        return False
    mark = _previous_watermark(session)
    q = select(File.id)
    if mark is not None:
        # The watermark lies CLOCK_SLACK before that pass's read (or the start of a scan
        # then running): rows written since it read, not the ones it read
        q = q.where(File.updated_at >= mark + CLOCK_SLACK)
    return session.scalar(q.limit(1)) is not None


def _next_watermark(session: Session, read_at: datetime) -> datetime:
    starts = session.scalars(
        select(Job.started_at).where(Job.kind.in_(("scan", "group")), Job.state == "running",
                                     Job.started_at.is_not(None))
    )  # fmt: skip
    return min([read_at, *starts]) - CLOCK_SLACK


def _grouping_pending(session: Session, job: Job) -> bool:
    """A grouping job created with (or shortly before) this one is still queued or
    running. One created longer ago than ``GROUPING_WAIT`` is not this scan's: an orphan
    (its worker died for good) would otherwise hold up every later pass on its root."""
    if utcnow() - job.created_at > GROUPING_WAIT:
        return False
    q = select(Job.id).where(
        Job.kind == "group",
        Job.state.in_(jobs.ACTIVE_STATES),
        Job.created_at <= job.created_at,
        Job.created_at >= job.created_at - GROUPING_WAIT,
    )
    if job.root_id is not None:
        q = q.where(Job.root_id == job.root_id)
    return session.scalar(q.limit(1)) is not None


def _take_lease(session: Session, holder: str) -> bool:
    """Take the dedup lease, free or expired; or from a pass whose process is known dead
    (a worker killed mid-pass: its redelivered message would otherwise wait out
    ``LEASE_TTL``, 15 minutes, deferring itself four times a second)."""
    if leases.acquire(session, LEASE, holder, LEASE_TTL):
        return True
    other = leases.current_holder(session, LEASE)
    if other is None or not leases.holder_dead(other):
        return False
    if not leases.take_over(session, LEASE, other, holder, LEASE_TTL):
        return False
    log.warning("dedup lease taken over from %s, whose process is gone", other)
    return True


# A pass that waits for another re-checks less often the longer it has waited: a full
# pass over a million files, or a lease whose holder died on another machine (only its
# expiry frees it), is a long wait, and polling it four times a second fills the queue.
MAX_DEFER_MS = 15_000


def _backoff_ms(job: Job) -> int:
    waited_ms = (utcnow() - job.created_at).total_seconds() * 1000
    return int(min(max(DEFER_MS, waited_ms / 8), MAX_DEFER_MS))


def _default_defer(job_id: str, delay_ms: int) -> None:
    import dramatiq

    jobs.enqueue(dramatiq.get_broker(), "dedup_run", job_id, delay_ms=delay_ms)


def _waiting(job: Job) -> None:
    """A deferred pass says it is alive about once a minute: the scheduler sends on a job
    that nothing has moved for ten minutes (workers.reconcile), which here would start a
    second chain of deferrals."""
    now = utcnow()
    if (now - job.updated_at).total_seconds() > 60:
        job.updated_at = now


def run_job(
    session: Session,
    job_id: str,
    settings: Settings,
    defer: Callable[[str, int], None] | None = None,
) -> bool:
    """The ``dedup_run`` actor's body: one pass with the job row as progress.

    A job waits (re-enqueued after ``DEFER_MS``, never blocking a worker thread) while
    grouping of the same scan runs or another pass holds the lease. A redelivered
    message for a finished job does nothing. Returns whether any group changed.
    """
    defer = defer or _default_defer
    job = session.get(Job, job_id)
    if job is None or job.state not in jobs.ACTIVE_STATES:
        return False
    if _grouping_pending(session, job):
        job.phase = "wait"
        _waiting(job)
        session.commit()
        defer(job_id, DEFER_MS)
        return False
    # One holder per delivery: two deliveries of one message (Dramatiq delivers at least
    # once; the scheduler sends on a job that looks stuck) must not both run the pass.
    holder = leases.process_holder(f"{job_id}:{uuid.uuid4().hex[:8]}")
    if not _take_lease(session, holder):
        _waiting(job)
        session.commit()
        defer(job_id, _backoff_ms(job))
        return False
    session.commit()
    try:
        return _run_locked(session, job_id, settings, holder)
    except Cancelled:
        # Nothing of the pass is written: its groups come together or not at all.
        session.rollback()
        leases.release(session, LEASE, holder)
        session.commit()
        log.info("dedup job %s cancelled; nothing written", job_id)
        return False
    except LeaseLost:
        # The other pass goes on; this job runs again once it is done.
        session.rollback()
        log.warning("dedup job %s lost its lease to another pass; it will run again", job_id)
        defer(job_id, DEFER_MS)
        return False
    except BaseException:
        session.rollback()
        leases.release(session, LEASE, holder)
        session.commit()
        raise


def _run_locked(session: Session, job_id: str, settings: Settings, holder: str) -> bool:
    job = session.get(Job, job_id)
    session.refresh(job)  # type: ignore[arg-type]
    if job is None or job.state not in jobs.ACTIVE_STATES:
        leases.release(session, LEASE, holder)
        session.commit()
        return False
    jobs.mark_running(session, job_id)
    job.phase = "scope"
    job.done = 0
    session.commit()
    since = None if job.full else _previous_watermark(session)
    read_at = utcnow()
    watermark = _next_watermark(session, read_at)

    def progress(phase: str, done: int, total: int) -> None:
        # Checked before committing, under the job row's lock: a cancel that lands before
        # the pass's writes are committed (the last report comes after them) leaves none of
        # them, and one that comes during the commit waits for it.
        state = session.scalar(select(Job.state).where(Job.id == job_id).with_for_update())
        if state not in jobs.ACTIVE_STATES:
            raise Cancelled(job_id)
        # Renewed in the same transaction as the writes: a pass whose lease lapsed (a
        # phase longer than LEASE_TTL) and went to another pass commits nothing more.
        if not leases.acquire(session, LEASE, holder, LEASE_TTL):
            raise LeaseLost(job_id)
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(phase=phase, done=done, total=total, updated_at=utcnow())
        )
        session.commit()

    stats = dedupe(session, settings, since=since, progress=progress)
    summary = {**stats.as_dict(), "watermark": watermark.isoformat(), "rules": RULES}
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(phase="done", total=stats.files, done=stats.files)
    )
    jobs.finish_job(session, job_id, "done", summary=summary)
    leases.release(session, LEASE, holder)
    session.commit()
    log.info("dedup job %s: %s", job_id, summary)
    return stats.changed


def start_run(session: Session, *, full: bool, trigger: str = "api") -> tuple[Job, bool]:
    """A dedup job to enqueue, or the queued one that already covers the request."""
    q = select(Job).where(Job.kind == "dedup", Job.state == "queued")
    if full:
        q = q.where(Job.full.is_(True))
    existing = session.scalars(q.order_by(Job.created_at)).first()
    if existing is not None:
        return existing, False
    job = Job(kind="dedup", trigger=trigger, full=full, state="queued")
    session.add(job)
    session.flush()
    return job, True


# --- decisions -----------------------------------------------------------------------------


def _identities(session: Session, group: DuplicateGroup) -> list[str]:
    """What a decision on this group records: the identities it covers (see
    core.dedup.groups), and each member's catalog row (``fid:<id>``), which a move or a
    rename keeps: filing an import into dated folders must not reopen every decision on
    its files."""
    members = Q.group_members(session, group.group_id)
    return sorted(Q.member_identities(session, group.duplicate_type, members)) + sorted(
        f"fid:{fid}" for _, _, fid in members
    )


def record_resolution(
    session: Session,
    group_id: str,
    keep: Sequence[str],
    action: str,
    trashed: Sequence[Mapping[str, Any]] | None = None,
    members: Sequence[str] | None = None,
) -> DuplicateResolution:
    """Record the user's decision on an open group; the caller commits.

    ``members``: the member paths the decision was made on, when the caller read the
    group first (the gateway does): a group that has changed since (a pass added a copy)
    is refused (409), so no copy joins a decision its user never saw.

    ``trash``: ``keep`` names the members that stay (at least one); the gateway moves the
    others to Immich's trash - this service never touches a library file - and says which
    in ``trashed`` (``{"path", "sha1"}`` each), so that undo brings back exactly those,
    whatever the group holds by then.
    ``not_duplicate``: the members are different pictures; the group stays dismissed
    across rescans while no new file joins it.
    """
    if action not in ACTIONS:
        raise DedupError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    group = session.get(DuplicateGroup, group_id, with_for_update=True)
    if group is None:
        raise DedupError(f"no duplicate group {group_id}", 404)
    if group.status != "open":
        raise DedupError(f"duplicate group {group_id} is already {group.status}", 409)
    paths = set(
        session.scalars(
            select(DuplicateMember.file_path).where(DuplicateMember.group_id == group_id)
        )
    )
    if members is not None and set(members) != paths:
        raise DedupError(
            f"duplicate group {group_id} changed since it was read: look at it again", 409
        )
    unknown = [p for p in keep if p not in paths]
    if unknown:
        raise DedupError("keep names files outside this group: " + ", ".join(unknown[:5]))
    if action == "trash" and not keep:
        raise DedupError("keep must name at least one member to keep")
    if action == "trash" and paths <= set(keep):
        raise DedupError(
            "keep names every copy, so nothing would go to the trash: keep fewer, or record "
            "not_duplicate"
        )
    gone = [dict(path=t["path"], sha1=t.get("sha1")) for t in trashed or []]
    if gone and action != "trash":
        raise DedupError("only a trash decision sends files to the trash")
    wrong = [t["path"] for t in gone if t["path"] not in paths or t["path"] in keep]
    if wrong:
        raise DedupError("trashed names files not in this group, or kept: " + ", ".join(wrong[:5]))
    res = DuplicateResolution(
        group_key=group.group_key, group_id=group_id, action=action,
        keep=json.dumps(list(dict.fromkeys(keep))),
        members=json.dumps(_identities(session, group)),
        trashed=json.dumps(gone) if action == "trash" and trashed is not None else None,
    )  # fmt: skip
    session.add(res)
    group.status = "dismissed" if action == "not_duplicate" else "resolved"
    group.updated_at = utcnow()
    session.flush()
    return res


def reopen(session: Session, group_id: str, decision_id: int | None = None) -> int:
    """Withdraw the decision shown for this group; returns how many were withdrawn (0 or 1).

    Only that one goes, so that nothing an earlier decision sent to Immich's trash loses
    its record: the decision shown is Q.shown_decision's, as the API shows it. An earlier
    decision that still covers the group then decides it at once (undo it in turn); one
    made before a new copy joined shows as the open group's ``previous_resolution``, and
    withdrawing that is how undo ends an open group. ``decision_id``: the decision the
    caller read (409 when another is shown by now: a second reviewer decided meanwhile,
    and withdrawing theirs would lose the record of what they trashed)."""
    group = session.get(DuplicateGroup, group_id, with_for_update=True)
    if group is None:
        raise DedupError(f"no duplicate group {group_id}", 404)
    shown, covering = Q.shown_decision(
        session, group_id, group.group_key, group.status, group.duplicate_type,
        Q.decision_rows(session),
    )  # fmt: skip
    if decision_id is not None and (shown is None or shown.id != decision_id):
        now = f"decision {shown.id} is shown now" if shown else "it has no decision now"
        raise DedupError(
            f"duplicate group {group_id} changed: {now}, not {decision_id}; look at it again",
            409,
        )
    if shown is None:
        if group.status == "open":
            raise DedupError(
                f"duplicate group {group_id} is open: there is no decision to withdraw", 409
            )
    else:
        session.execute(delete(DuplicateResolution).where(DuplicateResolution.id == shown.id))
    # What status_of will say at the next pass, said now: "not duplicates" first
    rest = [r for r in covering if shown is None or r.id != shown.id]
    if not rest:
        group.status = "open"
    elif any(r.action == "not_duplicate" for r in rest):
        group.status = "dismissed"
    else:
        group.status = "resolved"
    group.updated_at = utcnow()
    session.flush()
    return 0 if shown is None else 1


__all__ = [
    "DedupError",
    "Stats",
    "dedupe",
    "full_candidate_ids",
    "incremental_scope",
    "member_identity",
    "record_resolution",
    "reopen",
    "run_job",
    "start_run",
    "status_of",
]
