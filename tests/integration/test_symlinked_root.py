"""A library root that is itself a symlink (``~/Photos`` -> ``/mnt/nas/photos``, a
Synology ``/volume1`` path): requests name files under the root as configured, the
catalog stores them so, and every route finds them."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

import api
from core.config import Settings
from tests.factories import write_jpeg
from tests.integration.test_grouping_api import AUTH, RecordingBroker
from twinlens import run_scan


@pytest.fixture
def linked(embedded_settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    real = tmp_path / "nas" / "photos"
    (real / "2024").mkdir(parents=True)
    write_jpeg(real / "2024" / "IMG_1.JPG", 1, size=(320, 240))
    write_jpeg(real / "2024" / "IMG_2.JPG", 2, size=(320, 240))
    shutil.copyfile(real / "2024" / "IMG_1.JPG", real / "2024" / "IMG_1 copy.JPG")
    link = tmp_path / "Photos"
    link.symlink_to(real, target_is_directory=True)
    return dataclasses.replace(embedded_settings, library_roots=(link,)), link


def test_files_under_a_symlinked_root_are_found_by_the_paths_the_catalog_holds(linked) -> None:
    cfg, link = linked
    report = run_scan(cfg, str(link))
    assert report["job"]["state"] == "done", report["job"]
    broker = RecordingBroker()
    grouping = api.create_app("grouping", {"settings": cfg, "broker": broker}).test_client()
    dedup = api.create_app("dedup", {"settings": cfg, "broker": broker}).test_client()
    one, two = str(link / "2024" / "IMG_1.JPG"), str(link / "2024" / "IMG_2.JPG")

    # A scan of one folder of the library
    r = grouping.post("/scans", json={"path": str(link / "2024")}, headers=AUTH)
    assert r.status_code in (200, 202), r.get_json()
    # Looking files up by path
    r = dedup.post("/duplicates/lookup", json={"paths": [one]}, headers=AUTH)
    assert r.status_code == 200, r.get_json()
    # Putting two files into one group, and finding it from either
    r = grouping.post("/groups/merge", json={"paths": [one, two]}, headers=AUTH)
    assert r.status_code == 201, r.get_json()
    assert {m["path"] for m in r.get_json()["members"]} == {one, two}
    r = grouping.get("/files/group", query_string={"path": two}, headers=AUTH)
    assert r.status_code == 200 and r.get_json()["primary"] in (one, two), r.get_json()


def test_confine_answers_under_the_root_as_named_and_still_keeps_links_in(tmp_path) -> None:
    from core.paths import PathOutsideRoots, confine

    real = tmp_path / "nas" / "photos"
    (real / "2024").mkdir(parents=True)
    link = tmp_path / "Photos"
    link.symlink_to(real, target_is_directory=True)
    # Named through the link or through the real folder: the catalog's spelling
    assert confine(str(link / "2024"), [link]) == str(link / "2024")
    assert confine(str(real / "2024"), [link]) == str(link / "2024")
    assert confine(str(link), [link]) == str(link)
    # A link inside the library that leaves it is still refused
    (tmp_path / "secret").mkdir()
    (real / "escape").symlink_to(tmp_path / "secret", target_is_directory=True)
    with pytest.raises(PathOutsideRoots):
        confine(str(link / "escape"), [link])
    with pytest.raises(PathOutsideRoots):
        confine(str(link / ".." / "secret"), [link])
