"""The web UI in a real browser (system Chromium driven by playwright-core from Node)
against a real Twinlens in local mode: SQLite, the in-process broker and worker, the
grouping and dedup APIs and the gateway, on a generated library.

Needs: node, /usr/bin/chromium (or TWINLENS_CHROMIUM), `npm ci` in ui/ and tests/e2e/.
Skips with the reason when one is missing; fails instead under TWINLENS_REQUIRE_SERVICES=1.
Screenshots go to TWINLENS_E2E_SHOTS (default /tmp) as twinlens-e2e-*.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.stack import DIST, UI_DIR, Stack, make_library, picture, start
from tests.require import missing

E2E_DIR = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("TWINLENS_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("TWINLENS_E2E_SHOTS", "/tmp"))


def _newest_source_mtime() -> float:
    files = [
        UI_DIR / "index.html",
        UI_DIR / "vite.config.ts",
        UI_DIR / "package-lock.json",
        *(p for p in (UI_DIR / "src").rglob("*") if p.is_file()),
    ]
    return max(p.stat().st_mtime for p in files if p.exists())


@pytest.fixture(scope="session")
def ui_dist() -> Path:
    """ui/dist, rebuilt when any UI source is newer than it."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing("node/npm not installed")
    if not Path(CHROMIUM).exists():
        missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    if not (E2E_DIR / "node_modules" / "playwright-core").is_dir():
        missing("playwright-core not installed: run `npm ci` in tests/e2e")
    index = DIST / "index.html"
    if not index.exists() or index.stat().st_mtime < _newest_source_mtime():
        if not (UI_DIR / "node_modules" / "vite").is_dir():
            missing("UI dependencies not installed: run `npm ci` in ui")
        build = subprocess.run(
            ["npm", "run", "build"], cwd=UI_DIR, capture_output=True, text=True, timeout=300
        )
        assert build.returncode == 0, f"npm run build failed:\n{build.stdout}\n{build.stderr}"
    return DIST


def _scan_local(embedded_settings, library: Path) -> Any:
    """``library`` scanned to the end in local mode (no Immich, no login): its settings."""
    import twinlens

    cfg = replace(embedded_settings, immich_url="")
    report = twinlens.run_scan(cfg, str(library))
    assert report["job"]["state"] == "done", report["job"]
    return cfg


@contextmanager
def _local_ui(ui_dist: Path, embedded_settings, library: Path) -> Iterator[Stack]:
    """The gateway serving the UI over ``library``, scanned first, in local mode."""
    stack = start(_scan_local(embedded_settings, library), dist=ui_dist)
    try:
        yield stack
    finally:
        stack.stop()


def _scanned(embedded_settings, tmp_path: Path) -> tuple[object, Path, dict]:
    library = tmp_path / "library"
    expected = make_library(library)
    return _scan_local(embedded_settings, library), library, expected


@pytest.fixture
def twinlens_ui(ui_dist: Path, embedded_settings, tmp_path: Path) -> Iterator[tuple[Stack, dict]]:
    cfg, _, expected = _scanned(embedded_settings, tmp_path)
    stack = start(cfg, dist=ui_dist)  # local mode: no Immich, no login
    yield stack, expected
    stack.stop()


IMMICH_LIBRARY_ID = "0b0c2a1e-5b1c-4e7f-9d2a-6f3e1c2b4a5d"


@contextmanager
def _behind_immich(
    ui_dist: Path, cfg: Any, library: Path, files: list[str], expected: dict
) -> Iterator[dict]:
    """``library`` (scanned, ``cfg``) behind a gateway in front of the fake Immich, whose
    external library holds ``files`` under /mnt/photos."""
    from tests.fakeimmich import FakeImmichServer
    from tests.fakeimmich.spec import spec_path

    if not spec_path().is_file():
        missing(
            f"Immich OpenAPI spec not found at {spec_path()} (the fake Immich needs it)",
            shared=True,
        )
    immich = FakeImmichServer().start()
    user = immich.state.add_user("alice@example.com", "secret-pw", name="Alice", is_admin=True)
    key = immich.state.add_api_key(user["id"], ["all"])
    assets = {}
    for p in files:
        rel = Path(p).relative_to(library).as_posix()
        assets[p] = immich.state.add_asset(
            user["id"], f"/mnt/photos/{rel}", file=p, library_id=IMMICH_LIBRARY_ID
        )["id"]
    stack = start(
        cfg, dist=ui_dist, immich_url=immich.url, path_map=(("/mnt/photos", str(library)),)
    )
    member = immich.state.add_user("bob@example.com", "secret-pw", name="Bob")
    member_key = immich.state.add_api_key(member["id"], ["all"])
    try:
        yield {
            "stack": stack,
            "expected": expected,
            "immich": immich,
            "key": key,
            "member_key": member_key,
            "assets": assets,
        }
    finally:
        stack.stop()
        immich.stop()


@pytest.fixture
def immich_ui(ui_dist: Path, embedded_settings, tmp_path: Path) -> Iterator[dict]:
    """The same Twinlens behind a gateway in front of the fake Immich, whose external
    library holds the duplicate files under /mnt/photos."""
    cfg, library, expected = _scanned(embedded_settings, tmp_path)
    files = expected["exact"] + expected["perceptual"]
    with _behind_immich(ui_dist, cfg, library, files, expected) as ctx:
        yield ctx


def _drive(scenario: str, url: str, *args: str) -> dict:
    SHOTS.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["node", str(E2E_DIR / "drive.mjs"), scenario, url, str(SHOTS), *args],
        cwd=E2E_DIR,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "TWINLENS_CHROMIUM": CHROMIUM},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, (
        f"driver printed no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    out = json.loads(lines[-1])
    assert proc.returncode == 0 and "error" not in out, out.get("error") or proc.stderr
    return out


def _names(paths: list[str]) -> list[str]:
    return sorted(Path(p).name for p in paths)


def test_review_and_dismiss_in_browser(twinlens_ui: tuple[Stack, dict]) -> None:
    stack, expected = twinlens_ui
    api = stack.url + "/api/twinlens"
    listed = requests.get(api + "/duplicates", params={"status": "open"}, timeout=10).json()
    by_members = {tuple(sorted(m["path"] for m in d["members"])): d for d in listed["items"]}
    exact = by_members[tuple(expected["exact"])]
    perceptual = by_members[tuple(expected["perceptual"])]
    assert (exact["type"], perceptual["type"]) == ("exact", "perceptual")

    # A sidecar written since the library's scan: the rescan below makes a group of it
    library = Path(expected["group_103"][0]).parent
    (library / "IMG_101.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')

    out = _drive("local", stack.url, "--scan")

    # Overview: the stats, then a full rescan started with the button and watched to the end,
    # listing the file that could not be read, and the figures brought up to date
    assert any("open duplicate groups" in c for c in out["overview"]["cards"])

    def file_groups(cards: list[str]) -> int:
        card = next(c for c in cards if "file groups" in c)
        return int(card.split()[0])

    before, after = out["overview"]["cards"], out["overview"]["cardsAfterScan"]
    assert file_groups(after) == file_groups(before) + 1, (before, after)
    assert "Last scan done" in out["overview"]["lastScan"], out["overview"]
    # ... saying what it scanned and who started it
    library_root = str(Path(expected["exact"][0]).parents[2])
    assert (
        f"{library_root} (whole library, every file re-read, started from the web UI"
        in out["overview"]["lastScan"]
    ), out["overview"]["lastScan"]
    failed = {row[0]: row[1] for row in out["overview"]["failedFiles"]}
    assert "broken.jpg" in failed and failed["broken.jpg"], out["overview"]

    # Duplicates: both groups, their members as loaded thumbnails, the keeper suggested.
    seen = {g["id"]: g for g in out["before"]}
    assert set(seen) == {exact["id"], perceptual["id"]}
    assert seen[exact["id"]]["type"] == "exact"
    assert sorted(seen[exact["id"]]["files"]) == _names(expected["exact"])
    assert sorted(seen[perceptual["id"]]["files"]) == _names(expected["perceptual"])
    assert seen[exact["id"]]["thumbsLoaded"] == 2
    for g in seen.values():
        assert g["kept"] == g["suggested"] and len(g["kept"]) == 1
        assert g["trashDisabled"] is True  # local mode: no Immich trash to move files to

    # "Not duplicates" on the look-alikes: gone from the open list, recorded as dismissed.
    assert out["dismissed"] == perceptual["id"]
    assert "not duplicates" in out["message"]
    assert [g["id"] for g in out["after"]] == [exact["id"]]
    assert out["dismissedListed"] is True
    now = requests.get(f"{api}/duplicates/{perceptual['id']}", timeout=10).json()
    assert now["status"] == "dismissed"
    # Under "Any", the exact copies dismissed there stayed listed, as decided, with Undo
    # (no copy shown as kept or going: "not duplicates" keeps them all)
    assert out["any"] == {
        "listed": 1,
        "badge": "not duplicates",
        "undo": 1,
        "kept": 0,
        "goes": 0,
    }, out["any"]
    assert requests.get(f"{api}/duplicates/{exact['id']}", timeout=10).json()["status"] == (
        "dismissed"
    )

    # Groups: the JPEG with its editor's sidecar, the JPEG as primary.
    assert any("IMG_102.JPG" in g for g in out["groups"]), out["groups"]
    assert out["groupThumbsLoaded"] == len(out["groups"])

    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]
    assert all(Path(p).stat().st_size > 10_000 for p in out["shots"])


def _groups_of(grouping_url: str, paths: list[str]) -> dict[str, dict]:
    """The grouping API's group of each of ``paths`` (files on their own are left out)."""
    items, page = [], 1
    while True:
        got = requests.get(
            f"{grouping_url}/groups", params={"page": page, "size": 100}, timeout=10
        ).json()
        items += got["items"]
        if page * got["size"] >= got["total"]:
            break
        page += 1
    return {m["path"]: g for g in items for m in g["members"] if m["path"] in paths}


def test_correct_groups_and_undo_in_browser(twinlens_ui: tuple[Stack, dict]) -> None:
    stack, expected = twinlens_ui
    g102, g103 = expected["group_102"], expected["group_103"]
    jpeg_102, xmp_102 = g102[0], next(p for p in g102 if p.endswith("/IMG_102.xmp"))
    jpeg_103 = g103[0]
    assert (Path(jpeg_102).name, Path(jpeg_103).name) == ("IMG_102.JPG", "IMG_103.JPG")

    # What the scan made: a JPEG with two sidecars, a JPEG with one.
    before = _groups_of(stack.grouping_url, g102 + g103)
    assert set(before) == set(g102 + g103)
    assert sorted(m["path"] for m in before[jpeg_102]["members"]) == g102
    assert sorted(m["path"] for m in before[jpeg_103]["members"]) == g103
    assert before[jpeg_102]["id"] != before[jpeg_103]["id"]

    # A "Not duplicates" decision to undo in the browser, made through the gateway.
    api = stack.url + "/api/twinlens"
    listed = requests.get(api + "/duplicates", params={"status": "open"}, timeout=10).json()
    dup = next(
        d
        for d in listed["items"]
        if sorted(m["path"] for m in d["members"]) == expected["perceptual"]
    )
    r = requests.post(
        f"{api}/duplicates/{dup['id']}/resolve",
        json={"keep": [], "action": "not_duplicate"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    dedup = f"{stack.dedup_url}/duplicates/{dup['id']}"
    assert requests.get(dedup, timeout=10).json()["status"] == "dismissed"

    out = _drive("corrections", stack.url, xmp_102, jpeg_102, jpeg_103, dup["id"])

    # The folder filter: a folder of byte copies holds no group; the sidecars' folder
    # holds both; then the whole library again
    filtered = out["folderFilter"]
    assert filtered["emptyText"] == f"No groups with a file in {filtered['none']}.", filtered
    ids = lambda groups: sorted(g["id"] for g in groups)  # noqa: E731
    assert len(out["groupsBefore"]) == 2
    assert ids(filtered["groups"]) == ids(out["groupsBefore"]), filtered
    assert "folder=" in filtered["url"]
    assert ids(filtered["whole"]) == ids(out["groupsBefore"])

    # Split: the buttons followed the pick, the dialog named the file, and the grouping API
    # has IMG_102.xmp on its own while the JPEG keeps its other sidecar.
    split = out["split"]
    assert split["disabledBeforePick"] is True and split["enabledAfterPick"] is True
    assert split["dissolveEnabled"] is True
    assert xmp_102 in split["dialog"], split["dialog"]
    assert "Split 1 file off the group of IMG_102.JPG" in split["notice"], split["notice"]
    assert split["focused"] is True
    after_split = {p: g for g in split["backend"] for p in g["paths"]}
    assert xmp_102 not in after_split, after_split.get(xmp_102)
    assert sorted(after_split[jpeg_102]["paths"]) == [p for p in g102 if p != xmp_102]
    assert sorted(after_split[jpeg_103]["paths"]) == g103
    seen = {p for g in out["groupsAfterSplit"] for p in g["paths"]}
    assert xmp_102 not in seen and jpeg_102 in seen

    # Merge: one manual group holds the files of both groups, IMG_102.JPG (the primary of
    # the group picked first) as its primary; no other group holds any of them.
    merged_paths = sorted([p for p in g102 if p != xmp_102] + g103)
    assert "Merge 2 groups" in out["merge"]["toolbar"]
    for p in merged_paths:
        assert p in out["merge"]["dialog"], out["merge"]["dialog"]
    assert "Merged 2 groups into one manual group of 4 files" in out["merge"]["notice"]
    assert out["merge"]["toolbarGone"] is True
    # (the grouping API itself, at the end: IMG_102.xmp is still on its own)
    after_merge = _groups_of(stack.grouping_url, merged_paths + [xmp_102])
    assert set(after_merge) == set(merged_paths), after_merge.keys()
    manual = after_merge[jpeg_102]
    assert {after_merge[p]["id"] for p in merged_paths} == {manual["id"]}
    assert manual["type"] == "manual"
    assert sorted(m["path"] for m in manual["members"]) == merged_paths
    assert manual["primary"] == jpeg_102
    assert [g["paths"] for g in out["groupsAfterMerge"] if g["id"] == manual["id"]] != []

    # Undo: the dry run said nothing comes back from a trash, the group is open again.
    assert "No files come back from Immich's trash" in out["undo"]["dialog"], out["undo"]
    assert "the group is open again" in out["undo"]["notice"], out["undo"]
    assert out["undo"]["countAfter"] == "0 groups", out["undo"]
    assert out["undo"]["listedOpen"] is True and out["undo"]["undoButtonsOnOpen"] == 0
    now = requests.get(dedup, timeout=10).json()
    assert now["status"] == "open", now

    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_a_dissolved_group_is_put_back_together_in_browser(
    twinlens_ui: tuple[Stack, dict],
) -> None:
    stack, expected = twinlens_ui
    g103 = expected["group_103"]  # IMG_103.JPG and its sidecar
    jpeg = g103[0]
    assert Path(jpeg).name == "IMG_103.JPG"

    # When the user dissolves the group of IMG_103.JPG, then chooses "Undo dissolve"
    out = _drive("regroup", stack.url, jpeg)

    # Then the dialog said that later scans keep the files apart, and how to undo it
    assert sorted(out["before"]["paths"]) == g103
    assert (
        "Later scans keep these files apart; to put them together again, use Undo dissolve "
        "in the message that follows" in out["dialog"]
    ), out["dialog"]
    # ... the dissolve happened (no group holds the files) and its note offered the way back
    assert out["dissolved"].startswith("Dissolved the group of IMG_103.JPG."), out["dissolved"]
    assert out["listedAfterDissolve"] == 0 and out["undoOffered"] == 1
    assert not [g for g in out["backendAfterDissolve"] if set(g) & set(g103)]
    # ... which merged them into one manual group, the JPEG its primary, said in its card
    assert out["regrouped"] == (
        "Put the group of IMG_103.JPG back together: 2 files in one manual group "
        "(primary IMG_103.JPG). Later scans keep it."
    ), out["regrouped"]
    assert out["regroupedRole"] == "status" and out["focused"] is True
    assert sorted(out["after"]["paths"]) == g103 and out["primary"] == jpeg
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]

    # And a rescan of the library keeps them together (the merge outlives the dissolve)
    api = stack.url + "/api/twinlens"
    r = requests.post(api + "/jobs", json={"full": True}, timeout=10)
    assert r.status_code in (200, 202), r.text
    started = {j["id"] for j in r.json()["jobs"]}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = requests.get(api + "/jobs", timeout=10).json()["items"]
        if all(j["state"] not in ("queued", "running") for j in jobs if j["id"] in started):
            break
        time.sleep(0.3)
    assert {j["state"] for j in jobs if j["id"] in started} == {"done"}, jobs
    now = _groups_of(stack.grouping_url, g103)
    assert set(now) == set(g103) and now[jpeg]["type"] == "manual", now
    assert sorted(m["path"] for m in now[jpeg]["members"]) == g103
    assert now[jpeg]["primary"] == jpeg


def test_undo_dissolve_after_a_rescan_found_a_file_gone_in_browser(
    twinlens_ui: tuple[Stack, dict],
) -> None:
    stack, expected = twinlens_ui
    g102 = expected["group_102"]  # IMG_102.JPG and its two sidecars
    jpeg = next(p for p in g102 if p.endswith(".JPG"))
    gone = next(p for p in g102 if p.endswith("IMG_102.xmp"))

    # When the group of IMG_102.JPG is dissolved, a rescan finds one of its sidecars
    # deleted, and the user chooses "Undo dissolve"
    out = _drive("regroup-gone", stack.url, jpeg, gone)

    # Then the gateway's refusal is said (not "the list changed"), and the other two files
    # are offered to be put back
    assert out["rescan"] and set(out["rescan"]) == {"done"}, out["rescan"]
    assert out["refused"].startswith(f"'{gone}' is not a cataloged file"), out["refused"]
    assert "The other 2 files can still be put back together." in out["refused"], out["refused"]
    assert out["again"] == "Put back the other 2 files"
    # ... which makes them one manual group, the JPEG still its primary
    assert out["regrouped"].startswith("Put the group of IMG_102.JPG back together: 2 files")
    assert sorted(out["after"]["paths"]) == sorted(set(g102) - {gone})
    assert out["primary"] == jpeg
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_trash_with_api_key_after_dry_run(immich_ui: dict) -> None:
    stack, immich, key = immich_ui["stack"], immich_ui["immich"], immich_ui["key"]
    exact, assets = immich_ui["expected"]["exact"], immich_ui["assets"]

    out = _drive("immich", stack.url, key)

    assert out["loginShown"] is True and out["storedKey"] is True
    assert {g["type"] for g in out["before"]} == {"exact", "perceptual"}
    kept = f"{out['keptDir']}/{out['keptName']}"
    assert kept in exact
    trashed = next(p for p in exact if p != kept)
    # The dry run named both files and the bytes the one going to the trash frees.
    assert "Dry run: 1 file would go to Immich's trash" in out["dialog"], out["dialog"]
    assert re.search(rf"keep {re.escape(kept)}", out["dialog"], re.IGNORECASE), out["dialog"]
    assert re.search(rf"trash {re.escape(trashed)}", out["dialog"], re.IGNORECASE), out["dialog"]
    assert "Moved 1 file to Immich's trash" in out["message"]
    # ... said where the card was, pointing to Twinlens's own Undo (Immich's trash alone
    # would leave the group marked resolved), which opens the undo's dry run
    assert "Moved 1 file to Immich's trash" in out["messageInCard"], out["messageInCard"]
    assert "Restore from Immich's trash" not in out["messageInCard"]
    assert "1 file comes back from Immich's trash" in out["noteUndoDialog"], out["noteUndoDialog"]
    # ... and the keyboard is on the next card, not back at the top of the page
    assert out["focused"] == out["otherId"], out["focused"]

    state = immich.state.assets
    assert state[assets[trashed]]["isTrashed"] is True
    assert state[assets[kept]]["isTrashed"] is False
    # The confirm sent exactly what the dry run showed, once, and could not be sent twice
    dry, real = out["resolveBodies"]
    assert dry["dryRun"] is True and real["dryRun"] is False
    assert real["keep"] == dry["keep"] == [kept]
    assert real["expectTrash"] == [trashed]
    assert out["confirmDisabledWhileRunning"] is True
    headers = {"x-api-key": key}
    resolved = requests.get(
        f"{stack.url}/api/twinlens/duplicates/{out['target']}", headers=headers, timeout=10
    ).json()
    assert resolved["status"] == "resolved"

    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]

    # Change of mind, in the browser after a dry run: the copy comes back from Immich's
    # trash and the group is open again.
    undo = _drive("immich-undo", stack.url, key, out["target"])
    assert undo["badge"] == "resolved"
    assert undo["shownKept"] == kept
    # ... each copy saying what the decision did with it, with no pick or suggestion left
    outcomes = {m["path"]: m["outcome"] for m in undo["members"]}
    assert outcomes == {kept: "Kept", trashed: "Moved to Immich's trash"}, undo["members"]
    for m in undo["members"]:
        assert m["radios"] == 0 and "Keep this one" not in m["text"], m
        assert "Suggested keeper" not in m["text"], m
    assert "1 file comes back from Immich's trash" in undo["undoDialog"], undo["undoDialog"]
    assert trashed in undo["undoDialog"], undo["undoDialog"]
    assert "1 file restored from Immich's trash" in undo["undoMessage"], undo["undoMessage"]
    assert state[assets[trashed]]["isTrashed"] is False
    assert state[assets[kept]]["isTrashed"] is False
    reopened = requests.get(f"{stack.dedup_url}/duplicates/{out['target']}", timeout=10).json()
    assert reopened["status"] == "open", reopened
    assert not [c for c in undo["console"] if c.startswith("pageerror")], undo["console"]


def test_a_dry_run_dialog_closed_gives_the_keyboard_back_to_its_button(immich_ui: dict) -> None:
    stack, key = immich_ui["stack"], immich_ui["key"]

    # When the trash dry run's dialog is closed with Escape, then with Cancel (the button
    # that opened it was disabled while its dry run ran)
    out = _drive("immich-dialog-focus", stack.url, key)

    # Then the keyboard is back on that button each time, not on the page's body
    for how in ("Escape", "Cancel"):
        at = out["closed"][how]
        assert at["tag"] == "BUTTON" and at["card"] == out["id"], (how, at)
        assert at["text"].startswith("Move others to Immich trash"), (how, at)
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_thumbnails_with_an_api_key_load_near_the_viewport(immich_ui: dict) -> None:
    stack, key = immich_ui["stack"], immich_ui["key"]

    # When the user, with a pasted API key, opens the duplicates in a short window
    out = _drive("immich-lazy", stack.url, key)

    # Then (the last group's pictures being well below the window) only the first group's
    # thumbnails were fetched, the others once scrolled to
    assert out["cards"] == 2 and out["thumbs"] == 4, out
    assert out["lastThumbTop"] > out["viewport"] + 200, out
    assert out["askedFirst"] == 2 and out["loadedFirst"] == 2, out
    assert out["askedAfterScroll"] == 4 and out["loadedAfterScroll"] == 4, out
    assert out["keyInUrl"] is False
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_undo_of_a_decision_a_new_copy_reopened(immich_ui: dict) -> None:
    stack, immich, key = immich_ui["stack"], immich_ui["immich"], immich_ui["key"]
    exact, assets = immich_ui["expected"]["exact"], immich_ui["assets"]
    headers = {"x-api-key": key}
    api = f"{stack.url}/api/twinlens"
    # Given the exact copies resolved: one kept, the other sent to Immich's trash
    listed = requests.get(api + "/duplicates", headers=headers, timeout=10).json()["items"]
    dup = next(d for d in listed if d["type"] == "exact")
    kept, trashed = exact[0], exact[1]
    r = requests.post(
        f"{api}/duplicates/{dup['id']}/resolve", json={"keep": [kept]}, headers=headers, timeout=10
    )
    assert r.status_code == 200, r.text
    assert immich.state.assets[assets[trashed]]["isTrashed"] is True
    # ... then a phone backup brings a third copy, and a scan reopens the group
    backup = Path(kept).parent / "phone-backup"
    backup.mkdir()
    shutil.copy2(kept, backup / Path(kept).name)
    r = requests.post(api + "/jobs", json={}, headers=headers, timeout=10)
    assert r.status_code in (200, 202), r.text
    deadline = time.monotonic() + 90
    while True:
        now = requests.get(f"{stack.dedup_url}/duplicates/{dup['id']}", timeout=10).json()
        if now["status"] == "open" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert now["status"] == "open" and now["previous_resolution"]["action"] == "trash", now

    # When the user undoes the earlier decision from the open group's card
    out = _drive("immich-undo-earlier", stack.url, key, dup["id"])

    # Then the card said why, the dry run named the copy in Immich's trash, and it is back
    assert "A new copy joined this group after it was resolved" in out["cardNotice"], out
    assert out["members"] == 3
    assert "1 file comes back from Immich's trash" in out["undoDialog"], out["undoDialog"]
    assert trashed in out["undoDialog"], out["undoDialog"]
    assert "1 file restored from Immich's trash" in out["undoMessage"], out["undoMessage"]
    assert out["stillListed"] == 1
    assert immich.state.assets[assets[trashed]]["isTrashed"] is False
    after = requests.get(f"{stack.dedup_url}/duplicates/{dup['id']}", timeout=10).json()
    assert (after["status"], after["previous_resolution"]) == ("open", None)
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_accept_all_keeps_picks_and_sends_what_the_dry_run_showed(immich_ui: dict) -> None:
    stack, immich, key = immich_ui["stack"], immich_ui["immich"], immich_ui["key"]
    exact, assets = immich_ui["expected"]["exact"], immich_ui["assets"]

    out = _drive("immich-bulk", stack.url, key)

    kept = out["kept"]
    trashed = next(p for p in exact if p != kept)
    assert kept in exact and out["otherReviewer"] == 200
    # The dry run covered both groups; the one decided meanwhile is named as refused,
    # and the page did not break on it
    other, dry, real = out["bodies"]  # the other reviewer's request came from this page
    assert other == {"action": "not_duplicate"}
    assert dry["dryRun"] is True and {g["id"] for g in dry["groups"]} == {
        out["exactId"],
        out["perceptualId"],
    }
    assert "1 group cannot be resolved" in out["dialog"], out["dialog"]
    assert re.search(rf"keep {re.escape(kept)}", out["dialog"], re.IGNORECASE), out["dialog"]
    assert re.search(rf"trash {re.escape(trashed)}", out["dialog"], re.IGNORECASE), out["dialog"]
    # The confirm sent only the group the dry run could resolve, with the user's pick and
    # exactly the files the dry run showed
    assert real["dryRun"] is False
    assert real["groups"] == [
        {"id": out["exactId"], "keep": [kept], "action": "trash", "expectTrash": [trashed]}
    ]
    assert "Resolved 1 group" in out["message"], out["message"]
    # ... leaving the page asked first while it ran, not before nor after
    assert out["leaveWarns"] == [False, True, False], out["leaveWarns"]
    # ... and, no group being left to review, the keyboard is on that message
    assert out["focusAfter"].startswith("p.notice.ok: Resolved 1 group"), out["focusAfter"]
    state = immich.state.assets
    assert state[assets[trashed]]["isTrashed"] is True
    assert state[assets[kept]]["isTrashed"] is False
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_a_confirm_immich_refuses_is_said_and_changes_nothing(immich_ui: dict) -> None:
    stack, immich = immich_ui["stack"], immich_ui["immich"]
    # Given a key that may review but not delete assets in Immich
    alice = next(u for u in immich.state.users.values() if u["email"] == "alice@example.com")
    key = immich.state.add_api_key(
        alice["id"],
        ["user.read", "duplicate.read", "duplicate.delete", "asset.upload", "asset.view",
         "job.read", "stack.read"],
    )  # fmt: skip

    out = _drive("immich-refused", stack.url, key)

    # Then the card that acted says why, in view, and the group is still open, its button
    # usable
    assert "asset.delete" in out["alert"], out["alert"]
    assert out["alertInView"] is True
    assert out["stillListed"] == 1 and out["trashEnabled"] is True
    assert [b["dryRun"] for b in out["bodies"]] == [True, False]
    assert not any(a["isTrashed"] for a in immich.state.assets.values())
    group = requests.get(f"{stack.dedup_url}/duplicates/{out['target']}", timeout=10).json()
    assert group["status"] == "open", group


def test_a_decision_immich_left_unanswered_offers_its_undo(immich_ui: dict) -> None:
    stack, immich = immich_ui["stack"], immich_ui["immich"]

    # When a confirm is answered 502 after the decision was recorded (Immich failed)
    out = _drive("immich-502", stack.url, immich_ui["key"])

    # Then its note says so and offers Undo, which reopened the group
    assert "the decision is recorded" in out["alert"] and out["alert"].endswith("Undo"), out
    assert out["reopened"], out
    group = requests.get(f"{stack.dedup_url}/duplicates/{out['target']}", timeout=10).json()
    assert group["status"] == "open", group
    assert not any(a["isTrashed"] for a in immich.state.assets.values())
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_a_group_whose_other_copy_is_in_immichs_trash_is_resolved(immich_ui: dict) -> None:
    stack, immich, key = immich_ui["stack"], immich_ui["immich"], immich_ui["key"]
    exact, assets = immich_ui["expected"]["exact"], immich_ui["assets"]
    # Given the exact copies, the one not suggested trashed in Immich itself (Immich's own
    # duplicate review, say). (Asked of the dedup API: a list through the gateway now
    # would be cached with the copy still live.)
    listed = requests.get(f"{stack.dedup_url}/duplicates", timeout=10).json()["items"]
    dup = next(d for d in listed if sorted(m["path"] for m in d["members"]) == exact)
    kept = dup["keep"]
    other = next(p for p in exact if p != kept)
    immich.state.assets[assets[other]]["isTrashed"] = True

    # When the user resolves the group in the browser
    out = _drive("immich-in-trash", stack.url, key, dup["id"])

    # Then the card said where that copy is, and the dry run offered to record the decision
    assert dict(out["inImmich"]) == {kept: "yes", other: "in Immich's trash"}, out["inImmich"]
    assert "already in Immich's trash" in out["dialog"], out["dialog"]
    assert out["confirmLabel"] == "Record decision (the other copy is already in Immich's trash)"
    assert out["confirmEnabled"] is True
    dry, real = out["bodies"]
    assert (dry["dryRun"], real["dryRun"], real["expectTrash"]) == (True, False, [])
    assert "Recorded the decision" in out["message"], out["message"]
    # ... which the server recorded; nothing else moved
    now = requests.get(f"{stack.dedup_url}/duplicates/{dup['id']}", timeout=10).json()
    assert now["status"] == "resolved" and now["resolution"]["keep"] == [kept], now
    assert immich.state.assets[assets[other]]["isTrashed"] is True
    assert immich.state.assets[assets[kept]]["isTrashed"] is False
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_actions_and_lists_recover_in_browser(twinlens_ui: tuple[Stack, dict]) -> None:
    stack, _ = twinlens_ui

    out = _drive("local-recovery", stack.url)

    a, b = out["ids"]
    # A connection lost while an action was sent: it may have happened
    assert out["lost"].startswith("Cannot reach the Twinlens gateway"), out["lost"]
    assert out["lost"].endswith("the action may have happened: reload to see."), out["lost"]
    assert out["lostRole"] == "alert"
    # Done: said in the card's place, announced, and the keyboard moves to the next card
    assert "as not duplicates" in out["done"] and out["doneRole"] == "status", out
    assert out["focused"] == b, out["focused"]
    # Decided in another browser meanwhile: the list changed, and is read again
    assert out["otherReviewer"] == 200
    assert out["stale"] == (
        "This group changed since the page was loaded (a scan ran, or someone else decided "
        "it); the list is refreshed."
    ), out["stale"]
    assert out["countAfterStale"] == "0 groups"
    # A busy service: said, with when it is tried again, and the list came by itself
    assert "the dedup service is busy" in out["busy"] and "Trying again in 1 s" in out["busy"]
    assert out["busyRecovered"] is True
    # Any other failure waits for "Try again"
    assert "the dedup service failed" in out["failed"] and "Try again" in out["failed"]
    assert out["failedStillShown"] is True and out["failedRecovered"] is True
    # No gateway at start-up is not "an answer with an error"
    assert out["startup"].startswith("Cannot reach the Twinlens gateway"), out["startup"]
    assert "answered with an error" not in out["startup"]
    assert out["startupRecovered"] is True
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]
    # The backend: A dismissed here, B by the other reviewer
    for dup_id in (a, b):
        got = requests.get(f"{stack.dedup_url}/duplicates/{dup_id}", timeout=10).json()
        assert got["status"] == "dismissed", got


def test_a_folder_scan_keeps_the_library_scans_unreadable_files(
    twinlens_ui: tuple[Stack, dict],
) -> None:
    stack, expected = twinlens_ui
    api = stack.url + "/api/twinlens"
    library = Path(expected["exact"][0]).parents[2]
    folder = library / "2024"
    # Given the library's scan (broken.jpg unreadable), then a scan of one folder
    r = requests.post(api + "/jobs", json={"path": str(folder)}, timeout=10)
    assert r.status_code in (200, 202), r.text
    started = {j["id"] for j in r.json()["jobs"]}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = requests.get(api + "/jobs", timeout=10).json()["items"]
        if all(j["state"] not in ("queued", "running") for j in jobs if j["id"] in started):
            break
        time.sleep(0.3)
    assert {j["state"] for j in jobs if j["id"] in started} == {"done"}, jobs

    out = _drive("overview", stack.url)

    # Then the Overview shows the library's last scan with its unreadable file, and the
    # folder scan apart, saying what it scanned
    assert [row[0] for row in out["lastErrors"]] == ["broken.jpg"], out
    assert out["last"].startswith("Last scan done"), out["last"]
    assert f"{library} (whole library" in out["last"], out["last"]
    assert (out["folder"] or "").startswith("Last folder scan done"), out["folder"]
    assert f"{folder} (one folder, started from the web UI or the API)" in out["folder"]
    assert out["folderErrors"] == 0
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


# A name too long for any window, with nowhere to break it
LONG_NAME = "IMG_" + "0123456789" * 20 + ".jpg"


def test_files_with_problems_in_browser(
    ui_dist: Path, embedded_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from core import catalog
    from core.media import inspect

    # Given a library with files that cannot be read: a bad JPEG (broken.jpg, at the top),
    # an empty file, names no window is wide enough for, that reorder themselves or are
    # not UTF-8, a file under bad sectors (its read fails: tried again later) and a JPEG
    # named .png (read whole: only its name is wrong)
    library = tmp_path / "library"
    expected = make_library(library)
    trip = library / "2024" / "trip"
    bad = b"\xff\xd8\xff\xe0 not really a jpeg"
    (trip / "empty.jpg").write_bytes(b"")
    (trip / LONG_NAME).write_bytes(bad)
    (trip / "\u202egpj.exe").write_bytes(bad)
    (trip / "caf\udce9.jpg").write_bytes(bad)  # the byte 0xE9: not UTF-8
    (trip / "unlucky.jpg").write_bytes((trip / "IMG_100.JPG").read_bytes()[:5000] + b"x")
    picture(9, (160, 120)).save(trip / "scan.png", "JPEG", quality=80)
    open_regular = inspect.open_regular

    def eio(path, *args, **kwargs):
        if str(path).endswith("unlucky.jpg"):
            raise OSError(errno.EIO, "Input/output error", path)
        return open_regular(path, *args, **kwargs)

    monkeypatch.setattr(inspect, "open_regular", eio)
    monkeypatch.setattr(catalog, "open_regular", eio)
    with _local_ui(ui_dist, embedded_settings, library) as stack:
        api = stack.url + "/api/twinlens"
        listed = requests.get(api + "/files/errors", timeout=10).json()
        by_name = {Path(f["path"]).name: f for f in listed["items"]}
        problems = {"broken.jpg", "empty.jpg", LONG_NAME, "\u202egpj.exe", "caf\udce9.jpg",
                    "unlucky.jpg", "scan.png"}  # fmt: skip
        assert set(by_name) == problems, by_name
        assert [n for n, f in by_name.items() if f["retried"]] == ["unlucky.jpg"]
        misnamed = {"scan.png", "\u202egpj.exe"}  # (the second one broken too)
        assert {n for n, f in by_name.items() if f["misnamed"]} == misnamed

        # When the user follows the Overview's link, then filters by folder
        out = _drive("problems", stack.url, str(library))

        # Then the Overview counted them, and the page lists each with its problem and
        # when it is read again
        assert out["link"] == "7 files with problems" and out["linkHref"] == "#/problems", out
        assert out["navCurrent"] == "Files with problems"
        assert out["count"] == "7 files"
        rows = {Path(r["path"]).name: r for r in out["rows"]}
        assert set(rows) == problems
        for name, row in rows.items():
            assert row["problem"] and row["problem"] == by_name[name]["error"].replace(
                "\n", "\\x0a"
            ), row
            assert row["next"] == (
                "read again at a later scan"
                if name == "unlucky.jpg"
                else "read again once renamed or changed, or by a full rescan"
                if name in misnamed
                else "read again once the file changes, or by a full rescan"
            ), row
        # ... names shown as they can be read: the byte that is not UTF-8 and the
        # reordering character escaped, as the command line shows them
        assert rows["caf\udce9.jpg"]["shown"] == f"{trip}/caf\\xe9.jpg"
        assert rows["\u202egpj.exe"]["shown"] == f"{trip}/\\u202egpj.exe"
        assert rows[LONG_NAME]["shown"] == f"{trip}/{LONG_NAME}"
        # ... and a long one wraps: nothing sticks out of a narrow window
        assert out["overflow"] <= 0, out["overflow"]
        # A folder lists only its own (kept in the URL, typed with a trailing slash)
        assert sorted(Path(p).name for p in out["folderRows"]) == sorted(problems - {"broken.jpg"})
        assert out["folderCount"] == "6 files"
        assert out["folderHash"] == "#/problems?folder=" + requests.utils.quote(
            f"{library}/2024", safe=""
        ), out["folderHash"]
        assert out["wholeAgain"] == 7 and out["rootRows"] == 7
        assert out["emptyFolder"] == f"Every file in {library}/backup was read without a problem."
        assert "outside the library roots" in out["outside"], out["outside"]
        assert out["rowsOutside"] == 0
        assert out["outsideButtons"] == 0, out["outside"]  # a refusal: no "Try again"
        # A folder typed relative to the library is taken under its root, which the
        # field's placeholder shows
        assert out["placeholder"] == f"{library}/…", out["placeholder"]
        assert out["relativeHash"] == out["folderHash"], out["relativeHash"]
        assert out["relativeRows"] == 6
        assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]

        # When every one of them is gone or reads well (the mis-named one renamed right),
        # and the library is scanned again
        for name in problems - {"scan.png"}:
            (library / name if name == "broken.jpg" else trip / name).unlink()
        (trip / "scan.png").rename(trip / "scan.jpg")
        r = requests.post(api + "/jobs", json={}, timeout=10)
        assert r.status_code in (200, 202), r.text
        started = {j["id"] for j in r.json()["jobs"]}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = requests.get(api + "/jobs", timeout=10).json()["items"]
            if all(j["state"] not in ("queued", "running") for j in jobs if j["id"] in started):
                break
            time.sleep(0.3)
        assert requests.get(api + "/files/errors", timeout=10).json()["total"] == 0
        none = _drive("problems-none", stack.url)

        # Then the page says so
        assert none["link"] == "No files with problems"
        assert none["empty"] == "Every file in the library was read without a problem."
        assert none["rows"] == 0
        assert expected  # (the rest of the library is untouched)


def test_a_folder_whose_name_is_not_utf8_lists_its_problems_in_browser(
    ui_dist: Path, embedded_settings, tmp_path: Path
) -> None:

    # Given a broken file in a folder whose name has the byte 0xE9 (not UTF-8), and a
    # picture that reads well elsewhere
    library = tmp_path / "library"
    (library / "ok").mkdir(parents=True)
    picture(7, (160, 120)).save(library / "ok" / "IMG_1.JPG", "JPEG", quality=80)
    odd = library / "caf\udce9"
    odd.mkdir()
    (odd / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with _local_ui(ui_dist, embedded_settings, library) as stack:
        # When "only this folder" is followed from its row, then the folder typed as shown
        shown = f"{library}/caf\\xe9"
        out = _drive("problems-bytes", stack.url, shown)

    # Then the folder is asked for as its bytes: its broken file is listed, not "no problem"
    want = {"rows": [f"{shown}/broken.jpg"], "empty": 0, "typed": shown,
            "hash": "#/problems?folder=" + requests.utils.quote(f"{library}/", safe="") + "caf%E9"}  # fmt: skip
    assert out["only"] == want, out["only"]
    assert out["typed"] == want, out["typed"]
    assert out["reloaded"] == want, out["reloaded"]
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def _byte_copy_pairs(library: Path, n: int, seed: int) -> Path:
    """``n`` small pictures in card/, each with its byte copy in backup/."""
    for folder in ("card", "backup"):
        (library / folder).mkdir(parents=True)
    for i in range(n):
        name = f"IMG_{i:04d}.JPG"
        picture(seed + i, (160, 120)).save(library / "card" / name, "JPEG", quality=80)
        shutil.copyfile(library / "card" / name, library / "backup" / name)
    return library


def test_many_duplicate_groups_are_paged_in_browser(
    ui_dist: Path, embedded_settings, tmp_path: Path
) -> None:

    # Given 45 pairs of byte copies: more than two pages of 20 groups
    library = _byte_copy_pairs(tmp_path / "library", 45, seed=1000)
    with _local_ui(ui_dist, embedded_settings, library) as stack:
        listed = requests.get(stack.url + "/api/twinlens/duplicates", timeout=10).json()
        assert listed["total"] == 45, listed["total"]

        out = _drive("paging", stack.url)

    # Then 20 a page, "Page 1 of 3", First and Previous leading nowhere
    assert out["total"] == 45
    assert out["first"] == {"hash": "#/duplicates", "cards": 20, "pager": "Page 1 of 3",
                            "perPage": "20"}  # fmt: skip
    assert out["firstButtons"] == {"first": True, "previous": True}
    # Last: the 5 groups of page 3 in one step, Next and Last leading nowhere; First: back
    assert out["last"] == {"hash": "#/duplicates?page=3", "cards": 5, "pager": "Page 3 of 3",
                           "perPage": "20"}  # fmt: skip
    assert out["lastButtons"] == {"next": True, "last": True}
    assert out["backToFirst"]["cards"] == 20 and out["backToFirst"]["pager"] == "Page 1 of 3"
    # 50 a page, chosen on page 3 (groups 41-45): page 1 of 50 holds them; no pager needed
    assert out["fifty"] == {"hash": "#/duplicates?size=50", "cards": 45, "pager": None,
                            "perPage": "50"}  # fmt: skip
    # ... kept by a reload and by another filter
    assert out["reloaded"] == out["fifty"]
    assert out["otherFilter"]["hash"] == "#/duplicates?status=any&size=50"
    assert out["otherFilter"]["cards"] == 45 and out["otherFilter"]["perPage"] == "50"
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_duplicates_of_one_folder_in_browser(
    ui_dist: Path, embedded_settings, tmp_path: Path
) -> None:

    # Given 25 pictures with a byte copy in backup/ (two pages of 20 groups), 5 with one in
    # phone/ and 1 with one in backup-old/ (a folder whose name starts as backup's does)
    library = _byte_copy_pairs(tmp_path / "library", 25, seed=2000)
    for i in range(5):
        name = f"P_{i:04d}.JPG"
        (library / "phone").mkdir(exist_ok=True)
        picture(3000 + i, (160, 120)).save(library / "card" / name, "JPEG", quality=80)
        shutil.copyfile(library / "card" / name, library / "phone" / name)
    (library / "backup-old").mkdir()
    picture(4000, (160, 120)).save(library / "card" / "Q.JPG", "JPEG", quality=80)
    shutil.copyfile(library / "card" / "Q.JPG", library / "backup-old" / "Q.JPG")
    backup = f"{library}/backup"
    with _local_ui(ui_dist, embedded_settings, library) as stack:
        api = stack.url + "/api/twinlens/duplicates"
        assert requests.get(api, timeout=10).json()["total"] == 31
        assert requests.get(api, params={"path_prefix": backup}, timeout=10).json()["total"] == 25

        # When "backup/" is typed on page 2 of the whole library, then the pages are turned,
        # the page reloaded, Back used, another filter chosen, the whole library asked again
        out = _drive("duplicates-folder", stack.url, str(library))

    # Then only the groups with a copy in backup/ are listed, from page 1 (not backup-old's)
    assert out["wholeTotal"] == "31 groups" and out["onPage2Before"] == 11
    assert out["placeholder"] == f"{library}/…", out["placeholder"]
    quoted = requests.utils.quote(backup, safe="")
    assert out["folder"]["hash"] == f"#/duplicates?folder={quoted}", out["folder"]["hash"]
    assert out["folderRequest"] == f"?path_prefix={quoted}&status=open&page=1&size=20"
    assert out["folder"]["count"] == "25 groups" and out["folder"]["pager"] == "Page 1 of 2"
    assert out["folder"]["typed"] == backup
    assert len(out["folder"]["cards"]) == 20
    assert all(sorted(dirs) == [backup, f"{library}/card"] for dirs in out["folder"]["cards"]), out
    # ... on its second page too, kept by a reload; Back goes to its first page
    assert out["folderPage2"]["hash"] == f"#/duplicates?folder={quoted}&page=2"
    assert len(out["folderPage2"]["cards"]) == 5 and out["folderPage2"]["pager"] == "Page 2 of 2"
    assert all(backup in dirs for dirs in out["folderPage2"]["cards"])
    assert out["reloaded"] == out["folderPage2"]
    assert out["back"] == out["folder"]
    # ... combined with the status filter, then the whole library again
    assert out["withStatus"]["hash"] == f"#/duplicates?status=any&folder={quoted}"
    assert out["withStatus"]["count"] == "25 groups"
    assert (
        out["whole"]["hash"] == "#/duplicates?status=any" and out["whole"]["count"] == "31 groups"
    )
    assert out["whole"]["typed"] == ""
    # A folder outside the library is refused, said, with no "Try again" and no groups
    assert "outside the library roots" in out["outside"], out["outside"]
    assert out["outsideCards"] == 0 and out["outsideButtons"] == 0
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def _two_roots(tmp_path: Path) -> tuple[Path, Path]:
    """Two library roots: ``photos`` (the generated library: its duplicates and groups in
    2024/trip and backup, broken.jpg at its top) and ``phone``, whose 2024/trip holds a
    photo with its sidecar, its byte copy in phone/backup, and a file that cannot be read."""
    photos, phone = tmp_path / "photos", tmp_path / "phone"
    make_library(photos)
    trip = phone / "2024" / "trip"
    trip.mkdir(parents=True)
    (phone / "backup").mkdir()
    picture(300).save(trip / "PXL_1.JPG", "JPEG", quality=85)
    shutil.copyfile(trip / "PXL_1.JPG", phone / "backup" / "PXL_1.JPG")
    (trip / "PXL_1.JPG.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')
    (trip / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg either")
    return photos, phone


def _quoted(p: Path) -> str:
    """A folder as the UI writes it in its URL (its bytes, form-encoded)."""
    return requests.utils.quote(str(p), safe="")


def test_two_library_roots_are_known_before_any_scan_in_browser(
    ui_dist: Path, embedded_settings, tmp_path: Path
) -> None:
    from core.db import migrate

    # Given a fresh Twinlens over two library roots: nothing scanned, so no job names them
    photos, phone = _two_roots(tmp_path)
    cfg = replace(embedded_settings, immich_url="", library_roots=(photos, phone))
    Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
    migrate(cfg.database_url)
    stack = start(cfg, dist=ui_dist)
    try:
        api = stack.url + "/api/twinlens"
        assert requests.get(api + "/jobs", timeout=10).json()["items"] == []
        assert requests.get(api + "/roots", timeout=10).json() == {
            "items": [
                {"id": None, "path": str(photos), "files": 0},
                {"id": None, "path": str(phone), "files": 0},
            ]
        }

        # When a folder is typed relative to the library on Files with problems, then a
        # root picked, other folders typed, and "All"
        fresh = _drive("roots-fresh", stack.url, str(photos), str(phone))
    finally:
        stack.stop()

    # Then the roots were known without a job: the picker offers them, the placeholder
    # is a folder of the first
    assert fresh["options"] == ["All (2)", str(photos), str(phone)], fresh["options"]
    assert fresh["picked"] == "" and fresh["placeholder"] == f"{photos}/…"
    # ... a relative folder with none picked is not guessed: the user is asked, and
    # nothing is listed for it
    assert fresh["choose"] == (
        '"2024/trip" is relative, and the library has 2 folders: pick the one it is in as '
        "Library folder, or type a full path."
    ), fresh["choose"]
    assert fresh["chooseHash"] == "#/problems" and fresh["chooseRequests"] == 0
    # ... picking the second takes it under that one, and says so in the field
    assert fresh["pickedHash"] == f"#/problems?folder={_quoted(phone / '2024' / 'trip')}"
    assert fresh["pickedTyped"] == str(phone / "2024" / "trip")
    assert fresh["pickedValue"] == str(phone) and fresh["chooseAfter"] == 0
    assert fresh["pickedPlaceholder"] == f"{phone}/…"
    assert fresh["relativeHash"] == f"#/problems?folder={_quoted(phone / 'backup')}"
    # ... a folder that starts with a root's name goes under that root, whichever is picked
    assert fresh["namedHash"] == f"#/problems?folder={_quoted(photos / '2024')}"
    assert fresh["namedPicked"] == str(photos)
    assert fresh["allHash"] == "#/problems"
    assert not [c for c in fresh["console"] if c.startswith("pageerror")], fresh["console"]


def test_the_overview_of_one_folder_of_two_roots_in_browser(
    ui_dist: Path, embedded_settings, tmp_path: Path
) -> None:
    import twinlens

    # Given two library roots, both scanned
    photos, phone = _two_roots(tmp_path)
    cfg = replace(embedded_settings, immich_url="", library_roots=(photos, phone))
    for root in (photos, phone):
        assert twinlens.run_scan(cfg, str(root))["job"]["state"] == "done"
    stack = start(cfg, dist=ui_dist)
    try:
        # When the Overview is narrowed to a folder of the second, typed as the root's name
        # and a folder, and its Review, Browse and problems link are followed
        over = _drive("roots-overview", stack.url, str(photos), str(phone))
    finally:
        stack.stop()

    # Then the whole library first: 3 duplicate groups (2 in photos, 1 in phone), 3 file
    # groups, 2 files with problems
    def figure(cards: list[str], label: str) -> str:
        return next(c for c in cards if label in c).split()[0]

    assert figure(over["wholeCards"], "open duplicate groups") == "3", over["wholeCards"]
    assert figure(over["wholeCards"], "file groups") == "3"
    assert over["wholeLink"] == "2 files with problems"
    # ... and the last scan of each root, named by it (not one root's as the library's)
    assert sorted(over["lastScans"], key=lambda s: s["head"]) == sorted(
        [
            {
                "head": f"Last scan of {root} done",
                "scope": f"{root} (whole library folder, started from the command line)",
            }
            for root in (photos, phone)
        ],
        key=lambda s: s["head"],
    ), over["lastScans"]
    # The Overview narrowed to phone/2024: its own figures, said to be its
    folder = phone / "2024"
    assert over["folder"]["hash"] == f"#/overview?folder={_quoted(folder)}"
    assert over["folder"]["scope"] == f"Figures of {folder} and the folders in it"
    assert over["folder"]["picked"] == str(phone)
    cards = over["folder"]["cards"]
    # (one of each: "group", not "groups")
    assert figure(cards, "open duplicate group with a copy in this folder") == "1", cards
    assert figure(cards, "file group (") == "1", cards
    assert any("reclaimable by removing duplicates (whole library)" in c for c in cards), cards
    assert over["folder"]["link"] == "1 file with a problem"
    assert over["folder"]["linkHref"] == f"#/problems?folder={_quoted(folder)}"
    assert all(c.endswith("(whole library)") for c in over["folder"]["captions"]), over["folder"]
    # Review opens that folder's duplicates, Browse its groups, the link its problems
    assert over["review"]["hash"] == f"#/duplicates?folder={_quoted(folder)}", over["review"]
    assert over["review"]["count"] == "1 group" and over["review"]["typed"] == str(folder)
    assert [sorted(dirs) for dirs in over["review"]["cards"]] == [
        sorted([str(phone / "2024" / "trip"), str(phone / "backup")])
    ]
    # ... each with the keyboard on the heading of the page opened (its button gone)
    assert over["reviewFocus"] == "h1: Duplicates", over["reviewFocus"]
    assert over["browseFocus"] == "h1: Groups", over["browseFocus"]
    assert over["browse"] == {
        "hash": f"#/groups?folder={_quoted(folder)}",
        "groups": 1,
        "typed": str(folder),
    }
    assert over["problems"] == {
        "hash": f"#/problems?folder={_quoted(folder)}",
        "rows": [str(phone / "2024" / "trip" / "bad.jpg")],
    }
    # "Whole library" gives the library's figures back, and Review all of its groups
    assert over["wholeAgain"] == over["wholeCards"]
    assert over["wholeReviewHash"] == "#/duplicates"
    assert not [c for c in over["console"] if c.startswith("pageerror")], over["console"]


def test_accept_all_on_one_folders_groups_in_browser(
    ui_dist: Path, embedded_settings, tmp_path: Path
) -> None:
    # Given the library's two groups with a copy in backup/, and a third with none there
    library = tmp_path / "library"
    expected = make_library(library)
    (library / "phone").mkdir()
    picture(200).save(library / "2024" / "trip" / "IMG_200.JPG", "JPEG", quality=90)
    shutil.copyfile(library / "2024" / "trip" / "IMG_200.JPG", library / "phone" / "IMG_200.JPG")
    phone = sorted(
        [str(library / "2024" / "trip" / "IMG_200.JPG"), str(library / "phone" / "IMG_200.JPG")]
    )
    cfg = _scan_local(embedded_settings, library)
    files = expected["exact"] + expected["perceptual"] + phone
    with _behind_immich(ui_dist, cfg, library, files, expected) as ctx:
        stack, immich, key, assets = ctx["stack"], ctx["immich"], ctx["key"], ctx["assets"]

        # When the user lists backup/'s groups, keeps the backup copy of the exact pair, and
        # accepts all suggestions on that page
        out = _drive("immich-folder-bulk", stack.url, key, str(library))

        state = immich.state.assets

    backup = f"{library}/backup"
    quoted = requests.utils.quote(backup, safe="")
    assert out["wholeCards"] == 3
    assert out["folder"]["hash"] == f"#/duplicates?folder={quoted}"
    assert out["folderRequest"] == f"?path_prefix={quoted}&status=open&page=1&size=20"
    assert {g["type"] for g in out["before"]} == {"exact", "perceptual"}
    kept = out["kept"]
    assert kept == f"{backup}/IMG_100.JPG", kept
    # Then the dry run covers the two groups listed, and says which keeps its backup copy
    dry, real = out["bodies"]
    assert dry["dryRun"] is True and len(dry["groups"]) == 2
    assert f"In 1 group the copy kept is the one in {backup}" in out["dialog"], out["dialog"]
    assert real["dryRun"] is False and len(real["groups"]) == 2
    assert {tuple(g["keep"]) for g in real["groups"]} == {
        (kept,),
        (str(library / "2024" / "trip" / "IMG_101.JPG"),),
    }
    assert "Resolved 2 groups" in out["message"], out["message"]
    # ... the folder has none left to review, and the one elsewhere is untouched
    assert out["empty"] == f"No duplicate groups with a copy in {backup} — nothing to review."
    assert out["after"]["hash"] == out["folder"]["hash"]
    assert [sorted(g["files"]) for g in out["whole"]] == [["IMG_200.JPG", "IMG_200.JPG"]]
    trip = library / "2024" / "trip"
    assert state[assets[str(trip / "IMG_100.JPG")]]["isTrashed"] is True
    assert state[assets[kept]]["isTrashed"] is False
    assert state[assets[f"{backup}/IMG_101-small.jpg"]]["isTrashed"] is True
    assert not any(state[assets[p]]["isTrashed"] for p in phone)
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_stack_a_group_then_a_folders_groups_in_immich_in_browser(
    ui_dist: Path, embedded_settings, tmp_path: Path
) -> None:
    # Given RAW+JPEG pairs in shoot/ (the RAWs unreadable stand-ins, which still pair by
    # name), each in Immich, except: IMG_302's RAW Immich has not indexed, IMG_303's pair
    # is one stack already, and IMG_304's JPEG is in a stack with IMG_399, outside the group
    library = tmp_path / "library"
    expected = make_library(library)
    shoot = library / "shoot"
    shoot.mkdir()
    for n in range(300, 305):
        picture(n).save(shoot / f"IMG_{n}.JPG", "JPEG", quality=90)
        (shoot / f"IMG_{n}.CR2").write_bytes(b"II*\x00" + f"a raw of shot {n} ".encode() * 50)
    picture(399).save(shoot / "IMG_399.JPG", "JPEG", quality=90)
    cfg = _scan_local(embedded_settings, library)
    trip = library / "2024" / "trip"
    files = [str(p) for p in sorted(shoot.iterdir()) if p.name != "IMG_302.CR2"]
    files += [str(trip / "IMG_102.JPG"), str(trip / "IMG_103.JPG")]
    with _behind_immich(ui_dist, cfg, library, files, expected) as ctx:
        stack, immich, key, assets = ctx["stack"], ctx["immich"], ctx["key"], ctx["assets"]
        st = immich.state
        a = {Path(p).name: aid for p, aid in assets.items() if "/shoot/" in p}
        owner = st.assets[a["IMG_300.JPG"]]["ownerId"]
        done_before = st.add_stack(owner, [a["IMG_303.JPG"], a["IMG_303.CR2"]])
        theirs = st.add_stack(owner, [a["IMG_304.JPG"], a["IMG_399.JPG"]])

        # When the user stacks IMG_300's group (Escape on its dialog first), asks again,
        # then stacks every group of shoot/ at once
        out = _drive("immich-stack", stack.url, key, str(shoot / "IMG_300.JPG"))

        stack_of = {name: (st.assets[aid]["stack"] or {}) for name, aid in a.items()}

    cards = {tuple(sorted(_names(c["paths"]))): c for c in out["cards"]}
    # Then each pair's card offers it, naming its cover; a JPEG with only sidecars does not
    one = cards[("IMG_300.CR2", "IMG_300.JPG")]
    assert one["stack"] is True and one["cover"] == "cover IMG_300.JPG", one
    assert out["oneDescribedBy"] == "cover IMG_300.JPG"
    sidecar_groups = [c for k, c in cards.items() if any(n.endswith(".xmp") for n in k)]
    assert len(sidecar_groups) == 2 and not any(c["stack"] for c in sidecar_groups), cards
    assert out["bulkButton"] == 1
    # ... its dry run says what Immich will show, and Escape leaves the keyboard on the button
    assert out["oneTitle"] == "Stack in Immich?"
    assert (
        "Dry run: Immich will show these 2 photos as one stack, with IMG_300.JPG "
        "(the group's primary) as its cover." in out["oneDialog"]
    ), out["oneDialog"]
    assert "Unstack takes a new stack apart" in out["oneDialog"], out["oneDialog"]
    assert out["oneDialogFocus"] is True
    assert out["afterEscape"]["text"] == "Stack in Immich", out["afterEscape"]
    assert out["afterEscape"]["card"] == out["oneId"], out["afterEscape"]
    # ... confirmed, it is said in the card, which has the keyboard
    assert out["oneNote"] == "Stacked in Immich: 2 photos, cover IMG_300.JPG.", out["oneNote"]
    assert out["oneNoteRole"] == "status"
    assert out["afterConfirm"]["id"] == out["oneId"], out["afterConfirm"]
    # ... and asked again, it is stacked already: said with no dialog, the keyboard back
    # (naming the cover Immich has: the one this page saw the stack made with)
    assert out["oneAgain"] == "Already stacked in Immich: 2 photos, cover IMG_300.JPG.", out[
        "oneAgain"
    ]
    assert out["afterAgain"]["text"] == "Stack in Immich", out["afterAgain"]
    assert not out["dialogsAfterAgain"]

    # The folder's five groups: a dry run of all, counted, the skipped grouped by reason
    assert out["folderCards"] == 5
    # ... (its dialog, left by Back, closed: it spoke of shoot/'s groups, not the list shown)
    assert out["afterBack"] == {"dialog": False, "hash": "#/groups"}, out["afterBack"]
    assert out["bulkTitle"] == "Stack 1 group in Immich?"
    assert (
        f"Dry run over the 5 groups listed with a file in {shoot}, every page: 1 would be "
        "stacked (each group's photos as one Immich stack, its primary the cover), 2 are "
        "stacked already (left as they are), 2 would not be stacked." in out["bulkDialog"]
    ), out["bulkDialog"]
    skipped = sorted(out["bulkSkipped"])
    assert len(skipped) == 2, skipped
    assert skipped[0].startswith(
        "1: a photo of it is in an Immich stack that holds photos "
        "outside the group: unstack it in Immich first (IMG_304.JPG)"
    ), skipped
    assert skipped[1].startswith("1: fewer than two of its photos are in Immich"), skipped
    assert skipped[1].endswith("(IMG_302.JPG)"), skipped
    # ... then the report, per group too, with the keyboard on it, and each card says its own
    assert out["report"] == "Stacked 1 group in Immich, 2 already stacked, 2 not stacked.", out
    assert out["reportFocused"] is True
    # ... leaving the page (reload, closing the tab) asked first while it ran, only then
    assert out["leaveWarns"] == [False, True, False], out["leaveWarns"]
    lines = sorted(out["reportLines"])
    assert lines[0] == "IMG_300.JPG: Already stacked in Immich: 2 photos, cover IMG_300.JPG.", lines
    assert lines[1] == "IMG_301.JPG: Stacked in Immich: 2 photos, cover IMG_301.JPG.", lines
    assert lines[2].startswith("IMG_302.JPG: Not stacked: fewer than two of its photos"), lines
    assert not lines[2].endswith(".."), lines
    assert lines[3] == "IMG_303.JPG: Already stacked in Immich: 2 photos, cover IMG_303.JPG.", lines
    assert lines[4].startswith("IMG_304.JPG: Not stacked: "), lines
    assert "IMG_304.JPG is in an Immich stack that also holds 1 photo(s) outside" in lines[4]
    notes = {tuple(sorted(_names(c["paths"]))): c["note"] for c in out["folderNotes"]}
    # ... and the hint beside each button names the cover Immich has once a result said
    # it, a stack made in Immich (IMG_303's) too: the gateway names its cover
    hints = {tuple(sorted(_names(c["paths"]))): c["cover"] for c in out["folderNotes"]}
    assert hints[("IMG_301.CR2", "IMG_301.JPG")] == "stacked in Immich, cover IMG_301.JPG", hints
    assert hints[("IMG_300.CR2", "IMG_300.JPG")] == "stacked in Immich, cover IMG_300.JPG", hints
    assert hints[("IMG_303.CR2", "IMG_303.JPG")] == "stacked in Immich, cover IMG_303.JPG", hints
    assert hints[("IMG_302.CR2", "IMG_302.JPG")] == "cover IMG_302.JPG", hints
    assert (
        notes[("IMG_301.CR2", "IMG_301.JPG")] == "Stacked in Immich: 2 photos, cover IMG_301.JPG."
    )

    # What was sent: dry runs before each stack; the bulk's real run only the group to stack
    sent = [(b["path"].rsplit("/", 2)[-2] == "groups", b["body"]) for b in out["bodies"]]
    assert [s[1]["dryRun"] for s in sent] == [True, True, False, True, True, True, False], sent
    bulk_dry, bulk_real = out["bodies"][-2:]
    assert bulk_dry["path"] == bulk_real["path"] == "/api/twinlens/groups/stack"
    assert len(bulk_dry["body"]["ids"]) == 5
    assert len(bulk_real["body"]["ids"]) == 1
    # ... each real run bound to its dry run's photos (the cover first)
    one_dry, one_real = out["bodies"][1]["body"], out["bodies"][2]["body"]
    assert one_real["expectAssetIds"] == [a["IMG_300.JPG"], a["IMG_300.CR2"]], one_real
    assert "expectAssetIds" not in one_dry
    assert bulk_real["body"]["expectAssetIds"] == {
        bulk_real["body"]["ids"][0]: [a["IMG_301.JPG"], a["IMG_301.CR2"]]
    }
    # And Immich holds: IMG_300 and IMG_301 each one stack, the JPEG on top; IMG_303's as it
    # was; IMG_304's JPEG still in the user's stack with IMG_399, its RAW in none; IMG_302 none
    for n in ("300", "301"):
        jpg, raw = stack_of[f"IMG_{n}.JPG"], stack_of[f"IMG_{n}.CR2"]
        assert jpg and jpg == raw and jpg["assetCount"] == 2, (n, jpg, raw)
        assert jpg["primaryAssetId"] == a[f"IMG_{n}.JPG"]
    assert stack_of["IMG_303.JPG"]["id"] == done_before == stack_of["IMG_303.CR2"]["id"]
    assert stack_of["IMG_304.JPG"]["id"] == theirs == stack_of["IMG_399.JPG"]["id"]
    assert stack_of["IMG_304.CR2"] == {} and stack_of["IMG_302.JPG"] == {}
    # ... and at a phone's width the page does not scroll sideways
    narrow = out["narrow"]
    assert narrow["width"] <= 375 and narrow["sideways"] <= 0, narrow
    assert narrow["edges"] and max(narrow["edges"]) <= narrow["width"], narrow
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_a_long_file_name_and_a_phone_width_fit_the_window_in_browser(
    ui_dist: Path, embedded_settings, tmp_path: Path
) -> None:

    # Given byte copies named by a 230-character name without a space, and a few others
    library = _byte_copy_pairs(tmp_path / "library", 3, seed=3000)
    long_name = "Sommerurlaub_" + "Strandfoto" * 21 + "_final.JPG"
    assert len(long_name) > 220
    for folder in ("card", "backup"):
        shutil.copyfile(library / "card" / "IMG_0000.JPG", library / folder / long_name)
    (library / "card" / "IMG_0000.JPG").unlink()
    (library / "backup" / "IMG_0000.JPG").unlink()
    # ... and sidecars, so that the Groups page has groups, one of them named by the long name
    (library / "card" / "IMG_0001.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')
    xmp = long_name.replace(".JPG", ".xmp")
    (library / "card" / xmp).write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')
    with _local_ui(ui_dist, embedded_settings, library) as stack:
        out = _drive("layout", stack.url)

    # Then on a wide window the long name wraps in its card's heading: no card, and none of
    # its buttons, reaches past the window, and the page does not scroll sideways
    wide = out["wide"]
    assert any(long_name in h for h in out["headings"]), out["headings"]
    assert wide["sideways"] <= 0, wide
    assert wide["cards"] and max(wide["cards"]) <= wide["width"], wide
    assert wide["buttons"] and max(wide["buttons"]) <= wide["width"], wide
    # ... and at a phone's width (375 px) no page scrolls sideways, and every link of the
    # top navigation ("Files with problems" last) is in view
    for name, seen in out["narrow"].items():
        assert seen["width"] <= 375, (name, seen)
        assert seen["sideways"] <= 0, (name, seen)
        assert seen["nav"] and max(seen["nav"]) <= seen["width"], (name, seen)
        assert all(r <= seen["width"] for r in seen["cards"] + seen["buttons"]), (name, seen)
    # ... nor does a dialog naming the long file (its group dissolved): the name wraps
    dialog = out["dialog"]
    assert dialog["sideways"] <= 0, dialog
    assert dialog["edges"] and max(dialog["edges"]) <= dialog["right"], dialog
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_a_decision_that_empties_the_last_page_keeps_its_note_in_browser(
    ui_dist: Path, embedded_settings, tmp_path: Path
) -> None:

    # Given 21 pairs of byte copies: page 2 (of 20 a page) holds one group
    library = _byte_copy_pairs(tmp_path / "library", 21, seed=2000)
    with _local_ui(ui_dist, embedded_settings, library) as stack:
        # When that group is marked "not duplicates" on page 2
        out = _drive("step-back", stack.url)

    # Then the list steps back to page 1, and the note comes along: first on the page, in
    # the small card left of the group, which has the keyboard
    assert out["before"] == 1
    after = out["after"]
    assert after["hash"] == "#/duplicates" and after["cards"] == 20, after
    assert after["firstId"] == out["id"] and after["firstClass"] == "dup-gone", after
    assert after["note"].startswith("Marked IMG_00") and "not duplicates" in after["note"], after
    assert after["focused"] == out["id"], after
    # Steps the list made by itself replaced the page stepped from in the history: Back
    # leads to the page before it (the Overview), not to the empty page, which would step
    # forward again (a bookmark beyond the last page too)
    assert out["bookmarkBack"] == "#/overview", out
    assert out["afterBack"] == "#/overview", out
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_a_group_reopened_by_another_reviewer_shows_again_in_browser(
    twinlens_ui: tuple[Stack, dict],
) -> None:
    stack, _ = twinlens_ui

    # When a group marked "not duplicates" here is reopened by another reviewer, and then
    # another group is decided (the list is read again)
    out = _drive("reopened-elsewhere", stack.url)

    # Then the reopened group is back in the open list, the other one gone from it
    assert out["before"] >= 2, out
    assert out["reopened"] == 200, out
    assert out["shownAgain"] == 1, out
    assert out["otherGone"] == 0, out
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_a_scan_with_more_failed_files_than_listed_says_so(
    twinlens_ui: tuple[Stack, dict],
) -> None:
    stack, _ = twinlens_ui

    # When the last scan counted more failed files than the jobs API lists (1,000)
    out = _drive("overview-capped", stack.url)

    # Then the list says it holds the first of them, and where all of them are
    assert out["summary"] == "Files that failed (first 1 of 4,321)", out["summary"]
    assert "4,321 files could not be read" in out["figures"], out["figures"]
    assert out["note"].startswith("The list stops at the first 1;"), out["note"]
    assert out["link"] == "#/problems"
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_a_running_jobs_failed_files_are_not_announced_and_stay_as_the_user_left_them(
    twinlens_ui: tuple[Stack, dict],
) -> None:
    stack, _ = twinlens_ui

    # When a scan runs and its failed files grow from 5 to 15, the user having closed and
    # opened their list
    out = _drive("overview-running", stack.url)

    # Then only a short line is live (not the job, nor its failed files' table) ...
    assert out["jobLive"] is None, out
    assert [x["tables"] for x in out["live"]] == [0], out["live"]
    # (the phase said in plain words: "catalog" is reading files)
    assert out["live"][0]["text"] == "Catalog scan — reading files: running, 5 errors", out["live"]
    assert out["liveAt15"][0]["text"].endswith("15 errors"), out["liveAt15"]
    # ... and the list the user opened stays open past 10 files
    assert out["openAt5"] and out["closedByUser"], out
    assert out["openAt15"], out
    # When the gateway then stops answering, the job is shown as last seen, not as running
    # with a Cancel, and "Scan now" is no longer held as "Scanning…"
    assert out["runningScanButton"] == "Scanning…", out
    down = out["down"]
    assert down["notice"].startswith("Cannot reach the Twinlens gateway"), down
    assert "Showing the last known state" in down["notice"], down
    assert down["state"] == "running when last seen", down
    assert down["cancelDisabled"] is True, down
    assert (down["scanButton"], down["scanDisabled"]) == ("Scan now", False), down
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_scan_now_without_a_library_root_says_what_to_configure(
    ui_dist: Path, embedded_settings, tmp_path: Path
) -> None:
    from core.db import migrate

    # Given a Twinlens with no library folder configured (and so nothing scanned yet)
    cfg = replace(embedded_settings, immich_url="", library_roots=())
    Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
    migrate(cfg.database_url)
    stack = start(cfg, dist=ui_dist)
    try:
        r = requests.post(stack.url + "/api/twinlens/jobs", json={}, timeout=10)
        assert r.status_code == 400, r.text

        # When the user asks for a scan
        out = _drive("no-roots", stack.url)
    finally:
        stack.stop()

    # Then the server's refusal is said, with the setting that is missing
    assert out["alert"].startswith(r.json()["message"]), (out["alert"], r.json())
    assert "Configure TWINLENS_LIBRARY_ROOTS" in out["alert"], out["alert"]
    assert "If no library folder is configured" not in out["alert"], out["alert"]
    assert out["alertLater"] == 1
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_ordinary_immich_user_is_told_review_is_for_admins(immich_ui: dict) -> None:
    # Given bob, an Immich user who is not an administrator, with an all-powerful key
    stack = immich_ui["stack"]

    # When he opens the UI with his key
    out = _drive("immich-user", stack.url, immich_ui["member_key"])

    # Then he is told why, sees no duplicates, and the UI asked only who he is
    assert "For Immich administrators" in out["notice"], out["notice"]
    assert out["duplicatesShown"] == 0
    assert set(out["asked"]) == {"/api/twinlens/me"}, out["asked"]
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_a_file_named_to_mislead_is_shown_escaped_in_browser(
    ui_dist: Path, embedded_settings, tmp_path: Path
) -> None:
    from tests.fakeimmich import FakeImmichServer
    from tests.fakeimmich.spec import spec_path

    if not spec_path().is_file():
        missing(
            f"Immich OpenAPI spec not found at {spec_path()} (the fake Immich needs it)",
            shared=True,
        )
    # Given a pair of byte copies, one named "\u202egpj.exe.JPG": raw, U+202E (right-to-left
    # override) shows it as "GPJ.exe.jpg", a card lying about which file goes
    library = _byte_copy_pairs(tmp_path / "library", 1, seed=3000)
    plain = library / "card" / "IMG_0000.JPG"
    evil = library / "backup" / "\u202egpj.exe.JPG"
    (library / "backup" / "IMG_0000.JPG").rename(evil)
    cfg = _scan_local(embedded_settings, library)
    immich = FakeImmichServer().start()
    user = immich.state.add_user("alice@example.com", "secret-pw", name="Alice", is_admin=True)
    key = immich.state.add_api_key(user["id"], ["all"])
    for p in (plain, evil):
        rel = p.relative_to(library).as_posix()
        immich.state.add_asset(
            user["id"], f"/mnt/photos/{rel}", file=str(p), library_id=IMMICH_LIBRARY_ID
        )
    stack = start(
        cfg, dist=ui_dist, immich_url=immich.url, path_map=(("/mnt/photos", str(library)),)
    )
    try:
        out = _drive("immich-escaped", stack.url, key)
    finally:
        stack.stop()
        immich.stop()

    shown = "\\u202egpj.exe.JPG"  # what the CLI's display() shows: the override escaped
    # Then the card names the file escaped, in its name, its tooltip and its preview's
    assert sorted(out["files"]) == sorted(["IMG_0000.JPG", shown]), out["files"]
    assert not any(
        "\u202e" in t
        for k in ("heading", "files", "dirs", "titles", "thumbNames")
        for t in (out[k] if isinstance(out[k], list) else [out[k]])
    ), out
    assert f"{library}/backup/{shown}" in out["titles"], out["titles"]
    assert f"{library}/backup" in out["dirs"], out["dirs"]
    assert any(t and shown in t for t in out["thumbNames"]), out["thumbNames"]

    # ... and so do the dry runs, the file going to the trash and then kept
    def plan(lines: list[str]) -> list[str]:
        """ "TRASH /p/x (3.6 KB)" -> "/p/x" (the tag's case is CSS's)."""
        return [re.sub(r" \([^)]*\)$", "", t.split(" ", 1)[1]) for t in lines]

    escaped = f"{library}/backup/{shown}"
    assert plan(out["evilGoes"]["trash"]) == [escaped], out["evilGoes"]
    assert plan(out["evilGoes"]["keep"]) == [str(plain)], out["evilGoes"]
    assert plan(out["evilKept"]["keep"]) == [escaped], out["evilKept"]
    assert plan(out["evilKept"]["trash"]) == [str(plain)], out["evilKept"]
    # ... while what goes back to the gateway is the path as it is
    assert [b["keep"] for b in out["bodies"]] == [[str(plain)], [str(evil)]], out["bodies"]
    assert all(b["dryRun"] is True for b in out["bodies"])
    assert not [c for c in out["console"] if c.startswith("pageerror")], out["console"]


def test_the_ui_logic_unit_tests_pass() -> None:
    """ui/src/logic.test.ts (vitest): the pure rules behind the review screens (which
    requests a bulk confirmation is made of, plan totals, keeper defaults), run by the
    suite's command. That the page sends them is the browser tests' part."""
    if shutil.which("npm") is None:
        missing("node/npm not installed")
    if not (UI_DIR / "node_modules" / "vitest").is_dir():
        missing("UI dependencies not installed: run `npm ci` in ui")
    # vitest colours its output whenever CI is set, as it is on CI: ask for none, and strip
    # any escapes left so the summary below is read the same everywhere
    env = {k: v for k, v in os.environ.items() if k != "FORCE_COLOR"} | {"NO_COLOR": "1"}
    run = subprocess.run(
        ["npm", "test", "--silent"],
        cwd=UI_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
    assert run.returncode == 0, out[-4000:]
    # vitest's summary: "Tests  N passed (N)", with "| M failed" before it when any did
    assert re.search(r"Tests\s+\d+ passed", out) and not re.search(r"[1-9]\d* failed", out), out[
        -2000:
    ]
