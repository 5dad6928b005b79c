"""`twinlens up`'s watcher and the jobs its process holds: changes made while the start-up
scan runs, stopping beside another `twinlens up`, plans sent once, shutdown."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core import jobs
from core.db import migrate, session_scope
from core.models import File, Job, utcnow
from tests.factories import embedded_worker_lease, write_jpeg
from tests.integration.test_grouping_api import RecordingBroker
from tests.netutil import free_port


def _until(check, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _row(cfg, path: Path):  # type: ignore[no-untyped-def]
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        return s.execute(
            select(File.status, File.error, File.read_failures).where(File.path == str(path))
        ).one_or_none()


def _other_process_alive(cfg) -> None:  # type: ignore[no-untyped-def]
    """A second `twinlens up` on this data folder: its worker lease, renewed."""
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        s.add(embedded_worker_lease(os.getppid(), seconds=60))


def test_a_photo_copied_in_during_the_start_up_scan_is_cataloged(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path, monkeypatch
) -> None:
    import twinlens
    from workers import embedded

    cfg = replace(embedded_settings, watch_settle=0.2)
    write_jpeg(library / "2024" / "IMG_0001.JPG", 1)
    new = library / "2024" / "IMG_0002.JPG"
    real_scan = twinlens.scan_with

    def scan_with(cfg, broker, path, **kw):  # type: ignore[no-untyped-def]
        report = real_scan(cfg, broker, path, **kw)
        # While the start-up scan is still busy (a big library: hours), a card import
        # lands in a folder it has walked past already
        write_jpeg(new, 2)
        _until(lambda: _row(cfg, new) is not None, timeout=15)
        return report

    def stop(*_args) -> None:  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # Ctrl-C once it is running

    monkeypatch.setattr(twinlens, "scan_with", scan_with)
    monkeypatch.setattr(embedded, "_serving", stop)
    ports = embedded.Ports(free_port(), free_port(), free_port())
    assert embedded.main(cfg, str(library), ports=ports) == 0
    # Then the photo is cataloged without waiting for the nightly scan
    assert _row(cfg, new) == ("present", None, 0)


def test_a_scan_the_watcher_started_is_no_orphan_of_the_start_up_scan(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path
) -> None:
    from workers import runtime

    # Given a folder scan the watcher of this process enqueued (it watches before the
    # start-up scan), and a scan a killed process left
    migrate(embedded_settings.database_url)
    broker = runtime.install_broker(embedded_settings)
    with session_scope(runtime.engine()) as s:
        root = jobs.get_or_create_root(s, str(library))
        left, _ = jobs.start_job(s, "scan", root=root)
        own, _ = jobs.start_job(s, "scan", root=root, path=str(library / "a"), exclusive=False)
        left_id, own_id = left.id, own.id
    jobs._created_here.discard(left_id)  # made by the killed process
    jobs.enqueue(broker, "scan_plan", own_id)
    # When the start-up scan fails what dead processes left
    assert runtime.fail_orphans() == [left_id]
    # Then this process's own scan goes on
    with session_scope(runtime.engine()) as s:
        assert s.get(Job, own_id).state == "queued"


@pytest.fixture
def beside_another_up(embedded_settings, library: Path):  # type: ignore[no-untyped-def]
    """Two `twinlens up` on one data folder: this one's in-memory broker, the time it
    started, and the library's root row; the other's worker lease, renewed."""
    from workers import runtime

    migrate(embedded_settings.database_url)
    broker = runtime.install_broker(embedded_settings)
    since = utcnow() - timedelta(seconds=1)
    _other_process_alive(embedded_settings)
    with session_scope(runtime.engine()) as s:
        root_id = jobs.get_or_create_root(s, str(library)).id
    return broker, since, root_id


def _scan(root_id: int, path: str | None = None) -> str:
    """A new scan of the root (of ``path`` in it), its id."""
    from core.models import Root
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        job, _ = jobs.start_job(s, "scan", root=s.get(Root, root_id), path=path, exclusive=False)
        return job.id


def _state(job_id: str) -> tuple[str, str | None]:
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        job = s.get(Job, job_id)
        return job.state, job.error


def test_stopping_up_fails_the_jobs_it_held_beside_another_live_process(  # type: ignore[no-untyped-def]
    beside_another_up, library: Path
) -> None:
    from workers import embedded

    # Given this `twinlens up` holds a scan it started (its message in this process's
    # in-memory broker), and the other has a scan of its own
    broker, since, root_id = beside_another_up
    mine, theirs = _scan(root_id), _scan(root_id, str(library / "b"))
    jobs._created_here.discard(theirs)
    jobs.enqueue(broker, "scan_plan", mine)
    # When this one stops (Ctrl-C)
    embedded._fail_unfinished(since)
    # Then its scan is failed (no process can run it: "Scan now" in the other, and the
    # nightly scan, start a new one), and the other's is left to it
    assert _state(mine) == ("failed", jobs.INTERRUPTED)
    assert _state(theirs) == ("queued", None)
    from core.models import Root
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        job, created = jobs.start_job(s, "scan", root=s.get(Root, root_id))
        assert created and job.id != mine


def test_stopping_up_leaves_a_scan_the_other_live_process_created(  # type: ignore[no-untyped-def]
    beside_another_up,
) -> None:
    from workers import embedded, runtime

    # Given the other created a scan, and this one took messages for it too (its nightly
    # run, or its watcher's start, joined that scan)
    broker, since, root_id = beside_another_up
    theirs = _scan(root_id)
    jobs._created_here.discard(theirs)  # made by the other process
    jobs.enqueue(broker, "scan_plan", theirs)
    assert theirs in runtime.held_jobs()
    # When this one stops (Ctrl-C)
    embedded._fail_unfinished(since)
    # Then that scan is left to the process that made it, which may still be running it
    assert _state(theirs) == ("queued", None)


def test_a_standby_up_says_it_stands_by(embedded_settings, library: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from workers import embedded
    from workers.watcher import Watcher

    migrate(embedded_settings.database_url)
    first = Watcher(embedded_settings, RecordingBroker(), holder="host:1", catch_up=False)
    second = Watcher(embedded_settings, RecordingBroker(), holder="host:2", catch_up=False)
    try:
        assert first.renew() == [str(library)]
        assert second.renew() == []
        embedded._serving(embedded_settings, embedded.Ports(), second)
        out = capsys.readouterr().out
        assert "Watching" not in out and "stands by" in out, out
        embedded._serving(embedded_settings, embedded.Ports(), first)
        assert f"Watching {library} for new files" in capsys.readouterr().out
    finally:
        for w in (first, second):
            w.observer.unschedule_all()


@pytest.fixture
def watching(embedded_settings, library: Path):  # type: ignore[no-untyped-def]
    """`twinlens up`'s watcher and worker threads (inotify), the library scanned."""
    import twinlens
    from workers import runtime
    from workers.watcher import Watcher

    cfg = replace(embedded_settings, watch_settle=0.2)
    migrate(cfg.database_url)
    broker = runtime.install_broker(cfg)
    worker = runtime.start_worker(broker, 2)
    twinlens.scan_with(cfg, broker, str(library))
    watcher = Watcher(cfg, broker, catch_up=False)
    watcher.start()
    try:
        yield cfg, watcher
    finally:
        watcher.stop()
        worker.stop()


def _quiet(cfg) -> bool:  # type: ignore[no-untyped-def]
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        return s.scalar(select(Job.id).where(Job.state.in_(jobs.ACTIVE_STATES)).limit(1)) is None


def test_a_permission_change_starts_no_scan(watching, library: Path) -> None:  # type: ignore[no-untyped-def]
    # Given a library the watcher watches, quiet
    write_jpeg(library / "a" / "IMG_0001.JPG", 1)
    cfg, watcher = watching
    import twinlens

    twinlens.scan_with(cfg, watcher.broker, str(library))
    assert _until(lambda: _quiet(cfg))
    time.sleep(0.5)
    before = len(watcher.enqueued)
    # When a photo's and a folder's permissions change (chmod: attrib events only)
    os.chmod(library / "a" / "IMG_0001.JPG", 0o600)
    os.chmod(library / "a", 0o700)
    os.chmod(library, 0o755)
    time.sleep(1.5)
    # Then no scan starts: a chmod -R over the library costs the watcher nothing, and
    # what it made readable is seen by the next scan (nightly, or "Scan now")
    assert len(watcher.enqueued) == before, watcher.enqueued


def test_in_the_embedded_default_a_waiting_folder_scan_is_sent_to_be_planned_once(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path
) -> None:
    from workers.watcher import Watcher

    # Given a folder scan the watcher enqueued that waits to be planned (behind the
    # start-up scan, in the embedded default's one worker thread)
    migrate(embedded_settings.database_url)
    broker = RecordingBroker()
    watcher = Watcher(embedded_settings, broker, catch_up=False)
    folder = str(library / "a")
    watcher._enqueue(str(library), folder)
    # When more changes in it settle, round after round
    watcher._enqueue(str(library), folder)
    watcher._enqueue(str(library), folder)
    # Then it is reused, and its plan message (which the in-process broker cannot lose)
    # not sent again
    assert [name for name, _ in broker.messages] == ["scan_plan"]
    assert len(watcher.enqueued) == 1


def test_with_redis_a_waiting_folder_scan_is_sent_to_be_planned_again(  # type: ignore[no-untyped-def]
    pg_settings, library: Path
) -> None:
    from workers.watcher import Watcher

    # Given a folder scan waiting to be planned, whose message Redis may have lost
    broker = RecordingBroker()
    watcher = Watcher(pg_settings, broker, holder="test-watcher", catch_up=False)
    folder = str(library / "a")
    watcher._enqueue(str(library), folder)
    # When another change in it settles, Then its plan is sent again (a no-op if planned)
    watcher._enqueue(str(library), folder)
    assert [name for name, _ in broker.messages] == ["scan_plan", "scan_plan"]
    assert len(watcher.enqueued) == 1


def test_in_the_embedded_default_changes_still_settling_at_shutdown_are_left_to_the_next_start(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path, caplog
) -> None:
    from workers.watcher import Watcher

    # Given `twinlens up`'s watcher with a long settle time
    cfg = replace(embedded_settings, watch_settle=30)
    migrate(cfg.database_url)
    watcher = Watcher(cfg, RecordingBroker(), catch_up=False)
    watcher.start()
    write_jpeg(library / "new" / "IMG_0001.JPG", 1)
    assert _until(lambda: watcher.settler.pending, timeout=5)
    # When it stops (Ctrl-C) before the change settled
    with caplog.at_level(logging.INFO, logger="twinlens.watcher"):
        watcher.stop()
    # Then no scan is enqueued that the in-memory broker would lose and the stop fail
    # as interrupted: the next start's scan sees the change
    with session_scope(watcher.engine) as s:
        assert s.scalars(select(Job.id)).all() == []
    assert "left to the next start's scan" in caplog.text


def test_events_not_yet_handed_on_at_shutdown_are_enqueued(pg_settings, library: Path) -> None:  # type: ignore[no-untyped-def]
    from workers.watcher import Watcher

    # Given a watcher whose observer has taken events it has not handed on yet (the
    # last moment before SIGTERM)
    broker = RecordingBroker()
    watcher = Watcher(pg_settings, broker, holder="test-watcher", catch_up=False)
    watcher.observer.dispatch_events = lambda q: time.sleep(0.05)  # type: ignore[method-assign]
    watcher.start()
    (library / "new").mkdir()
    write_jpeg(library / "new" / "IMG_0001.JPG", 1)
    assert _until(lambda: not watcher.observer.event_queue.empty(), timeout=5)
    # When it stops, Then the change's folder is scanned
    watcher.stop()
    with session_scope(watcher.engine) as s:
        paths = [s.get(Job, args[0]).path for _, args in broker.messages]
    assert paths == [str(library / "new")]
