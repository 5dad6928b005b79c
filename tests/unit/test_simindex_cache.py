"""core.simindex imports when numba has nowhere to write its cache: a container run as the
library share's owner (README, "Deploying beside Immich") can write neither the image's
NUMBA_CACHE_DIR (/data/numba-cache), nor the source folder, nor a home folder. numba
then refuses to define a ``cache=True`` function ("cannot cache function: no locator
available"), which made the import fail.

Each case runs in a subprocess on a copy of core/simindex.py in a read-only folder. As
root, permissions bind nobody: the subprocess drops the capabilities that bypass them
(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from its bounding set before it starts Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unprivileged import drop_dac_capabilities

PROJECT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, sys
try:
    open(os.path.join(os.environ["HOME"], "probe"), "w").close()
    writable = True
except OSError:
    writable = False
import numpy as np
import simindex

hashes = np.array([0, 1, 3, 0xFF, 0xFFFF, 1], dtype=np.uint64)
i, j, d = simindex.pairs_within(hashes, 2)
print(json.dumps({
    "writable": writable,
    "cache": simindex._CACHE,
    "cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
    "pairs": sorted(zip(i.tolist(), j.tolist(), d.tolist())),
}))
"""

# popcount(a ^ b) <= 2 among 0, 1, 3, 0xFF, 0xFFFF, 1
EXPECTED = [[0, 1, 1], [0, 2, 2], [0, 5, 1], [1, 2, 1], [1, 5, 0], [2, 5, 1]]


@pytest.fixture
def readonly(tmp_path):
    """A read-only folder holding a copy of core/simindex.py (the image's /app/core, which
    belongs to root), and serving as the user's home too."""
    ro = tmp_path / "ro"
    (ro / "pkg").mkdir(parents=True)
    shutil.copy(PROJECT / "core" / "simindex.py", ro / "pkg" / "simindex.py")
    (ro / "pkg").chmod(0o555)
    ro.chmod(0o555)
    yield ro
    ro.chmod(0o755)
    (ro / "pkg").chmod(0o755)


def _run(ro: Path, tmpdir: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NUMBA_", "XDG_", "PYTHON")) and k not in ("HOME", "TMPDIR")
    }
    env.update(
        HOME=str(ro),
        XDG_CACHE_HOME=str(ro / ".cache"),
        NUMBA_CACHE_DIR=str(ro / "numba-cache"),  # as /data/numba-cache, not writable
        TMPDIR=str(tmpdir),
        PYTHONPATH=str(ro / "pkg"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=drop_dac_capabilities,
    )
    if proc.returncode == 99:
        pytest.skip("cannot drop CAP_DAC_OVERRIDE: root would write the read-only folders")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if got["writable"]:
        pytest.skip("the read-only folder is writable here: the case cannot be made")
    assert got["pairs"] == EXPECTED
    return got


def test_imports_with_its_cache_in_a_folder_of_its_own_under_the_temp_dir(readonly, tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    got = _run(readonly, tmpdir)
    fallback = tmpdir / f"twinlens-numba-{os.getuid()}"
    assert got["cache"] is True and got["cache_dir"] == str(fallback)
    assert any(fallback.rglob("*.nbi"))  # machine code kept for the next process
    assert fallback.stat().st_mode & 0o077 == 0
    # And the next process loads it
    assert _run(readonly, tmpdir)["cache"] is True


def test_imports_without_any_cache_when_nothing_is_writable(readonly, tmp_path):
    # (The temp dir itself cannot be made read-only: Python would pick /tmp instead.)
    tmpdir = tmp_path / "tmp"
    own = tmpdir / f"twinlens-numba-{os.getuid()}"
    own.mkdir(parents=True)
    own.chmod(0o500)
    try:
        got = _run(readonly, tmpdir)
    finally:
        own.chmod(0o700)
    assert got["cache"] is False
    assert not any(own.iterdir())


def test_a_cache_folder_others_can_write_is_not_used(readonly, tmp_path):
    # Cached machine code is loaded and run: a folder anyone may write to is no cache
    tmpdir = tmp_path / "tmp"
    shared = tmpdir / f"twinlens-numba-{os.getuid()}"
    shared.mkdir(parents=True)
    shared.chmod(0o777)
    got = _run(readonly, tmpdir)
    assert got["cache"] is False
    assert not any(shared.iterdir())
