"""`make run`, the README's first command, on a photographer's machine: the library's name
reaches `twinlens up` whole, and a Python too old, or a half-made .venv, is said clearly
(or mended) instead of failing on every later run."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def _planned_run(*args: str) -> list[str]:
    """The `twinlens up` command line `make run` would run, as the shell splits it."""
    out = subprocess.run(
        ["make", "-s", "-n", "run", *args], cwd=PROJECT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    [line] = [ln for ln in out.stdout.splitlines() if "twinlens up" in ln]
    return shlex.split(line)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_library_name_with_spaces_and_parentheses_reaches_up_whole() -> None:
    assert _planned_run("LIBRARY=/volume1/Family Photos (2019)")[2:] == [
        "/volume1/Family Photos (2019)"
    ]
    # ... no library: no argument at all (an empty one would be the current folder)
    assert _planned_run()[2:] == []
    assert _planned_run("ARGS=--port 3100")[2:] == ["--port", "3100"]


def _setup(tmp_path: Path, python: str) -> subprocess.CompletedProcess[str]:
    """.ci/setup.sh in a project of nothing (never this checkout's .venv): quick to install."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(PROJECT / ".ci" / "setup.sh", tmp_path / ".ci" / "setup.sh")
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = empty\nversion = 0\n")
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    env = {**os.environ, "PYTHON": python, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        ["bash", str(tmp_path / ".ci" / "setup.sh"), "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_python_older_than_3_11_is_refused_with_the_way_out(tmp_path: Path) -> None:
    old = tmp_path / "python3"
    old.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.9.2' && exit 0\nexit 1\n")
    old.chmod(0o755)
    work = tmp_path / "project"
    work.mkdir()
    run = _setup(work, str(old))
    assert run.returncode == 2, run.stderr
    assert "needs Python 3.11" in run.stderr and "Python 3.9.2" in run.stderr
    assert "PYTHON=" in run.stderr
    assert not (work / ".venv").exists()


def test_a_half_made_venv_is_made_again(tmp_path: Path) -> None:
    # Given a .venv that `python3 -m venv` left without pip (Debian without python3-venv)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, tmp_path / ".venv" / "bin" / "python")
    # When set-up runs again
    run = _setup(tmp_path, sys.executable)
    # Then it says so and makes a new one, with pip this time
    assert "making it again" in run.stderr, run.stderr
    assert (tmp_path / ".venv" / "bin" / "pip").exists()


def test_a_data_folder_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    # Given a data folder that cannot be created (its parent is a file)
    blocker = tmp_path / "home"
    blocker.write_text("not a folder")
    env = {**os.environ, "TWINLENS_DATA_DIR": str(blocker / "twinlens")}
    env.pop("TWINLENS_DATABASE_URL", None)
    # When a command that needs the database runs
    run = subprocess.run(
        [sys.executable, str(PROJECT / "twinlens.py"), "scan", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then it says which setting to change, without a traceback
    assert run.returncode == 2, run.stderr
    assert "TWINLENS_DATA_DIR" in run.stderr and str(blocker) in run.stderr
    assert "Traceback" not in run.stderr
