"""The catalog scan in the embedded default (SQLite + in-process broker), end to end
through `run_scan` as `twinlens scan` calls it."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from tests.factories import planned_scan, write_bytes, write_jpeg, write_png
from twinlens import run_scan


def by_path(report: dict) -> dict[str, dict]:
    return {f["path"]: f for f in report["files"]}


@pytest.fixture
def mixed_library(library: Path) -> Path:
    write_jpeg(library / "2023" / "a.jpg", 1, taken=datetime(2023, 10, 6, 12, 0, 1), make="Canon")
    write_jpeg(library / "2023" / "b.jpg", 2)
    write_png(library / "png" / "c.png", 3)
    payload = os.urandom(50_000)
    write_bytes(library / "video" / "clip.mov", payload)
    write_bytes(library / "backup" / "clip-copy.mov", payload)  # byte copy: same size
    write_bytes(
        library / "video" / "other.mp4", payload[:-1] + bytes([payload[-1] ^ 1])
    )  # same size, last byte differs
    write_bytes(library / "unique.bin", os.urandom(12_345))  # a size no other file has
    write_bytes(library / "empty.jpg", b"")
    good = (library / "2023" / "a.jpg").read_bytes()
    write_bytes(library / "broken" / "truncated.jpg", good[: len(good) // 2])
    write_bytes(library / "broken" / "notaphoto.jpg", b"hello, this is text" * 10)
    write_bytes(
        Path(os.fsdecode(os.fsencode(str(library)) + b"/caf\xe9.jpg")),
        (library / "2023" / "b.jpg").read_bytes(),
    )
    os.symlink("loop", library / "loop")  # a symlink pointing at itself
    return library


def test_scan_reports_every_file_with_kind_hashes_and_errors(embedded_settings, mixed_library):
    # When a fresh library is scanned
    report = run_scan(embedded_settings, str(mixed_library))
    files = by_path(report)

    # Then the job finished and every regular file is listed once
    assert report["job"]["state"] == "done"
    assert len(files) == 11
    assert files["2023/a.jpg"]["kind"] == "image"
    assert files["png/c.png"]["kind"] == "image"
    assert files["video/clip.mov"]["kind"] == "video"

    # Images are read in full anyway, so they always carry a content hash and a pHash
    for p in ("2023/a.jpg", "2023/b.jpg", "png/c.png"):
        assert files[p]["sha256"] and len(files[p]["sha256"]) == 64
        assert files[p]["phash"] and len(files[p]["phash"]) == 16
    assert files["2023/a.jpg"]["taken_at"].startswith("2023-10-06T12:00:01")

    # Byte copies share a hash; the same-size file differing in its last byte does not
    assert files["video/clip.mov"]["sha256"] == files["backup/clip-copy.mov"]["sha256"] is not None
    assert (
        files["video/other.mp4"]["sha256"] is None
    )  # ruled out by the tail digest, never fully read
    # A file whose size nobody shares needs no content hash
    assert files["unique.bin"]["sha256"] is None

    # Bad input: readable reasons, and the scan still completed
    assert "zero-byte" in files["empty.jpg"]["error"]
    assert "truncated" in files["broken/truncated.jpg"]["error"].lower()
    assert files["broken/notaphoto.jpg"]["error"]
    errors = {e["path"]: e["error"] for e in report["job"]["errors"]}
    assert "symlink loop" in errors["loop"]

    # A name that is not UTF-8 round-trips losslessly (surrogate escapes, not replacement)
    weird = os.fsdecode(b"caf\xe9.jpg")
    assert weird in files
    assert files[weird]["sha256"] == files["2023/b.jpg"]["sha256"]


def test_unchanged_rescan_reads_nothing(embedded_settings, mixed_library):
    run_scan(embedded_settings, str(mixed_library))
    again = run_scan(embedded_settings, str(mixed_library))
    assert again["job"]["state"] == "done"
    assert again["job"]["bytes_read"] == 0
    assert again["job"]["summary"]["to_read"] == 0
    assert again["job"]["summary"]["unchanged"] == 11  # every regular file except the loop


def test_moved_file_keeps_hashes_without_reread_and_deleted_is_missing(
    embedded_settings, mixed_library
):
    first = by_path(run_scan(embedded_settings, str(mixed_library)))
    os.rename(mixed_library / "2023" / "a.jpg", mixed_library / "png" / "a-renamed.jpg")
    os.remove(mixed_library / "unique.bin")

    report = run_scan(embedded_settings, str(mixed_library))
    files = by_path(report)
    assert report["job"]["summary"]["moved"] == 1
    assert report["job"]["summary"]["missing"] == 1
    assert report["job"]["bytes_read"] == 0
    assert files["png/a-renamed.jpg"]["sha256"] == first["2023/a.jpg"]["sha256"]
    assert "2023/a.jpg" not in files and "unique.bin" not in files


def test_changed_file_is_reread(embedded_settings, mixed_library):
    first = by_path(run_scan(embedded_settings, str(mixed_library)))
    write_jpeg(mixed_library / "2023" / "b.jpg", 99, size=(330, 250))
    files = by_path(run_scan(embedded_settings, str(mixed_library)))
    assert files["2023/b.jpg"]["sha256"] != first["2023/b.jpg"]["sha256"]
    assert files["2023/b.jpg"]["phash"] != first["2023/b.jpg"]["phash"]


def test_new_same_size_twin_hashes_the_old_file(embedded_settings, library):
    # Given a non-image whose size was unique at the first scan (so it has no hash)
    data = os.urandom(20_000)
    write_bytes(library / "old.mov", data)
    first = by_path(run_scan(embedded_settings, str(library)))
    assert first["old.mov"]["sha256"] is None
    # When a byte copy arrives
    write_bytes(library / "new" / "copy.mov", data)
    files = by_path(run_scan(embedded_settings, str(library)))
    # Then both are hashed (quick digest, then full hash) and equal
    assert files["old.mov"]["sha256"] == files["new/copy.mov"]["sha256"] is not None


def test_a_copy_in_another_root_hashes_the_old_file_there(embedded_settings, tmp_path):
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import File
    from workers import runtime

    # Given a video in a backup root whose size was unique when it was scanned
    backup, photos = tmp_path / "backup", tmp_path / "photos"
    data = os.urandom(20_000)
    write_bytes(backup / "old.mov", data)
    assert run_scan(embedded_settings, str(backup))["job"]["state"] == "done"
    # When a byte copy arrives in the photo root and that root is scanned
    write_bytes(photos / "copy.mov", data)
    report = run_scan(embedded_settings, str(photos))
    # Then the backup's file is read where it is (not refused as outside this root),
    # both are hashed alike, and nothing is reported as failed
    assert report["job"]["state"] == "done" and report["job"]["errors"] == []
    assert report["job"]["failed"] == 0
    with session_scope(runtime.engine()) as s:
        shas = {os.path.basename(f.path): f.sha256 for f in s.scalars(select(File))}
    assert shas["old.mov"] == shas["copy.mov"] is not None


def test_a_scan_is_seen_running_while_it_walks(embedded_settings, library, monkeypatch):
    from core import catalog, jobs
    from core.db import migrate, session_scope
    from core.models import Job
    from workers import runtime

    # Given a scan about to be planned
    write_jpeg(library / "a.jpg", 1)
    migrate(embedded_settings.database_url)
    runtime.configure(embedded_settings)
    with session_scope(runtime.engine()) as s:
        root = jobs.get_or_create_root(s, str(library))
        job_id = jobs.start_job(s, "scan", root=root)[0].id
    # When another process looks at it during the walk (the watcher, dedup, a cancel)
    seen = []
    real_walk = catalog.walk

    def walk(*args, **kwargs):
        with session_scope(runtime.engine()) as other:
            seen.append(other.get(Job, job_id).state)
        return real_walk(*args, **kwargs)

    monkeypatch.setattr(catalog, "walk", walk)
    with session_scope(runtime.engine()) as s:
        catalog.plan_scan(s, job_id, embedded_settings)
    # Then it sees the scan running, not still queued
    assert seen == ["running"]


def test_walk_reports_unlistable_folder(monkeypatch, tmp_path):
    from core import catalog

    (tmp_path / "ok").mkdir()
    (tmp_path / "secret").mkdir()
    write_bytes(tmp_path / "ok" / "x.bin", b"x")
    real = os.scandir

    def scandir(path):
        if str(path).endswith("secret"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(catalog.os, "scandir", scandir)
    result = catalog.walk(str(tmp_path))
    assert [e.path for e in result.entries] == [str(tmp_path / "ok" / "x.bin")]
    assert result.errors == [(str(tmp_path / "secret"), "cannot list folder: Permission denied")]


def test_file_vanishing_between_listing_and_reading(embedded_settings, library):
    from core import catalog, jobs
    from core.db import session_scope
    from workers import runtime

    write_jpeg(library / "gone.jpg", 5)
    write_jpeg(library / "stays.jpg", 6)
    job_id = planned_scan(embedded_settings, library)
    os.remove(library / "gone.jpg")  # vanishes after the listing
    with session_scope(runtime.engine()) as s:
        counted, complete = catalog.process_batch(s, job_id, 0, embedded_settings)
    assert counted and complete
    with session_scope(runtime.engine()) as s:
        errs = {os.path.basename(e.path): e.error for e in jobs.job_errors(s, job_id)}
        assert errs == {"gone.jpg": "file vanished before it could be read"}
        # A redelivered batch counts nothing twice (and still says the phase is complete)
        assert catalog.process_batch(s, job_id, 0, embedded_settings) == (False, True)
        view = jobs.job_view(s.get(jobs.Job, job_id))
        assert (view["done"], view["failed"], view["total"]) == (2, 1, 2)


def test_starting_a_scan_twice_returns_the_running_job(embedded_settings, library):
    from core import jobs
    from core.db import migrate, session_scope
    from workers import runtime

    migrate(embedded_settings.database_url)
    runtime.configure(embedded_settings)
    with session_scope(runtime.engine()) as s:
        root = jobs.get_or_create_root(s, str(library))
        first, created1 = jobs.start_job(s, "scan", root=root)
        second, created2 = jobs.start_job(s, "scan", root=root)
    assert created1 and not created2 and first.id == second.id


def test_cancelled_job_stops_counting(embedded_settings, library):
    from core import catalog, jobs
    from core.db import session_scope
    from workers import runtime

    for i in range(20):
        write_jpeg(library / f"p{i}.jpg", i)
    job_id = planned_scan(embedded_settings, library)
    with session_scope(runtime.engine()) as s:
        assert catalog.process_batch(s, job_id, 0, embedded_settings) == (True, False)
        cancelled = jobs.cancel_job(s, job_id)
        assert cancelled.state == "cancelled" and cancelled.finished_at is not None
    with session_scope(runtime.engine()) as s:
        # The remaining batches see the state and do nothing; no new scan phase starts
        assert catalog.process_batch(s, job_id, 1, embedded_settings) == (False, False)
        assert catalog.advance(s, job_id, "catalog", embedded_settings) is None
        view = jobs.job_view(s.get(jobs.Job, job_id))
        assert view["state"] == "cancelled" and view["done"] == 8 and view["total"] == 20
        # And a new scan of the root can start
        root = s.get(jobs.Root, s.get(jobs.Job, job_id).root_id)
        again, created = jobs.start_job(s, "scan", root=root)
        assert created and again.id != job_id


def test_a_scan_without_progress_for_too_long_is_superseded(embedded_settings, library):
    """A job whose messages were lost (broker restarted without persistence) must not be
    handed to every later request forever."""
    from datetime import timedelta

    from core import jobs
    from core.db import migrate, session_scope
    from workers import runtime

    migrate(embedded_settings.database_url)
    runtime.configure(embedded_settings)
    with session_scope(runtime.engine()) as s:
        root = jobs.get_or_create_root(s, str(library))
        lost, _ = jobs.start_job(s, "scan", root=root)
        # Fresh: a second request gets the same job
        same, created = jobs.start_job(s, "scan", root=root, stale_seconds=3600)
        assert same.id == lost.id and not created
        # Silent for longer than the limit: failed with a reason, and a new job starts
        lost.updated_at = lost.updated_at - timedelta(hours=2)
        s.flush()
        fresh, created = jobs.start_job(s, "scan", root=root, stale_seconds=3600)
        assert created and fresh.id != lost.id
        s.refresh(lost)
        assert lost.state == "failed" and "presumed lost" in lost.error
