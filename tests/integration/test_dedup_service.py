"""The dedup service on PostgreSQL: incremental passes agree with full passes, ids are
stable, file groups are respected, and jobs record progress, defer and serialise."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update

from core.config import load_settings
from core.db import session_scope
from core.dedup import service
from core.models import DuplicateGroup, DuplicateMember, File, FileGroup, GroupMember, Job, utcnow
from core.paths import path_key
from tests.unit.test_dedup_api import Catalog, flip, rand_hash, sha


@pytest.fixture
def cat(pg_db: str, tmp_path: Path) -> Catalog:
    lib = (tmp_path / "library").resolve()
    lib.mkdir()
    settings = load_settings(
        {}, data_dir=tmp_path / "data", database_url=pg_db, library_roots=(lib,)
    )
    return Catalog(settings, lib)


def snapshot(cat: Catalog) -> dict[str, tuple]:
    with session_scope(cat.engine) as s:
        members: dict[str, list] = {}
        for gid, fid, score in s.execute(
            select(
                DuplicateMember.group_id, DuplicateMember.file_id, DuplicateMember.similarity_score
            )
        ):
            members.setdefault(gid, []).append((fid, round(score, 6)))
        return {
            g.group_key: (
                g.group_id,
                g.duplicate_type,
                g.status,
                g.keeper_file_id,
                tuple(sorted(members.get(g.group_id, []))),
            )
            for g in s.scalars(select(DuplicateGroup))
        }


def random_library(cat: Catalog, rng: random.Random, pictures: int = 60) -> list[int]:
    """Pictures with byte copies and near variants; returns their pHashes."""
    bases = []
    n = 0
    for p in range(pictures):
        h = rand_hash(rng)
        bases.append(h)
        cat.add(
            f"pics/{p:03d}.jpg",
            size=10_000 + p,
            sha=sha(10_000 + p),
            phash=h,
            width=rng.choice((4000, 2000)),
            height=3000,
        )
        for c in range(rng.choice((0, 0, 1, 2))):
            cat.add(f"copies/{c}/{p:03d}.jpg", size=10_000 + p, sha=sha(10_000 + p), phash=h)
        for v in range(rng.choice((0, 1, 1, 2))):
            n += 1
            cat.add(
                f"variants/{p:03d}_{v}.jpg",
                size=5_000 + n,
                sha=sha(50_000 + n),
                phash=flip(h, rng.randrange(0, 12), rng),
                width=1000,
                height=750,
            )
    return bases


def touch(cat: Catalog, rel: str, **values: object) -> None:
    with session_scope(cat.engine) as s:
        s.execute(
            update(File)
            .where(File.path_key == path_key(cat.path(rel)))
            .values(updated_at=utcnow(), **values)
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_pass_agrees_with_a_full_pass(cat: Catalog, seed: int) -> None:
    rng = random.Random(seed)
    bases = random_library(cat, rng)
    lone = rand_hash(rng)
    cat.add("lone/x.jpg", size=777, sha=sha(777), phash=lone)
    for name in ("clips/a.mov", "clips/b.mov"):  # no pHash: only SHA-256 ties them
        cat.add(name, size=888, sha=sha(888), phash=None)
    cat.dedupe()
    before = snapshot(cat)
    assert sum(1 for v in before.values() if v[1] == "exact") >= 5
    assert sum(1 for v in before.values() if v[1] == "perceptual") >= 5
    with session_scope(cat.engine) as s:
        s.execute(update(File).values(updated_at=utcnow() - timedelta(minutes=5)))
    since = utcnow() - timedelta(seconds=1)
    # Changes: new copies and variants, a file whose content changed, files gone missing,
    # a moved file.
    for k in range(5):
        p = rng.randrange(len(bases))
        cat.add(f"new/{k}.jpg", size=10_000 + p, sha=sha(10_000 + p), phash=bases[p])
        cat.add(f"new/v{k}.jpg", size=900 + k, sha=sha(90_000 + k), phash=flip(bases[p], 3, rng))
    cat.add("new/c.mov", size=888, sha=sha(888), phash=None)
    # A variant of a picture in no group: only the pHash index can find its partner.
    cat.add("new/lone_small.jpg", size=555, sha=sha(555), phash=flip(lone, 3, rng))
    touch(cat, "pics/001.jpg", sha256=sha(77_777), phash=f"{rand_hash(rng):016x}")
    touch(cat, "pics/002.jpg", status="missing")
    touch(
        cat,
        "pics/003.jpg",
        path=cat.path("moved/003.jpg"),
        path_key=path_key(cat.path("moved/003.jpg")),
    )
    with session_scope(cat.engine) as s:
        total = s.scalar(select(func.count()).select_from(File))
        inc = service.dedupe(s, cat.settings, since=since)
    assert inc.mode == "incremental" and 0 < inc.files < total
    after_inc = snapshot(cat)
    assert after_inc != before
    full = cat.dedupe()
    # The full pass finds nothing left to change: the incremental one got it all right.
    assert (full.created, full.updated, full.deleted) == (0, 0, 0), full
    assert snapshot(cat) == after_inc
    # Untouched groups kept their rows.
    unchanged = [k for k in before if k in after_inc and before[k] == after_inc[k]]
    assert len(unchanged) >= len(before) // 2


def test_groups_written_a_few_at_a_time_are_those_written_at_once(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a library with byte copies and look-alikes, its groups written in one go
    random_library(cat, random.Random(7), pictures=30)
    cat.dedupe()
    at_once = snapshot(cat)
    kinds = [v[1] for v in at_once.values()]
    assert kinds.count("exact") > 2 and kinds.count("perceptual") > 2, kinds
    # When no stored group is found by its key any more, and they are written again two
    # at a time: byte copies as new groups, look-alikes over the ids they had
    with session_scope(cat.engine) as s:
        s.execute(update(DuplicateGroup).values(group_key="stale-" + DuplicateGroup.group_id))
    monkeypatch.setattr(service, "WRITE_GROUPS", 2)
    again = cat.dedupe()
    # Then every group is back whole, with its members and keeper
    assert (again.created, again.updated) == (kinds.count("exact"), kinds.count("perceptual"))
    assert {k: v[1:] for k, v in snapshot(cat).items()} == {k: v[1:] for k, v in at_once.items()}


def test_a_second_pass_changes_nothing(cat: Catalog) -> None:
    random_library(cat, random.Random(5), pictures=30)
    first = cat.dedupe()
    assert first.created > 0
    second = cat.dedupe()
    assert (second.created, second.updated, second.deleted) == (0, 0, 0)
    assert second.unchanged == first.created
    nothing = cat.dedupe(full=False, since=utcnow() + timedelta(seconds=5))
    assert nothing.seeds == 0 and not nothing.changed


def test_versions_in_a_file_group_are_never_linked(cat: Catalog) -> None:
    rng = random.Random(9)
    h = rand_hash(rng)
    a = cat.add("2024/IMG_1.CR3", size=20_000, sha=sha(1), phash=h, fmt="raw")
    b = cat.add("2024/IMG_1.JPG", size=3_000, sha=sha(2), phash=flip(h, 2, rng))
    cat.dedupe()
    assert [v[1] for v in snapshot(cat).values()] == ["perceptual"]
    # Grouping pairs them later: the next incremental pass sees the new file group.
    since = utcnow() - timedelta(seconds=1)
    with session_scope(cat.engine) as s:
        s.execute(
            insert(FileGroup),
            [
                dict(
                    group_id="g1",
                    group_type="raw_jpeg",
                    group_key="k1",
                    dir_key="d",
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            ],
        )
        s.execute(
            insert(GroupMember),
            [
                dict(
                    group_id="g1", file_id=a, file_path=cat.path("2024/IMG_1.CR3"), file_type="raw"
                ),
                dict(
                    group_id="g1",
                    file_id=b,
                    file_path=cat.path("2024/IMG_1.JPG"),
                    file_type="image",
                ),
            ],
        )
    stats = cat.dedupe(full=False, since=since)
    assert stats.seeds == 2 and stats.deleted == 1
    assert snapshot(cat) == {}


# --- jobs ----------------------------------------------------------------------------------


def new_job(cat: Catalog, **kw: object) -> str:
    with session_scope(cat.engine) as s:
        job = Job(kind="dedup", trigger="test", state="queued", **kw)
        s.add(job)
        s.flush()
        return job.id


def run(cat: Catalog, job_id: str, deferred: list | None = None) -> bool:
    calls = deferred if deferred is not None else []
    with session_scope(cat.engine) as s:
        return service.run_job(s, job_id, cat.settings, defer=lambda j, ms: calls.append((j, ms)))


def job_row(cat: Catalog, job_id: str) -> Job:
    with session_scope(cat.engine) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def test_jobs_record_progress_and_go_incremental(cat: Catalog) -> None:
    random_library(cat, random.Random(11), pictures=20)
    with session_scope(cat.engine) as s:  # cataloged a while ago, outside CLOCK_SLACK
        s.execute(update(File).values(updated_at=utcnow() - timedelta(minutes=5)))
    first = new_job(cat)
    assert run(cat, first) is True
    j = job_row(cat, first)
    summary = json.loads(j.summary or "{}")
    assert j.state == "done" and j.started_at and j.finished_at
    assert (
        summary["mode"] == "full"
        and summary["created"] > 0
        and j.total == j.done == summary["files"]
    )
    assert datetime.fromisoformat(summary["watermark"]) <= j.started_at + timedelta(seconds=60)
    assert run(cat, first) is False  # a redelivered message does nothing
    cat.add("late/copy.jpg", size=10_000, sha=sha(10_000), phash=None)
    second = new_job(cat)
    assert run(cat, second) is True
    s2 = json.loads(job_row(cat, second).summary or "{}")
    assert s2["mode"] == "incremental" and s2["seeds"] == 1 and s2["files"] < summary["files"]
    forced = new_job(cat, full=True)
    run(cat, forced)
    s3 = json.loads(job_row(cat, forced).summary or "{}")
    assert s3["mode"] == "full" and not (s3["created"] or s3["updated"] or s3["deleted"])
    # A pass after one that ran older rules (an upgrade that changed them) is full: the
    # groups stored then are looked at again, not only what changed since
    with session_scope(cat.engine) as s:
        job = s.get(Job, forced)
        job.summary = json.dumps({**s3, "rules": service.RULES - 1})
    cat.add("later/copy.jpg", size=10_001, sha=sha(10_001), phash=None)
    upgraded = new_job(cat)
    run(cat, upgraded)
    assert json.loads(job_row(cat, upgraded).summary or "{}")["mode"] == "full"
    after = new_job(cat)
    cat.add("later/copy2.jpg", size=10_002, sha=sha(10_002), phash=None)
    run(cat, after)
    assert json.loads(job_row(cat, after).summary or "{}")["mode"] == "incremental"


def test_the_watermark_stays_before_a_scan_still_running(cat: Catalog) -> None:
    # Given a scan that started ten minutes ago and is still committing files
    random_library(cat, random.Random(12), pictures=3)
    started = utcnow() - timedelta(minutes=10)
    with session_scope(cat.engine) as s:
        s.add(Job(kind="scan", trigger="test", state="running", started_at=started))
    # When a dedup pass runs meanwhile
    job = new_job(cat)
    run(cat, job)
    # Then its watermark is before that scan began: the next incremental pass still
    # sees the files the scan commits after this pass read the catalog
    mark = datetime.fromisoformat(json.loads(job_row(cat, job).summary or "{}")["watermark"])
    assert started - timedelta(minutes=1) < mark <= started - service.CLOCK_SLACK


def test_a_job_waits_for_grouping_of_its_scan_and_for_the_lease(cat: Catalog) -> None:
    with session_scope(cat.engine) as s:
        g = Job(kind="group", trigger="scan", state="running", root_id=cat.root_id)
        s.add(g)
        s.flush()
        gid = g.id
    job = new_job(cat, root_id=cat.root_id)
    deferred: list = []
    assert run(cat, job, deferred) is False
    assert deferred == [(job, service.DEFER_MS)] and job_row(cat, job).state == "queued"
    with session_scope(cat.engine) as s:
        s.execute(update(Job).where(Job.id == gid).values(state="done"))
    # Another pass holds the lease: defer again, without touching the job.
    from core import leases

    with session_scope(cat.engine) as s:
        assert leases.acquire(s, service.LEASE, "someone-else", 60)
    deferred.clear()
    assert run(cat, job, deferred) is False and deferred == [(job, service.DEFER_MS)]
    # ... saying it is alive about once a minute while it waits: a job that nothing moves
    # for ten minutes is sent on again by the scheduler (a second chain of waits)
    with session_scope(cat.engine) as s:
        s.execute(
            update(Job).where(Job.id == job).values(updated_at=utcnow() - timedelta(minutes=2))
        )
    assert run(cat, job, deferred) is False
    assert utcnow() - job_row(cat, job).updated_at < timedelta(seconds=30)
    with session_scope(cat.engine) as s:
        leases.release(s, service.LEASE, "someone-else")
    run(cat, job, deferred)
    assert job_row(cat, job).state == "done"
    with session_scope(cat.engine) as s:  # the lease is free again
        assert leases.acquire(s, service.LEASE, "next", 60)


def test_a_grouping_job_orphaned_long_ago_does_not_hold_up_passes(cat: Catalog) -> None:
    # Given a grouping job left active yesterday (its worker died for good)
    with session_scope(cat.engine) as s:
        s.add(
            Job(
                kind="group",
                trigger="scan",
                state="running",
                root_id=cat.root_id,
                created_at=utcnow() - timedelta(days=1),
            )
        )
    # When today's scan's dedup pass runs
    job = new_job(cat, root_id=cat.root_id)
    deferred: list = []
    run(cat, job, deferred)
    # Then it does not wait ten minutes for it
    assert deferred == [] and job_row(cat, job).state == "done"


def test_a_failing_pass_releases_the_lease(cat: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "dedupe", boom)
    job = new_job(cat)
    with pytest.raises(RuntimeError):
        run(cat, job)
    from core import leases

    with session_scope(cat.engine) as s:
        assert leases.acquire(s, service.LEASE, "next", 60)


def test_a_pass_cancelled_while_it_runs_writes_nothing(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import jobs, leases

    # Given a library with duplicates and a dedup job
    random_library(cat, random.Random(5), pictures=12)
    job = new_job(cat)
    real = service.find_duplicates

    def cancelled_meanwhile(*args, **kwargs):  # the user presses Cancel mid-pass
        with session_scope(cat.engine) as s:
            jobs.cancel_job(s, job)
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "find_duplicates", cancelled_meanwhile)
    # When the pass runs
    assert run(cat, job) is False
    # Then it stops: the job stays cancelled, no group was written, the lease is free
    assert job_row(cat, job).state == "cancelled"
    with session_scope(cat.engine) as s:
        assert s.scalar(select(func.count()).select_from(DuplicateGroup)) == 0
        assert leases.acquire(s, service.LEASE, "next", 60)


def test_a_pass_that_lost_its_lease_writes_nothing_and_runs_again(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.models import Lease

    # Given a library with duplicates and a dedup job
    random_library(cat, random.Random(6), pictures=12)
    job = new_job(cat)
    real = service.find_duplicates

    def lease_lapsed_meanwhile(*args, **kwargs):  # a phase longer than the lease's TTL
        with session_scope(cat.engine) as s:
            s.execute(
                update(Lease)
                .where(Lease.name == service.LEASE)
                .values(holder="other-pass", expires_at=utcnow() + timedelta(minutes=5))
            )
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "find_duplicates", lease_lapsed_meanwhile)
    # When the pass runs on, and another pass took the lease
    deferred: list = []
    assert run(cat, job, deferred) is False
    # Then it writes no group, leaves the lease to the other, and will run again
    with session_scope(cat.engine) as s:
        assert s.scalar(select(func.count()).select_from(DuplicateGroup)) == 0
        assert s.get(Lease, service.LEASE).holder == "other-pass"
    assert deferred == [(job, service.DEFER_MS)]
    assert job_row(cat, job).state in ("queued", "running")


# A dedup pass in a process of its own that stops in its rules (as a pass over a big
# library runs for minutes), holding the lease: the test kills it there.
_STUCK_PASS = """
import sys, time
from core.config import load_settings
from core.db import engine_for, session_scope
from core.dedup import service

def stuck(*args, **kwargs):
    print("in the rules", flush=True)
    time.sleep(3600)

service.find_duplicates = stuck
url, job_id, data = sys.argv[1:4]
settings = load_settings({}, database_url=url, data_dir=data)
with session_scope(engine_for(url)) as s:
    service.run_job(s, job_id, settings, defer=lambda j, ms: None)
"""


@pytest.mark.timeout(120)
def test_a_pass_killed_mid_pass_is_taken_up_at_once_by_its_redelivery(cat: Catalog) -> None:
    import signal
    import subprocess
    import sys

    from core.models import Lease

    # Given a dedup pass whose worker is killed (SIGKILL, out of memory) in the middle of
    # its rules, its lease good for another quarter of an hour
    random_library(cat, random.Random(7), pictures=12)
    job = new_job(cat)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _STUCK_PASS,
            cat.settings.database_url,
            job,
            str(cat.settings.data_dir),
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "in the rules"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with session_scope(cat.engine) as s:
        left = s.get(Lease, service.LEASE)
        assert left is not None and left.expires_at > utcnow() + timedelta(minutes=10)
    # When the broker redelivers its message
    deferred: list = []
    changed = run(cat, job, deferred)
    # Then the redelivery takes the dead pass's lease back and runs the pass, instead of
    # deferring itself for 15 minutes
    assert deferred == [] and changed is True
    assert job_row(cat, job).state == "done"
    with session_scope(cat.engine) as s:
        assert s.scalar(select(func.count()).select_from(DuplicateGroup)) > 0
        assert s.get(Lease, service.LEASE) is None  # released at the end of the pass


def test_a_pass_of_a_restarted_container_with_the_same_pid_is_taken_up(cat: Catalog) -> None:
    from core import leases

    # Given the lease of a pass whose worker container was killed and restarted: the new
    # process has the old one's hostname and pid, another incarnation
    random_library(cat, random.Random(9), pictures=4)
    job = new_job(cat)
    with session_scope(cat.engine) as s:
        assert leases.acquire(s, service.LEASE, f"{job}:old@{leases.holder_id()}/0ldc0de0", 900)
    # When its message is redelivered to the new process
    deferred: list = []
    run(cat, job, deferred)
    # Then the pass runs at once
    assert deferred == [] and job_row(cat, job).state == "done"


def test_a_live_pass_keeps_its_lease_from_a_second_delivery(cat: Catalog) -> None:
    from core import leases
    from core.models import Lease

    random_library(cat, random.Random(8), pictures=4)
    job = new_job(cat)
    # Given the lease held by a delivery of this same job still running: in this very
    # process (another worker thread), or on another machine (nothing tells it is gone)
    for holder in (
        leases.process_holder(f"{job}:first"),
        f"{job}:first@some-other-host:4242/0123abcd",
    ):
        with session_scope(cat.engine) as s:
            s.query(Lease).delete()
            assert leases.acquire(s, service.LEASE, holder, 600)
        # When a second delivery of the job's message runs
        deferred: list = []
        assert run(cat, job, deferred) is False
        # Then it leaves the pass to the first and waits, without touching the lease
        assert deferred == [(job, service.DEFER_MS)]
        with session_scope(cat.engine) as s:
            assert s.get(Lease, service.LEASE).holder == holder
    # And the longer it has waited, the less often it looks again
    with session_scope(cat.engine) as s:
        s.execute(
            update(Job).where(Job.id == job).values(created_at=utcnow() - timedelta(minutes=5))
        )
    deferred = []
    run(cat, job, deferred)
    assert deferred == [(job, service.MAX_DEFER_MS)]


def _groups_by_paths(cat: Catalog) -> dict[frozenset[str], tuple[str, str | None, str | None]]:
    """{member paths: (type, keeper path, keeper reason)}"""
    with session_scope(cat.engine) as s:
        paths = dict(s.execute(select(File.id, File.path)).all())
        out = {}
        for g in s.scalars(select(DuplicateGroup)):
            members = s.scalars(
                select(DuplicateMember.file_path).where(DuplicateMember.group_id == g.group_id)
            )
            out[frozenset(members)] = (
                g.duplicate_type,
                paths.get(g.keeper_file_id),
                g.keeper_reason,
            )
        return out


def test_bursts_and_two_cameras_from_the_catalog_are_not_duplicates(cat: Catalog) -> None:
    # Given near-identical pictures as the catalog holds them: a burst (same camera,
    # 0.1 s apart), a burst from a camera that writes no fractions of a second (frames
    # in one second), two cameras at the same second (two models; two bodies of one
    # model), and a re-encode of one shot
    rng = random.Random(11)
    t = datetime(2024, 5, 1, 10, 0, 0)
    burst, whole, cams, copy = (rand_hash(rng) for _ in range(4))
    cat.add("burst/1.jpg", sha=sha(1), phash=burst, taken=t)
    cat.add("burst/2.jpg", sha=sha(2), phash=flip(burst, 2, rng), taken=t + timedelta(0, 0.1))
    cat.add("whole/DSC_0010.JPG", sha=sha(7), phash=whole, taken=t)
    cat.add("whole/DSC_0011.JPG", sha=sha(8), phash=flip(whole, 2, rng), taken=t)
    cat.add("cams/a.jpg", sha=sha(3), phash=cams, taken=t, model="EOS R")
    cat.add("cams/b.jpg", sha=sha(4), phash=flip(cams, 2, rng), taken=t, model="EOS R5")
    # (two bodies of one model: told apart by their serial numbers)
    bodies = rand_hash(rng)
    cat.add("main/IMG_0001.JPG", sha=sha(9), phash=bodies, taken=t, serial="012345")
    cat.add("second/IMG_0001.JPG", sha=sha(10), phash=flip(bodies, 2, rng), taken=t, serial="99")
    cat.add("copy/IMG_7.jpg", sha=sha(5), phash=copy, taken=t)
    cat.add("export/IMG_7-1.jpg", sha=sha(6), phash=flip(copy, 2, rng), taken=t)
    # When a pass runs
    cat.dedupe()
    # Then only the re-encode is offered as a duplicate
    assert list(_groups_by_paths(cat)) == [
        frozenset({cat.path("copy/IMG_7.jpg"), cat.path("export/IMG_7-1.jpg")})
    ]


@pytest.mark.parametrize(
    "first, then",
    [
        # from the path tie-break to a folder the user names
        ((None, "a", "tie: path"), ("b", "b", "folder")),
        # from one preferred folder to another: the deciding rule keeps its name
        (("a", "a", "folder"), ("b", "b", "folder")),
    ],
)
def test_a_new_keeper_preference_rewrites_stored_exact_groups(
    cat: Catalog, first: tuple, then: tuple
) -> None:
    def keeper_with(preferred: str | None) -> tuple:
        folders = (cat.lib / preferred,) if preferred else ()
        cat.settings = replace(cat.settings, preferred_folders=folders)
        cat.dedupe()
        return _groups_by_paths(cat)[frozenset({cat.path("a/x.jpg"), cat.path("b/x.jpg")})]

    # Given byte copies stored with the first setting's keeper
    cat.add("a/x.jpg", sha=sha(1))
    cat.add("b/x.jpg", sha=sha(1))
    assert keeper_with(first[0]) == ("exact", cat.path(f"{first[1]}/x.jpg"), first[2])
    # When the preference changes and a full pass runs, Then the stored keeper follows
    assert keeper_with(then[0]) == ("exact", cat.path(f"{then[1]}/x.jpg"), then[2])


def test_the_watermark_stays_before_a_grouping_pass_still_running(cat: Catalog) -> None:
    # Given a dedup job, and a grouping pass (of a later scan: not one it waits for) that
    # has been writing file groups for ten minutes
    random_library(cat, random.Random(13), pictures=3)
    job = new_job(cat)
    started = utcnow() - timedelta(minutes=10)
    with session_scope(cat.engine) as s:
        s.add(Job(kind="group", trigger="test", state="running", started_at=started))
    # When the dedup pass runs, Then its watermark is before that pass began
    run(cat, job)
    mark = datetime.fromisoformat(json.loads(job_row(cat, job).summary or "{}")["watermark"])
    assert started - timedelta(minutes=1) < mark <= started - service.CLOCK_SLACK


def test_a_look_alike_group_keeps_its_id_when_a_byte_copy_appears(cat: Catalog) -> None:
    # Given a stored look-alike pair
    rng = random.Random(14)
    h = rand_hash(rng)
    cat.add("p/a.jpg", sha=sha(1), phash=h)
    cat.add("p/b.jpg", sha=sha(2), phash=flip(h, 2, rng))
    cat.dedupe()
    before = _ids_by_type(cat)
    assert list(before) == ["perceptual"]
    # When a byte copy of one of them appears and a pass runs
    cat.add("q/a.jpg", sha=sha(1), phash=h)
    cat.dedupe()
    # Then the look-alike group is still the group the user knew, and the copies are a
    # new exact group
    after = _ids_by_type(cat)
    assert after["perceptual"] == before["perceptual"]
    assert after["exact"] != before["perceptual"]


def _ids_by_type(cat: Catalog) -> dict[str, str]:
    with session_scope(cat.engine) as s:
        return {g.duplicate_type: g.group_id for g in s.scalars(select(DuplicateGroup))}


def test_member_digest_is_the_members_sorted_whatever_their_order():
    from core.dedup.queries import member_digest

    a = (1, "/lib/a.jpg", "aa", "ff00", 1.0, 10)
    b = (2, "/lib/\udcff.jpg", None, "ff01", 0.984375, 20)  # a name that is not UTF-8
    ids, digest = member_digest([b, a])
    assert ids == (1, 2) and member_digest([a, b]) == (ids, digest)
    # The stored row's types (a similarity stored to more places) compare as the result's
    assert member_digest([(1, "/lib/a.jpg", "aa", "ff00", 1, 10), b])[1] == digest
    assert member_digest([a, (2, "/lib/\udcff.jpg", None, "ff01", 0.98437500001, 20)])[1] == digest
    # Any fact of a member that differs is another group
    for changed in ((3, *b[1:]), (2, "/lib/b.jpg", *b[2:]), (*b[:2], "bb", *b[3:]), (*b[:5], 21)):
        assert member_digest([a, changed])[1] != digest
