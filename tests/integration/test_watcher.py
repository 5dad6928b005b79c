"""The watcher against real PostgreSQL, Redis and Dramatiq workers, with watchdog's
polling observer on a short interval (inotify is the default; the logic is the same)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from core import jobs
from core.db import engine_for, session_scope
from core.media.inspect import inspect_file
from core.models import File, FileGroup, GroupMember, Job
from tests.factories import write_bytes, write_jpeg
from tests.integration.test_grouping_api import RecordingBroker
from workers.watcher import Settler, Watcher, scan_targets

RAW_SAMPLE = "skia/sample_1mp.dng"


def wait_for(predicate, timeout: float = 20.0, step: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {predicate.__name__}")


def _idle(cfg):
    def idle() -> bool:
        with session_scope(engine_for(cfg.database_url)) as s:
            return (
                s.scalar(select(Job.id).where(Job.state.in_(("queued", "running"))).limit(1))
                is None
            )

    return idle


def snapshot(cfg) -> dict[frozenset[str], str]:
    """{member paths relative to the library: group id}"""
    lib = str(cfg.library_roots[0])
    out: dict[str, set[str]] = {}
    with session_scope(engine_for(cfg.database_url)) as s:
        for gid, p in s.execute(select(GroupMember.group_id, GroupMember.file_path)):
            out.setdefault(gid, set()).add(os.path.relpath(p, lib))
    return {frozenset(v): k for k, v in out.items()}


def jobs_since(cfg, t0) -> list[tuple[str, str, str | None]]:
    with session_scope(engine_for(cfg.database_url)) as s:
        return [
            (j.kind, j.trigger, j.path)
            for j in s.scalars(select(Job).where(Job.created_at >= t0).order_by(Job.created_at))
        ]


@pytest.fixture
def watch_cfg(pg_settings):
    return replace(pg_settings, watch_polling=True, watch_interval=0.1, watch_settle=0.6)


def test_copy_move_delete(watch_cfg, worker, library, samples):
    cfg = watch_cfg
    raw_src = samples / RAW_SAMPLE
    taken = inspect_file(str(raw_src), full_hash=False).taken_at
    assert taken is not None
    write_jpeg(library / "a" / "IMG_1.JPG", 1, taken=taken)
    write_bytes(library / "a" / "IMG_1.xmp", b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    write_jpeg(library / "a" / "IMG_2.JPG", 2, taken=taken)

    w = Watcher(cfg, worker, holder="test-watcher", lease_ttl=30)
    w.start()
    try:
        # Start-up: one catch-up scan of the root groups what was there already
        wait_for(lambda: snapshot(cfg).get(frozenset({"a/IMG_1.JPG", "a/IMG_1.xmp"})))
        wait_for(_idle(cfg))

        # A RAW copied in slowly (chunks 0.1 s apart) is scanned once, after its last byte
        from core.models import utcnow

        t0 = utcnow()
        data = raw_src.read_bytes()
        dest = library / "a" / "IMG_1.DNG"
        with open(dest, "wb") as fh:
            for i in range(0, len(data), len(data) // 8 + 1):
                fh.write(data[i : i + len(data) // 8 + 1])
                fh.flush()
                time.sleep(0.1)
        t_last = utcnow()
        trio = frozenset({"a/IMG_1.JPG", "a/IMG_1.xmp", "a/IMG_1.DNG"})
        gid = wait_for(lambda: snapshot(cfg).get(trio))
        wait_for(_idle(cfg))
        time.sleep(1.0)  # nothing else may follow
        assert [k for k, *_ in jobs_since(cfg, t0)] == ["scan", "group", "dedup"]
        with session_scope(engine_for(cfg.database_url)) as s:
            scan = s.scalars(select(Job).where(Job.kind == "scan", Job.created_at >= t0)).one()
            assert (scan.trigger, scan.path) == ("watch", str(library / "a"))
            assert scan.created_at >= t_last
            row = s.scalars(select(File).where(File.path == str(dest))).one()
            assert row.size == len(data) and row.kind == "raw" and row.error is None
            raw_id = row.id

        # The pair moves to another folder: one scan covers both ends, the files keep
        # their ids (recognised by inode) and the shot keeps its group
        t0 = utcnow()
        (library / "b").mkdir()
        for name in ("IMG_1.JPG", "IMG_1.xmp", "IMG_1.DNG"):
            os.rename(library / "a" / name, library / "b" / name)
        moved = frozenset({"b/IMG_1.JPG", "b/IMG_1.xmp", "b/IMG_1.DNG"})
        assert wait_for(lambda: snapshot(cfg).get(moved)) == gid
        wait_for(_idle(cfg))
        scans = [j for j in jobs_since(cfg, t0) if j[0] == "scan"]
        assert scans == [("scan", "watch", str(library))]
        with session_scope(engine_for(cfg.database_url)) as s:
            assert (
                s.scalars(
                    select(File.id).where(File.path == str(library / "b" / "IMG_1.DNG"))
                ).one()
                == raw_id
            )
        assert frozenset({"a/IMG_1.JPG", "a/IMG_1.xmp", "a/IMG_1.DNG"}) not in snapshot(cfg)

        # A deleted sidecar leaves the group (which stays); deleting the RAW leaves one
        # member, and the group dissolves
        os.remove(library / "b" / "IMG_1.xmp")
        assert wait_for(lambda: snapshot(cfg).get(frozenset({"b/IMG_1.JPG", "b/IMG_1.DNG"}))) == gid
        os.remove(library / "b" / "IMG_1.DNG")
        wait_for(lambda: not snapshot(cfg))
        wait_for(_idle(cfg))
        with session_scope(engine_for(cfg.database_url)) as s:
            assert s.scalar(select(File.status).where(File.id == raw_id)) == "missing"
            assert s.scalar(select(FileGroup.group_id)) is None
    finally:
        w.stop()


def test_one_watcher_acts_the_other_stands_by(pg_settings, library):
    cfg = replace(pg_settings, watch_polling=True, watch_interval=0.1, watch_settle=0.2)
    a_broker, b_broker = RecordingBroker(), RecordingBroker()
    # Long enough that a's lease cannot lapse between the steps below on a slow, shared
    # machine (0.5 s did once: b then took over while a was still alive).
    ttl = 3.0
    a = Watcher(cfg, a_broker, holder="host-a:1", lease_ttl=ttl)
    b = Watcher(cfg, b_broker, holder="host-b:1", lease_ttl=ttl)
    try:
        assert a.renew() == [str(library)]
        assert b.renew() == []  # stands by
        assert [m[0] for m in a_broker.messages] == ["scan_plan"]  # a's catch-up scan
        # b sees nothing of changes while it stands by
        b.on_event(
            type(
                "E",
                (),
                {
                    "event_type": "created",
                    "src_path": str(library / "x.jpg"),
                    "is_directory": False,
                },
            )()
        )
        assert b.tick(time.monotonic() + 5) == [] and b_broker.messages == []
        # a goes away without releasing (its catch-up scan ran meanwhile); once its
        # lease expires b takes over and catches up itself
        with session_scope(engine_for(cfg.database_url)) as s:
            jobs.finish_job(s, a_broker.messages[0][1][0], "done")
        time.sleep(ttl + 0.1)
        assert b.renew() == [str(library)]
        assert [m[0] for m in b_broker.messages] == ["scan_plan"]
        assert a.renew() == []  # a, back, finds the lease taken and stands by
    finally:
        for w in (a, b):
            w.observer.unschedule_all()


def test_settler_waits_for_a_stable_size(tmp_path: Path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"x")
    s = Settler(settle=1.0)
    s.note(str(f), now=0.0)
    assert s.due(0.5) == []  # too soon after the event
    with open(f, "ab") as fh:
        fh.write(b"more")  # still growing
    assert s.due(1.5) == []  # size changed since the event: wait another settle period
    assert s.due(2.0) == []
    assert s.due(2.6) == [(str(f), set())]
    assert s.due(10) == []  # handed out once


def test_a_folder_that_never_goes_quiet_is_still_scanned():
    # Given a settled photo beside a file that changes at every look (a tethered
    # camera's folder, a catalogue's write-ahead log)
    looks = iter(range(1000))
    sizes = {"/lib/a/new.jpg": lambda: (1, 1)}

    def sig(path: str):
        return sizes.get(path, lambda: (next(looks), 0))()

    s = Settler(settle=1.0, sig=sig, max_hold=5.0)
    s.note("/lib/a/new.jpg", now=0.0)
    s.note("/lib/a/grow.bin", now=0.0)
    # Then the photo is held back while the folder is busy, but no longer than max_hold
    assert s.due(3.0) == []
    assert s.due(6.0) == [("/lib/a/new.jpg", set())]


def test_only_events_that_change_files_are_noted(pg_settings, library):
    from watchdog.events import (
        FileClosedEvent,
        FileClosedNoWriteEvent,
        FileModifiedEvent,
        FileOpenedEvent,
    )

    w = Watcher(pg_settings, RecordingBroker(), holder="test-watcher")
    read = str(library / "a" / "read.jpg")
    # Reads (Immich making thumbnails, a backup, Twinlens hashing) are no change ...
    w.on_event(FileOpenedEvent(read))
    w.on_event(FileClosedNoWriteEvent(read))
    assert w.settler.pending == {}
    # ... an edit in place (all polling reports on NFS/SMB) and a write's close are
    for name, event in (("edited.jpg", FileModifiedEvent), ("written.jpg", FileClosedEvent)):
        w.on_event(event(str(library / "a" / name)))
    assert set(w.settler.pending) == {
        str(library / "a" / "edited.jpg"),
        str(library / "a" / "written.jpg"),
    }


def test_twinlens_own_data_inside_the_library_starts_no_scan(pg_settings, library):
    from dataclasses import replace

    from watchdog.events import FileCreatedEvent, FileModifiedEvent

    # Given a library root that holds Twinlens's data folder (`twinlens up ~`)
    cfg = replace(pg_settings, data_dir=library / ".twinlens")
    w = Watcher(cfg, RecordingBroker(), holder="test-watcher")
    # When the database and the thumbnail cache are written (every scan does)
    w.on_event(FileModifiedEvent(str(library / ".twinlens" / "twinlens.db-wal")))
    w.on_event(FileCreatedEvent(str(library / ".twinlens" / "thumbs" / "ab" / "x.jpg")))
    # Then nothing is noted: else each scan's writes would start the next scan
    assert w.settler.pending == {}
    # While a photo beside it is
    w.on_event(FileCreatedEvent(str(library / ".twinlens-photos" / "a.jpg")))
    assert set(w.settler.pending) == {str(library / ".twinlens-photos" / "a.jpg")}


def test_a_change_in_another_folder_gets_its_own_scan(db_session, library):
    from core.models import Root
    from workers.watcher import enqueue_folder_scan

    lib = str(library)
    a, b = str(library / "a"), str(library / "b")
    # Given a scan of a waiting to be planned
    first, created = enqueue_folder_scan(db_session, RecordingBroker(), lib, a)
    assert created
    # When b changes, Then b gets a scan of its own; a second change in a reuses a's
    other, created = enqueue_folder_scan(db_session, RecordingBroker(), lib, b)
    assert created and other != first
    assert enqueue_folder_scan(db_session, RecordingBroker(), lib, a) == (first, False)
    root = db_session.scalar(select(Root.id).where(Root.path == lib))
    paths = db_session.scalars(select(Job.path).where(Job.root_id == root)).all()
    assert sorted(paths) == [a, b]


def test_scan_targets(tmp_path: Path):
    root = tmp_path / "lib"
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    r = str(root)
    due = [
        (f"{r}/a/x.jpg", set()),
        (f"{r}/a/deep/y.jpg", set()),  # below a: covered
        (f"{r}/gone/z.jpg", set()),  # folder deleted: nearest existing parent
        (f"{r}/b/m.jpg", {f"{r}/b/old/m.jpg"}),  # moved within b
        ("/elsewhere/q.jpg", set()),  # outside the roots: ignored
    ]
    assert scan_targets(due, [r]) == {r: [r]}  # the deleted folder's parent is the root
    assert scan_targets(due[:2] + due[3:4], [r]) == {r: [f"{r}/a", f"{r}/b"]}
    assert scan_targets([(f"{r}/b/m.jpg", {f"{r}/a/m.jpg"})], [r]) == {r: [r]}
    # A folder deleted with everything in it: its nearest existing parent is scanned
    shutil.rmtree(root / "a" / "deep")
    assert scan_targets([(f"{r}/a/deep/y.jpg", set())], [r]) == {r: [f"{r}/a"]}


def _copy_slowly(src: Path, dest: Path, chunk_pause: float = 0.03) -> None:
    """A file arriving the way a card reader copies it: in chunks, growing."""
    data = src.read_bytes()
    half = len(data) // 2
    with open(dest, "wb") as fh:
        for part in (data[:half], data[half:]):
            fh.write(part)
            fh.flush()
            time.sleep(chunk_pause)


def test_memory_card_import_is_scanned_per_burst_not_per_file(watch_cfg, worker, library, tmp_path):
    # Given a card of 40 pictures and a watcher that has caught up with an empty library
    card = tmp_path / "card"
    for i in range(40):
        write_jpeg(card / f"IMG_{i:04}.JPG", i)
    w = Watcher(watch_cfg, worker, holder="test-watcher", lease_ttl=30)
    w.start()
    try:
        wait_for(lambda: w.enqueued)
        wait_for(_idle(watch_cfg))
        from core.models import utcnow

        t0 = utcnow()
        dest = library / "2024" / "card"
        dest.mkdir(parents=True)
        # When 20 files are copied in one by one (longer than the settle time), the copy
        # stalls for longer than the settle time, then the other 20 follow
        for i in range(40):
            _copy_slowly(card / f"IMG_{i:04}.JPG", dest / f"IMG_{i:04}.JPG")
            if i == 19:
                time.sleep(4 * watch_cfg.watch_settle)
        # Then every file is catalogued whole, the last ones included
        sizes = {f"IMG_{i:04}.JPG": (card / f"IMG_{i:04}.JPG").stat().st_size for i in range(40)}

        def catalogued() -> bool:
            with session_scope(engine_for(watch_cfg.database_url)) as s:
                rows = s.execute(select(File.path, File.size).where(File.status == "present"))
                return {os.path.basename(p): n for p, n in rows} == sizes

        wait_for(catalogued)
        wait_for(_idle(watch_cfg))
        # And by at most one folder scan per burst, not one per file or per round
        scans = [j for j in jobs_since(watch_cfg, t0) if j[0] == "scan"]
        assert 1 <= len(scans) <= 2, scans
        assert {path for *_, path in scans} <= {str(dest), str(library / "2024")}
    finally:
        w.stop()


def _quiet(w: Watcher):
    def quiet() -> bool:
        return not w.settler.pending

    return quiet


def _caught_up(cfg, broker) -> Watcher:
    """A started watcher whose catch-up scan (its first message) is over."""
    w = Watcher(cfg, broker, holder="test-watcher", lease_ttl=30)
    w.start()
    try:
        wait_for(lambda: broker.messages)
        with session_scope(engine_for(cfg.database_url)) as s:
            jobs.finish_job(s, broker.messages[0][1][0], "done")
    except BaseException:
        w.stop()
        raise
    return w


def test_temp_files_of_editors_and_sync_tools_trigger_no_scan(pg_settings, library):
    # Given a watcher that has caught up (its catch-up scan is over)
    cfg = replace(pg_settings, watch_polling=True, watch_interval=0.1, watch_settle=0.3)
    for folder in ("a", "b", "@eaDir/IMG_1.JPG", "#recycle"):
        (library / folder).mkdir(parents=True)
    broker = RecordingBroker()
    w = _caught_up(cfg, broker)
    try:
        # When editors, browsers, sync tools and the NAS write their working files in b ...
        for name in (
            "b/~$notes.docx",
            "b/.~lock.notes.odt#",
            "b/IMG_7.JPG.part",
            "b/IMG_7.JPG.crdownload",
            "b/IMG_7.JPG.tmp",
            "b/IMG_7.JPG.!sync",
            "@eaDir/IMG_1.JPG/SYNOFILE_THUMB_XL.jpg",
            "#recycle/old.jpg",
        ):
            write_bytes(library / name, b"partial")
        os.remove(library / "b" / "IMG_7.JPG.tmp")
        # ... and Syncthing finishes a file in a by renaming its temp file
        tmp = library / "a" / ".syncthing.IMG_9.JPG.tmp"
        write_bytes(tmp, b"whole")
        os.rename(tmp, library / "a" / "IMG_9.JPG")
        # Then only a, where a picture arrived, is scanned
        wait_for(lambda: len(broker.messages) > 1)
        wait_for(_quiet(w))
        w.tick(time.monotonic() + 60)  # anything still held back would be due by now
        with session_scope(engine_for(cfg.database_url)) as s:
            paths = [s.get(Job, args[0]).path for _, args in broker.messages[1:]]
        assert paths == [str(library / "a")]
    finally:
        w.stop()


def test_changes_still_settling_at_shutdown_are_enqueued(pg_settings, library):
    # Given a watcher with a long settle time that has caught up
    cfg = replace(pg_settings, watch_polling=True, watch_interval=0.1, watch_settle=30)
    broker = RecordingBroker()
    w = Watcher(cfg, broker, holder="test-watcher", lease_ttl=30)
    w.start()
    stopped = False
    try:
        wait_for(lambda: broker.messages)
        with session_scope(engine_for(cfg.database_url)) as s:
            jobs.finish_job(s, broker.messages[0][1][0], "done")
        # When a file arrives and the watcher is stopped (SIGTERM) before it settles
        write_jpeg(library / "new" / "IMG_1.JPG", 1)
        wait_for(lambda: w.settler.pending)
        w.stop()
        stopped = True
        # Then its folder's scan is enqueued rather than forgotten
        with session_scope(engine_for(cfg.database_url)) as s:
            paths = [s.get(Job, args[0]).path for _, args in broker.messages[1:]]
        assert paths == [str(library / "new")]
    finally:
        if not stopped:
            w.stop()


def test_a_move_from_a_working_file_scans_only_where_it_landed(pg_settings, library):
    # Polling matches files by inode: a deleted b/x.tmp whose inode is reused by a new
    # a/IMG_9.JPG looks like a move from b to a (seen under load in the test above)
    from watchdog.events import FileMovedEvent

    for folder in ("a", "b"):
        (library / folder).mkdir()
    write_bytes(library / "a" / "IMG_9.JPG", b"whole")
    w = Watcher(pg_settings, RecordingBroker(), holder="test-watcher", lease_ttl=30)
    w.on_event(
        FileMovedEvent(str(library / "b" / "IMG_7.JPG.tmp"), str(library / "a" / "IMG_9.JPG"))
    )
    due = w.settler.due(time.monotonic() + 3600)
    assert scan_targets(due, w.roots) == {str(library): [str(library / "a")]}


class _BrokerAway(RecordingBroker):
    """A broker that refuses the next ``failures`` messages (Redis restarting)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def enqueue(self, message, delay=None):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        return super().enqueue(message, delay)


def test_a_change_whose_scan_could_not_be_sent_is_sent_next_round(pg_settings, library):
    # Given a watcher that has caught up, and a broker that is away for a moment
    cfg = replace(pg_settings, watch_polling=True, watch_interval=0.1, watch_settle=0.3)
    (library / "a").mkdir()
    broker = _BrokerAway()
    w = _caught_up(cfg, broker)
    try:
        # When a picture arrives and the first send of its scan fails (after the job
        # row was committed, and again for the next attempt)
        broker.failures = 2
        write_jpeg(library / "a" / "IMG_1.JPG", 1)
        # Then the change is not dropped: a later round sends the scan of its folder
        wait_for(lambda: len(broker.messages) > 1, timeout=30)
        with session_scope(engine_for(cfg.database_url)) as s:
            sent = [s.get(Job, args[0]) for _, args in broker.messages[1:]]
            assert {j.path for j in sent} == {str(library / "a")}
            # one job for the folder, whatever the number of attempts
            assert len({j.id for j in sent}) == 1
    finally:
        w.stop()


def _folder_scan(cfg, folder: Path, *, running: bool) -> str:
    from workers.watcher import enqueue_folder_scan

    with session_scope(engine_for(cfg.database_url)) as s:
        job_id, created = enqueue_folder_scan(s, None, str(cfg.library_roots[0]), str(folder))
        assert created
        if running:
            jobs.mark_running(s, job_id)
    return job_id


def _job(cfg, job_id: str) -> tuple[str, str, int]:
    with session_scope(engine_for(cfg.database_url)) as s:
        j = s.get(Job, job_id)
        return j.state, j.phase, j.total


def test_a_folder_scan_waits_for_an_earlier_scan_of_that_folder(pg_settings, worker, library):
    # Given three new pictures in a folder, and a scan of it running (the watcher's scan
    # of a folder still being copied into)
    card = library / "2024" / "card"
    for i in range(3):
        write_jpeg(card / f"IMG_{i}.JPG", i)
    first = _folder_scan(pg_settings, card, running=True)
    # When the folder settles and its second scan is sent
    second = _folder_scan(pg_settings, card, running=False)
    jobs.enqueue(worker, "scan_plan", second)
    # Then it waits, planning nothing, while the first is running
    time.sleep(3 * jobs.WAIT_BEHIND_MS / 1000)
    assert _job(pg_settings, second) == ("queued", "plan", 0)
    # And once the first is over, it plans and reads the folder: no file is read by both
    with session_scope(engine_for(pg_settings.database_url)) as s:
        jobs.finish_job(s, first, "done")
    wait_for(lambda: _job(pg_settings, second)[0] == "done")
    assert _job(pg_settings, second)[2] == 3


def test_a_folder_scan_does_not_wait_for_a_scan_of_the_whole_library(pg_settings, worker, library):
    # Given a scan of the whole library running (a nightly scan may take hours)
    write_jpeg(library / "old" / "IMG_0.JPG", 0)
    with session_scope(engine_for(pg_settings.database_url)) as s:
        root = jobs.get_or_create_root(s, str(library))
        nightly, _ = jobs.start_job(s, "scan", root=root, trigger="schedule")
        jobs.mark_running(s, nightly.id)
        nightly_id = nightly.id
    # When a folder changes and its scan is sent
    card = library / "2024" / "card"
    write_jpeg(card / "IMG_1.JPG", 1)
    scan = _folder_scan(pg_settings, card, running=False)
    jobs.enqueue(worker, "scan_plan", scan)
    # Then it runs at once, as before, while the nightly scan goes on
    wait_for(lambda: _job(pg_settings, scan)[0] == "done")
    assert _job(pg_settings, scan)[2] == 1
    assert _job(pg_settings, nightly_id)[0] == "running"


def test_a_watcher_takes_the_watch_of_a_killed_process_at_once(pg_settings, library):
    import socket
    import subprocess
    import sys

    from sqlalchemy import delete

    from core import leases
    from core.models import Lease
    from core.paths import path_key

    cfg = replace(pg_settings, watch_polling=True, watch_interval=0.1, watch_settle=0.2)
    # Given the watch lease of a process on this machine that was killed (not expired)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = f"{socket.gethostname()}:{gone.stdout.strip()}"
    with session_scope(engine_for(cfg.database_url)) as s:
        assert leases.acquire(s, f"watch:{path_key(str(library))}", dead, 600)
    # And one of a process that is alive, or of another machine, on a second library
    w = Watcher(cfg, RecordingBroker(), holder="host-new:1", lease_ttl=30)
    try:
        # When a new watcher starts, Then it watches at once
        assert w.renew() == [str(library)]
    finally:
        w.observer.unschedule_all()
    # While the lease of a live process, or another machine's, is left to it
    for holder in (f"{socket.gethostname()}:{os.getpid()}", "other-host:1"):
        with session_scope(engine_for(cfg.database_url)) as s:
            s.execute(delete(Lease))
            assert leases.acquire(s, f"watch:{path_key(str(library))}", holder, 600)
        w = Watcher(cfg, RecordingBroker(), holder="host-new:2", lease_ttl=30)
        try:
            assert w.renew() == [], holder
        finally:
            w.observer.unschedule_all()
