"""A file that kills the embedded process reading it (a decoder crash, the out-of-memory
killer) is found, then skipped: before, every scan, and `twinlens up` at every start,
died on it and never named it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from core import suspects
from core.config import Settings
from tests.factories import write_jpeg
from twinlens import run_scan

# One `twinlens scan` process, its settings as the test's; reading poison.jpg kills it
# with SIGKILL, as the kernel's out-of-memory killer does
SCAN = """
import json, os, signal, sys
from pathlib import Path
from core import catalog
from core.config import load_settings
from twinlens import run_scan

inspect_file = catalog.inspect_file

def deadly(path, **kwargs):
    if path.endswith("poison.jpg"):
        os.kill(os.getpid(), signal.SIGKILL)
    return inspect_file(path, **kwargs)

catalog.inspect_file = deadly
data, library = Path(sys.argv[1]), sys.argv[2]
cfg = load_settings({}, data_dir=data, database_url=f"sqlite:///{data / 'twinlens.db'}",
                    library_roots=(Path(library),), batch_files=8, worker_threads=2)
report = run_scan(cfg, library)
print(json.dumps({"state": report["job"]["state"],
                  "files": {f["path"]: f["error"] for f in report["files"]}}))
"""


def _scan(settings: Settings, library: Path) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    # run_scan fails what a dead process left only where the CLI does: do as it does
    code = SCAN.replace(
        "report = run_scan(cfg, library)",
        "from core.db import migrate\nfrom workers import runtime\nmigrate(cfg.database_url)\n"
        "runtime.install_broker(cfg)\nruntime.fail_orphans()\nreport = run_scan(cfg, library)",
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(settings.data_dir), str(library)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


def test_a_file_that_kills_the_scan_is_found_then_skipped_and_named(
    embedded_settings: Settings, library: Path
) -> None:
    # Given a library whose one file kills the process that reads it, among good ones
    # that share its batch
    for i in range(5):
        write_jpeg(library / f"ok{i}.jpg", i)
    write_jpeg(library / "poison.jpg", 9)
    # When it is scanned: the first scan dies in the batch, the next two read that
    # batch's files one by one and die on the file itself
    for _ in range(1 + suspects.LIMIT):
        died = _scan(embedded_settings, library)
        assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    # Then the next scan finishes: the good files are cataloged, the deadly one is
    # named with the reason and not read again
    done = _scan(embedded_settings, library)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["state"] == "done"
    assert "stopped Twinlens" in report["files"]["poison.jpg"]
    assert all(report["files"][f"ok{i}.jpg"] is None for i in range(5)), report["files"]
    # And once the file changes (repaired, or touched to try again), it is read again
    os.utime(library / "poison.jpg", ns=(10**18, 10**18))
    files = {f["path"]: f["error"] for f in run_scan(embedded_settings, str(library))["files"]}
    assert files["poison.jpg"] is None


# A process reading a suspect alone; it then exits in an orderly way, or is killed
READING = """
import os, signal, sys, threading, time
from core import suspects
from core.db import engine_for

engine = engine_for(sys.argv[1])
started = threading.Event()

def read():
    with suspects.reading(engine, sys.argv[2], 10, 20):
        started.set()
        time.sleep(60)  # a slow read of a large file

threading.Thread(target=read, daemon=True).start()
started.wait()
if sys.argv[3] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.exit(0)  # Ctrl-C, SIGTERM: the process stops without waiting for the read
"""


def test_only_a_process_that_dies_while_reading_a_suspect_blames_it(
    embedded_settings: Settings,
) -> None:
    from sqlalchemy import select

    from core.db import engine_for, migrate, session_scope
    from core.models import SuspectFile

    migrate(embedded_settings.database_url)
    engine = engine_for(embedded_settings.database_url)
    with session_scope(engine) as s:
        s.add_all(
            [
                SuspectFile(path_key="a" * 32, path="/l/a"),
                SuspectFile(path_key="b" * 32, path="/l/b"),
            ]
        )
    root = Path(__file__).resolve().parents[2]
    # Given one process that stops in an orderly way while it reads suspect a, and one
    # that is killed while it reads suspect b
    for key, how in (("a" * 32, "exit"), ("b" * 32, "kill")):
        subprocess.run(
            [sys.executable, "-c", READING, embedded_settings.database_url, key, how],
            cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=60,
        )  # fmt: skip
    # When the next start looks for files that stopped a process
    with session_scope(engine) as s:
        suspects.note_crashes(s, [])
    # Then only b has a crash against it
    with session_scope(engine) as s:
        crashes = {r.path: r.crashes for r in s.scalars(select(SuspectFile))}
    assert crashes == {"/l/a": 0, "/l/b": 1}
