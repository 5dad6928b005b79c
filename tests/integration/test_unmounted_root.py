"""A NAS share that is not mounted leaves its mount point empty. A scan then must not
take the library for deleted: every row, and what was built on it, stays."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.config import Settings
from tests.factories import write_jpeg
from twinlens import run_scan


def _present(report: dict) -> set[str]:
    return {f["path"] for f in report["files"]}


def test_an_empty_root_is_an_unmounted_share_not_a_deleted_library(
    embedded_settings: Settings, library: Path, tmp_path: Path
) -> None:
    # Given a scanned library with a duplicate pair
    write_jpeg(library / "2024" / "IMG_1.JPG", 1, size=(320, 240))
    shutil.copyfile(library / "2024" / "IMG_1.JPG", library / "2024" / "IMG_1 copy.JPG")
    first = run_scan(embedded_settings, str(library))
    assert _present(first) == {"2024/IMG_1.JPG", "2024/IMG_1 copy.JPG"}
    assert len(first["duplicates"]) == 1

    # When the share is not mounted (the mount point is an empty folder) at scan time
    aside = tmp_path / "share"
    shutil.move(str(library / "2024"), str(aside))
    second = run_scan(embedded_settings, str(library))

    # Then the scan finishes, says why, and keeps every file and the duplicate group
    assert second["job"]["state"] == "done"
    assert [e["path"] for e in second["job"]["errors"]] == ["."]
    assert "is the share mounted?" in second["job"]["errors"][0]["error"]
    assert _present(second) == _present(first)
    assert len(second["duplicates"]) == 1

    # And when it is back, nothing is read again
    shutil.move(str(aside), str(library / "2024"))
    third = run_scan(embedded_settings, str(library))
    assert third["job"]["errors"] == [] and third["job"]["bytes_read"] == 0
    assert _present(third) == _present(first)


def test_a_folder_emptied_on_purpose_still_loses_its_files(
    embedded_settings: Settings, library: Path
) -> None:
    # Given a library with two folders; the photographer deletes one folder's files
    write_jpeg(library / "keep" / "A.JPG", 1, size=(320, 240))
    write_jpeg(library / "gone" / "B.JPG", 2, size=(320, 240))
    run_scan(embedded_settings, str(library))
    (library / "gone" / "B.JPG").unlink()
    # When that folder is scanned (the watcher does this) and then the whole library
    sub = run_scan(embedded_settings, str(library / "gone"))
    whole = run_scan(embedded_settings, str(library))
    # Then the file is gone from the catalog: the guard is for an empty root only
    assert sub["job"]["errors"] == []
    assert _present(whole) == {"keep/A.JPG"}
