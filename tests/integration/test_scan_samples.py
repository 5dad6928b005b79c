"""`twinlens scan` over the shared sample library (read in place): every file with the
right kind, hashes where the rule requires them, a pHash for every readable image
(RAW through its preview, HEIC included) and an error for every broken file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.samples import CATALOG_KIND
from tests.samples import samples_dir as samples_path

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sample_report(samples, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("samples-scan")
    out = tmp / "out.json"
    env = {"TWINLENS_DATA_DIR": str(tmp / "data"), "PATH": "/usr/bin:/bin", "HOME": str(tmp)}
    proc = subprocess.run(
        [sys.executable, str(PROJECT / "twinlens.py"), "scan", str(samples), "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Scanned" in proc.stdout  # the summary is printed
    return json.loads(out.read_text())


def test_every_manifest_file_is_listed_with_its_kind(sample_report, manifest):
    files = {f["path"]: f for f in sample_report["files"]}
    assert sample_report["job"]["state"] == "done"
    for row in manifest:
        assert row["path"] in files, row["path"]
        if row["kind"] in CATALOG_KIND:
            assert files[row["path"]]["kind"] == CATALOG_KIND[row["kind"]], row["path"]


def test_every_broken_file_has_a_readable_error(sample_report, manifest):
    files = {f["path"]: f for f in sample_report["files"]}
    for row in manifest:
        if row["kind"] == "broken":
            error = files[row["path"]]["error"]
            assert error and len(error) > 10 and "Traceback" not in error, row["path"]


def test_every_readable_image_has_a_phash(sample_report, manifest):
    files = {f["path"]: f for f in sample_report["files"]}
    for row in manifest:
        readable_raw = row["kind"] == "raw" and (
            row["rawpy_thumb"] == "yes" or row["rawpy_postprocess"].startswith("yes")
        )
        if row["pil_load"] == "ok" or readable_raw:
            assert files[row["path"]]["phash"], row["path"]
            assert len(files[row["path"]]["phash"]) == 16


def test_hashes_follow_the_rule(sample_report, manifest):
    files = sample_report["files"]
    sizes: dict[int, int] = {}
    for f in files:
        sizes[f["size"]] = sizes.get(f["size"], 0) + 1
    by_path = {f["path"]: f for f in files}
    for row in manifest:
        f = by_path[row["path"]]
        # Images are read in full for the pHash, so their content hash comes free and must be right
        if f["kind"] == "image" and f["phash"]:
            assert f["sha256"] == row["sha256"], row["path"]
        # A file that shares its size with another has a content hash (when readable)
        if sizes[f["size"]] > 1 and f["size"] > 0:
            assert f["sha256"] == row["sha256"], row["path"]


def test_capture_times_match_the_manifest(sample_report, manifest):
    """Capture time follows Immich's order (DateTimeOriginal, CreateDate, DateTimeCreated;
    never a modification date). The manifest falls back to ModifyDate for a few files
    without those tags, so a missing time is allowed there, a wrong one never."""
    by_path = {f["path"]: f for f in sample_report["files"]}
    matched, wrong = 0, []
    for row in manifest:
        if row["datetime_original"] and row["kind"] in ("jpeg", "heic", "raw"):
            expected = row["datetime_original"].replace(":", "-", 2).replace(" ", "T")
            got = by_path[row["path"]]["taken_at"]
            if got is None:
                continue
            if got.startswith(expected):
                matched += 1
            else:
                wrong.append((row["path"], got, expected))
    # Where we differ, the manifest's value must be the file's ModifyDate (EXIF 0x0132),
    # the fallback Immich (and Twinlens) deliberately never use as a capture time.
    from PIL import Image

    for path, _got, expected in wrong:
        modify = Image.open(samples_path() / path).getexif().get(0x0132)
        assert modify and modify.replace(":", "-", 2).replace(" ", "T") == expected, path
    assert matched >= 85
