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


def _new_scan(cfg, library, path: str | None = None) -> str:
    """A scan someone asked for (queued), its id."""
    with session_scope(engine_for(cfg.database_url)) as s:
        root = jobs.get_or_create_root(s, str(library))
        job, _ = jobs.start_job(s, "scan", root=root, path=path, trigger="api")
        return job.id


def _state(cfg, job_id: str) -> tuple[str, str | None]:
    with session_scope(engine_for(cfg.database_url)) as s:
        job = s.get(Job, job_id)
        return job.state, job.error


def test_a_scan_whose_plan_message_was_lost_is_sent_on(pg_settings, worker, library) -> None:
    cfg = pg_settings
    write_jpeg(library / "IMG_0001.JPG", 1)
    write_jpeg(library / "IMG_0002.JPG", 2)
    # Given a scan recorded, whose plan message never reached Redis (a restart)
    job_id = _new_scan(cfg, library)
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
    ids = _new_scan(cfg, library, str(library / "a")), _new_scan(cfg, library, str(library / "b"))
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
    from core.models import Lease
    from workers import reconcile as R

    cfg = pg_settings
    job_id = _new_scan(cfg, library)
    _age(cfg, job_id, 900)
    # When two schedulers reconcile
    first = reconcile(cfg, worker, holder="scheduler-1")
    second = reconcile(cfg, worker, holder="scheduler-2")
    # Then only the first sends the job on, and its turn outlasts a round: a twin started
    # at any offset never acts while the first lives (and renews it every round)
    assert first["resent"] == [job_id] and second == {"resent": [], "failed": []}
    with session_scope(engine_for(cfg.database_url)) as s:
        left = s.get(Lease, R.LEASE).expires_at - utcnow()
    assert left > timedelta(seconds=R.EVERY_SECONDS)


def test_a_job_waiting_its_turn_in_a_busy_queue_is_neither_resent_nor_failed(
    pg_settings, worker, library
) -> None:
    cfg = pg_settings
    job_id = _new_scan(cfg, library)
    # Given a scan nothing has moved for longer than stale, whose message waits in the
    # catalog queue (behind another root's batches, say; here: delayed)
    _age(cfg, job_id, cfg.job_stale_seconds + 60)
    jobs.enqueue(worker, "scan_plan", job_id, delay_ms=600_000)
    # When the scheduler reconciles, Then it waits its turn: not sent twice, not failed
    assert reconcile(cfg, worker, holder="test") == {"resent": [], "failed": []}
    assert _state(cfg, job_id) == ("queued", None)
    # ... unless nothing has moved it for twice the stale limit (a read hung for good)
    _age(cfg, job_id, 2 * cfg.job_stale_seconds + 60)
    assert reconcile(cfg, worker, holder="test")["failed"] == [job_id]


def test_a_dedup_pass_queued_behind_its_running_scan_is_left_to_it(pg_settings, worker, library):
    cfg = pg_settings
    with session_scope(engine_for(cfg.database_url)) as s:
        root = jobs.get_or_create_root(s, str(library))
        scan, _ = jobs.start_job(s, "scan", root=root, trigger="api")
        d = Job(kind="dedup", trigger="schedule", full=True, state="queued", parent_id=scan.id)
        s.add(d)
        s.flush()
        ids = scan.id, d.id
    _age(cfg, ids[1], 900)
    # The scan sends it when it finishes; sent now, it would run on a half-read catalog
    assert ids[1] not in reconcile(cfg, worker, holder="test")["resent"]


def test_a_scan_whose_finish_was_lost_is_finished(pg_settings, worker, library) -> None:
    from core import catalog

    cfg = pg_settings
    write_jpeg(library / "IMG_0001.JPG", 1)
    # Given a scan whose batches all ran and whose finish never came (Redis away)
    job_id = _new_scan(cfg, library)
    with session_scope(engine_for(cfg.database_url)) as s:
        catalog.plan_scan(s, job_id, cfg)
    phase = "catalog"
    while phase != "finish":
        with session_scope(engine_for(cfg.database_url)) as s:
            seqs = catalog.queued_batches(s, job_id)
        for seq in seqs:
            with session_scope(engine_for(cfg.database_url)) as s:
                catalog.process_batch(s, job_id, seq, cfg)
        with session_scope(engine_for(cfg.database_url)) as s:
            phase = catalog.advance(s, job_id, phase, cfg) or phase
    _age(cfg, job_id, 900)
    # When the scheduler reconciles, Then the scan is finished, not failed
    assert reconcile(cfg, worker, holder="test")["resent"] == [job_id]
    wait_for(lambda: _state(cfg, job_id)[0] != "running", timeout=60)
    assert _state(cfg, job_id) == ("done", None)


def test_the_embedded_default_has_nothing_to_reconcile(embedded_settings) -> None:
    # Its in-process broker loses nothing while it lives; a dead process's jobs are
    # failed at the next start
    assert reconcile(embedded_settings, object()) == {"resent": [], "failed": []}


def test_a_scan_whose_batch_messages_were_lost_is_finished(pg_settings, worker, library):
    from core import catalog

    cfg = pg_settings
    for i in range(3):
        write_jpeg(library / f"IMG_000{i}.JPG", i)
    # Given a scan planned (its batches written) whose batch messages were lost
    job_id = _new_scan(cfg, library)
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


def test_a_scan_whose_message_a_redis_stall_left_in_a_live_workers_hands_is_sent_on(
    pg_settings, worker, library
) -> None:
    import time

    import dramatiq

    cfg = pg_settings
    write_jpeg(library / "IMG_0001.JPG", 1)
    job_id = _new_scan(cfg, library)
    # Given a scan whose plan message a live worker fetched from Redis but never got (a
    # stall past the client's timeout mid-fetch: the message sits in that worker's acks,
    # and its heartbeat keeps it from being given back), while another job's message
    # waits in the queue
    client, ns = worker.client, worker.namespace
    lost = dramatiq.Message(
        queue_name="catalog", actor_name="scan_plan", args=(job_id,), kwargs={}, options={}
    )
    client.hset(f"{ns}:catalog.msgs", lost.message_id, lost.encode())
    client.sadd(f"{ns}:__acks__.stalled-worker.catalog", lost.message_id)
    client.zadd(f"{ns}:__heartbeats__", {"stalled-worker": int(time.time() * 1000)})
    jobs.enqueue(worker, "scan_plan", "0" * 32, delay_ms=600_000)
    # ... and nothing has moved it for a quarter of an hour
    _age(cfg, job_id, 900)
    # When the scheduler reconciles, Then it is sent on and the workers finish it
    assert reconcile(cfg, worker, holder="test") == {"resent": [job_id], "failed": []}
    wait_for(lambda: _state(cfg, job_id)[0] == "done", timeout=60)
