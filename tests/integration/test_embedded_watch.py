"""`twinlens up`'s watcher and the jobs its process holds: changes made while the start-up
scan runs, permission changes, stopping beside another `twinlens up`."""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core import jobs, leases
from core.db import migrate, session_scope
from core.models import File, Job, Lease, utcnow
from tests.factories import write_bytes, write_jpeg
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

    holder = f"{socket.gethostname()}:{os.getppid()}"
    with session_scope(runtime.engine()) as s:
        s.add(
            Lease(
                name=leases.EMBEDDED_WORKERS + holder,
                holder=holder,
                expires_at=utcnow() + timedelta(seconds=60),
            )
        )


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


def test_stopping_up_fails_the_jobs_it_held_beside_another_live_process(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path
) -> None:
    from workers import embedded, runtime

    # Given two `twinlens up` on one data folder; this one holds a scan (its message in
    # this process's in-memory broker), the other a scan of its own
    migrate(embedded_settings.database_url)
    broker = runtime.install_broker(embedded_settings)
    since = utcnow() - timedelta(seconds=1)
    _other_process_alive(embedded_settings)
    with session_scope(runtime.engine()) as s:
        root = jobs.get_or_create_root(s, str(library))
        mine, _ = jobs.start_job(s, "scan", root=root)
        theirs, _ = jobs.start_job(s, "scan", root=root, path=str(library / "b"), exclusive=False)
        mine_id, theirs_id = mine.id, theirs.id
    jobs.enqueue(broker, "scan_plan", mine_id)
    # When this one stops (Ctrl-C)
    embedded._fail_unfinished(since)
    # Then its scan is failed (no process can run it: "Scan now" in the other, and the
    # nightly scan, start a new one), and the other's is left to it
    with session_scope(runtime.engine()) as s:
        assert (s.get(Job, mine_id).state, s.get(Job, mine_id).error) == (
            "failed",
            jobs.INTERRUPTED,
        )
        assert s.get(Job, theirs_id).state == "queued"
        job, created = jobs.start_job(s, "scan", root=root)
        assert created and job.id != mine_id


def test_stopping_up_leaves_a_scan_the_other_live_process_created(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path
) -> None:
    from workers import embedded, runtime

    # Given two `twinlens up` on one data folder: the other created a scan, and this one
    # took messages for it too (its nightly run, or its watcher's start, joined that scan)
    migrate(embedded_settings.database_url)
    broker = runtime.install_broker(embedded_settings)
    since = utcnow() - timedelta(seconds=1)
    _other_process_alive(embedded_settings)
    with session_scope(runtime.engine()) as s:
        root = jobs.get_or_create_root(s, str(library))
        theirs, _ = jobs.start_job(s, "scan", root=root)
        theirs_id = theirs.id
    jobs._created_here.discard(theirs_id)  # made by the other process
    jobs.enqueue(broker, "scan_plan", theirs_id)
    assert theirs_id in runtime.held_jobs()
    # When this one stops (Ctrl-C)
    embedded._fail_unfinished(since)
    # Then that scan is left to the process that made it, which may still be running it
    with session_scope(runtime.engine()) as s:
        assert s.get(Job, theirs_id).state == "queued"


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


def test_a_file_made_readable_is_read_again(watching, library: Path) -> None:  # type: ignore[no-untyped-def]
    # Given a photo whose reads failed ("permission denied", more than once: the next
    # scans would try it only days later), and a photo read cleanly beside it
    write_jpeg(library / "a" / "IMG_0001.JPG", 1)
    write_jpeg(library / "a" / "IMG_0002.JPG", 2)
    cfg, watcher = watching
    import twinlens
    from workers import runtime

    twinlens.scan_with(cfg, watcher.broker, str(library))
    assert _until(lambda: _quiet(cfg))
    time.sleep(0.5)
    before = len(watcher.enqueued)  # the scans of the photos' arrival
    locked = library / "a" / "IMG_0001.JPG"
    with session_scope(runtime.engine()) as s:
        s.execute(
            update(File)
            .where(File.path == str(locked))
            .values(error="permission denied", read_failures=3, updated_at=utcnow())
        )
    # When its permissions are put right (chmod: an attrib event, no other)
    os.chmod(locked, 0o644)
    # Then it is read again at once
    assert _until(lambda: _row(cfg, locked) == ("present", None, 0)), _row(cfg, locked)
    assert len(watcher.enqueued) == before + 1
    assert _until(lambda: _quiet(cfg))
    # And a chmod of a photo read cleanly, or that scan's own reads, start no scan
    os.chmod(library / "a" / "IMG_0002.JPG", 0o600)
    time.sleep(1.5)
    assert len(watcher.enqueued) == before + 1, watcher.enqueued


def test_a_folder_made_readable_is_scanned(  # type: ignore[no-untyped-def]
    watching, library: Path, monkeypatch
) -> None:
    cfg, watcher = watching
    # Given a folder whose files were never cataloged (it could not be watched nor listed
    # while they were copied in: as root here, the events of the copy go unseen)
    folder = library / "locked"
    photo = folder / "IMG_0001.JPG"
    with monkeypatch.context() as m:
        m.setattr(watcher.settler, "note", lambda *a, **k: None)
        folder.mkdir(mode=0o000)
        write_jpeg(photo, 1)
        time.sleep(0.5)
    assert _row(cfg, photo) is None and watcher.enqueued == []
    # When it is made readable (chmod 755: an attrib event on the folder)
    folder.chmod(0o755)
    # Then it is scanned, once
    assert _until(lambda: _row(cfg, photo) == ("present", None, 0))
    assert _until(lambda: _quiet(cfg))
    time.sleep(1.0)  # the scan's own listing and reads start no other
    assert len(watcher.enqueued) == 1, watcher.enqueued


def _scanned(watcher, library: Path) -> int:  # type: ignore[no-untyped-def]
    """Scan the library and wait until every scan is done; the scans the watcher
    enqueued so far (the files' arrival)."""
    import twinlens

    cfg = watcher.cfg
    twinlens.scan_with(cfg, watcher.broker, str(library))
    assert _until(lambda: _quiet(cfg))
    time.sleep(0.5)
    assert _until(lambda: _quiet(cfg))
    return len(watcher.enqueued)


def _looked_up(watcher, monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """The paths the watcher's rounds look up for attrib events (files, then folders
    listed), as they go: the events did arrive and were weighed."""
    seen: list[str] = []
    files_to_read, listing = watcher._files_to_read, watcher._listing

    def spy_files(paths, listed):  # type: ignore[no-untyped-def]
        seen.extend(paths)
        return files_to_read(paths, listed)

    def spy_listing(folder, root):  # type: ignore[no-untyped-def]
        seen.append(folder)
        return listing(folder, root)

    monkeypatch.setattr(watcher, "_files_to_read", spy_files)
    monkeypatch.setattr(watcher, "_listing", spy_listing)
    return seen


class _Statements:
    """The SQL statements run on an engine, with the thread that ran each."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        import threading

        from sqlalchemy import event

        self.engine = engine
        self.seen: list[tuple[int, str, str]] = []

        def before(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
            self.seen.append((threading.get_ident(), threading.current_thread().name, statement))

        self.before = before
        event.listen(engine, "before_cursor_execute", before)

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self.before)


def test_a_chmod_of_many_clean_files_looks_them_up_in_batches_and_starts_no_scan(  # type: ignore[no-untyped-def]
    watching, library: Path
) -> None:
    cfg, watcher = watching
    # Given a folder of 300 files read cleanly
    files = [write_bytes(library / "many" / f"IMG_{i:04}.JPG", b"x%d" % i) for i in range(300)]
    before = _scanned(watcher, library)
    # When they are chmod'ed (chmod -R after a "permission denied": an attrib event each)
    statements = _Statements(watcher.engine)
    try:
        for f in files:
            os.chmod(f, 0o600)
        time.sleep(1.5)
    finally:
        statements.close()
    # Then watchdog's dispatch thread asks the database nothing (it would stall, and
    # inotify's queue overflow), the watcher's rounds look them up a chunk at a time,
    # write nothing, and start no scan
    dispatch = [st for ident, _, st in statements.seen if ident == watcher.observer.ident]
    assert dispatch == []
    lookups = [st for _, name, st in statements.seen if name == "twinlens-watch"]
    assert 1 <= sum("FROM files" in st for st in lookups) <= 5, lookups
    assert not any(st.lstrip().upper().startswith("UPDATE") for st in lookups), lookups
    assert len(watcher.enqueued) == before, watcher.enqueued


def test_a_file_that_failed_for_another_reason_than_a_permission_is_not_read_again_on_a_touch(  # type: ignore[no-untyped-def]
    watching, library: Path, monkeypatch
) -> None:
    from workers import runtime

    cfg, watcher = watching
    # Given a photo whose reads failed with an I/O error (a bad sector: the next scans
    # try it only days later), and one read but not decoded
    bad = write_jpeg(library / "a" / "IMG_0001.JPG", 1)
    broken = write_jpeg(library / "a" / "IMG_0002.JPG", 2)
    before = _scanned(watcher, library)
    looked_up = _looked_up(watcher, monkeypatch)
    with session_scope(runtime.engine()) as s:
        s.execute(
            update(File)
            .where(File.path == str(bad))
            .values(error="cannot read: Input/output error", read_failures=3)
        )
        s.execute(
            update(File).where(File.path == str(broken)).values(error="cannot decode: truncated")
        )
    # When they are touched, their permissions set, an xattr's worth of attrib events
    for f in (bad, broken):
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.chmod(f, 0o644)
    time.sleep(1.5)
    # Then neither is read again (no chmod fixes them): no scan, the backoff kept
    assert {str(bad), str(broken)} <= set(looked_up)
    assert len(watcher.enqueued) == before, watcher.enqueued
    assert _row(cfg, bad) == ("present", "cannot read: Input/output error", 3)
    assert _row(cfg, broken) == ("present", "cannot decode: truncated", 0)


def test_a_folder_made_listable_shows_what_it_hid(  # type: ignore[no-untyped-def]
    watching, library: Path, monkeypatch
) -> None:
    from workers import runtime

    cfg, watcher = watching
    # Given a folder whose reads failed ("permission denied": it could not be searched),
    # and that gained, while it could not be listed nor watched, a subfolder of folders
    # of photos (as root here, the events of the copy go unseen)
    folder = library / "locked"
    denied = write_jpeg(folder / "IMG_0001.JPG", 1)
    before = _scanned(watcher, library)
    with session_scope(runtime.engine()) as s:
        s.execute(
            update(File)
            .where(File.path == str(denied))
            .values(error="permission denied", read_failures=4)
        )
    new = folder / "2024" / "05" / "IMG_0002.JPG"
    with monkeypatch.context() as m:
        m.setattr(watcher.settler, "note", lambda *a, **k: None)
        folder.chmod(0o000)
        write_jpeg(new, 2)
        time.sleep(0.5)
    assert _row(cfg, new) is None and len(watcher.enqueued) == before
    # When it is made listable (chmod 755: an attrib event on the folder only)
    folder.chmod(0o755)
    # Then what it hid is cataloged, and the file it could not read is read again
    assert _until(lambda: _row(cfg, new) == ("present", None, 0)), _row(cfg, new)
    assert _until(lambda: _row(cfg, denied) == ("present", None, 0)), _row(cfg, denied)
    assert _until(lambda: _quiet(cfg))
    time.sleep(1.0)  # the scans' own listing and reads start no other
    assert len(watcher.enqueued) == before + 1, watcher.enqueued  # one scan of the folder


def test_a_root_attrib_on_an_unchanged_library_starts_no_scan_nor_walk(  # type: ignore[no-untyped-def]
    watching, library: Path, monkeypatch
) -> None:
    cfg, watcher = watching
    # Given a library read cleanly, folders of folders included
    for i, rel in enumerate(("2024/01", "2024/02", "2025/01", "b", "")):
        write_jpeg(library / rel / f"IMG_{i:04}.JPG", i)
    before = _scanned(watcher, library)
    signed: list[str] = []
    walked: list[str] = []
    real_sig, real_walk = watcher.settler.sig, os.walk

    def sig(path):  # type: ignore[no-untyped-def]
        signed.append(path)
        return real_sig(path)

    def walk(top, *a, **k):  # type: ignore[no-untyped-def]
        walked.append(os.fspath(top))
        return real_walk(top, *a, **k)

    monkeypatch.setattr(watcher.settler, "sig", sig)
    monkeypatch.setattr(os, "walk", walk)
    looked_up = _looked_up(watcher, monkeypatch)
    # When rsync -a, cp -a, tar or Samba set the times of every folder, the root's
    # included, and a chmod of the root
    folders = [library, *(p for p in library.rglob("*") if p.is_dir())]
    for folder in folders:
        st = folder.stat()
        os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))
    library.chmod(0o755)
    time.sleep(1.5)
    # Then the root is listed, its folders of folders too, and nothing is walked,
    # nor a scan started
    assert str(library) in looked_up
    assert walked == [] and signed == [], (walked, signed)
    assert len(watcher.enqueued) == before, watcher.enqueued


def test_a_permission_change_the_catalog_cannot_be_asked_about_is_a_change(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path, monkeypatch
) -> None:
    from workers import watcher as watcher_module
    from workers.watcher import Watcher, shallow_signature

    migrate(embedded_settings.database_url)
    watcher = Watcher(embedded_settings, RecordingBroker(), catch_up=False)
    photo = write_jpeg(library / "a" / "IMG_0001.JPG", 1)
    (library / "b" / "c").mkdir(parents=True)
    # Attrib events of 1200 paths (not there: no change) are looked up 500 at a time
    statements = _Statements(watcher.engine)
    try:
        for i in range(1200):
            watcher._note_attrib(str(library / "gone" / f"{i}.jpg"), str(library), False)
        watcher._resolve_attribs(time.monotonic())
    finally:
        statements.close()
    assert sum("FROM files" in st for _, _, st in statements.seen) == 3
    assert watcher.settler.pending == {}

    # When the database cannot answer, a file's and a folder's attrib events are changes
    def away(engine):  # type: ignore[no-untyped-def]
        raise OSError("database away")

    monkeypatch.setattr(watcher_module, "session_scope", away)
    watcher._note_attrib(str(photo), str(library), False)
    watcher._note_attrib(str(library), str(library), True)
    watcher._resolve_attribs(time.monotonic())
    # a scan too many, not a lost one; the folders with their own entries' signature
    pending = watcher.settler.pending
    assert set(pending) == {str(photo), str(library / "a"), str(library / "b")}, pending
    assert pending[str(library / "b")].sig_fn is shallow_signature


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
