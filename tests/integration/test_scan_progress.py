"""A scan's counters: each file counts once, however many phases read it; and a
cancelled scan stops reading, and counting, within about a second."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from core.config import Settings
from core.db import session_scope
from core.models import File, Job
from tests.factories import planned_scan, run_phase, write_bytes, write_jpeg


def _denied(monkeypatch, name: str) -> None:
    """``name`` cannot be opened, by the catalog phase nor the hashing phases (a
    permission taken away: we run as root here, so chmod 000 would not stop the read)."""
    from core import catalog
    from core.media import inspect

    real = inspect.open_regular

    def open_regular(path, *args, **kwargs):
        if path.endswith(name):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(inspect, "open_regular", open_regular)
    monkeypatch.setattr(catalog, "open_regular", open_regular)


def test_a_file_that_fails_in_every_phase_counts_once(
    embedded_settings: Settings, library: Path, monkeypatch
) -> None:
    from twinlens import run_scan

    # Given a cataloged picture
    old = write_jpeg(library / "old.JPG", 1)
    run_scan(embedded_settings, str(library))
    # And a new folder with an unreadable file of the picture's size (so that its quick
    # digest and its full hash are asked for too) and a readable one
    write_bytes(library / "perm" / "P1.JPG", b"\0" * old.stat().st_size)
    write_jpeg(library / "perm" / "P2.JPG", 2)
    _denied(monkeypatch, "P1.JPG")
    # When the folder is scanned
    job = run_scan(embedded_settings, str(library / "perm"))["job"]
    # Then the unreadable file is named once and counted once, and each of the two files
    # once in the total and done, though the first was tried in three phases
    assert [e["path"] for e in job["errors"]] == ["perm/P1.JPG"]
    assert (job["state"], job["total"], job["done"], job["failed"]) == ("done", 2, 2, 1)


def _cancel_after(monkeypatch, target: str, n: int, job_id: str, reads: list[str]) -> None:
    """Patch catalog.``target`` (the function a batch reads each file with) to record each
    read and cancel the job, from another session, after the ``n``-th."""
    from core import catalog, jobs
    from workers import runtime

    real = getattr(catalog, target)

    def reading(*args, **kwargs):
        reads.append(str(args[0] if target == "inspect_file" else args[0].path))
        out = real(*args, **kwargs)
        if len(reads) == n:
            with session_scope(runtime.engine()) as other:
                jobs.cancel_job(other, job_id)
        return out

    monkeypatch.setattr(catalog, target, reading)
    monkeypatch.setattr(catalog, "STOP_CHECK_SECONDS", 0.0, raising=False)  # every file


def _counters(job_id: str) -> tuple[str, int, int, int]:
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job.state, job.done, job.failed, job.bytes_read


# Cancelled while it reads its second file; and after its last one, as it writes
@pytest.mark.parametrize("cancelled_after", [2, 5])
def test_a_cancel_stops_a_catalog_batch_between_files_and_its_counting(
    embedded_settings: Settings, library: Path, monkeypatch, cancelled_after: int
) -> None:
    from twinlens import run_scan
    from workers import runtime

    # Given a scan planned with one batch of five files
    for i in range(5):
        write_bytes(library / f"f{i}.txt", b"x" * (10 + i))
    job_id = planned_scan(embedded_settings, library)
    # When the scan is cancelled while the batch reads one of them
    reads: list[str] = []
    _cancel_after(monkeypatch, "inspect_file", cancelled_after, job_id, reads)
    run_phase(embedded_settings, job_id)
    # Then the batch reads no further file, and the cancelled job counts nothing more
    assert len(reads) == cancelled_after
    assert _counters(job_id) == ("cancelled", 0, 0, 0)
    # And what it read is written, each row whole; the files it did not reach have none
    with session_scope(runtime.engine()) as s:
        rows = {Path(f.path).name: f for f in s.query(File)}
    assert sorted(rows) == sorted(Path(p).name for p in reads)
    assert all(f.quick and f.status == "present" for f in rows.values())
    # And the next scan reads the rest
    monkeypatch.undo()
    report = run_scan(embedded_settings, str(library))
    assert report["job"]["summary"]["to_read"] == 5 - cancelled_after
    assert len(report["files"]) == 5


def test_a_cancel_stops_a_hashing_batch_between_files(
    embedded_settings: Settings, library: Path, monkeypatch
) -> None:
    from twinlens import run_scan
    from workers import runtime

    # Given four cataloged files of one size, with neither digest (an older catalog)
    for i in range(4):
        write_bytes(library / f"f{i}.bin", bytes([i]) * 100)
    run_scan(embedded_settings, str(library))
    with session_scope(runtime.engine()) as s:
        s.query(File).update({File.quick: None, File.sha256: None, File.sha1: None})
    # And a scan in its quick phase: a new file of that size brings them in
    write_bytes(library / "new.bin", b"n" * 100)
    job_id = planned_scan(embedded_settings, library)
    assert run_phase(embedded_settings, job_id) == "quick"
    state, done, *_ = _counters(job_id)
    # When it is cancelled while the batch digests its second file
    reads: list[str] = []
    _cancel_after(monkeypatch, "_digest_row", 2, job_id, reads)
    run_phase(embedded_settings, job_id)
    # Then the batch reads no further file and the job's counters stay as they were
    assert len(reads) == 2
    assert _counters(job_id)[:2] == ("cancelled", done)
    # And the two files it digested keep their digests, the others have none yet
    with session_scope(runtime.engine()) as s:
        quick = {Path(f.path).name: f.quick for f in s.query(File) if f.path.endswith(".bin")}
    assert {n for n, q in quick.items() if q and n != "new.bin"} == {Path(p).name for p in reads}
