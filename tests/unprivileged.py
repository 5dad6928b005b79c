"""Tests of what an unreadable file or folder does, run for real when the suite runs as root.

Root reads every file and folder whatever its mode (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH),
and CI runs as root: a test that skipped there never ran at all. A test marked
``@pytest.mark.unprivileged`` is run again, as root, in a child pytest that dropped those
two capabilities from its bounding set before it started Python (so the kernel checks
modes for it as for anyone), and the parent's test passes or fails with the child's.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = "TWINLENS_TEST_UNPRIVILEGED_CHILD"
_CANNOT_DROP = 99
_CAPS = (1, 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
_PR_CAPBSET_DROP = 24


def needs_child() -> bool:
    """Root, and not already the child: modes would bind nobody here."""
    return os.geteuid() == 0 and os.environ.get(CHILD) != "1"


def drop_dac_capabilities() -> None:  # pragma: no cover - runs in the child, before exec
    if os.geteuid() != 0:
        return  # modes bind this user already
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            os._exit(_CANNOT_DROP)


def run_in_child(nodeid: str, rootdir: Path) -> None:
    """Run the test ``nodeid`` in a pytest without the capabilities; fail as it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", nodeid, "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=rootdir,
        env={**os.environ, CHILD: "1"},
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=drop_dac_capabilities,
    )
    if proc.returncode == _CANNOT_DROP:
        pytest.skip("cannot drop CAP_DAC_OVERRIDE here: as root, file modes bind nobody")
    out = proc.stdout + proc.stderr
    # A child that skipped or ran nothing proves nothing: exactly one pass counts
    if proc.returncode != 0 or not re.search(r"\b1 passed\b", out) or "skipped" in out:
        pytest.fail(f"without CAP_DAC_OVERRIDE (exit {proc.returncode}):\n{out[-4000:]}")
