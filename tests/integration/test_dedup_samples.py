"""End to end: the labelled duplicate library (tests/dedup_dataset.py: every sample file,
byte copies, re-encodes, resizes, PNG conversions, EXIF strips, rotations, and crops,
shifted frames and colour edits as decoys) scanned with the real pipeline
(`twinlens.run_scan`), on the embedded default and on PostgreSQL + Redis workers; the
report's duplicates are scored against the ground truth."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

import api
from core.config import Settings
from core.db import engine_for, session_scope
from core.models import File, Job
from tests.dedup_dataset import Truth, build_library, load_display, score_pairs
from twinlens import run_scan

MAX_SOURCES = 12  # originals that get generated variants (the scan stays well under a minute)
TOKEN = {"Authorization": "Bearer test-service-token"}


@pytest.fixture(scope="module")
def dataset(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Truth:
    return build_library(
        tmp_path_factory.mktemp("dedup"), samples, max_sources=MAX_SOURCES, max_source_side=1600
    )


def judge(report: dict[str, Any], truth: Truth) -> dict[str, Any]:
    dups = report["duplicates"]
    exact = {frozenset(m["path"] for m in d["members"]) for d in dups if d["type"] == "exact"}
    want = set(truth.exact_sets())
    pairs = [
        (a["path"], b["path"])
        for d in dups if d["type"] == "perceptual"
        for a, b in itertools.combinations(d["members"], 2)
    ]  # fmt: skip
    scores = score_pairs(pairs, truth)
    return {
        "exact_precision": len(exact & want) / len(exact) if exact else 1.0,
        "exact_recall": len(exact & want) / len(want) if want else 1.0,
        **scores,
    }


def check_quality(report: dict[str, Any], truth: Truth) -> None:
    s = judge(report, truth)
    assert len(truth.exact_sets()) >= 10 and s["tp"] + s["fn"] >= 50  # the test has teeth
    assert s["exact_precision"] == 1.0 and s["exact_recall"] == 1.0, s
    assert s["precision"] >= 0.99 and s["recall"] >= 0.95, s
    assert s["decoys_reported"] == 0, s


def check_shape(report: dict[str, Any], truth: Truth) -> None:
    by_path = truth.by_path()
    assert report["duplicates"]
    for d in report["duplicates"]:
        assert d["type"] in ("exact", "perceptual") and d["status"] == "open"
        paths = [m["path"] for m in d["members"]]
        assert len(paths) >= 2 and d["keep"] in paths and d["keep_reason"]
        for m in d["members"]:
            assert 0.0 < m["similarity"] <= 1.0
            item = by_path[m["path"]]
            assert item.role != "empty"
            # Two names of one file (hard link) are never both members: one stands for both.
            assert item.role != "hardlink" or item.source not in paths
        if d["type"] == "exact":
            assert {m["similarity"] for m in d["members"]} == {1.0}
            assert len({by_path[p].sha256 for p in paths}) == 1
        else:
            # One content per member: byte-identical copies are reported as exact groups.
            assert len({by_path[p].sha256 for p in paths}) == len(paths)


def test_embedded_scan_finds_the_duplicates(dataset: Truth, tmp_path: Path) -> None:
    from core.config import load_settings

    cfg = load_settings(
        {},
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'data' / 'twinlens.db'}",
        library_roots=(dataset.root,),
        batch_files=32,
    )
    report = run_scan(cfg, str(dataset.root))
    check_quality(report, dataset)
    check_shape(report, dataset)
    engine_for(cfg.database_url).dispose()


def _settings(pg_settings: Settings, root: Path) -> Settings:
    # pg_settings' Redis databases are this test session's own (tests/conftest.py).
    return dataclasses.replace(pg_settings, library_roots=(root,), batch_files=32)


def test_postgres_scan_api_and_rescans(
    dataset: Truth, pg_settings: Settings, tmp_path: Path
) -> None:
    """PostgreSQL + Redis workers; the API serves what the report shows; a rescan after
    a new copy runs an incremental pass that keeps ids and decisions."""
    lib = tmp_path / "lib"
    shutil.copytree(dataset.root, lib, symlinks=True)  # hard link becomes a copy here: skip it
    truth = Truth(root=lib, items=[it for it in dataset.items if it.role != "hardlink"])
    if (lib / "copies/hardlink").exists():
        shutil.rmtree(lib / "copies/hardlink")
    cfg = _settings(pg_settings, lib)
    report = run_scan(cfg, str(lib))
    check_quality(report, truth)
    check_shape(report, truth)

    app = api.create_app("dedup", {"settings": cfg, "broker": object()})
    client = app.test_client()
    listed = client.get("/duplicates?size=1000", headers=TOKEN).get_json()
    assert listed["total"] == len(report["duplicates"])
    assert {d["id"] for d in listed["items"]} == {d["id"] for d in report["duplicates"]}
    stats = client.get("/stats", headers=TOKEN).get_json()
    assert stats["groups"] == len(report["duplicates"]) and stats["reclaimable_bytes"] > 0

    # Dismiss one perceptual group and one exact group, then add a byte copy of a file
    # of another exact group and rescan.
    perceptual = next(d for d in listed["items"] if d["type"] == "perceptual")
    exacts = [d for d in listed["items"] if d["type"] == "exact"]
    r = client.post(
        f"/duplicates/{perceptual['id']}/resolution",
        headers=TOKEN,
        json={"action": "not_duplicate", "keep": []},
    )
    assert r.status_code == 200
    r = client.post(
        f"/duplicates/{exacts[0]['id']}/resolution",
        headers=TOKEN,
        json={"action": "trash", "keep": [exacts[0]["keep"]]},
    )
    assert r.status_code == 200
    grown = exacts[1]
    src = Path(grown["members"][0]["path"])
    (lib / "later").mkdir()
    shutil.copyfile(src, lib / "later" / ("again" + src.suffix))

    again = run_scan(cfg, str(lib))
    after = {d["id"]: d for d in again["duplicates"]}
    assert set(after) == {d["id"] for d in report["duplicates"]}  # no churn
    assert after[perceptual["id"]]["status"] == "dismissed"
    assert after[exacts[0]["id"]]["status"] == "resolved"
    assert f"later/again{src.suffix}" in [m["path"] for m in after[grown["id"]]["members"]]
    with session_scope(engine_for(cfg.database_url)) as s:
        passes = [j for j in s.query(Job).filter(Job.kind == "dedup").order_by(Job.created_at)]
        assert [j.state for j in passes] == ["done", "done"]
        first, second = (json.loads(j.summary) for j in passes)
        # Seeds: the new file, plus what the first scan wrote within CLOCK_SLACK of its pass.
        since = datetime.fromisoformat(first["watermark"])
        touched = s.scalar(select(func.count()).select_from(File).where(File.updated_at >= since))
    assert first["mode"] == "full" and second["mode"] == "incremental"
    assert second["seeds"] == touched and touched < len(again["files"])

    # A full rescan re-reads every file: decisions still hold, ids still stable.
    full = run_scan(cfg, str(lib), full=True)
    assert {d["id"]: d["status"] for d in full["duplicates"]} == {
        d["id"]: d["status"] for d in again["duplicates"]
    }
    engine_for(cfg.database_url).dispose()


def test_versions_of_one_shot_are_not_duplicates(
    samples: Path, pg_settings: Settings, tmp_path: Path
) -> None:
    """A RAW and the JPEG the camera wrote beside it (the same picture) form a file
    group, so dedup never calls them duplicates, although a re-encoded copy of the JPEG
    elsewhere is one. Dedup runs after the scan's grouping pass, not beside it."""
    from core.media.inspect import inspect_file
    from tests.factories import exif_for

    lib = tmp_path / "lib"
    (lib / "2024").mkdir(parents=True)
    raw = lib / "2024/IMG_0001.DNG"
    shutil.copyfile(samples / "skia/sample_1mp.dng", raw)
    taken = inspect_file(str(raw), full_hash=False).taken_at
    assert taken is not None
    shown = load_display(raw).convert("RGB")
    shown.save(lib / "2024/IMG_0001.JPG", "JPEG", quality=92, exif=exif_for(taken))
    (lib / "backup").mkdir()
    shown.resize((shown.width // 2, shown.height // 2), Image.LANCZOS).save(
        lib / "backup/IMG_0001_small.jpg", "JPEG", quality=80
    )
    cfg = _settings(pg_settings, lib)
    report = run_scan(cfg, str(lib))
    assert any(
        set(g["members"]) >= {"2024/IMG_0001.DNG", "2024/IMG_0001.JPG"} for g in report["groups"]
    ), report["groups"]
    from core.dedup import hamming

    ph = {f["path"]: f["phash"] for f in report["files"]}
    # Without the file group they would be reported: same picture, close hashes.
    assert hamming(ph["2024/IMG_0001.DNG"], ph["2024/IMG_0001.JPG"]) <= cfg.phash_threshold
    perceptual = [d for d in report["duplicates"] if d["type"] == "perceptual"]
    assert perceptual, "the re-encoded copy is a duplicate"
    for d in perceptual:
        members = {m["path"] for m in d["members"]}
        assert not members >= {"2024/IMG_0001.DNG", "2024/IMG_0001.JPG"}, d
        assert "backup/IMG_0001_small.jpg" in members
    engine_for(cfg.database_url).dispose()
