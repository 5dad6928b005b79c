"""A scan always says what failed: the report file lists every failed file; the HTTP
answer lists the first 1,000 and counts them all."""

from __future__ import annotations

from pathlib import Path

import pytest

import api
from core.config import Settings
from tests.integration.test_grouping_api import AUTH, RecordingBroker
from twinlens import run_scan

BROKEN = 1005  # more than an HTTP answer lists


def test_report_lists_every_failed_file_and_the_api_the_first_thousand(
    embedded_settings: Settings, library: Path
) -> None:
    # Given a folder of empty "photos" (a copy that died half-way) and one good file
    for i in range(BROKEN):
        (library / f"IMG_{i:04d}.JPG").write_bytes(b"")
    (library / "fine.txt").write_text("not a photo, not an error")
    # When it is scanned
    report = run_scan(embedded_settings, str(library))
    # Then the report names every one of them, with a reason
    job = report["job"]
    assert job["state"] == "done" and job["failed"] == BROKEN
    assert sorted(e["path"] for e in job["errors"]) == [f"IMG_{i:04d}.JPG" for i in range(BROKEN)]
    assert all(e["error"] for e in job["errors"])
    # And the job's HTTP answer lists the first 1,000 and still counts them all
    app = api.create_app("grouping", {"settings": embedded_settings, "broker": RecordingBroker()})
    answer = app.test_client().get(f"/jobs/{job['id']}", headers=AUTH).get_json()
    assert answer["failed"] == BROKEN and len(answer["errors"]) == 1000


def test_the_report_names_the_passes_and_a_failed_one_fails_the_cli(
    embedded_settings: Settings, library: Path
) -> None:
    import twinlens
    from tests.factories import write_jpeg

    # Given a scan that ran to the end, with its grouping and dedup passes
    write_jpeg(library / "a.jpg", 1)
    rep = run_scan(embedded_settings, str(library))
    assert sorted((p["kind"], p["state"]) for p in rep["passes"]) == [
        ("dedup", "done"),
        ("group", "done"),
    ]
    assert twinlens.scan_ok(rep)
    # When one of the passes had failed (its retries ran out)
    dedup = next(p for p in rep["passes"] if p["kind"] == "dedup")
    dedup.update(state="failed", error="dedup_run failed after 5 retries: OperationalError")
    # Then the CLI exits non-zero and says which pass and why
    assert not twinlens.scan_ok(rep)
    assert "! the dedup pass failed: dedup_run failed after 5 retries" in twinlens._summary_text(
        rep
    )


def test_a_pass_whose_retries_run_out_is_failed_and_fails_the_cli(
    embedded_settings: Settings, library: Path, monkeypatch, capsys
) -> None:
    import twinlens
    from core.dedup import service
    from tests.factories import write_jpeg
    from workers import actors

    # Given a dedup pass that fails every time it runs, with one quick retry
    write_jpeg(library / "a.jpg", 1)

    def disk_on_fire(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service, "find_duplicates", disk_on_fire)
    monkeypatch.setattr(actors, "MAX_RETRIES", 1)
    for option, value in {"min_backoff": 10, "max_backoff": 20}.items():
        monkeypatch.setitem(actors.dedup_run.options, option, value)
    monkeypatch.setattr(twinlens, "load_settings", lambda *a, **kw: embedded_settings)
    monkeypatch.setattr(twinlens, "_terminate_as_interrupt", lambda: None)
    # When `twinlens scan` runs
    code = twinlens.main(["scan", str(library)])
    # Then the pass ends failed with its last error (not "running" for an hour), and the
    # CLI says so and exits 1
    assert code == 1
    out = capsys.readouterr().out
    assert "! the dedup pass failed: dedup_run failed after 1 retries" in out
    assert "RuntimeError: disk on fire" in out


def test_an_interrupted_embedded_scan_does_not_hold_up_the_next(
    embedded_settings: Settings, library: Path
) -> None:
    import twinlens
    from core.db import session_scope
    from core.models import Job
    from tests.factories import planned_scan, write_jpeg
    from workers import runtime

    # Given an embedded scan stopped with Ctrl-C (its in-memory messages are gone)
    write_jpeg(library / "a.jpg", 1)
    job_id = planned_scan(embedded_settings, library)
    twinlens._abandon(runtime.engine(), job_id)
    # Then it is failed with the reason, not left running for an hour
    with session_scope(runtime.engine()) as s:
        job = s.get(Job, job_id)
        assert job.state == "failed" and "interrupted" in (job.error or "")
    # And the next scan runs at once to the end
    rep = run_scan(embedded_settings, str(library))
    assert rep["job"]["id"] != job_id and rep["job"]["state"] == "done"


@pytest.mark.parametrize("other_process_alive", [True, False])
def test_ctrl_c_on_a_scan_that_only_followed_leaves_it_to_its_process(
    embedded_settings: Settings, library: Path, monkeypatch, other_process_alive: bool
) -> None:
    import os

    import twinlens
    from core import jobs
    from core.db import session_scope
    from core.models import Job
    from tests.factories import embedded_worker_lease, planned_scan, write_jpeg
    from workers import runtime

    # Given a scan that another embedded process started and is running (`twinlens up`)
    write_jpeg(library / "a.jpg", 1)
    job_id = planned_scan(embedded_settings, library)
    with session_scope(runtime.engine()) as s:
        s.add(embedded_worker_lease(os.getppid() if other_process_alive else 999_999_999))

    # When `twinlens scan` follows it and is stopped with Ctrl-C
    def interrupted(*_args, **_kw):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(twinlens, "_wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_scan(embedded_settings, str(library))
    # Then the scan is left to the process running it, while it lives
    with session_scope(runtime.engine()) as s:
        state = s.get(Job, job_id).state
    if other_process_alive:
        assert state in jobs.ACTIVE_STATES
    else:
        assert state == "failed"


def _cli(*args: str, data_dir: Path, **kw):
    import subprocess
    import sys

    project = Path(__file__).resolve().parents[2]
    env = {"TWINLENS_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin", "HOME": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, str(project / "twinlens.py"), *args],
        env=env,
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_a_report_that_cannot_be_written_is_refused_before_the_scan(
    library: Path, tmp_path: Path
) -> None:
    proc = _cli("scan", str(library), "--json", "/no/such/folder/r.json", data_dir=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "no such folder" in err
    assert not (tmp_path / "twinlens.db").exists()  # nothing was scanned


def test_sigterm_ends_an_embedded_scan_without_leaving_it_running(
    library: Path, tmp_path: Path
) -> None:
    import signal
    import sqlite3
    import time

    from tests.factories import write_jpeg

    # Given an embedded scan under way (a library that takes a few seconds)
    for i in range(300):
        write_jpeg(library / f"d{i % 5}" / f"p{i}.jpg", i, size=(640, 480))
    proc = _cli("scan", str(library), "--quiet", data_dir=tmp_path)
    db = tmp_path / "twinlens.db"
    deadline = time.time() + 60
    running = False
    while time.time() < deadline and not running:
        time.sleep(0.1)
        if db.exists():
            try:
                with sqlite3.connect(db) as c:
                    running = bool(
                        c.execute("SELECT 1 FROM jobs WHERE state = 'running'").fetchall()
                    )
            except sqlite3.Error:
                pass
    assert running, "the scan never started"
    # When the process is stopped with SIGTERM (systemctl stop, kill)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    # Then it says so, and that the next run goes on from there
    assert proc.returncode == 130
    assert "scan interrupted; what it read is kept" in err, err
    # Then no job is left running for the next run to wait an hour on
    with sqlite3.connect(db) as c:
        states = dict(c.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    assert not states.get("running") and not states.get("queued"), states


def test_scanning_the_parent_of_a_configured_root_is_refused_clearly(
    embedded_settings: Settings, library: Path, monkeypatch, capsys
) -> None:
    from dataclasses import replace

    import twinlens

    # Given a configured root inside a bigger folder
    inner = library / "2019"
    inner.mkdir()
    cfg = replace(embedded_settings, library_roots=(inner,))
    monkeypatch.setattr(twinlens, "load_settings", lambda *a, **kw: cfg)
    monkeypatch.setattr(twinlens, "_terminate_as_interrupt", lambda: None)
    # When the bigger folder is scanned from the command line
    code = twinlens.main(["scan", str(library)])
    # Then it is refused with the way out, and nothing was cataloged
    assert code == 2
    assert f"holds the configured library root {inner}" in capsys.readouterr().err
    assert not (cfg.data_dir / "twinlens.db").exists()
    # While the root itself still scans
    assert twinlens.main(["scan", str(inner)]) == 0


def test_the_summary_counts_what_could_not_be_cataloged_and_escapes_names(
    embedded_settings: Settings, library: Path
) -> None:
    import os

    import twinlens
    from tests.factories import write_jpeg

    # Given a file read with an error, a symlink loop the walk reports (no file row),
    # and a file whose name holds a newline and an escape sequence
    write_jpeg(library / "good.jpg", 1)
    (library / "empty.jpg").write_bytes(b"")
    os.symlink("loop", library / "loop")
    (library / "evil\n  ! fake.jpg\x1b]0;owned\x07.jpg").write_bytes(b"")
    # When the library is scanned and summed up for the terminal
    text = twinlens._summary_text(run_scan(embedded_settings, str(library)))
    # Then the headline counts all three, and no name starts a line or reaches the
    # terminal as a control sequence
    assert "files with errors: 3" in text, text
    assert "\x1b" not in text and "\x07" not in text
    assert not any(line.startswith("  ! fake.jpg") for line in text.splitlines())
    assert "evil\\x0a  ! fake.jpg\\x1b]0;owned\\x07.jpg" in text


def test_a_folder_scan_reports_that_folder_not_the_whole_library(
    embedded_settings: Settings, library: Path
) -> None:
    import twinlens
    from tests.factories import write_bytes, write_jpeg

    # Given a scanned library of three files, two of them byte copies, one in a folder
    write_jpeg(library / "a.jpg", 1)
    write_jpeg(library / "b.jpg", 2)
    write_bytes(library / "perm" / "a-copy.jpg", (library / "a.jpg").read_bytes())
    whole = run_scan(embedded_settings, str(library))
    assert len(whole["files"]) == 3
    # When the folder alone is scanned (a folder of the configured root)
    rep = run_scan(embedded_settings, str(library / "perm"))
    # Then the report is the folder's: its file, and the duplicates it is in, while it
    # still says how many files the library holds
    assert [f["path"] for f in rep["files"]] == ["perm/a-copy.jpg"]
    assert rep["library"] == str(library) and rep["folder"] == "perm"
    assert rep["library_files"] == whole["library_files"] == 3 and whole["folder"] is None
    assert [sorted(m["path"] for m in d["members"]) for d in rep["duplicates"]] == [
        ["a.jpg", "perm/a-copy.jpg"]
    ]
    # And so does the summary
    first = twinlens._summary_text(rep).splitlines()[0]
    assert first.startswith(f"Scanned folder perm of the library {library}: 1 files (1 image)")
    assert first.endswith("(the library holds 3 files)")


def test_the_summary_counts_the_grouping_and_dedup_passes_time(
    embedded_settings: Settings, library: Path
) -> None:
    import twinlens
    from tests.factories import write_jpeg

    # Given a scanned library: its grouping and dedup passes ran after the scan
    write_jpeg(library / "a.jpg", 1)
    rep = run_scan(embedded_settings, str(library))
    assert {p["kind"] for p in rep["passes"]} == {"group", "dedup"}
    assert all(isinstance(p["elapsed_seconds"], float) for p in rep["passes"]), rep["passes"]
    # When they took 5 s and 1 s (side by side), Then the summary's first line says the
    # longer, beside the scan's own time, rather than the scan's alone
    rep["passes"][0]["elapsed_seconds"], rep["passes"][1]["elapsed_seconds"] = 4.96, 1.0
    first = twinlens._summary_text(rep).splitlines()[0]
    assert " s (+ 5.0 s grouping and finding duplicates), " in first, first


def _sums_of(rep: dict) -> dict:
    """The summary's totals worked out from the full report's lists."""
    from collections import Counter

    erred = {f["path"] for f in rep["files"] if f["error"]}
    others = {e["path"] for e in rep["job"]["errors"]} - erred
    return {
        "files": len(rep["files"]),
        "kinds": dict(sorted(Counter(f["kind"] for f in rep["files"]).items())),
        "groups": len(rep["groups"]),
        "duplicates": len(rep["duplicates"]),
        "files_with_errors": len(erred) + len(others),
    }


def test_the_summarys_counts_are_the_reports_for_the_library_and_a_folder(
    embedded_settings: Settings, library: Path
) -> None:
    import os

    from core.report import SUMMARY_ERRORS
    from tests.factories import write_bytes, write_jpeg

    # Given a library with a RAW+JPEG pair, byte copies across folders, broken files in
    # both folders, a symlink loop (a walk error, no file) and a file of no kind
    write_jpeg(library / "IMG_1.JPG", 1)
    write_bytes(library / "IMG_1.CR3", b"not really a raw")
    write_jpeg(library / "b.jpg", 2)
    write_bytes(library / "trip" / "b-copy.jpg", (library / "b.jpg").read_bytes())
    write_bytes(library / "trip" / "notes.txt", b"notes")
    for name in ("empty.jpg", "trip/empty.heic", "trip/cut.jpg"):
        write_bytes(library / name, b"")
    os.symlink("loop", library / "loop")
    # When the library, then the folder, are scanned with the full report
    for path in (library, library / "trip"):
        rep = run_scan(embedded_settings, str(path))
        # Then the summary's counts, by SQL, are the report's lists counted
        assert rep["totals"] == _sums_of(rep), path
        # and the files it names are the report's first files with errors, by path
        listed = {f["path"]: f["error"] for f in rep["files"] if f["error"]}
        named = [(f["path"], f["error"]) for f in rep["file_errors"] if f["path"] in listed]
        assert named == [(p, listed[p]) for p in sorted(listed)[:SUMMARY_ERRORS]], path
        assert len(named) >= 2
    assert rep["totals"]["files"] == 4 and rep["totals"]["duplicates"] == 1


def test_more_files_with_errors_than_the_summary_names_are_counted(
    embedded_settings: Settings, library: Path
) -> None:
    import twinlens
    from core.report import SUMMARY_ERRORS

    # Given more empty "photos" than the summary names
    for i in range(SUMMARY_ERRORS + 3):
        (library / f"IMG_{i:02d}.JPG").write_bytes(b"")
    # When the library is scanned and summed up
    text = twinlens._summary_text(run_scan(embedded_settings, str(library), full_report=False))
    # Then the first ones are named, by path, and the rest counted
    named = [line for line in text.splitlines() if line.startswith("  ! ")]
    assert [line.split(":")[0] for line in named] == [
        f"  ! IMG_{i:02d}.JPG" for i in range(SUMMARY_ERRORS)
    ]
    assert f"files with errors: {SUMMARY_ERRORS + 3}" in text
    assert text.splitlines()[-1] == "  ... and 3 more (see --json)"


def test_the_cli_builds_the_whole_report_only_for_json(
    embedded_settings: Settings, library: Path, monkeypatch, capsys, tmp_path: Path
) -> None:
    import json

    import twinlens
    from core import report
    from tests.factories import write_jpeg

    monkeypatch.setenv("TWINLENS_DATA_DIR", str(embedded_settings.data_dir))
    monkeypatch.setenv("TWINLENS_DATABASE_URL", embedded_settings.database_url)
    write_jpeg(library / "a.jpg", 1)
    (library / "empty.jpg").write_bytes(b"")
    built = []
    real_build = report.build
    monkeypatch.setattr(report, "build", lambda *a: built.append(a) or real_build(*a))
    # When the library is scanned from the command line without --json
    assert twinlens.main(["scan", str(library)]) == 0
    # Then no report of every file is built, and the summary says what there is
    assert built == []
    out = capsys.readouterr().out
    assert ": 2 files (2 image)" in out and "files with errors: 1" in out
    assert "  ! empty.jpg: " in out
    # And with --json, the report is written, without the summary's list of errors
    dest = tmp_path / "report.json"
    assert twinlens.main(["scan", str(library), "--json", str(dest)]) == 0
    written = json.loads(dest.read_text())
    assert len(built) == 1 and [f["path"] for f in written["files"]] == ["a.jpg", "empty.jpg"]
    assert "file_errors" not in written and written["totals"]["files"] == 2
