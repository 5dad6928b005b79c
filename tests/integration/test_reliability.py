"""Kill a worker process with SIGKILL mid-scan on Redis; a new worker finishes the
job, every file is cataloged exactly once and the progress totals are right."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import jobs
from core.broker import make_broker
from core.db import engine_for, session_scope
from core.models import File, Job
from tests.factories import write_jpeg

PROJECT = Path(__file__).resolve().parents[2]
N_FILES = 240


def _worker(settings, log: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        TWINLENS_DATABASE_URL=settings.database_url,
        TWINLENS_BROKER_URL=settings.broker_url,
        TWINLENS_CACHE_URL=settings.cache_url,
        TWINLENS_BROKER_HEARTBEAT_MS=str(settings.broker_heartbeat_ms),
        TWINLENS_BROKER_MAINTENANCE_CHANCE=str(settings.broker_maintenance_chance),
        TWINLENS_BATCH_FILES=str(settings.batch_files),
        TWINLENS_DATA_DIR=str(settings.data_dir),
    )
    return subprocess.Popen(
        [sys.executable, str(PROJECT / "twinlens.py"), "worker", "--threads", "1"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=PROJECT,
    )


def _job(url: str, job_id: str) -> Job:
    with session_scope(engine_for(url)) as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


@pytest.mark.slow
def test_sigkill_mid_scan_then_restart_completes_exactly_once(pg_settings, library, tmp_path):
    # Given a library big enough that a scan takes a few seconds on one thread
    total_bytes = 0
    for i in range(N_FILES):
        p = write_jpeg(library / f"d{i % 6}" / f"img_{i:04d}.jpg", i, size=(800, 600))
        total_bytes += p.stat().st_size
    broker = make_broker(pg_settings)
    broker.flush_all()
    with session_scope(engine_for(pg_settings.database_url)) as s:
        root = jobs.get_or_create_root(s, str(library))
        job, _ = jobs.start_job(s, "scan", root=root, trigger="test")
        job_id = job.id
    log = tmp_path / "worker.log"
    first = _worker(pg_settings, log)
    try:
        jobs.enqueue(broker, "scan_plan", job_id)
        # When the worker is killed in the middle of the catalog phase
        deadline = time.time() + 120
        while time.time() < deadline:
            j = _job(pg_settings.database_url, job_id)
            if j.phase == "catalog" and j.done >= N_FILES // 5:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"scan made no progress: {log.read_text()[-3000:]}")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = _job(pg_settings.database_url, job_id)
        assert killed_at.state == "running" and killed_at.done < N_FILES, (
            "kill came too late to test anything"
        )

        # And a worker starts again
        second = _worker(pg_settings, log)
        try:
            deadline = time.time() + 180
            while time.time() < deadline:
                j = _job(pg_settings.database_url, job_id)
                if j.state in jobs.FINAL_STATES:
                    break
                time.sleep(0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
        broker.flush_all()
        broker.close()

    # Then the job completed with exact totals and each file has exactly one row
    j = _job(pg_settings.database_url, job_id)
    assert j.state == "done", log.read_text()[-3000:]
    assert (j.total, j.done, j.failed) == (N_FILES, N_FILES, 0)
    assert j.batches_done == j.batches_total
    assert j.bytes_read == total_bytes  # the killed batch's reads were not counted twice
    with session_scope(engine_for(pg_settings.database_url)) as s:
        assert s.scalar(select(func.count()).select_from(File)) == N_FILES
        assert s.scalar(select(func.count(func.distinct(File.path_key)))) == N_FILES
        assert s.scalar(select(func.count()).select_from(File).where(File.sha256.is_(None))) == 0
