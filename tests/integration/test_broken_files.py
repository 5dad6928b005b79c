"""Broken and empty files in a scanned library (embedded: SQLite, in-process workers):
a copy the catalog marks with an error is never the keeper suggested over its intact
twin, nor a group's cover over a healthy member; an empty file is grouped with nothing."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from core import catalog
from core.config import Settings
from core.media.inspect import FileFacts
from tests.factories import write_bytes, write_jpeg
from twinlens import run_scan

TAKEN = datetime(2024, 5, 4, 10, 11, 12)
CAMERA = {"make": "Canon", "model": "Canon EOS R6"}


def truncated(path: Path) -> Path:
    """Cut a written JPEG to half its bytes, as an interrupted copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def by_path(report: dict) -> dict[str, dict]:
    return {f["path"]: f for f in report["files"]}


def test_a_broken_copy_in_the_preferred_folder_is_not_the_keeper(
    embedded_settings: Settings, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a photo and a look-alike copy of it (re-encoded) in the backup folder, which
    # the user prefers, and which the catalog marks broken while its pHash stays: as the
    # completeness check does for a RAW cut short whose embedded preview still decodes
    # (stood in for here, so that the copy is a JPEG Pillow can write)
    write_jpeg(
        library / "2024/IMG_0001.JPG", 21, size=(640, 480), quality=92, taken=TAKEN, **CAMERA
    )
    write_jpeg(
        library / "backup/IMG_0001.JPG", 21, size=(640, 480), quality=80, taken=TAKEN, **CAMERA
    )
    # and a second photo whose backup copy is a truncated JPEG (an error, no pHash)
    write_jpeg(library / "2024/IMG_0002.JPG", 22, size=(640, 480), taken=TAKEN, **CAMERA)
    truncated(write_jpeg(library / "backup/IMG_0002.JPG", 22, size=(640, 480), taken=TAKEN))
    cut_short = "truncated: the file ends at 40% of its image data"
    real_inspect = catalog.inspect_file

    def inspect_with_completeness(path: str, **kw: object) -> FileFacts:
        facts = real_inspect(path, **kw)  # type: ignore[arg-type]
        if path.endswith("backup/IMG_0001.JPG"):
            facts.error = cut_short
        return facts

    monkeypatch.setattr(catalog, "inspect_file", inspect_with_completeness)
    settings = replace(embedded_settings, preferred_folders=(library / "backup",))
    # When the library is scanned
    report = run_scan(settings, str(library))
    # Then the broken copies were cataloged with their errors
    files = by_path(report)
    assert files["backup/IMG_0001.JPG"]["error"] == cut_short
    assert files["backup/IMG_0001.JPG"]["phash"]
    assert "truncated" in (files["backup/IMG_0002.JPG"]["error"] or "")
    assert not files["2024/IMG_0001.JPG"]["error"]
    # And the broken look-alike is in its intact twin's group, which keeps the intact one
    # and says why (not the preferred folder's copy)
    groups = [
        (d["type"], sorted(m["path"] for m in d["members"]), d["keep"], d["keep_reason"])
        for d in report["duplicates"]
    ]
    assert groups == [
        (
            "perceptual",
            ["2024/IMG_0001.JPG", "backup/IMG_0001.JPG"],
            "2024/IMG_0001.JPG",
            "intact",
        )
    ]


def test_empty_files_pair_with_nothing_and_a_broken_file_is_no_cover(
    embedded_settings: Settings, library: Path, samples: Path
) -> None:
    shots = library / "shots"
    # Given a good DNG whose JPEG a copy left empty
    shots.mkdir()
    shutil.copyfile(samples / "skia/sample_1mp.dng", shots / "IMG_0001.DNG")
    write_bytes(shots / "IMG_0001.JPG", b"")
    # three empty files of one name
    for name in ("zero.heic", "zero.jpg", "zero.CR2"):
        write_bytes(shots / name, b"")
    # a good DNG whose JPEG is truncated
    shutil.copyfile(samples / "skia/sample_1mp.dng", shots / "IMG_0002.DNG")
    truncated(write_jpeg(shots / "IMG_0002.JPG", 31))
    # and a truncated original with its good edit (Apple's IMG_E)
    truncated(write_jpeg(shots / "IMG_0003.JPG", 32, taken=TAKEN))
    write_jpeg(shots / "IMG_E0003.JPG", 33, taken=TAKEN)
    # When the library is scanned
    report = run_scan(embedded_settings, str(library))
    files = by_path(report)
    assert not files["shots/IMG_0001.DNG"]["error"] and not files["shots/IMG_0002.DNG"]["error"]
    assert files["shots/IMG_0002.JPG"]["error"] and files["shots/IMG_0003.JPG"]["error"]
    # Then no empty file is in any group, the broken JPEG still pairs with its DNG, and
    # each group's cover is a healthy file
    groups = {g["primary"]: (g["type"], sorted(g["members"])) for g in report["groups"]}
    assert groups == {
        "shots/IMG_0002.DNG": ("raw_jpeg", ["shots/IMG_0002.DNG", "shots/IMG_0002.JPG"]),
        "shots/IMG_E0003.JPG": ("edited", ["shots/IMG_0003.JPG", "shots/IMG_E0003.JPG"]),
    }
