"""Jobs whose messages Redis lost (a restart while a worker sent them) are sent on by
the scheduler's reconciler, through real workers on PostgreSQL and Redis; jobs that
stopped for good are failed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from core import jobs
from core.db import engine_for, session_scope
from core.models import File, Job, utcnow
from tests.factories import write_jpeg
from tests.integration.test_watcher import wait_for
from workers.reconcile import reconcile


def _age(cfg, job_id: str, seconds: float) -> None:
    """As if nothing had moved the job for ``seconds``."""
    with session_scope(engine_for(cfg.database_url)) as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(updated_at=utcnow() - timedelta(seconds=seconds))
        )


def _state(cfg, job_id: str) -> tuple[str, str | None]:
    with session_scope(engine_for(cfg.database_url)) as s:
        job = s.get(Job, job_id)
        return job.state, job.error


def test_a_scan_whose_plan_message_was_lost_is_sent_on(pg_settings, worker, library) -> None:
    cfg = pg_settings
    write_jpeg(library / "IMG_0001.JPG", 1)
    write_jpeg(library / "IMG_0002.JPG", 2)
    # Given a scan recorded, whose plan message never reached Redis (a restart)
    with session_scope(engine_for(cfg.database_url)) as s:
        root = jobs.get_or_create_root(s, str(library))
        job, _ = jobs.start_job(s, "scan", root=root, trigger="api")
        job_id = job.id
    # ... and that nothing has moved for a quarter of an hour
    _age(cfg, job_id, 900)
    # When the scheduler reconciles
    out = reconcile(cfg, worker, holder="test")
    # Then the scan is sent on and the workers finish it, files cataloged
    assert out == {"resent": [job_id], "failed": []}
    wait_for(lambda: _state(cfg, job_id)[0] == "done", timeout=60)
    with session_scope(engine_for(cfg.database_url)) as s:
        assert len(s.scalars(select(File.id).where(File.status == "present")).all()) == 2


def test_a_moving_job_is_left_alone_and_a_stopped_one_is_failed(pg_settings, worker, library):
    cfg = pg_settings
    with session_scope(engine_for(cfg.database_url)) as s:
        root = jobs.get_or_create_root(s, str(library))
        live, _ = jobs.start_job(s, "scan", root=root, path=str(library / "a"), trigger="api")
        dead, _ = jobs.start_job(s, "scan", root=root, path=str(library / "b"), trigger="api")
        ids = live.id, dead.id
    # Given one scan moved a minute ago, and one nothing has moved for longer than stale
    _age(cfg, ids[0], 60)
    _age(cfg, ids[1], cfg.job_stale_seconds + 60)
    # When the scheduler reconciles
    out = reconcile(cfg, worker, holder="test")
    # Then the moving one is not touched, and the stopped one is failed, saying why
    assert out == {"resent": [], "failed": [ids[1]]}
    assert _state(cfg, ids[0]) == ("queued", None)
    state, error = _state(cfg, ids[1])
    assert state == "failed" and "no progress" in error


def test_twin_schedulers_reconcile_once(pg_settings, worker, library) -> None:
    cfg = pg_settings
    with session_scope(engine_for(cfg.database_url)) as s:
        root = jobs.get_or_create_root(s, str(library))
        job, _ = jobs.start_job(s, "scan", root=root, trigger="api")
        job_id = job.id
    _age(cfg, job_id, 900)
    # When two schedulers reconcile at once, Then one of them sends the job on
    first = reconcile(cfg, worker, holder="scheduler-1")
    second = reconcile(cfg, worker, holder="scheduler-2")
    assert first["resent"] == [job_id] and second == {"resent": [], "failed": []}


def test_a_scan_whose_batch_messages_were_lost_is_finished(pg_settings, worker, library):
    from core import catalog

    cfg = pg_settings
    for i in range(3):
        write_jpeg(library / f"IMG_000{i}.JPG", i)
    # Given a scan planned (its batches written) whose batch messages were lost
    with session_scope(engine_for(cfg.database_url)) as s:
        root = jobs.get_or_create_root(s, str(library))
        job, _ = jobs.start_job(s, "scan", root=root, trigger="api")
        job_id = job.id
    with session_scope(engine_for(cfg.database_url)) as s:
        catalog.plan_scan(s, job_id, cfg)
    with session_scope(engine_for(cfg.database_url)) as s:
        assert catalog.queued_batches(s, job_id)
    _age(cfg, job_id, 900)
    # When the scheduler reconciles, Then the batches are sent and the scan finishes
    assert reconcile(cfg, worker, holder="test")["resent"] == [job_id]
    wait_for(lambda: _state(cfg, job_id)[0] == "done", timeout=60)
    with session_scope(engine_for(cfg.database_url)) as s:
        assert len(s.scalars(select(File.id).where(File.status == "present")).all()) == 3
