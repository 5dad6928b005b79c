"""A scan batch delivered more than once is read by one delivery at a time.

A scan's ``scan_plan`` or ``scan_advance`` that runs again (sent twice by the watcher
and the API, redelivered after a crash, re-sent by the reconcile) kicks its phase's
queued batches again, so two messages for one batch are common, and with more than one
worker thread both may run at once. The second must then leave the batch to the first:
no second read of its files (the slow part, on a NAS), no error in the worker log. A batch
whose delivery died with its process, failed with an error or ran out of time is still
read by a later delivery. Real workers, on PostgreSQL + Redis and on SQLite with the
in-process broker.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from sqlalchemy import text

from core import jobs
from core.config import Settings
from core.db import engine_for, migrate, session_scope
from core.models import Job, JobBatch
from tests.factories import write_jpeg

PROJECT = Path(__file__).resolve().parents[2]
READ_SECONDS = 0.3  # a file's read: four take over a second, time for a second delivery
N_FILES = 4  # one batch (batch_files=8)
# Generous: on a loaded machine the first read alone (its decoders' imports) can take long
WAIT = 180


@pytest.fixture
def embedded_worker(embedded_settings: Settings) -> Iterator[dramatiq.Broker]:
    """The embedded default's in-process broker and two worker threads, for this test."""
    from workers import runtime

    migrate(embedded_settings.database_url)
    broker = runtime.install_broker(embedded_settings)
    worker = runtime.start_worker(broker, 2)
    yield broker
    worker.stop()


def _workers(request: pytest.FixtureRequest, db: str) -> tuple[Settings, dramatiq.Broker]:
    if db == "postgres":
        return request.getfixturevalue("pg_settings"), request.getfixturevalue("worker")
    return request.getfixturevalue("embedded_settings"), request.getfixturevalue("embedded_worker")


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times the catalog read each file (by name), each read slowed down."""
    from core import catalog

    real = catalog.inspect_file
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def counted(path: str, **kwargs: Any) -> Any:
        with lock:
            counts[os.path.basename(path)] += 1
        time.sleep(READ_SECONDS)
        return real(path, **kwargs)

    monkeypatch.setattr(catalog, "inspect_file", counted)
    return counts


@pytest.fixture
def log_records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="core.catalog")
    return caplog


@pytest.fixture
def overlap(
    reads: Counter[str], log_records: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[threading.Event]:
    """The first delivery to read waits at its first file until a second delivery of the
    batch has come (it logged that it leaves the batch, or began to read it too), so that
    the two overlap however loaded the machine is."""
    from core import catalog

    real = catalog.inspect_file  # the counting one
    came = threading.Event()
    first: list[int] = []
    lock = threading.Lock()

    class Left(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if LEFT in record.getMessage():
                came.set()

    def held(path: str, **kwargs: Any) -> Any:
        with lock:
            me = threading.get_ident()
            wait = not first
            if wait:
                first.append(me)
            elif me != first[0]:
                came.set()
        if wait:
            came.wait(WAIT)
        return real(path, **kwargs)

    handler = Left()
    logging.getLogger("core.catalog").addHandler(handler)
    monkeypatch.setattr(catalog, "inspect_file", held)
    yield came
    logging.getLogger("core.catalog").removeHandler(handler)


def _photos(library: Path) -> list[str]:
    from core.media.inspect import inspect_file

    names = [f"IMG_000{i}.JPG" for i in range(N_FILES)]
    for i, name in enumerate(names):
        write_jpeg(library / name, i + 1)
    inspect_file(str(library / names[0]), full_hash=False)  # its imports done, not timed
    return names


def _new_scan(cfg: Settings, library: Path) -> str:
    with session_scope(engine_for(cfg.database_url)) as s:
        root = jobs.get_or_create_root(s, str(library))
        job, _ = jobs.start_job(s, "scan", root=root, trigger="test")
        return job.id


def _planned(cfg: Settings, library: Path) -> tuple[str, int]:
    """A scan walked and planned, its one catalog batch not sent: (job id, seq)."""
    from core import catalog

    job_id = _new_scan(cfg, library)
    with session_scope(engine_for(cfg.database_url)) as s:
        assert catalog.plan_scan(s, job_id, cfg)
    with session_scope(engine_for(cfg.database_url)) as s:
        (seq,) = catalog.queued_batches(s, job_id)
    return job_id, seq


def _job(cfg: Settings, job_id: str) -> Job:
    with session_scope(engine_for(cfg.database_url)) as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def _batch(cfg: Settings, job_id: str, seq: int) -> JobBatch:
    with session_scope(engine_for(cfg.database_url)) as s:
        batch = s.get(JobBatch, (job_id, seq))
        assert batch is not None
        s.expunge(batch)
        return batch


def _finished(cfg: Settings, job_id: str) -> Job:
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        job = _job(cfg, job_id)
        if job.state in jobs.FINAL_STATES:
            return job
        time.sleep(0.1)
    raise AssertionError(f"scan {job_id} did not finish: {_job(cfg, job_id).__dict__}")


def _cataloged(cfg: Settings, job_id: str) -> None:
    job = _finished(cfg, job_id)
    assert (job.state, job.total, job.done, job.failed) == ("done", N_FILES, N_FILES, 0)


def _trouble(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the workers logged as going wrong: a failed message, a retry."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith(("dramatiq", "twinlens", "core"))
    ]


def _wait_logged(caplog: pytest.LogCaptureFixture, words: str, timeout: float = WAIT) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(words in r.getMessage() for r in caplog.records):
            return
        time.sleep(0.05)
    raise AssertionError(
        f"nothing logged with {words!r}: {[r.getMessage() for r in caplog.records]}"
    )


LEFT = "is being read by another delivery"  # what a delivery that leaves its batch logs


# --- a batch sent twice ----------------------------------------------------------------


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
@pytest.mark.parametrize("sent_twice", ["scan_plan", "scan_advance", "scan_batch"])
def test_a_batch_sent_twice_is_read_once(
    request: pytest.FixtureRequest,
    db: str,
    sent_twice: str,
    library: Path,
    reads: Counter[str],
    overlap: threading.Event,
    log_records: pytest.LogCaptureFixture,
) -> None:
    cfg, broker = _workers(request, db)
    names = _photos(library)
    # Given a scan whose message is sent twice: a plan (the watcher re-sends one that may
    # have been lost), an advance (reconcile, a redelivery), each kicking the catalog
    # batch; or the batch's own message
    if sent_twice == "scan_plan":
        args: tuple[Any, ...] = (_new_scan(cfg, library),)
    else:
        job_id, seq = _planned(cfg, library)
        args = (job_id, "catalog") if sent_twice == "scan_advance" else (job_id, seq)
    # When both messages run, on two worker threads
    for _ in range(2):
        jobs.enqueue(broker, sent_twice, *args)
    # Then each file was read once, the scan counts each once, and no worker logged an
    # error or a retry (on PostgreSQL the second reader's rows broke the unique key)
    _cataloged(cfg, args[0])
    assert dict(reads) == dict.fromkeys(names, 1)
    assert _trouble(log_records) == []


# --- another delivery reading it, alive, then killed ----------------------------------

READER = r"""
import sys, time
from pathlib import Path
from core import catalog
from core.config import load_settings
from core.db import engine_for, session_scope

url, job_id, seq, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])

def stuck(path, **kwargs):
    marker.write_text(path)
    while True:
        time.sleep(0.1)

catalog.inspect_file = stuck
cfg = load_settings({}, data_dir=marker.parent, database_url=url)
with session_scope(engine_for(url)) as s:
    catalog.process_batch(s, job_id, seq, cfg)
"""


def _reader(cfg: Settings, job_id: str, seq: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    """Another worker process delivered the batch, reading its first file (for ever)."""
    marker = tmp_path / "reader" / "reading"
    marker.parent.mkdir()
    args = [cfg.database_url, job_id, str(seq), str(marker)]
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, *args],
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        stderr=(tmp_path / "reader.log").open("wb"),
    )
    end = time.monotonic() + WAIT
    while not marker.exists():
        assert proc.poll() is None, (tmp_path / "reader.log").read_text()[-3000:]
        assert time.monotonic() < end, "the other process never began to read"
        time.sleep(0.05)
    return proc


def _advisory_locks(url: str) -> int:
    with engine_for(url).connect() as c:
        return int(
            c.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
        )


def _connection_closed(cfg: Settings) -> None:
    """PostgreSQL has ended a killed process's transaction. (The broker hands a dead
    worker's message on after its heartbeat times out, a minute by default; the server
    sees the connection close within milliseconds.)"""
    if not cfg.database_url.startswith("postgresql"):
        return
    end = time.monotonic() + WAIT
    while _advisory_locks(cfg.database_url):
        assert time.monotonic() < end, "the killed process's transaction is still open"
        time.sleep(0.05)


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
def test_a_batch_another_live_process_reads_is_left_to_it_and_read_once_it_is_killed(
    request: pytest.FixtureRequest,
    db: str,
    library: Path,
    tmp_path: Path,
    reads: Counter[str],
    log_records: pytest.LogCaptureFixture,
) -> None:
    cfg, broker = _workers(request, db)
    names = _photos(library)
    job_id, seq = _planned(cfg, library)
    # Given another worker process reading the batch, slowly
    other = _reader(cfg, job_id, seq, tmp_path)
    try:
        # When this process's workers are handed the batch too
        jobs.enqueue(broker, "scan_batch", job_id, seq)
        broker.join("catalog", timeout=int(WAIT * 1000))
        # Then they leave it to the live reader: nothing read, nothing raised
        assert dict(reads) == {}
        assert _batch(cfg, job_id, seq).state == "queued"
        assert _trouble(log_records) == []
        # When that process is killed (out of memory on a huge picture) and its message
        # is delivered again
        other.kill()
        other.wait(WAIT)
    finally:
        if other.poll() is None:
            other.kill()
            other.wait(WAIT)
    _connection_closed(cfg)
    jobs.enqueue(broker, "scan_batch", job_id, seq)
    # Then this worker reads the batch, each file once, and the dead delivery counts as
    # the batch's one crash
    _cataloged(cfg, job_id)
    assert dict(reads) == dict.fromkeys(names, 1)
    assert _batch(cfg, job_id, seq).attempts == 1


# --- the delivery reading it fails, or runs out of time --------------------------------


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
def test_a_batch_whose_reader_failed_with_an_error_is_read_by_its_retry(
    request: pytest.FixtureRequest,
    db: str,
    library: Path,
    reads: Counter[str],
    overlap: threading.Event,
    log_records: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core import catalog

    cfg, broker = _workers(request, db)
    names = _photos(library)
    job_id, seq = _planned(cfg, library)
    real = catalog._catalog_items
    failures: list[int] = []

    def fails_once(*args: Any) -> None:
        real(*args)
        if not failures:
            failures.append(1)
            raise ConnectionError("the database went away")

    monkeypatch.setattr(catalog, "_catalog_items", fails_once)
    # Given a batch sent twice, whose first reader fails with an error after reading
    jobs.enqueue(broker, "scan_batch", job_id, seq)
    jobs.enqueue(broker, "scan_batch", job_id, seq)
    # Then the second message, which came while the first read, left the batch to it,
    # and the first's retry read it again: the batch is cataloged, and no crash counted
    _cataloged(cfg, job_id)
    assert any(LEFT in r.getMessage() for r in log_records.records)
    assert failures and dict(reads) == dict.fromkeys(names, 2)
    assert _batch(cfg, job_id, seq).attempts == 0


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
def test_a_batch_whose_reader_hung_until_its_time_limit_is_read_by_its_retry(
    request: pytest.FixtureRequest,
    db: str,
    library: Path,
    reads: Counter[str],
    log_records: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core import catalog

    cfg, broker = _workers(request, db)
    names = _photos(library)
    job_id, seq = _planned(cfg, library)
    monkeypatch.setattr(sys.modules[__name__], "READ_SECONDS", 0.0)  # the retry: in time
    real = catalog.inspect_file  # (the counting one)
    hung = threading.Event()

    def hangs_once(path: str, **kwargs: Any) -> Any:
        if not hung.is_set():
            hung.set()
            for _ in range(WAIT * 20):  # in steps: the time limit interrupts Python code
                time.sleep(0.05)
        return real(path, **kwargs)

    monkeypatch.setattr(catalog, "inspect_file", hangs_once)
    # Given a batch whose reader hangs on a file (a stuck share) until its time limit
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name="catalog",
        actor_name="scan_batch",
        args=(job_id, seq),
        kwargs={},
        options={"time_limit": 30_000},
    )
    broker.enqueue(message)
    assert hung.wait(WAIT)
    # And a second message for it that comes meanwhile: it leaves the batch alone
    jobs.enqueue(broker, "scan_batch", job_id, seq)
    _wait_logged(log_records, LEFT)
    # Then once the time limit stopped the hung read, the retry reads the batch
    _cataloged(cfg, job_id)
    assert dict(reads) == dict.fromkeys(names, 1)
    assert _batch(cfg, job_id, seq).attempts == 0


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
def test_a_batch_read_but_not_yet_committed_is_not_read_again(
    request: pytest.FixtureRequest, db: str, library: Path, reads: Counter[str]
) -> None:
    from core import catalog

    cfg: Settings = request.getfixturevalue(
        "pg_settings" if db == "postgres" else "embedded_settings"
    )
    migrate(cfg.database_url)
    names = _photos(library)
    job_id, seq = _planned(cfg, library)
    engine = engine_for(cfg.database_url)
    read = threading.Event()
    first: list[tuple[bool, bool]] = []

    def deliver_then_commit_late() -> None:
        with session_scope(engine) as s:
            first.append(catalog.process_batch(s, job_id, seq, cfg))
            read.set()
            time.sleep(1.0)  # the actor's commit, a moment after the batch returned

    # Given a delivery that has read the batch and not committed yet
    thread = threading.Thread(target=deliver_then_commit_late)
    thread.start()
    try:
        assert read.wait(WAIT)
        # When a second delivery of the batch comes meanwhile
        with session_scope(engine) as s:
            second = catalog.process_batch(s, job_id, seq, cfg)
    finally:
        thread.join(WAIT)
    # Then it reads nothing and counts nothing (SQLite: it waits for the first's commit
    # and finds the batch done; PostgreSQL: the first holds it until its commit)
    assert first == [(True, True)] and second == (False, False)
    assert dict(reads) == dict.fromkeys(names, 1)
    assert _job(cfg, job_id).done == N_FILES
