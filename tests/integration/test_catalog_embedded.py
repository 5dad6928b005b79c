"""The catalog scan in the embedded default (SQLite + in-process broker), end to end
through `run_scan` as `twinlens scan` calls it."""

from __future__ import annotations

import errno
import json
import os
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.factories import embedded_worker_lease, planned_scan, write_bytes, write_jpeg, write_png
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


def test_a_new_file_of_a_hashed_pairs_size_with_other_ends_is_not_read_in_full(
    embedded_settings, mixed_library
):
    # Given a scanned library whose two byte-copied clips are hashed
    first = by_path(run_scan(embedded_settings, str(mixed_library)))
    assert first["video/clip.mov"]["sha256"] is not None
    # When a file of their size arrives whose last bytes differ from theirs
    payload = (mixed_library / "video" / "clip.mov").read_bytes()
    write_bytes(mixed_library / "video" / "later.mp4", payload[:-1] + bytes([payload[-1] ^ 2]))
    report = run_scan(embedded_settings, str(mixed_library))
    # Then its quick digest rules it out: it is not read in full, nor given a hash
    assert by_path(report)["video/later.mp4"]["sha256"] is None
    assert report["job"]["bytes_read"] < len(payload)


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
    assert report["job"]["summary"]["to_read"] == 0
    assert report["job"]["bytes_read"] <= 8192  # its first and last 4 KiB, to tell a move
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
    real_walk = catalog.walk_folders

    def walk_folders(*args, **kwargs):
        with session_scope(runtime.engine()) as other:
            seen.append(other.get(Job, job_id).state)
        yield from real_walk(*args, **kwargs)

    monkeypatch.setattr(catalog, "walk_folders", walk_folders)
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


def test_a_folder_scan_leaves_the_rest_of_the_library_alone(embedded_settings, library):
    # Given a scanned library of two folders
    write_jpeg(library / "keep" / "A.JPG", 1)
    write_jpeg(library / "new" / "B.JPG", 2)
    run_scan(embedded_settings, str(library))
    # When one folder is scanned (as the watcher does on every change)
    sub = run_scan(embedded_settings, str(library / "new"))
    # Then the other folder's files are still present (the report is the folder's)
    assert sub["job"]["summary"]["missing"] == 0
    assert set(by_path(sub)) == {"new/B.JPG"} and sub["library_files"] == 2
    assert {n for n, f in _rows().items() if f.status == "present"} == {"A.JPG", "B.JPG"}


def test_nas_thumbnails_trash_and_os_litter_are_not_cataloged(embedded_settings, library):
    # Given a picture, Synology's thumbnail of it, a file in the NAS recycle bin, and
    # macOS's resource fork beside it
    write_jpeg(library / "IMG_1.JPG", 1)
    write_jpeg(library / "@eaDir" / "IMG_1.JPG" / "SYNOFILE_THUMB_XL.jpg", 1, size=(160, 120))
    write_jpeg(library / "#recycle" / "old.jpg", 1)
    write_bytes(library / "._IMG_1.JPG", b"\0\5\26\7" + bytes(4000))
    # When scanned
    report = run_scan(embedded_settings, str(library))
    # Then only the picture is cataloged, and nothing is a duplicate of it
    assert set(by_path(report)) == {"IMG_1.JPG"}
    assert report["job"]["summary"]["skipped_ignored"] == 3
    assert report["duplicates"] == []


def test_a_file_that_comes_back_unchanged_is_present_again(embedded_settings, library, tmp_path):
    write_jpeg(library / "a.jpg", 1)
    write_jpeg(library / "b.jpg", 2)
    run_scan(embedded_settings, str(library))
    # Given a file moved out of the library and scanned as missing
    os.rename(library / "b.jpg", tmp_path / "b.jpg")
    assert "b.jpg" not in by_path(run_scan(embedded_settings, str(library)))
    # When it comes back as it was
    os.rename(tmp_path / "b.jpg", library / "b.jpg")
    report = run_scan(embedded_settings, str(library))
    # Then it is present again, without being read
    assert "b.jpg" in by_path(report)
    assert report["job"]["summary"]["revived"] == 1 and report["job"]["bytes_read"] == 0


def test_an_edit_in_place_of_the_same_size_is_read_again(embedded_settings, library):
    pic = write_jpeg(library / "a.jpg", 1)
    before = by_path(run_scan(embedded_settings, str(library)))["a.jpg"]
    # Given one byte of the file changed in place, its size the same, its mtime later
    st = os.stat(pic)
    data = bytearray(pic.read_bytes())
    data[-3] ^= 0xFF
    with open(pic, "r+b") as f:
        f.write(data)
    os.utime(pic, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    # When rescanned, Then it is read again and its hash follows the content
    report = run_scan(embedded_settings, str(library))
    assert report["job"]["summary"]["to_read"] == 1
    assert by_path(report)["a.jpg"]["sha256"] != before["sha256"]


def test_a_third_copy_of_a_hashed_video_is_hashed(embedded_settings, library):
    # Given two byte copies of a video, scanned and hashed
    data = os.urandom(30_000)
    write_bytes(library / "a.mov", data)
    write_bytes(library / "b.mov", data)
    first = by_path(run_scan(embedded_settings, str(library)))
    assert first["a.mov"]["sha256"] == first["b.mov"]["sha256"] is not None
    # When a third copy arrives
    write_bytes(library / "later" / "c.mov", data)
    report = run_scan(embedded_settings, str(library))
    # Then it is hashed too and joins their exact group
    assert by_path(report)["later/c.mov"]["sha256"] == first["a.mov"]["sha256"]
    [group] = report["duplicates"]
    assert {m["path"] for m in group["members"]} == {"a.mov", "b.mov", "later/c.mov"}


def test_a_renamed_file_rewritten_meanwhile_is_not_taken_for_a_move(embedded_settings, library):
    write_jpeg(library / "a.jpg", 1, size=(320, 240))
    first = by_path(run_scan(embedded_settings, str(library)))["a.jpg"]
    # Given the file renamed, then rewritten in place (same inode) with another picture
    os.rename(library / "a.jpg", library / "b.jpg")
    write_jpeg(library / "b.jpg", 7, size=(400, 300))
    # When rescanned
    report = run_scan(embedded_settings, str(library))
    # Then b.jpg is a new file with its own hashes, and a.jpg is gone
    summary = report["job"]["summary"]
    assert (summary["moved"], summary["missing"]) == (0, 1)
    assert by_path(report)["b.jpg"]["sha256"] != first["sha256"]


def _tiff(path: Path, seed: int) -> bytes:
    """An uncompressed TIFF: pictures of one size are files of one size."""
    import io

    from tests.factories import picture

    out = io.BytesIO()
    picture(seed, (96, 64)).save(out, "TIFF")
    write_bytes(path, out.getvalue())
    return out.getvalue()


def test_a_new_file_in_the_inode_of_a_deleted_one_is_not_taken_for_a_move(
    embedded_settings, library
):
    import hashlib

    # Given a picture and its byte copy in a backup, cataloged
    kept = library / "keep" / "DSC_0001.tif"
    _tiff(kept, 1)
    write_bytes(library / "backup" / "DSC_0001.tif", kept.read_bytes())
    run_scan(embedded_settings, str(library))
    st = kept.stat()
    # When it is deleted and another shot of the same size and mtime takes its inode (a
    # burst frame copied with its card's 2 s mtime; done here by rewriting the inode in
    # place and renaming it, which the catalog sees the same way)
    other = _tiff(library / "elsewhere.tif", 2)
    (library / "elsewhere.tif").unlink()
    assert len(other) == st.st_size
    with open(kept, "r+b") as fh:
        fh.write(other)
    os.utime(kept, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(kept, library / "keep" / "DSC_0002.tif")
    report = run_scan(embedded_settings, str(library))
    # Then the new file is read for what it is, not given the deleted file's hashes
    summary = report["job"]["summary"]
    assert (summary["moved"], summary["missing"], summary["to_read"]) == (0, 1, 1)
    files = by_path(report)
    assert files["keep/DSC_0002.tif"]["sha256"] == hashlib.sha256(other).hexdigest()
    # And it is nobody's byte copy: the backup keeps no exact duplicate
    assert not [g for g in report["duplicates"] if g["type"] == "exact"]


def test_a_moved_large_raw_is_not_read_again(embedded_settings, library, samples):
    import shutil

    # Given a RAW too large to read into memory (LibRaw reads it by its path), cataloged
    (library / "card").mkdir()
    shutil.copyfile(samples / "imagemeta" / "CRW.CRW", library / "card" / "IMG_0001.CRW")
    first = by_path(run_scan(embedded_settings, str(library)))["card/IMG_0001.CRW"]
    assert first["phash"] and (library / "card" / "IMG_0001.CRW").stat().st_size > 1 << 20
    # When it is moved to another folder
    (library / "2008").mkdir()
    os.rename(library / "card" / "IMG_0001.CRW", library / "2008" / "IMG_0001.CRW")
    report = run_scan(embedded_settings, str(library))
    # Then it is a move, told by its first and last 4 KiB, not a new file read in full
    summary = report["job"]["summary"]
    assert (summary["moved"], summary["to_read"]) == (1, 0)
    assert report["job"]["bytes_read"] <= 8192
    assert by_path(report)["2008/IMG_0001.CRW"]["phash"] == first["phash"]


def test_a_share_mounted_again_with_a_new_device_number_is_not_read_again(
    embedded_settings, mixed_library
):
    from sqlalchemy import select, update

    from core.catalog import int64
    from core.db import session_scope
    from core.models import File
    from workers import runtime

    run_scan(embedded_settings, str(mixed_library))
    # Given the share mounted again after a reboot: every file the same, its device
    # number new (here: the rows are given the old number the share had)
    with session_scope(runtime.engine()) as s:
        s.execute(update(File).values(device=File.device + 7))
    os.rename(mixed_library / "2023" / "a.jpg", mixed_library / "png" / "a.jpg")
    # When rescanned
    report = run_scan(embedded_settings, str(mixed_library))
    # Then nothing is read again: unchanged files by size, mtime and inode, the renamed
    # one a move; and the rows hold the device the files are on now
    summary = report["job"]["summary"]
    assert (summary["unchanged"], summary["moved"], summary["to_read"]) == (10, 1, 0)
    assert report["job"]["bytes_read"] <= 8192
    with session_scope(runtime.engine()) as s:
        devices = set(s.scalars(select(File.device).where(File.status == "present")))
    assert devices == {int64(mixed_library.stat().st_dev)}


def test_a_copy_whose_full_hash_failed_is_hashed_by_the_next_scan(
    embedded_settings, library, monkeypatch
):
    from core import catalog

    # Given a video and its byte copy, the copy's read failing while it is hashed (an
    # I/O error on the share)
    data = os.urandom(50_000)
    write_bytes(library / "clip.mov", data)
    write_bytes(library / "backup" / "clip.mov", data)
    hash_stream = catalog.hash_stream

    def failing(fh, *args, **kwargs):
        if os.readlink(f"/proc/self/fd/{fh.fileno()}").endswith("backup/clip.mov"):
            raise OSError(errno.EIO, "Input/output error")
        return hash_stream(fh, *args, **kwargs)

    monkeypatch.setattr(catalog, "hash_stream", failing)
    first = run_scan(embedded_settings, str(library))
    # Then the scan says so, on the job and on the file
    errors = {e["path"]: e["error"] for e in first["job"]["errors"]}
    assert "input/output error" in errors["backup/clip.mov"].lower()
    assert "input/output error" in by_path(first)["backup/clip.mov"]["error"].lower()
    assert first["duplicates"] == []
    # When the share is healthy again and the library rescanned (nothing changed on disk)
    monkeypatch.setattr(catalog, "hash_stream", hash_stream)
    report = run_scan(embedded_settings, str(library))
    # Then the copy is read again and found
    files = by_path(report)
    assert files["backup/clip.mov"]["sha256"] == files["clip.mov"]["sha256"] is not None
    assert files["backup/clip.mov"]["error"] is None
    [group] = report["duplicates"]
    assert {m["path"] for m in group["members"]} == {"clip.mov", "backup/clip.mov"}


def test_a_read_that_failed_keeps_what_was_known_and_is_tried_again(
    embedded_settings, library, monkeypatch
):
    from core import catalog
    from core.media import inspect

    # Given a picture and its byte copy, cataloged as duplicates
    write_jpeg(library / "a.jpg", 1)
    write_bytes(library / "backup" / "a.jpg", (library / "a.jpg").read_bytes())
    before = by_path(run_scan(embedded_settings, str(library)))
    open_regular = inspect.open_regular

    def denied(path, *args, **kwargs):  # a permission taken away (we run as root here)
        if path.endswith(("backup/a.jpg", "new.jpg")):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return open_regular(path, *args, **kwargs)

    # When a full rescan cannot read the copy, nor a file that arrived meanwhile
    write_jpeg(library / "new.jpg", 2)
    monkeypatch.setattr(inspect, "open_regular", denied)
    monkeypatch.setattr(catalog, "open_regular", denied)  # its hashing phase too
    failed = run_scan(embedded_settings, str(library), full=True)
    # Then both are named, and the copy keeps what the catalog knew of it: its hashes,
    # so it is still found as a copy (not the one to keep: it has an error)
    files = by_path(failed)
    assert "permission denied" in files["backup/a.jpg"]["error"].lower()
    assert "permission denied" in files["new.jpg"]["error"].lower()
    assert files["backup/a.jpg"]["sha256"] == before["backup/a.jpg"]["sha256"] is not None
    assert [g["keep"] for g in failed["duplicates"] if g["type"] == "exact"] == ["a.jpg"]
    # And when the permission is given back, an ordinary rescan (their stat unchanged:
    # a chmod changes no mtime) reads both again
    monkeypatch.setattr(inspect, "open_regular", open_regular)
    monkeypatch.setattr(catalog, "open_regular", open_regular)
    report = run_scan(embedded_settings, str(library))
    assert report["job"]["summary"]["to_read"] == 2
    files = by_path(report)
    assert files["backup/a.jpg"]["error"] is None and files["new.jpg"]["error"] is None
    assert files["new.jpg"]["sha256"] and files["new.jpg"]["phash"]
    # And then nothing more: a third scan reads nothing
    assert run_scan(embedded_settings, str(library))["job"]["summary"]["to_read"] == 0


def _rows(**where):
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import File
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        return {os.path.basename(f.path): f for f in s.scalars(select(File))}


def _set_rows(values, paths=None):
    from sqlalchemy import update

    from core.db import session_scope
    from core.models import File
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        q = update(File).values(**values)
        if paths is not None:
            q = q.where(File.path.in_([str(p) for p in paths]))
        s.execute(q)


def test_a_renamed_folder_of_files_untouched_for_long_is_not_read_at_all(
    embedded_settings, library, monkeypatch
):
    from core import catalog

    # Given files whose inodes had not changed for long when they were cataloged (here:
    # the slack moved by two hours, as if they had been copied in two hours before)
    for i in range(3):
        write_jpeg(library / "2019" / f"IMG_{i}.jpg", i)
    run_scan(embedded_settings, str(library))
    monkeypatch.setattr(catalog, "CTIME_SLACK_S", -7200.0)
    # When their folder is renamed (the files themselves untouched: same ctime)
    os.rename(library / "2019", library / "2019 Holiday")
    report = run_scan(embedded_settings, str(library))
    # Then they are moves, and not a byte is read to tell
    summary = report["job"]["summary"]
    assert (summary["moved"], summary["to_read"], summary["missing"]) == (3, 0, 0)
    assert report["job"]["bytes_read"] == 0


def test_a_file_cataloged_without_a_quick_digest_still_moves_without_a_read(
    embedded_settings, library
):
    # Given a file cataloged by an older version, which kept no quick digest of it
    write_jpeg(library / "a" / "IMG_1.jpg", 1)
    run_scan(embedded_settings, str(library))
    _set_rows({"quick": None})
    # When it is renamed (its ctime now new)
    os.rename(library / "a" / "IMG_1.jpg", library / "a" / "IMG_0001.jpg")
    report = run_scan(embedded_settings, str(library))
    # Then it is a move by its device and inode, as before digests: not read in full
    summary = report["job"]["summary"]
    assert (summary["moved"], summary["to_read"]) == (1, 0)
    assert report["job"]["bytes_read"] == 0


def test_hard_links_moved_together_keep_a_row_each_and_leave_no_ghost(embedded_settings, library):
    # Given two names of one picture (hard links) in a folder
    write_jpeg(library / "a" / "x.jpg", 1)
    os.link(library / "a" / "x.jpg", library / "a" / "y.jpg")
    run_scan(embedded_settings, str(library))
    before = _rows()
    # When the folder is renamed
    os.rename(library / "a", library / "b")
    report = run_scan(embedded_settings, str(library))
    # Then both are moves, each row under its own name, and no row stays at a/
    summary = report["job"]["summary"]
    assert (summary["moved"], summary["missing"], summary["to_read"]) == (2, 0, 0)
    after = _rows()
    assert {n: r.id for n, r in after.items()} == {n: r.id for n, r in before.items()}
    assert {r.path for r in after.values()} == {str(library / "b" / "x.jpg"),
                                                 str(library / "b" / "y.jpg")}  # fmt: skip
    assert all(r.status == "present" for r in after.values())


def test_a_file_that_keeps_failing_is_tried_less_often(embedded_settings, library, monkeypatch):
    from datetime import timedelta

    from core import catalog
    from core.media import inspect

    # Given a file whose every read fails (bad sectors under it)
    write_jpeg(library / "bad.jpg", 1)
    open_regular = inspect.open_regular

    def eio(path, *args, **kwargs):
        if path.endswith("bad.jpg"):
            raise OSError(errno.EIO, "Input/output error", path)
        return open_regular(path, *args, **kwargs)

    monkeypatch.setattr(inspect, "open_regular", eio)
    monkeypatch.setattr(catalog, "open_regular", eio)
    to_read = [run_scan(embedded_settings, str(library))["job"]["summary"]["to_read"]]
    # When it is scanned again and again
    for _ in range(2):
        to_read.append(run_scan(embedded_settings, str(library))["job"]["summary"]["to_read"])
    # Then the scan after the first failure tries it again, the next one leaves it be
    assert to_read == [1, 1, 0]
    assert _rows()["bad.jpg"].read_failures == 2
    # And a day later it is tried again
    _set_rows({"updated_at": _rows()["bad.jpg"].updated_at - timedelta(days=1, minutes=1)})
    assert run_scan(embedded_settings, str(library))["job"]["summary"]["to_read"] == 1


class _StatFails:
    """A directory entry whose stat fails as on a NAS that answers EIO."""

    def __init__(self, entry: os.DirEntry) -> None:
        self._entry = entry
        self.name, self.path = entry.name, entry.path

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()

    def is_dir(self, follow_symlinks: bool = True) -> bool:
        return self._entry.is_dir(follow_symlinks=follow_symlinks)

    def stat(self, follow_symlinks: bool = True):
        raise OSError(errno.EIO, "Input/output error", self.path)


def test_a_file_whose_stat_fails_keeps_its_row(embedded_settings, library, monkeypatch):
    import contextlib

    from core import catalog

    write_jpeg(library / "a.jpg", 1)
    write_jpeg(library / "b.jpg", 2)
    run_scan(embedded_settings, str(library))
    # Given the NAS answers EIO when b.jpg is stat'ed
    real = os.scandir

    @contextlib.contextmanager
    def flaky(folder):
        with real(folder) as it:
            yield [_StatFails(e) if e.name == "b.jpg" else e for e in it]

    # os is shared: only the catalog's walk of the library sees the flaky listing
    monkeypatch.setattr(catalog, "os", SimpleNamespace(**{**vars(os), "scandir": flaky}))
    # When the library is rescanned
    report = run_scan(embedded_settings, str(library))
    # Then the scan says so and b.jpg is kept, not marked missing
    summary = report["job"]["summary"]
    assert (summary["missing"], summary["kept_unlisted"]) == (0, 1)
    assert {e["path"]: e["error"] for e in report["job"]["errors"]} == {
        "b.jpg": "cannot stat: Input/output error"
    }
    assert "b.jpg" in by_path(report)


def test_the_nightly_scan_of_an_unchanged_library_runs_a_full_dedup_pass(
    embedded_settings, library
):
    from core.db import session_scope
    from core.models import Job
    from workers import runtime

    write_jpeg(library / "a.jpg", 1)
    run_scan(embedded_settings, str(library))
    # Given nothing changed since, when the scheduled scan runs
    report = run_scan(embedded_settings, str(library), trigger="schedule")
    # Then it still starts its passes, and the dedup pass is a full one (only a full pass
    # notices a file group dissolved entirely)
    assert sorted((p["kind"], p["state"]) for p in report["passes"]) == [
        ("dedup", "done"),
        ("group", "done"),
    ]
    dedup = next(p for p in report["passes"] if p["kind"] == "dedup")
    with session_scope(runtime.engine()) as s:
        assert s.get(Job, dedup["id"]).full is True
    # While a plain rescan of the unchanged library starts none
    assert run_scan(embedded_settings, str(library))["passes"] == []


def test_the_report_names_the_suggested_keeper(embedded_settings, library):
    # Given one picture twice: a downsized re-encode that sorts first, and the full size
    write_jpeg(library / "a_small.jpg", 5, size=(320, 240), quality=70)
    write_jpeg(library / "b_big.jpg", 5, size=(640, 480))
    # When scanned
    [group] = run_scan(embedded_settings, str(library))["duplicates"]
    # Then the report suggests keeping the full-size copy
    assert group["type"] == "perceptual" and group["keep"] == "b_big.jpg"


def test_the_embedded_watcher_and_scheduler_run_their_own_workers(embedded_settings, library):
    from core import jobs
    from core.db import migrate, session_scope
    from core.models import Job
    from workers import runtime

    # Given the embedded default (in-process broker): no worker process exists
    write_jpeg(library / "a.jpg", 1)
    migrate(embedded_settings.database_url)
    broker, worker = runtime.sending_broker(embedded_settings)
    try:
        # When the watcher or the scheduler sends a scan
        with session_scope(runtime.engine()) as s:
            root = jobs.get_or_create_root(s, str(library))
            job_id = jobs.start_job(s, "scan", root=root, trigger="schedule")[0].id
        jobs.enqueue(broker, "scan_plan", job_id)
        # Then it is carried out in this process
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with session_scope(runtime.engine()) as s:
                if s.get(Job, job_id).state == "done":
                    break
            time.sleep(0.1)
        with session_scope(runtime.engine()) as s:
            assert s.get(Job, job_id).state == "done"
    finally:
        if worker is not None:
            worker.stop()


def test_a_copy_arriving_in_a_folder_meets_its_twin_elsewhere_in_the_root(
    embedded_settings, library
):
    # Given a video scanned with the library (its size unique then: never hashed)
    data = os.urandom(20_000)
    write_bytes(library / "old" / "a.mov", data)
    assert by_path(run_scan(embedded_settings, str(library)))["old/a.mov"]["sha256"] is None
    # When a byte copy lands in another folder and only that folder is scanned (as the
    # watcher does)
    write_bytes(library / "new" / "b.mov", data)
    report = run_scan(embedded_settings, str(library / "new"))
    # Then both are hashed and are one exact group (the report, the folder's, lists the
    # group, the twin elsewhere with it)
    files = by_path(report)
    assert _rows()["a.mov"].sha256 == files["new/b.mov"]["sha256"] is not None
    [group] = report["duplicates"]
    assert {m["path"] for m in group["members"]} == {"old/a.mov", "new/b.mov"}


def test_batches_hold_at_most_batch_bytes(embedded_settings, library):
    import json
    from dataclasses import replace

    from sqlalchemy import select

    from core.db import session_scope
    from core.models import JobBatch
    from workers import runtime

    # Given five files of 1,000 bytes, and batches of at most 2,500 bytes (so that a
    # batch of big videos ends within a message's time limit)
    for i in range(5):
        write_bytes(library / f"f{i}.bin", bytes([i]) * 1000)
    cfg = replace(embedded_settings, batch_bytes=2500, batch_files=128)
    # When the scan is planned, Then its batches hold 2, 2 and 1 files
    job_id = planned_scan(cfg, library)
    with session_scope(runtime.engine()) as s:
        payloads = s.scalars(
            select(JobBatch.payload).where(JobBatch.job_id == job_id).order_by(JobBatch.seq)
        ).all()
    assert [len(json.loads(p)) for p in payloads] == [2, 2, 1]


def test_a_batch_is_claimed_once(embedded_settings, library):
    from sqlalchemy import select

    from core import jobs
    from core.db import session_scope
    from core.models import JobBatch
    from workers import runtime

    # Given a planned batch delivered twice (a redelivery racing the first delivery)
    write_bytes(library / "a.bin", b"x" * 10)
    job_id = planned_scan(embedded_settings, library)
    with session_scope(runtime.engine()) as s:
        seq = s.scalars(select(JobBatch.seq).where(JobBatch.job_id == job_id)).first()
        # Then only the first claim counts
        assert jobs.claim_batch(s, job_id, seq) is True
        assert jobs.claim_batch(s, job_id, seq) is False


def test_a_redelivered_plan_sends_the_batches_the_first_delivery_did_not(
    embedded_settings, library, monkeypatch
):
    from core import catalog
    from core.db import session_scope
    from workers import actors, runtime

    # Given a scan planned (its batches committed) by a worker that died before it sent
    # their messages
    for i in range(3):
        write_jpeg(library / f"IMG_{i}.JPG", i)
    job_id = planned_scan(embedded_settings, library)
    sent = []
    monkeypatch.setattr(actors, "_send", lambda actor, *args: sent.append((actor, *args)))
    # When the plan message is delivered again
    actors.scan_plan.fn(job_id)
    # Then the batches are sent now
    with session_scope(runtime.engine()) as s:
        queued = catalog.queued_batches(s, job_id)
    assert queued and sent == [("scan_batch", job_id, seq) for seq in queued]


# ``batch`` 1: the walk's folders are compared with the catalog one at a time, so x is
# settled before the folder scan rewrites its rows: what the scan wrote is still found
@pytest.mark.parametrize("batch", [None, 1])
def test_a_folder_scan_during_a_long_walk_is_not_undone(
    embedded_settings, library, monkeypatch, batch
):
    from sqlalchemy import select

    from core import catalog, jobs
    from core.db import session_scope
    from core.models import File
    from tests.factories import run_phase
    from workers import runtime

    # Given a scanned library with a folder x
    write_jpeg(library / "a" / "1.jpg", 1)
    write_jpeg(library / "x" / "old.jpg", 2)
    run_scan(embedded_settings, str(library))
    real_walk = catalog.walk_folders

    def walk_then_the_watcher_acts(top, *args):  # type: ignore[no-untyped-def]
        yield from real_walk(top, *args)
        if top == str(library):
            # While the whole root was being walked (past x already), photos changed in
            # x and the watcher's folder scan of x ran to the end
            write_jpeg(library / "x" / "new.jpg", 3)
            os.remove(library / "x" / "old.jpg")
            with session_scope(runtime.engine()) as s:
                root = jobs.get_or_create_root(s, str(library))
                folder, _ = jobs.start_job(
                    s, "scan", root=root, path=str(library / "x"), exclusive=False
                )
                catalog.plan_scan(s, folder.id, embedded_settings)
            run_phase(embedded_settings, folder.id)

    monkeypatch.setattr(catalog, "walk_folders", walk_then_the_watcher_acts)
    if batch is not None:
        monkeypatch.setattr(catalog, "DIFF_BATCH_FILES", batch)
        monkeypatch.setattr(catalog, "DIFF_BATCH_FOLDERS", batch)
    # When the full scan that began before them plans from its older walk
    job_id = planned_scan(embedded_settings, library)
    run_phase(embedded_settings, job_id)
    # Then what the folder scan found stands: the new photo is there, the deleted one gone
    with session_scope(runtime.engine()) as s:
        status = {os.path.basename(p): st for p, st in s.execute(select(File.path, File.status))}
        summary = json.loads(s.get(jobs.Job, job_id).summary)
    assert status == {"1.jpg": "present", "old.jpg": "missing", "new.jpg": "present"}
    assert summary["newer_elsewhere"] == 2 and summary["missing"] == 0


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.timeout(120)
def test_a_scan_left_by_a_killed_process_does_not_hold_up_the_next(embedded_settings, library):
    from core import jobs
    from core.db import migrate, session_scope
    from core.models import Job
    from workers import runtime

    # Given a scan left running by an embedded process that was killed (SIGKILL, the
    # power cut: no clean-up), its worker lease not yet expired
    write_jpeg(library / "a.jpg", 1)
    migrate(embedded_settings.database_url)
    runtime.configure(embedded_settings)
    with session_scope(runtime.engine()) as s:
        root = jobs.get_or_create_root(s, str(library))
        left, _ = jobs.start_job(s, "scan", root=root)
        jobs.mark_running(s, left.id)
        jobs._created_here.discard(left.id)  # the killed process's, not this one's
        s.add(embedded_worker_lease(_dead_pid()))
    # When the next scan starts (it would follow the old one for an hour before)
    report = run_scan(embedded_settings, str(library))
    # Then it runs at once, and the one left behind is failed as interrupted
    assert report["job"]["state"] == "done" and report["job"]["id"] != left.id
    with session_scope(runtime.engine()) as s:
        old = s.get(Job, left.id)
        assert (old.state, old.error) == ("failed", jobs.INTERRUPTED)


def test_only_a_live_embedded_process_keeps_its_jobs(embedded_settings):
    import os
    import socket
    from datetime import timedelta

    from core import leases
    from core.db import migrate, session_scope
    from core.models import Lease, utcnow
    from workers import runtime

    migrate(embedded_settings.database_url)
    runtime.configure(embedded_settings)
    here = socket.gethostname()
    me = f"{here}:{os.getpid()}"

    def alive_besides_me(holder: str, expires_in: float = 30) -> bool:
        with session_scope(runtime.engine()) as s:
            s.query(Lease).delete()
            s.add(
                Lease(
                    name=leases.EMBEDDED_WORKERS + holder,
                    holder=holder,
                    expires_at=utcnow() + timedelta(seconds=expires_in),
                )
            )
            s.flush()
            return leases.others_alive(s, leases.EMBEDDED_WORKERS, me)

    assert alive_besides_me(f"{here}:{os.getppid()}")  # another live process here
    assert alive_besides_me("nas-2:4242")  # another machine's: its lease tells
    assert not alive_besides_me(me)  # this process itself
    # a live process here whose renewal is held up (a long SQLite write) is still alive,
    # but not one whose lease is long overdue (its pid may belong to another process now)
    assert alive_besides_me(f"{here}:{os.getppid()}", expires_in=-1)
    assert not alive_besides_me(f"{here}:{os.getppid()}", expires_in=-600)
    assert not alive_besides_me(f"{here}:{_dead_pid()}")  # killed, lease not yet expired
    assert not alive_besides_me("nas-2:4242", expires_in=-1)  # expired
    # And a running embedded worker holds such a lease, released when it stops
    broker = runtime.install_broker(embedded_settings)
    worker = runtime.start_worker(broker, 1)
    with session_scope(runtime.engine()) as s:
        s.query(Lease).delete()
    worker.alive._renew()
    with session_scope(runtime.engine()) as s:
        assert leases.others_alive(s, leases.EMBEDDED_WORKERS, "someone-else:1")
    worker.stop()
    with session_scope(runtime.engine()) as s:
        assert not leases.others_alive(s, leases.EMBEDDED_WORKERS, "someone-else:1")


def test_twinlens_own_data_inside_the_library_is_not_cataloged(tmp_path, library):
    from dataclasses import replace

    from core.config import load_settings

    # Given a library that holds Twinlens's data folder (`twinlens up ~`), with a
    # thumbnail of one of its pictures in the cache
    data = library / ".local" / "share" / "twinlens"
    cfg = load_settings(
        {},
        data_dir=data,
        database_url=f"sqlite:///{data / 'twinlens.db'}",
        library_roots=(library,),
    )
    write_jpeg(library / "2024" / "a.jpg", 1, size=(640, 480))
    write_jpeg(data / "thumbs" / "ab" / "a-250.jpg", 1, size=(250, 188))
    # When it is scanned
    report = run_scan(replace(cfg, batch_files=8), str(library))
    # Then the database and the cache are not in the catalog, and no thumbnail is a
    # duplicate of its picture
    assert set(by_path(report)) == {"2024/a.jpg"}
    assert report["duplicates"] == []
    assert report["job"]["summary"]["skipped_twinlens_data"] == 1


def test_an_embedded_scan_against_postgres_leaves_the_workers_jobs_alone(pg_settings, library):
    from dataclasses import replace

    from core import jobs
    from core.db import session_scope
    from core.models import Job
    from workers import runtime

    # Given a scan that Redis workers are running on the shared PostgreSQL (they hold no
    # embedded lease)
    runtime.configure(pg_settings)
    with session_scope(runtime.engine()) as s:
        job, _ = jobs.start_job(s, "scan", root=jobs.get_or_create_root(s, str(library)))
        jobs.mark_running(s, job.id)
    jobs._created_here.discard(job.id)  # the workers' job, not this process's
    # When a one-off process with the in-process broker starts against that database
    runtime.configure(replace(pg_settings, broker_url="memory://"))
    try:
        failed = runtime.fail_orphans()
    finally:
        runtime.configure(pg_settings)
    # Then it fails none of them
    assert failed == []
    with session_scope(runtime.engine()) as s:
        assert s.get(Job, job.id).state == "running"


def test_two_plan_messages_for_one_scan_plan_it_once(embedded_settings, library, monkeypatch):
    from sqlalchemy import func, select

    from core import catalog, jobs
    from core.db import session_scope
    from core.models import Job, JobError
    from workers import runtime

    # Given a scanned library whose walk now reports a folder it cannot list
    write_jpeg(library / "a.jpg", 1)
    run_scan(embedded_settings, str(library))
    with session_scope(runtime.engine()) as s:
        job_id = jobs.start_job(s, "scan", root=jobs.get_or_create_root(s, str(library)))[0].id
    real_walk = catalog.walk_folders
    second: list[bool] = []

    def walk_folders(top, ignore, skip_dirs, tick, result):  # type: ignore[no-untyped-def]
        yield from real_walk(top, ignore, skip_dirs, tick, result)
        result.errors.append((str(library / "locked"), "Permission denied"))
        if not second:
            # While this walk runs, a re-sent plan message is handled in full elsewhere
            second.append(True)
            with session_scope(runtime.engine()) as other:
                second.append(catalog.plan_scan(other, job_id, embedded_settings))

    monkeypatch.setattr(catalog, "walk_folders", walk_folders)
    # When the first message's walk ends
    with session_scope(runtime.engine()) as s:
        first = catalog.plan_scan(s, job_id, embedded_settings)
    # Then only one of the two planned it: the walk's error is recorded once
    assert (second[1], first) == (True, False)
    with session_scope(runtime.engine()) as s:
        errors = s.scalar(select(func.count()).where(JobError.job_id == job_id))
        job = s.get(Job, job_id)
        assert (errors, job.failed, job.phase) == (1, 1, "catalog")


def test_a_scan_cancelled_during_its_walk_marks_nothing_missing(
    embedded_settings, library, monkeypatch
):
    from sqlalchemy import select

    from core import catalog, jobs
    from core.db import session_scope
    from core.models import File
    from workers import runtime

    # Given a scanned library from which a photo is then deleted
    write_jpeg(library / "a.jpg", 1)
    write_jpeg(library / "b.jpg", 2)
    run_scan(embedded_settings, str(library))
    os.remove(library / "b.jpg")
    with session_scope(runtime.engine()) as s:
        job_id = jobs.start_job(s, "scan", root=jobs.get_or_create_root(s, str(library)))[0].id
    real_walk = catalog.walk_folders

    def walk_folders(*args, **kwargs):  # type: ignore[no-untyped-def]
        with session_scope(runtime.engine()) as other:
            jobs.cancel_job(other, job_id)  # the user cancels while the walk runs
        yield from real_walk(*args, **kwargs)

    monkeypatch.setattr(catalog, "walk_folders", walk_folders)
    # When the walk ends
    with session_scope(runtime.engine()) as s:
        assert catalog.plan_scan(s, job_id, embedded_settings) is False
    # Then the cancelled scan changed nothing
    with session_scope(runtime.engine()) as s:
        status = {os.path.basename(p): st for p, st in s.execute(select(File.path, File.status))}
        assert s.get(jobs.Job, job_id).state == "cancelled"
    assert status == {"a.jpg": "present", "b.jpg": "present"}


def _slow_listing(monkeypatch, seconds: float, during=None):  # type: ignore[no-untyped-def]
    """Make every folder's listing take ``seconds`` (a slow share); ``during(n)`` runs
    before the n-th listing (from 1). Returns the folders listed so far."""
    from core import catalog

    listed: list[str] = []
    real = catalog._listing

    def listing(folder, result):  # type: ignore[no-untyped-def]
        listed.append(folder)
        if during is not None:
            during(len(listed))
        time.sleep(seconds)
        yield from real(folder, result)

    monkeypatch.setattr(catalog, "_listing", listing)
    return listed


@pytest.mark.parametrize("backend", ["embedded_settings", "pg_settings"])
def test_a_walk_longer_than_the_stale_limit_is_not_superseded(
    backend, library, monkeypatch, request
):
    from core import catalog, jobs
    from core.db import migrate, session_scope
    from core.models import Job
    from workers import runtime

    settings = request.getfixturevalue(backend)
    # Given a scan walking a slow share (ten folders, 0.2 s each) whose walk outlasts the
    # stale limit (here 1 s; an hour by default), beating every 0.1 s
    for i in range(10):
        write_jpeg(library / f"d{i}" / "a.jpg", i)
    migrate(settings.database_url)
    runtime.configure(settings)
    with session_scope(runtime.engine()) as s:
        root = jobs.get_or_create_root(s, str(library))
        job_id = jobs.start_job(s, "scan", root=root)[0].id
    monkeypatch.setattr(catalog, "HEARTBEAT_SECONDS", 0.1)
    handed: list[tuple[str, bool]] = []

    def another_starter(n: int) -> None:
        if n == 8:  # 1.4 s into the walk: a Scan now, the watcher, the nightly scan
            with session_scope(runtime.engine()) as other:
                job, created = jobs.start_job(
                    other, "scan", root=other.get(jobs.Root, root.id), stale_seconds=1
                )
                handed.append((job.id, created))

    _slow_listing(monkeypatch, 0.2, another_starter)
    # When the walk ends
    with session_scope(runtime.engine()) as s:
        planned = catalog.plan_scan(s, job_id, settings)
    # Then the starter was handed the walking scan, which kept its walk
    assert handed == [(job_id, False)]
    assert planned is True
    with session_scope(runtime.engine()) as s:
        job = s.get(Job, job_id)
        assert (job.state, job.phase, job.total) == ("running", "catalog", 10)


def test_a_scan_cancelled_during_its_walk_stops_walking(embedded_settings, library, monkeypatch):
    from core import catalog, jobs
    from core.db import migrate, session_scope
    from core.models import Job
    from workers import runtime

    # Given a scan walking a slow share of twenty folders
    for i in range(20):
        write_jpeg(library / f"d{i}" / "a.jpg", i)
    migrate(embedded_settings.database_url)
    runtime.configure(embedded_settings)
    with session_scope(runtime.engine()) as s:
        job_id = jobs.start_job(s, "scan", root=jobs.get_or_create_root(s, str(library)))[0].id
    monkeypatch.setattr(catalog, "HEARTBEAT_SECONDS", 0.05)

    def cancel(n: int) -> None:
        if n == 3:  # the user cancels while the walk runs
            with session_scope(runtime.engine()) as other:
                jobs.cancel_job(other, job_id)

    listed = _slow_listing(monkeypatch, 0.1, cancel)
    # When the walk goes on
    with session_scope(runtime.engine()) as s:
        assert catalog.plan_scan(s, job_id, embedded_settings) is False
    # Then it stopped at its next heartbeat instead of walking the whole share
    assert len(listed) <= 4, f"{len(listed)} of 21 folders listed, the cancel came at the 3rd"
    with session_scope(runtime.engine()) as s:
        assert s.get(Job, job_id).state == "cancelled"


def test_a_folder_scans_newer_count_is_its_folders_own(embedded_settings, library, monkeypatch):
    from core import catalog, jobs
    from core.db import session_scope
    from tests.factories import run_phase
    from workers import runtime

    # Given a scanned library with folders x and y
    write_jpeg(library / "x" / "1.jpg", 1)
    write_jpeg(library / "y" / "2.jpg", 2)
    run_scan(embedded_settings, str(library))
    with session_scope(runtime.engine()) as s:
        root = jobs.get_or_create_root(s, str(library))
        job_id = jobs.start_job(s, "scan", root=root, path=str(library / "x"), exclusive=False)[
            0
        ].id
    real_walk = catalog.walk_folders

    def walk_folders(*args, **kwargs):  # type: ignore[no-untyped-def]
        yield from real_walk(*args, **kwargs)
        # While x is walked, a photo appears in y and another scan catalogs it
        write_jpeg(library / "y" / "3.jpg", 3)
        monkeypatch.setattr(catalog, "walk_folders", real_walk)
        with session_scope(runtime.engine()) as s:
            y, _ = jobs.start_job(s, "scan", root=root, path=str(library / "y"), exclusive=False)
            catalog.plan_scan(s, y.id, embedded_settings)
        run_phase(embedded_settings, y.id)

    monkeypatch.setattr(catalog, "walk_folders", walk_folders)
    # When the scan of x plans
    with session_scope(runtime.engine()) as s:
        assert catalog.plan_scan(s, job_id, embedded_settings)
        summary = json.loads(s.get(jobs.Job, job_id).summary)
    # Then y's new row is not counted as news under x
    assert summary["newer_elsewhere"] == 0


def test_scanning_a_folder_then_its_parent_or_back_keeps_one_row_per_file(
    embedded_settings, library
):
    from dataclasses import replace

    from sqlalchemy import func, select

    from core.db import session_scope
    from core.models import File, Root
    from workers import runtime

    # Given no configured roots: `twinlens scan PATH` makes PATH a library of its own
    cfg = replace(embedded_settings, library_roots=())
    write_jpeg(library / "a" / "x.jpg", 1)
    write_jpeg(library / "sub" / "y.jpg", 2)
    # When a folder is scanned, then its parent
    first = run_scan(cfg, str(library / "sub"))
    parent = run_scan(cfg, str(library))
    # Then the parent took the folder's rows over: one root, one row per file, and the
    # folder's file was not read again
    assert first["job"]["state"] == parent["job"]["state"] == "done"
    with session_scope(runtime.engine()) as s:
        assert list(s.scalars(select(Root.path))) == [str(library)]
        assert s.scalar(select(func.count()).select_from(File)) == 2
    assert sorted(f["path"] for f in parent["files"]) == ["a/x.jpg", "sub/y.jpg"]
    assert parent["job"]["bytes_read"] < os.path.getsize(library / "sub" / "y.jpg") + (
        os.path.getsize(library / "a" / "x.jpg")
    )
    # When a photo moves into the folder, the folder is scanned, then the parent again
    os.rename(library / "a" / "x.jpg", library / "sub" / "x.jpg")
    folder = run_scan(cfg, str(library / "sub"))
    again = run_scan(cfg, str(library))
    # Then the folder's scan was one of the parent's folders, and every scan finished
    assert folder["job"]["state"] == again["job"]["state"] == "done"
    with session_scope(runtime.engine()) as s:
        assert list(s.scalars(select(Root.path))) == [str(library)]
        present = set(s.scalars(select(File.path).where(File.status == "present")))
    assert present == {str(library / "sub" / "x.jpg"), str(library / "sub" / "y.jpg")}


def test_a_batch_that_loses_its_claim_keeps_none_of_its_rows(
    embedded_settings, library, monkeypatch
):
    from sqlalchemy import func, select

    from core import catalog, jobs
    from core.db import session_scope
    from core.models import File
    from workers import runtime

    # Given a planned scan of two new photos
    write_jpeg(library / "a.jpg", 1)
    write_jpeg(library / "b.jpg", 2)
    job_id = planned_scan(embedded_settings, library)
    with session_scope(runtime.engine()) as s:
        [seq] = catalog.queued_batches(s, job_id)
    # When its batch runs but another delivery has claimed it meanwhile
    monkeypatch.setattr(jobs, "claim_batch", lambda *a, **k: False)
    with session_scope(runtime.engine()) as s:
        assert catalog.process_batch(s, job_id, seq, embedded_settings) == (False, False)
    # Then nothing of it was kept: the other delivery's rows are the ones that count
    with session_scope(runtime.engine()) as s:
        assert s.scalar(select(func.count()).select_from(File)) == 0


def test_shared_sizes_count_a_hard_link_once_by_its_first_row():
    import numpy as np

    from core import catalog

    def held_twice(rows: list[tuple[int, int, int]]) -> set[int]:
        cols = np.array(rows, dtype=np.int64).reshape(-1, 3)
        return set(catalog._sizes_held_twice(cols[:, 0], cols[:, 1], cols[:, 2]).tolist())

    # Two names of one inode are one file; two inodes of one size are two; empty is none
    assert held_twice([(10, 1, 1), (10, 1, 1), (20, 1, 2), (20, 1, 3), (0, 1, 4), (0, 1, 5)]) == {
        20
    }
    # The same inode number on another device is another file
    assert held_twice([(10, 1, 1), (10, 2, 1)]) == {10}
    # A file seen twice with two sizes (the walk, then a stale row) counts by the first
    assert held_twice([(30, 1, 7), (40, 1, 7), (30, 1, 8)]) == {30}
    assert held_twice([]) == set()
