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


def test_a_file_that_kills_the_scan_is_skipped_by_the_third_and_named(
    embedded_settings: Settings, library: Path
) -> None:
    # Given a library whose one file kills the process that reads it, among good ones
    # that share its batch
    for i in range(5):
        write_jpeg(library / f"ok{i}.jpg", i)
    write_jpeg(library / "poison.jpg", 9)
    # When it is scanned: the first scan dies in the batch, the second reads that batch's
    # files one by one and dies on the file itself
    for _ in range(2):
        died = _scan(embedded_settings, library)
        assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    # Then the third scan finishes: the good files are cataloged, the deadly one is
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
