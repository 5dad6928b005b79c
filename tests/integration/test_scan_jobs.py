"""Which running scan a scan request is handed: only one that covers what was asked."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import jobs
from core.config import Settings
from core.db import engine_for, migrate, session_scope
from core.models import File, Job


def test_a_folder_scan_does_not_stand_in_for_a_scan_of_the_root(
    embedded_settings: Settings, library: Path
) -> None:
    migrate(embedded_settings.database_url)
    with session_scope(engine_for(embedded_settings.database_url)) as s:
        root = jobs.get_or_create_root(s, str(library))
        # Given the watcher's scan of one folder, still queued
        folder, _ = jobs.start_job(
            s, "scan", root=root, path=str(library / "2024"), trigger="watch", exclusive=False
        )
        # When the nightly full scan of the root is asked for
        nightly, created = jobs.start_job(s, "scan", root=root, trigger="schedule")
        # Then it is a new scan of the whole root, not the folder scan handed back
        assert created and nightly.id != folder.id and nightly.path == str(library)
        # And a request for that folder, or one inside it, is handed a scan covering it
        again, created = jobs.start_job(s, "scan", root=root, path=str(library / "2024" / "x"))
        assert not created and again.id == folder.id
        # While a sibling folder is not covered by the folder scan, it is by the root's
        other, created = jobs.start_job(s, "scan", root=root, path=str(library / "2025"))
        assert not created and other.id == nightly.id
        # A folder whose name merely starts like another's is not inside it
        assert not jobs._covers(str(library / "2024"), str(library / "2024-old"))


def test_two_processes_starting_a_scan_at_once_start_one_on_sqlite(
    embedded_settings: Settings, library: Path, monkeypatch
) -> None:
    # Given two starters (the API and the nightly scheduler, say) that both look for an
    # active scan at the same moment: slowed down here so that their looks overlap
    migrate(embedded_settings.database_url)
    engine = engine_for(embedded_settings.database_url)
    with session_scope(engine) as s:
        jobs.get_or_create_root(s, str(library))
    real = jobs.find_active

    def slow_find_active(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = real(*args, **kwargs)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(jobs, "find_active", slow_find_active)
    started: list[tuple[str, bool]] = []

    def start() -> None:
        with session_scope(engine) as s:
            job, created = jobs.start_job(s, "scan", root=jobs.get_or_create_root(s, str(library)))
            started.append((job.id, created))

    # When both start a scan of the library
    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then one scan was created, and the other starter was handed it
    assert sorted(c for _, c in started) == [False, True]
    assert len({j for j, _ in started}) == 1
    with session_scope(engine) as s:
        assert len(s.scalars(select(Job).where(Job.state == "queued")).all()) == 1


# --- a worker killed between its commit and its next message ---------------------------


def _sent(monkeypatch) -> list[tuple]:
    """Messages the actors send, kept here instead of going to a broker."""
    from workers import actors

    sent: list[tuple] = []
    monkeypatch.setattr(actors, "_send", lambda actor, *args: sent.append((actor, *args)))
    return sent


def _at_its_finish(settings: Settings, job_id: str) -> str:
    """A planned scan run through its phases up to its finish, which is not run."""
    from tests.factories import run_phase

    while run_phase(settings, job_id) != "finish":
        pass
    return job_id


def test_a_redelivered_last_batch_moves_the_scan_on(
    embedded_settings: Settings, library: Path, monkeypatch
) -> None:
    from core import catalog
    from tests.factories import planned_scan, write_jpeg
    from workers import actors, runtime

    # Given a scan whose catalog batches all ran, the last one's advance never sent
    # (the worker died after committing it)
    for i in range(3):
        write_jpeg(library / f"p{i}.jpg", i + 1)
    job_id = planned_scan(embedded_settings, library)
    with session_scope(runtime.engine()) as s:
        seqs = catalog.queued_batches(s, job_id)
    sent = _sent(monkeypatch)
    for seq in seqs:
        actors.scan_batch.fn(job_id, seq)
    assert sent[-1] == ("scan_advance", job_id, "catalog")
    sent.clear()
    # When the broker redelivers that last batch
    actors.scan_batch.fn(job_id, seqs[-1])
    # Then it counts nothing again but asks for the advance once more
    assert sent == [("scan_advance", job_id, "catalog")]
    with session_scope(runtime.engine()) as s:
        job = s.get(Job, job_id)
        assert job.done == 3 and job.batches_done == job.batches_total


def test_a_redelivered_finish_sends_the_grouping_and_dedup_it_queued(
    embedded_settings: Settings, library: Path, monkeypatch
) -> None:
    from tests.factories import planned_scan, write_jpeg
    from workers import actors, runtime

    # Given a scan that ran to its finish, which queued grouping and dedup jobs and
    # died before sending their messages
    write_jpeg(library / "a.jpg", 1)
    job_id = _at_its_finish(embedded_settings, planned_scan(embedded_settings, library))
    sent = _sent(monkeypatch)
    actors._kick(job_id)  # the finish
    followers = {a[0]: a[1] for a in sent if a[0] in ("group_run", "dedup_run")}
    assert set(followers) == {"group_run", "dedup_run"}
    sent.clear()
    # When the finishing message is delivered again
    actors.scan_advance.fn(job_id, "finish")
    # Then both queued jobs are sent again (running one twice is safe)
    assert sorted(sent) == sorted(
        [("group_run", followers["group_run"]), ("dedup_run", followers["dedup_run"])]
    )
    # And once they have started, a further redelivery sends nothing
    with session_scope(runtime.engine()) as s:
        for fid in followers.values():
            jobs.mark_running(s, fid)
    sent.clear()
    actors.scan_advance.fn(job_id, "finish")
    assert sent == []


def test_a_folder_given_to_the_cli_is_scanned_in_its_root(
    embedded_settings: Settings, library: Path, tmp_path: Path
) -> None:
    import os
    from dataclasses import replace

    from core.models import Root
    from tests.factories import write_jpeg
    from twinlens import run_scan

    # Given a configured root, reached also through a symlink
    write_jpeg(library / "2024" / "a.jpg", 1)
    link = tmp_path / "via-link"
    os.symlink(library, link)
    cfg = replace(embedded_settings, library_roots=(library,))
    first = run_scan(cfg, str(library))
    # When the CLI is given a folder inside it, by either spelling
    for folder in (library / "2024", link / "2024"):
        again = run_scan(cfg, str(folder))
        # Then it is a scan of that folder in that root: no second root, nothing re-read
        assert again["job"]["state"] == "done" and again["job"]["bytes_read"] == 0
        assert again["library"] == first["library"] == str(library)
    with session_scope(engine_for(cfg.database_url)) as s:
        assert s.query(Root).count() == 1


def test_a_scan_cancelled_as_it_finishes_starts_no_passes(
    embedded_settings: Settings, library: Path, monkeypatch
) -> None:
    from core.grouping import watermark
    from tests.factories import planned_scan, write_jpeg
    from workers import actors, runtime

    write_jpeg(library / "a.jpg", 1)
    job_id = _at_its_finish(embedded_settings, planned_scan(embedded_settings, library))
    sent = _sent(monkeypatch)
    # Given a cancel that lands while the finish looks at what changed
    real = watermark.due

    def cancelled_meanwhile(session, job):
        with session_scope(runtime.engine()) as other:
            jobs.cancel_job(other, job_id)
        return real(session, job)

    monkeypatch.setattr(watermark, "due", cancelled_meanwhile)
    actors._kick(job_id)
    # Then the scan stays cancelled and no grouping or dedup pass is started
    with session_scope(runtime.engine()) as s:
        assert s.get(Job, job_id).state == "cancelled"
        assert s.query(Job).filter(Job.kind.in_(("group", "dedup"))).count() == 0
    assert not [m for m in sent if m[0] in ("group_run", "dedup_run")]


def test_a_scan_reports_only_the_passes_it_started(
    embedded_settings: Settings, library: Path
) -> None:
    from tests.factories import write_jpeg
    from twinlens import run_scan

    write_jpeg(library / "a.jpg", 1)
    first = run_scan(embedded_settings, str(library))
    write_jpeg(library / "b.jpg", 2)
    second = run_scan(embedded_settings, str(library))
    # Each report lists its own grouping and dedup passes, not the later scan's
    ids = [{p["id"] for p in r["passes"]} for r in (first, second)]
    assert len(ids[0]) == len(ids[1]) == 2 and not ids[0] & ids[1]


# --- grouping catches up after a scan that never finished --------------------------------


def _groups(settings: Settings) -> set[frozenset[str]]:
    """The file groups stored, as sets of member file names."""
    import os

    from core.models import GroupMember

    with session_scope(engine_for(settings.database_url)) as s:
        members: dict[str, set[str]] = {}
        for gid, path in s.execute(select(GroupMember.group_id, GroupMember.file_path)):
            members.setdefault(gid, set()).add(os.path.basename(path))
    return {frozenset(m) for m in members.values()}


def test_files_cataloged_by_a_cancelled_scan_are_grouped_by_the_next(
    embedded_settings: Settings, library: Path, monkeypatch
) -> None:
    from datetime import timedelta

    from core.grouping import watermark
    from tests.factories import planned_scan, write_jpeg
    from twinlens import run_scan

    # (no allowance for clock skew: one host, and the scope below is then exact)
    monkeypatch.setattr(watermark, "CLOCK_SLACK", timedelta(0))
    # Given a scanned library, then an edited pair added in a new folder
    write_jpeg(library / "old" / "IMG_0100.JPG", 1)
    write_jpeg(library / "old" / "IMG_E0100.JPG", 2)
    run_scan(embedded_settings, str(library))
    assert _groups(embedded_settings) == {frozenset({"IMG_0100.JPG", "IMG_E0100.JPG"})}
    write_jpeg(library / "new" / "IMG_0200.JPG", 3)
    write_jpeg(library / "new" / "IMG_E0200.JPG", 4)
    # And a scan that cataloged the pair, then was cancelled before its finish (no
    # grouping pass follows it)
    cancelled = _at_its_finish(embedded_settings, planned_scan(embedded_settings, library))
    with session_scope(engine_for(embedded_settings.database_url)) as s:
        assert jobs.cancel_job(s, cancelled).state == "cancelled"  # type: ignore[union-attr]
    # When the next scan runs, which finds every file unchanged
    report = run_scan(embedded_settings, str(library))
    assert report["job"]["state"] == "done" and report["job"]["bytes_read"] == 0
    # Then its grouping pass groups the pair the cancelled scan cataloged
    assert _groups(embedded_settings) == {
        frozenset({"IMG_0100.JPG", "IMG_E0100.JPG"}),
        frozenset({"IMG_0200.JPG", "IMG_E0200.JPG"}),
    }
    # And only the folder changed since the last pass that finished was regrouped
    group_pass = next(p["id"] for p in report["passes"] if p["kind"] == "group")
    with session_scope(engine_for(embedded_settings.database_url)) as s:
        assert json.loads(s.get(Job, group_pass).summary)["folders"] == 1  # type: ignore[union-attr]


def _exact_duplicates(settings: Settings) -> set[frozenset[str]]:
    """The exact duplicate groups stored, as sets of members' folder/name."""
    import os

    from core.models import DuplicateGroup, DuplicateMember

    with session_scope(engine_for(settings.database_url)) as s:
        members: dict[str, set[str]] = {}
        for gid, path in s.execute(
            select(DuplicateMember.group_id, DuplicateMember.file_path)
            .join(DuplicateGroup)
            .where(DuplicateGroup.duplicate_type == "exact")
        ):
            members.setdefault(gid, set()).add("/".join(path.split(os.sep)[-2:]))
    return {frozenset(m) for m in members.values()}


@pytest.mark.parametrize("truncated", [False, True], ids=["intact", "truncated"])
def test_a_copy_left_unhashed_by_a_cancelled_scan_is_found_by_the_next_scan_of_the_library(
    embedded_settings: Settings, library: Path, truncated: bool
) -> None:
    import shutil

    from tests.factories import planned_scan, run_phase, write_bytes
    from twinlens import run_scan

    # Given a scanned library, then a byte copy of one of its videos made elsewhere (a
    # video is not read in full when cataloged: its hash waits for a twin)
    clip = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  " + bytes(range(256)) * 256
    if truncated:  # its media data says 10 MB: cataloged with an error, read in full fine
        clip = clip[:20] + b"\x00\x98\x96\x80mdat" + clip[20:]
    write_bytes(library / "2024" / "IMG_0001.MOV", clip)
    run_scan(embedded_settings, str(library))
    (library / "backup").mkdir()
    shutil.copy2(library / "2024" / "IMG_0001.MOV", library / "backup" / "IMG_0001.MOV")
    # And a scan that cataloged the copy, then was cancelled before it hashed the pair
    job_id = planned_scan(embedded_settings, library)
    assert run_phase(embedded_settings, job_id) in ("quick", "full")
    with session_scope(engine_for(embedded_settings.database_url)) as s:
        assert jobs.cancel_job(s, job_id).state == "cancelled"  # type: ignore[union-attr]
    # When a scan of a folder that holds neither runs, it leaves them to a whole scan
    (library / "other").mkdir()
    run_scan(embedded_settings, str(library / "other"))
    assert _exact_duplicates(embedded_settings) == set()
    # And the next scan of the whole library, which finds both files unchanged
    report = run_scan(embedded_settings, str(library))
    assert report["job"]["state"] == "done"
    # Then it hashes them, and its dedup pass finds the copy
    assert _exact_duplicates(embedded_settings) == {
        frozenset({"2024/IMG_0001.MOV", "backup/IMG_0001.MOV"})
    }
    with session_scope(engine_for(embedded_settings.database_url)) as s:
        from core.models import File

        rows = s.execute(select(File.sha256, File.error)).all()
        assert all(sha is not None for sha, _ in rows)
        assert all(bool(error) == truncated for _, error in rows)  # the case it stands for
    # And a scan after it reads nothing again
    assert run_scan(embedded_settings, str(library))["job"]["bytes_read"] == 0


def _files_by_name(settings: Settings, of: Callable[[File], Any]) -> dict[str, Any]:
    """``of`` each cataloged file's row (its id, path, ...), by the file's name."""
    with session_scope(engine_for(settings.database_url)) as s:
        return {os.path.basename(f.path): of(f) for f in s.scalars(select(File))}


def test_a_renamed_folder_moves_its_rows_on_postgres(pg_settings: Settings, library: Path) -> None:
    from tests.factories import write_jpeg
    from twinlens import run_scan

    # Given a folder of pictures and two names of one of them (a hard link), cataloged
    for i in range(3):
        write_jpeg(library / "2019" / f"IMG_{i}.jpg", i)
    os.link(library / "2019" / "IMG_0.jpg", library / "2019" / "IMG_0 link.jpg")
    run_scan(pg_settings, str(library))
    before = _files_by_name(pg_settings, lambda f: f.id)
    # When the folder is renamed and the library rescanned
    os.rename(library / "2019", library / "2019 Holiday")
    report = run_scan(pg_settings, str(library))
    # Then every row moved with its file, each name to its own row, nothing read again
    summary = report["job"]["summary"]
    assert (summary["moved"], summary["missing"], summary["to_read"]) == (4, 0, 0)
    after = _files_by_name(pg_settings, lambda f: (f.id, f.path, f.status))
    assert {name: row[0] for name, row in after.items()} == before
    assert all(
        path == str(library / "2019 Holiday" / name) and status == "present"
        for name, (_, path, status) in after.items()
    )


def test_a_dedup_pass_cancelled_is_run_by_the_next_scan(
    embedded_settings: Settings, library: Path, monkeypatch
) -> None:
    from core.dedup import service
    from tests.factories import write_bytes, write_jpeg
    from twinlens import run_scan

    # Given two byte copies, scanned by a scan whose dedup pass was cancelled (nothing of
    # it written)
    write_jpeg(library / "a" / "IMG_1.JPG", 1)
    write_bytes(library / "b" / "IMG_1.JPG", (library / "a" / "IMG_1.JPG").read_bytes())
    run_job = service.run_job

    def cancelled(session, job_id, settings, defer=None):
        jobs.cancel_job(session, job_id)
        session.commit()
        return False

    monkeypatch.setattr(service, "run_job", cancelled)
    first = run_scan(embedded_settings, str(library))
    assert {p["kind"]: p["state"] for p in first["passes"]}["dedup"] == "cancelled"
    assert _exact_duplicates(embedded_settings) == set()
    monkeypatch.setattr(service, "run_job", run_job)
    # When the library is scanned again ("Scan now"), every file unchanged
    again = run_scan(embedded_settings, str(library))
    assert again["job"]["bytes_read"] == 0
    # Then that scan runs the dedup pass owed, and the copies are found
    assert {p["kind"]: p["state"] for p in again["passes"]}.get("dedup") == "done"
    assert _exact_duplicates(embedded_settings) == {frozenset({"a/IMG_1.JPG", "b/IMG_1.JPG"})}
    # And a third scan, with nothing owed, starts no pass
    assert run_scan(embedded_settings, str(library))["passes"] == []


def test_a_file_renamed_to_another_extension_is_read_again_on_its_row(
    pg_settings: Settings, library: Path
) -> None:
    from tests.factories import write_jpeg
    from twinlens import run_scan

    # Given a JPEG named .png (mis-named) and a JPEG named .jpg, cataloged
    write_jpeg(library / "a" / "scan.png", 1)
    write_jpeg(library / "a" / "IMG_1.jpg", 2)
    run_scan(pg_settings, str(library))
    before = _files_by_name(pg_settings, lambda f: (f.id, f.warning))
    assert before["scan.png"][1] == "extension .png but content is JPEG"
    assert before["IMG_1.jpg"][1] is None
    # When the user gives each the other's kind of extension, and the library is rescanned
    os.rename(library / "a" / "scan.png", library / "a" / "scan.jpg")
    os.rename(library / "a" / "IMG_1.jpg", library / "a" / "IMG_1.tif")
    report = run_scan(pg_settings, str(library))
    # Then each row moved with its file (its groups and decisions stay with it), and was
    # read again under its new name: the mismatch goes with the old name, and comes with
    # the new one
    summary = report["job"]["summary"]
    assert (summary["moved"], summary["missing"], summary["to_read"]) == (2, 0, 2)
    after = _files_by_name(pg_settings, lambda f: (f.id, f.warning, f.status))
    assert after == {
        "scan.jpg": (before["scan.png"][0], None, "present"),
        "IMG_1.tif": (before["IMG_1.jpg"][0], "extension .tif but content is JPEG", "present"),
    }
    # And a scan after it reads nothing again
    again = run_scan(pg_settings, str(library))["job"]["summary"]
    assert (again["moved"], again["to_read"]) == (0, 0)
