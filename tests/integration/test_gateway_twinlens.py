"""/api/twinlens/: lists, jobs, resolution through Immich's trash, thumbnails, local mode."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from PIL import Image

from core.config import load_settings
from gateway import create_app
from gateway.cache import bump_data_version
from tests.fakeimmich import ThreadedServer
from tests.fakeimmich.fixtures import *  # noqa: F403 - pytest fixtures
from tests.fakeimmich.fixtures import LIBRARY_ID, SERVICE_TOKEN
from tests.realapis import Catalog, phash, sha256_of, start_api


@pytest.fixture
def world(immich, alice, library, catalog, grouping_api, dedup_api):
    """Alice's Immich: three copies of A (two from the NAS, one uploaded) and two
    look-alikes C, C2. The real catalog: A in four folders (byte copies; the uploaded one,
    copy/A.JPG, found by its content SHA-1; elsewhere/A.JPG not in Immich), A's RAW
    beside it (a RAW+JPEG group), and C2 a smaller re-encode of C (pHash distance 4)."""
    st, uid, lib = immich.state, alice.user["id"], str(library)
    a = st.add_asset(uid, "/mnt/photos/2024/A.JPG", content=b"a", library_id=LIBRARY_ID)
    b = st.add_asset(uid, "/mnt/photos/backup/A.JPG", content=b"b", library_id=LIBRARY_ID)
    up = st.add_asset(uid, "/data/upload/u/A copy.JPG", content=b"copy")
    c = st.add_asset(uid, "/mnt/photos/2024/C.JPG", content=b"c", library_id=LIBRARY_ID)
    d = st.add_asset(uid, "/mnt/photos/2024/C2.JPG", content=b"d", library_id=LIBRARY_ID)
    for rel in ("2024/A.JPG", "backup/A.JPG", "elsewhere/A.JPG", "copy/A.JPG"):
        sha1 = hashlib.sha1(b"copy").hexdigest() if rel == "copy/A.JPG" else None
        catalog.add(rel, sha256=sha256_of("A"), sha1=sha1, phash=phash(1))
    catalog.add("2024/A.CR3", sha256=sha256_of("A raw"))
    catalog.add("2024/C.JPG", sha256=sha256_of("C"), phash=phash(3))
    catalog.add("2024/C2.JPG", sha256=sha256_of("C2"), phash=phash(3, 4), width=2000, height=1500)
    catalog.passes()
    dup1 = catalog.duplicate_of("2024/A.JPG", "exact")
    dup2 = catalog.duplicate_of("2024/C.JPG", "perceptual")
    grp = catalog.group_of("2024/A.JPG")
    assert dup1["keep"] == f"{lib}/2024/A.JPG" and len(dup1["members"]) == 4
    assert dup2["keep"] == f"{lib}/2024/C.JPG" and len(dup2["members"]) == 2
    assert grp["type"] == "raw_jpeg" and len(grp["members"]) == 2
    return {
        "a": a,
        "b": b,
        "up": up,
        "c": c,
        "d": d,
        "dup1": dup1,
        "dup2": dup2,
        "group": grp,
        "lib": lib,
    }


def test_lists_carry_asset_ids(gateway, alice, world):
    body = requests.get(
        gateway.url + "/api/twinlens/groups", params={"type": "raw_jpeg"}, headers=alice.bearer
    ).json()
    assert body["total"] == 1
    members = {m["path"]: m["assetId"] for m in body["items"][0]["members"]}
    assert members == {
        f"{world['lib']}/2024/A.JPG": world["a"]["id"],
        f"{world['lib']}/2024/A.CR3": None,
    }
    assert body["items"][0]["primaryAssetId"] == world["a"]["id"]
    assert (
        requests.get(
            gateway.url + "/api/twinlens/groups",
            params={"type": "live_photo"},
            headers=alice.bearer,
        ).json()["total"]
        == 0
    )
    r = requests.get(gateway.url + "/api/twinlens/groups/nope", headers=alice.bearer)
    assert r.status_code == 404 and r.json()["message"] == "no group nope"
    dups = requests.get(gateway.url + "/api/twinlens/duplicates", headers=alice.bearer).json()
    assert dups["total"] == 2
    one = requests.get(
        f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}", headers=alice.bearer
    ).json()
    # pHash distance 4 of 64: the similarity the dedup API computed, passed through
    assert one["similarity"] == 0.9375 and one["keepAssetId"] == world["c"]["id"]
    stats = requests.get(gateway.url + "/api/twinlens/stats", headers=alice.bearer).json()
    assert stats["duplicates"]["open"] == 2 and stats["groups"]["total"] == 1


def test_refusals_are_never_cached(gateway, alice, world):
    for url in ("/api/twinlens/groups/nope", "/api/twinlens/duplicates/nope"):
        for _ in range(2):
            r = requests.get(gateway.url + url, headers=alice.bearer)
            assert r.status_code == 404 and "X-Twinlens-Cache" not in r.headers, url


def test_lists_are_cached_per_user(gateway_settings, immich, alice, bob, world):
    # Given every user may review (one household) and Alice has listed the duplicates
    settings = dataclasses.replace(gateway_settings, admin_only=False)
    server = ThreadedServer(create_app({"SETTINGS": settings, "TESTING": True})).start()
    try:
        url = server.url + "/api/twinlens/duplicates"
        hers = requests.get(url, headers=alice.bearer)
        assert requests.get(url, headers=alice.bearer).headers["X-Twinlens-Cache"] == "hit"
        assert world["a"]["id"] in {
            m["assetId"] for d in hers.json()["items"] for m in d["members"]
        }
        # When Bob lists them, Then he is not served her answer: none of her assets is his
        his = requests.get(url, headers=bob.bearer)
        assert his.status_code == 200 and "X-Twinlens-Cache" not in his.headers
        assert {m["assetId"] for d in his.json()["items"] for m in d["members"]} == {None}
    finally:
        server.stop()


def test_jobs_start_watch_cancel(gateway, alice, library):
    r = requests.post(
        gateway.url + "/api/twinlens/jobs",
        json={"path": str(library), "full": True},
        headers=alice.bearer,
    )
    assert r.status_code == 202
    jobs = r.json()["jobs"]
    # (one database, as deployed: both services started the one scan of that root, which
    # is listed once)
    assert [j["service"] for j in jobs] == ["grouping"]
    assert all(j["root"] == str(library.resolve()) for j in jobs)
    listed = requests.get(gateway.url + "/api/twinlens/jobs", headers=alice.bearer).json()["items"]
    assert {j["id"] for j in listed} == {j["id"] for j in jobs}
    g = next(j for j in jobs if j["service"] == "grouping")
    got = requests.get(
        f"{gateway.url}/api/twinlens/jobs/grouping/{g['id']}", headers=alice.bearer
    ).json()
    assert got["state"] == "queued"
    gone = requests.delete(
        f"{gateway.url}/api/twinlens/jobs/grouping/{g['id']}", headers=alice.bearer
    ).json()
    assert gone["state"] == "cancelled"
    # A cancelled scan holds nothing up: a new one starts ...
    first = requests.post(
        gateway.url + "/api/twinlens/jobs", json={"service": "dedup"}, headers=alice.bearer
    )
    assert first.status_code == 202, first.text
    again = requests.post(
        gateway.url + "/api/twinlens/jobs", json={"service": "dedup"}, headers=alice.bearer
    )
    assert again.status_code == 200  # the running dedup job, not a second one
    assert again.json()["jobs"][0]["id"] == first.json()["jobs"][0]["id"]


@pytest.fixture
def two_roots(gateway_settings, api_settings, api_broker, library, tmp_path):
    """The real grouping and dedup APIs and a gateway over two library roots, the
    library and an empty phone/ beside it: (gateway server, [grouping, dedup], phone/)."""
    second = tmp_path / "phone"
    second.mkdir()
    roots = (library, second)
    apis = [
        start_api(which, dataclasses.replace(api_settings, library_roots=roots), api_broker)
        for which in ("grouping", "dedup")
    ]
    settings = dataclasses.replace(
        gateway_settings, library_roots=roots, grouping_url=apis[0].url, dedup_url=apis[1].url
    )
    server = ThreadedServer(create_app({"SETTINGS": settings, "TESTING": True})).start()
    try:
        yield server, apis, second
    finally:
        server.stop()
        for running in apis:
            running.stop()


def test_scan_now_with_several_library_roots_scans_each(catalog, alice, library, two_roots):
    # Given a Twinlens over two library roots (the services want a path then)
    server, apis, second = two_roots
    # When "Scan now" asks for a scan without a path
    r = requests.post(server.url + "/api/twinlens/jobs", json={}, headers=alice.bearer)
    # Then each root gets its scan (one database: each is listed once)
    assert r.status_code == 202, r.text
    started = sorted((j["service"], j["root"]) for j in r.json()["jobs"])
    assert started == [("grouping", str(root)) for root in sorted((library, second))]
    # And a path still scans only that
    one = requests.post(
        server.url + "/api/twinlens/jobs",
        json={"path": str(second), "service": "dedup"},
        headers=alice.bearer,
    )
    assert [j["root"] for j in one.json()["jobs"]] == [str(second)]
    # And when a service refuses part way, the scans already started are named
    catalog.end_jobs()
    apis[1].fail("POST", "/scans", 503, "database unavailable")
    r = requests.post(server.url + "/api/twinlens/jobs", json={}, headers=alice.bearer)
    assert r.status_code == 503 and "database unavailable" in r.json()["message"], r.text
    assert sorted(j["root"] for j in r.json()["jobs"]) == sorted(map(str, (library, second))), (
        r.json()
    )
    assert [j["service"] for j in r.json()["jobs"]] == ["grouping", "grouping"]


@pytest.fixture
def dedup_on_its_own_database(api_settings, api_broker, library):
    """A dedup API on a second database of its own (its catalog in its own database):
    (its catalog, its URL)."""
    from core.db import engine_for, migrate
    from tests.conftest import throwaway_pg_database

    with throwaway_pg_database() as url:
        migrate(url)
        cfg = dataclasses.replace(api_settings, database_url=url)
        own = start_api("dedup", cfg, api_broker)
        try:
            yield Catalog(cfg, library), own.url
        finally:
            own.stop()
            engine_for(url).dispose()


def test_jobs_of_both_services_are_paged_as_one_list(
    gateway_settings, alice, catalog, dedup_on_its_own_database
):
    # Given jobs in both services, one of them listed by both (a job in both databases),
    # each service listing its own newest first as the APIs do
    dedup_catalog, dedup_url = dedup_on_its_own_database
    for cat, jobs in (
        (catalog, [("g3", 5), ("shared", 4), ("g1", 1)]),
        (dedup_catalog, [("d2", 3), ("shared", 4), ("d1", 2)]),
    ):
        for jid, minute in jobs:
            cat.add_job(jid, "done", f"2026-01-01T00:0{minute}:00")
    settings = dataclasses.replace(gateway_settings, dedup_url=dedup_url)
    server = ThreadedServer(create_app({"SETTINGS": settings, "TESTING": True})).start()
    try:
        _paged_as_one_list(server.url + "/api/twinlens/jobs", alice)
    finally:
        server.stop()


def _two_at_a_time(url, alice) -> list[dict]:
    """The five jobs listed two at a time: each page, after checking that the pages are
    one newest-first list, each job once."""
    pages = [
        requests.get(url, params={"page": p, "size": 2}, headers=alice.bearer).json()
        for p in (1, 2, 3)
    ]
    assert [[j["id"] for j in p["items"]] for p in pages] == [
        ["g3", "shared"],
        ["d2", "d1"],
        ["g1"],
    ]
    return pages


def _paged_as_one_list(url, alice) -> None:
    # When they are listed two at a time, Then the pages are one list, and the total is
    # given once it is exact (each service's whole list read), never a double count
    pages = _two_at_a_time(url, alice)
    assert [p["total"] for p in pages] == [None, 5, 5]
    # And one service's own list is paged by that service
    only = requests.get(
        url, params={"service": "dedup", "page": 2, "size": 2}, headers=alice.bearer
    ).json()
    assert [j["id"] for j in only["items"]] == ["d1"] and only["total"] == 3


def test_jobs_of_services_sharing_one_database_are_listed_once(gateway, alice, catalog):
    # Given the services on one database (as deployed): both list every job
    for jid, minute in (("g3", 5), ("shared", 4), ("d2", 3), ("d1", 2), ("g1", 1)):
        catalog.add_job(jid, "done", f"2026-01-01T00:0{minute}:00")
    url = gateway.url + "/api/twinlens/jobs"
    # When they are listed two at a time, Then each job is on one page, once
    pages = _two_at_a_time(url, alice)
    assert [p["total"] for p in pages] == [None, None, 5]


def test_dry_run_changes_nothing(gateway, immich, alice, world, catalog):
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup1']['id']}/resolve"
    plan = requests.post(
        url, json={"keep": [world["a"]["id"]], "dryRun": True}, headers=alice.bearer
    ).json()
    assert plan["dryRun"] is True
    assert [k["assetId"] for k in plan["keep"]] == [world["a"]["id"]]
    assert sorted(t["assetId"] for t in plan["trash"]) == sorted(
        [world["b"]["id"], world["up"]["id"]]
    )
    assert plan["notInImmich"] == [f"{world['lib']}/elsewhere/A.JPG"]
    assert not any(a["isTrashed"] for a in immich.state.assets.values())
    assert catalog.decisions() == [] and catalog.status(world["dup1"]["id"]) == "open"


def test_resolve_trashes_recoverably_and_records(gateway, immich, alice, world, catalog):
    cached = requests.get(
        f"{gateway.url}/api/assets/{world['a']['id']}", headers=alice.bearer
    ).json()
    assert cached["twinlens"]["duplicate"]["status"] == "open"
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup1']['id']}/resolve"
    keep = f"{world['lib']}/2024/A.JPG"
    r = requests.post(url, json={"keep": [keep]}, headers=alice.bearer)
    assert r.status_code == 200, r.text
    assets = immich.state.assets
    assert assets[world["b"]["id"]]["isTrashed"] and assets[world["up"]["id"]]["isTrashed"]
    assert not assets[world["a"]["id"]]["isTrashed"]
    assert world["b"]["id"] in assets  # force: false -> still restorable from Immich's trash
    [recorded] = catalog.decisions()
    assert recorded["group"] == world["dup1"]["id"]
    assert (recorded["keep"], recorded["action"]) == ([keep], "trash")
    # with what went to the trash, for undo: the two copies Immich had, not the one it lacks
    lib = world["lib"]
    assert sorted(recorded["trashed"], key=lambda t: t["path"]) == [
        {"path": f"{lib}/backup/A.JPG", "sha1": None},
        {"path": f"{lib}/copy/A.JPG", "sha1": hashlib.sha1(b"copy").hexdigest()},
    ]
    # The version bump makes the enriched answer fresh at once.
    fresh = requests.get(
        f"{gateway.url}/api/assets/{world['a']['id']}", headers=alice.bearer
    ).json()
    assert fresh["twinlens"]["duplicate"]["status"] == "resolved"
    assert catalog.status(world["dup1"]["id"]) == "resolved"
    r = requests.post(url, json={"keep": [keep]}, headers=alice.bearer)
    assert r.status_code == 409
    assert len(catalog.decisions()) == 1


def test_a_copy_in_immichs_trash_is_never_the_one_kept(gateway, immich, alice, world, catalog):
    # Given two copies, one of them trashed in Immich meanwhile (Immich's own duplicate
    # review, say): it goes for good when Immich's trash is emptied
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}/resolve"
    trashed, other = f"{world['lib']}/2024/C.JPG", f"{world['lib']}/2024/C2.JPG"
    immich.state.assets[world["c"]["id"]]["isTrashed"] = True
    # When the user keeps it (dry run or not), Then it is refused and nothing moves
    for dry in (True, False):
        r = requests.post(url, json={"keep": [trashed], "dryRun": dry}, headers=alice.bearer)
        assert r.status_code == 409 and "Immich's trash" in r.json()["message"], r.text
    assert not immich.state.assets[world["d"]["id"]]["isTrashed"]
    assert catalog.decisions() == []
    # And keeping the other says the first is in Immich's trash, not "left on disk"
    plan = requests.post(url, json={"keep": [other], "dryRun": True}, headers=alice.bearer)
    assert plan.status_code == 200, plan.text
    assert plan.json()["inImmichTrash"] == [trashed] and plan.json()["notInImmich"] == []
    assert plan.json()["trash"] == []


def test_a_copy_in_immichs_trash_is_listed_as_such(gateway, immich, alice, world):
    # Given C trashed in Immich (Immich's own duplicate review, say), C2 live
    immich.state.assets[world["c"]["id"]]["isTrashed"] = True
    lib = world["lib"]
    # When the duplicates are listed, one by one and as a page
    one = requests.get(
        f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}", headers=alice.bearer
    ).json()
    page = requests.get(gateway.url + "/api/twinlens/duplicates", headers=alice.bearer).json()
    listed = next(d for d in page["items"] if d["id"] == world["dup2"]["id"])
    # Then C is in Immich's trash (its asset named), not "not in Immich"; C2 is live
    for dup in (one, listed):
        members = {m["path"]: (m["assetId"], m["trashedAssetId"]) for m in dup["members"]}
        assert members == {
            f"{lib}/2024/C.JPG": (None, world["c"]["id"]),
            f"{lib}/2024/C2.JPG": (world["d"]["id"], None),
        }, dup["members"]
        # the suggested keeper's live asset: none while it is in Immich's trash
        assert dup["keepAssetId"] is None
    # and a file Immich never had is neither
    dup1 = requests.get(
        f"{gateway.url}/api/twinlens/duplicates/{world['dup1']['id']}", headers=alice.bearer
    ).json()
    elsewhere = next(m for m in dup1["members"] if m["path"] == f"{lib}/elsewhere/A.JPG")
    assert (elsewhere["assetId"], elsewhere["trashedAssetId"]) == (None, None)


def test_resolving_asks_immich_about_the_members_once(gateway, immich, alice, world):
    # Given a group whose members Immich has not been asked about yet, one of them trashed
    immich.state.assets[world["c"]["id"]]["isTrashed"] = True
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}/resolve"
    before = immich.state.calls[("POST", "/assets/bulk-upload-check")]
    # When it is planned, Then one lookup says both which assets are live and which are
    # in Immich's trash
    plan = requests.post(
        url, json={"keep": [f"{world['lib']}/2024/C2.JPG"], "dryRun": True}, headers=alice.bearer
    )
    assert plan.status_code == 200, plan.text
    assert plan.json()["inImmichTrash"] == [f"{world['lib']}/2024/C.JPG"]
    assert immich.state.calls[("POST", "/assets/bulk-upload-check")] - before == 1


def test_a_copy_gone_from_disk_is_never_the_one_kept(gateway, immich, alice, world, catalog):
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}/resolve"
    # Given a scan that found C gone from disk (the dedup pass after it has not run yet)
    catalog.change("2024/C.JPG", status="missing")
    gone = f"{world['lib']}/2024/C.JPG"
    assert {m["path"]: m["missing"] for m in catalog.duplicate(world["dup2"]["id"])["members"]}[
        gone
    ]
    r = requests.post(url, json={"keep": [gone]}, headers=alice.bearer)
    assert r.status_code == 409 and "gone from disk" in r.json()["message"], r.text
    assert not any(a["isTrashed"] for a in immich.state.assets.values())
    assert catalog.decisions() == []


def test_an_immich_failure_after_the_trash_keeps_the_decision(
    gateway, immich, alice, world, catalog, dedup_api
):
    # Given an Immich that trashes, then fails (500) before answering
    immich.state.trash_error = 500
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}/resolve"
    # When a group is resolved
    r = requests.post(url, json={"keep": [world["c"]["id"]]}, headers=alice.bearer)
    # Then the client hears of the failure, and the decision stays so that undo can bring
    # back what went (withdrawing it would leave trashed copies no undo can reach)
    assert r.status_code == 502 and "undo" in r.json()["message"], r.text
    assert immich.state.assets[world["d"]["id"]]["isTrashed"]
    assert [d["group"] for d in catalog.decisions()] == [world["dup2"]["id"]]
    assert catalog.status(world["dup2"]["id"]) == "resolved"
    assert dedup_api.count("DELETE", f"/duplicates/{world['dup2']['id']}/resolution") == 0


def test_undo_brings_back_what_the_decision_trashed_after_a_member_left(
    gateway, immich, alice, world, catalog
):
    # Given a group resolved by trashing two copies
    lib = world["lib"]
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup1']['id']}"
    r = requests.post(url + "/resolve", json={"keep": [f"{lib}/2024/A.JPG"]}, headers=alice.bearer)
    assert r.status_code == 200, r.text
    assert immich.state.assets[world["b"]["id"]]["isTrashed"]
    # ... one of which has left the group since (edited in place: other bytes now, as
    # a rescan and the dedup pass after it found)
    catalog.change("backup/A.JPG", sha256=sha256_of("A, edited"))
    catalog.dedupe()
    after = catalog.duplicate(world["dup1"]["id"])
    assert f"{lib}/backup/A.JPG" not in {m["path"] for m in after["members"]}
    assert after["status"] == "resolved" and len(after["members"]) == 3
    # When the decision is undone
    r = requests.delete(url + "/resolution", headers=alice.bearer)
    # Then both copies it trashed come back, the one that left included
    assert r.status_code == 200, r.text
    assert sorted(x["assetId"] for x in r.json()["restore"]) == sorted(
        [world["b"]["id"], world["up"]["id"]]
    )
    assert not immich.state.assets[world["b"]["id"]]["isTrashed"]
    assert not immich.state.assets[world["up"]["id"]]["isTrashed"]
    assert catalog.decisions() == [] and catalog.status(world["dup1"]["id"]) == "open"


@pytest.mark.parametrize("recorded", [True, False], ids=["trashed-recorded", "older-decision"])
def test_undo_of_a_group_a_new_copy_reopened_brings_back_what_it_trashed(
    gateway, immich, alice, world, catalog, dedup_api, recorded
):
    # Given a group resolved by trashing one copy (C), keeping the other (C2)
    lib, did = world["lib"], world["dup2"]["id"]
    url = f"{gateway.url}/api/twinlens/duplicates/{did}"
    r = requests.post(url + "/resolve", json={"keep": [f"{lib}/2024/C2.JPG"]}, headers=alice.bearer)
    assert r.status_code == 200, r.text
    assert immich.state.assets[world["c"]["id"]]["isTrashed"]
    # ... then reopened by a new copy (C3, in Immich too) that a scan found and the
    # dedup pass put in the group
    new = immich.state.add_asset(
        alice.user["id"], "/mnt/photos/2025/C3.JPG", content=b"c3", library_id=LIBRARY_ID
    )
    if not recorded:  # a decision recorded before what it trashed was kept with it
        catalog.forget_trashed(did)
    catalog.add("2025/C3.JPG", sha256=sha256_of("C3"), phash=phash(3, 5), width=1000, height=750)
    catalog.dedupe()
    dup = catalog.duplicate(did)
    assert dup["status"] == "open" and dup["resolution"] is None
    assert f"{lib}/2025/C3.JPG" in {m["path"] for m in dup["members"]}
    assert dup["previous_resolution"]["trashed"] == (
        [{"path": f"{lib}/2024/C.JPG", "sha1": None}] if recorded else None
    )
    # When its earlier decision is undone (dry run first)
    plan = requests.delete(url + "/resolution", params={"dryRun": "true"}, headers=alice.bearer)
    assert plan.status_code == 200, plan.text
    assert plan.json()["restore"] == [{"path": f"{lib}/2024/C.JPG", "assetId": world["c"]["id"]}]
    r = requests.delete(url + "/resolution", headers=alice.bearer)
    # Then the copy it trashed is back, the new one untouched, and the decision withdrawn
    assert r.status_code == 200, r.text
    assert r.json()["restore"] == plan.json()["restore"] and r.json()["notInImmich"] == []
    assert not immich.state.assets[world["c"]["id"]]["isTrashed"]
    assert not immich.state.assets[new["id"]]["isTrashed"]
    assert dedup_api.count("DELETE", f"/duplicates/{did}/resolution") == 1
    assert catalog.decisions() == [] and catalog.status(did) == "open"
    again = requests.delete(url + "/resolution", headers=alice.bearer)
    assert again.status_code == 409 and "no decision to undo" in again.json()["message"]


def test_resolve_refusals(gateway, immich, alice, world, catalog, dedup_api):
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}/resolve"
    r = requests.post(url, json={"keep": ["/etc/passwd"]}, headers=alice.bearer)
    assert r.status_code == 400 and "not members" in r.json()["message"]
    r = requests.post(url, json={"keep": []}, headers=alice.bearer)
    assert r.status_code == 400
    r = requests.post(
        url, json={"keep": [world["c"]["id"]], "action": "burn"}, headers=alice.bearer
    )
    assert r.status_code == 400
    # A key that may decide duplicates but not delete assets: Immich's own refusal, and
    # the decision recorded for it is withdrawn (the group is open again).
    no_delete = immich.state.add_api_key(
        alice.user["id"], ["user.read", "duplicate.delete", "asset.upload"]
    )
    r = requests.post(url, json={"keep": [world["c"]["id"]]}, headers={"x-api-key": no_delete})
    assert (r.status_code, r.json()) == (
        403,
        {"message": "Missing required permission: asset.delete"},
    )
    dup = world["dup2"]["id"]
    assert catalog.status(dup) == "open" and catalog.decisions() == []
    assert dedup_api.count("POST", f"/duplicates/{dup}/resolution") == 1
    assert dedup_api.count("DELETE", f"/duplicates/{dup}/resolution") == 1
    # A key that may not look the files up (bulk-upload-check needs asset.upload): no
    # "not in Immich" guess, a refusal that says why, and nothing decided.
    no_lookup = immich.state.add_api_key(
        alice.user["id"], ["user.read", "duplicate.delete", "asset.delete"]
    )
    for dry in (True, False):
        r = requests.post(
            url,
            json={"keep": [world["c"]["id"]], "dryRun": dry},
            headers={"x-api-key": no_lookup},
        )
        assert r.status_code == 403, r.text
        assert "asset.upload" in r.json()["message"]
    # A key that may not decide duplicates: the gateway's refusal, in Immich's words.
    no_decide = immich.state.add_api_key(alice.user["id"], ["user.read", "asset.delete"])
    for body in ({"keep": [world["c"]["id"]]}, {"keep": [], "action": "not_duplicate"}):
        r = requests.post(url, json=body, headers={"x-api-key": no_decide})
        assert r.status_code == 403, r.text
        assert r.json()["message"] == "Missing required permission: duplicate.delete"
    assert catalog.decisions() == [] and not immich.state.assets[world["d"]["id"]]["isTrashed"]
    assert dedup_api.count("POST", f"/duplicates/{dup}/resolution") == 1  # none since
    r = requests.post(
        f"{gateway.url}/api/twinlens/duplicates/nope/resolve",
        json={"keep": ["x"]},
        headers=alice.bearer,
    )
    assert r.status_code == 404


def test_a_refused_trash_whose_decision_cannot_be_withdrawn_says_so(
    gateway, immich, alice, world, catalog, dedup_api
):
    # Given a key that may not delete assets, and a dedup API that fails the withdrawal
    no_delete = immich.state.add_api_key(
        alice.user["id"], ["user.read", "duplicate.delete", "asset.upload"]
    )
    dedup_api.fail("DELETE", "/duplicates/[^/]+/resolution", 500, "database unavailable")
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}/resolve"
    # When the group is resolved
    r = requests.post(url, json={"keep": [world["c"]["id"]]}, headers={"x-api-key": no_delete})
    # Then the answer says nothing moved and the decision is still there
    assert r.status_code == 502, r.text
    assert "could not be withdrawn" in r.json()["message"]
    assert catalog.status(world["dup2"]["id"]) == "resolved"
    assert [d["group"] for d in catalog.decisions()] == [world["dup2"]["id"]]
    assert not immich.state.assets[world["d"]["id"]]["isTrashed"]


def test_an_immich_lost_during_the_trash_leaves_the_decision_to_undo(
    gateway, immich, alice, world, catalog, monkeypatch
):
    from gateway import twinlens

    # Given an Immich that goes away as the trash request is sent
    real = twinlens.as_caller

    def lost(method, path, **kw):
        if method == "DELETE" and path == "assets":
            raise requests.ConnectionError("connection reset")
        return real(method, path, **kw)

    monkeypatch.setattr(twinlens, "as_caller", lost)
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}/resolve"
    # When the group is resolved, Then no success is claimed: the decision is recorded
    # (Immich may have trashed before the answer was lost) and the way back is named
    r = requests.post(url, json={"keep": [world["c"]["id"]]}, headers=alice.bearer)
    assert r.status_code == 502, r.text
    assert "the decision is recorded: undo it to restore" in r.json()["message"]
    assert [d["group"] for d in catalog.decisions()] == [world["dup2"]["id"]]
    assert catalog.status(world["dup2"]["id"]) == "resolved"


def test_an_undo_whose_withdrawal_fails_after_the_restore_says_so(
    gateway, immich, alice, world, catalog, dedup_api
):
    # Given a resolved group whose copy is in Immich's trash
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}"
    r = requests.post(url + "/resolve", json={"keep": [world["c"]["id"]]}, headers=alice.bearer)
    assert r.status_code == 200 and immich.state.assets[world["d"]["id"]]["isTrashed"]
    # When it is undone but the dedup API fails to withdraw the decision
    dedup_api.fail("DELETE", "/duplicates/[^/]+/resolution", 500, "database unavailable")
    r = requests.delete(url + "/resolution", headers=alice.bearer)
    # Then the copy is back, and the answer says the decision was not withdrawn
    assert r.status_code == 502, r.text
    assert "not withdrawn" in r.json()["message"] and r.json()["restored"] == 1
    assert not immich.state.assets[world["d"]["id"]]["isTrashed"]
    assert catalog.status(world["dup2"]["id"]) == "resolved" and len(catalog.decisions()) == 1


def test_an_undo_is_seen_at_once_in_cached_answers(gateway, immich, alice, world):
    # Given a resolved group whose answer the gateway has cached
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}"
    r = requests.post(url + "/resolve", json={"keep": [world["c"]["id"]]}, headers=alice.bearer)
    assert r.status_code == 200
    requests.get(url, headers=alice.bearer)
    cached = requests.get(url, headers=alice.bearer)
    assert cached.headers.get("X-Twinlens-Cache") == "hit"
    assert cached.json()["status"] == "resolved"
    # When it is undone through the gateway (the dedup API bumps the data version in its
    # own cache, Redis, which this gateway's memory cache does not read: this is the
    # gateway's own bump)
    assert requests.delete(url + "/resolution", headers=alice.bearer).status_code == 200
    # Then the next answer is fresh
    fresh = requests.get(url, headers=alice.bearer)
    assert "X-Twinlens-Cache" not in fresh.headers and fresh.json()["status"] == "open"


def test_a_scan_the_service_refuses_is_a_refusal(
    gateway_settings, api_settings, api_broker, alice, library, tmp_path, catalog
):
    # Given services configured with a second library root the gateway does not know of
    other = tmp_path / "other"
    other.mkdir()
    cfg = dataclasses.replace(api_settings, library_roots=(library, other))
    apis = [start_api(which, cfg, api_broker) for which in ("grouping", "dedup")]
    settings = dataclasses.replace(
        gateway_settings, grouping_url=apis[0].url, dedup_url=apis[1].url
    )
    server = ThreadedServer(create_app({"SETTINGS": settings, "TESTING": True})).start()
    try:
        # When "Scan now" asks for the gateway's one root, without a path
        r = requests.post(server.url + "/api/twinlens/jobs", json={}, headers=alice.bearer)
        # Then the first service's refusal is the answer, and nothing started
        assert r.status_code == 400, r.text
        assert "path is required" in r.json()["message"] and "jobs" not in r.json()
        assert apis[1].total() == 0 and catalog.jobs() == []
    finally:
        server.stop()
        for running in apis:
            running.stop()


def test_duplicates_are_paged(gateway, alice, catalog):
    # Given three pairs of copies, the first the largest (the API lists the most
    # reclaimable first)
    for i in range(3):
        for name in ("a", "b"):
            catalog.add(f"p{i}/{name}.jpg", sha256=sha256_of(f"p{i}"), size=3000 - 1000 * i)
    catalog.dedupe()
    ids = [catalog.duplicate_of(f"p{i}/a.jpg")["id"] for i in range(3)]
    url = gateway.url + "/api/twinlens/duplicates"
    body = requests.get(url, params={"page": 2, "size": 2}, headers=alice.bearer).json()
    assert (body["page"], body["total"]) == (2, 3)
    assert [d["id"] for d in body["items"]] == [ids[2]]


def test_jobs_are_filtered_by_state(gateway, alice, catalog):
    for n, (jid, state) in enumerate((("done-0", "done"), ("failed-1", "failed"),
                                      ("failed-0", "failed"))):  # fmt: skip
        catalog.add_job(jid, state, f"2024-01-0{n + 1}T00:00:00")
    url = gateway.url + "/api/twinlens/jobs"
    for params in ({"state": "failed"}, {"state": "failed", "service": "grouping"}):
        items = requests.get(url, params=params, headers=alice.bearer).json()["items"]
        assert items and all(j["state"] == "failed" for j in items), (params, items)
    both = requests.get(url, params={"state": "failed"}, headers=alice.bearer).json()["items"]
    assert len(both) == 2


def test_odd_ids_stay_one_segment_and_move_nothing(gateway, immich, alice, world, catalog):
    # Given ids that would steer the service call if pasted into its URL as they are
    dup = world["dup2"]["id"]
    keep = {"keep": [world["c"]["id"]]}
    for odd in (dup + "%23", dup + "%3Fx=1", dup + "%2F..%2Fresolution"):
        # When they are resolved, singly and in bulk
        r = requests.post(
            f"{gateway.url}/api/twinlens/duplicates/{odd}/resolve", json=keep, headers=alice.bearer
        )
        # Then the service is asked about that exact (unknown) id: 404, nothing trashed
        assert r.status_code == 404, (odd, r.text)
        plain = requests.utils.unquote(odd)
        r = requests.post(
            f"{gateway.url}/api/twinlens/duplicates/resolve",
            json={"groups": [{"id": plain, **keep}]},
            headers=alice.bearer,
        )
        assert r.json()["results"][0]["status"] == 404, (plain, r.text)
    for dots in ("..", "."):
        r = requests.post(
            gateway.url + "/api/twinlens/duplicates/resolve",
            json={"groups": [{"id": dots, **keep}]},
            headers=alice.bearer,
        )
        assert r.json()["results"][0]["status"] == 404, dots
    assert catalog.decisions() == [] and not immich.state.assets[world["d"]["id"]]["isTrashed"]


def test_nothing_is_trashed_when_the_decision_cannot_be_recorded(
    gateway, immich, alice, world, catalog, dedup_api
):
    # Given a dedup API that fails (crashed: its front answers a bare 500 page) when the
    # decision is recorded
    dedup_api.fail("POST", "/duplicates/[^/]+/resolution", 500)
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}/resolve"
    # When a group is resolved, singly and in bulk
    r = requests.post(url, json={"keep": [world["c"]["id"]]}, headers=alice.bearer)
    bulk = _bulk(gateway, alice, [{"id": world["dup2"]["id"], "keep": [world["c"]["id"]]}])
    bulk = bulk.json()["results"][0]
    # Then both fail and nothing went to Immich's trash: a trash without a recorded
    # decision could not be undone
    assert r.status_code == 502 and bulk["status"] == 502, (r.text, bulk)
    assert not immich.state.assets[world["d"]["id"]]["isTrashed"]
    assert dedup_api.count("POST", f"/duplicates/{world['dup2']['id']}/resolution") == 2
    assert catalog.decisions() == [] and catalog.status(world["dup2"]["id"]) == "open"


def _a_copy_joins(dup, catalog, immich, alice) -> None:
    """A scan finds a copy of C2 (a re-encode, that Immich also indexes) and the dedup
    pass puts it in look-alike group ``dup``."""
    catalog.add(
        "late/copy.jpg", sha256=sha256_of("late"), phash=phash(3, 5), width=1000, height=750
    )
    catalog.dedupe()
    assert catalog.path("late/copy.jpg") in {m["path"] for m in catalog.duplicate(dup)["members"]}
    immich.state.add_asset(
        alice.user["id"], "/mnt/photos/late/copy.jpg", content=b"late", library_id=LIBRARY_ID
    )


def _bulk(gateway, alice, groups: list, **extra) -> requests.Response:
    return requests.post(
        gateway.url + "/api/twinlens/duplicates/resolve",
        json={"groups": groups, **extra},
        headers=alice.bearer,
    )


def test_a_group_that_changed_since_its_dry_run_is_not_resolved(
    gateway, immich, alice, world, catalog
):
    # Given a dry run the user looked at
    dup = world["dup2"]["id"]
    url = f"{gateway.url}/api/twinlens/duplicates/{dup}/resolve"
    keep = {"keep": [world["c"]["id"]]}
    shown = requests.post(url, json={**keep, "dryRun": True}, headers=alice.bearer).json()
    expect = [t["path"] for t in shown["trash"]]
    assert expect
    # When a scan adds a copy to the group before the user confirms
    _a_copy_joins(dup, catalog, immich, alice)
    # Then the confirmation with what was shown is refused, and nothing moves
    r = requests.post(url, json={**keep, "expectTrash": expect}, headers=alice.bearer)
    assert r.status_code == 409 and "changed since its dry run" in r.json()["message"], r.text
    assert not catalog.decisions()
    assert not any(a["isTrashed"] for a in immich.state.assets.values())
    # While a confirmation of the plan as it stands goes through
    again = requests.post(url, json={**keep, "dryRun": True}, headers=alice.bearer).json()
    r = requests.post(
        url,
        json={**keep, "expectTrash": [t["path"] for t in again["trash"]]},
        headers=alice.bearer,
    )
    assert r.status_code == 200, r.text
    assert catalog.status(dup) == "resolved"


def test_two_reviewers_resolving_one_group_never_both_trash(
    gateway, immich, alice, world, catalog, dedup_api
):
    # Given two reviewers who resolve the same group at once, picking different copies:
    # the second one's gateway read the group before the first decision was recorded
    url = f"{gateway.url}/api/twinlens/duplicates/{world['dup2']['id']}/resolve"
    first = requests.post(url, json={"keep": [world["c"]["id"]]}, headers=alice.bearer)
    dedup_api.stale_reads = True  # the group's reads answer as the first one did: open
    d_path = first.json()["trash"][0]["path"]
    second = requests.post(url, json={"keep": [d_path]}, headers=alice.bearer)
    # Then the first decision holds and the second is refused before anything moves
    assert first.status_code == 200 and second.status_code == 409, second.text
    assert immich.state.assets[world["d"]["id"]]["isTrashed"]
    assert not immich.state.assets[world["c"]["id"]]["isTrashed"]
    [decision] = catalog.decisions()
    assert decision["keep"] == [f"{world['lib']}/2024/C.JPG"]


def test_undo_that_cannot_look_the_files_up_keeps_the_decision(
    gateway, gateway_settings, immich, alice, world, catalog, dedup_api
):
    # Given a group resolved to Immich's trash
    dup = world["dup2"]["id"]
    r = requests.post(
        f"{gateway.url}/api/twinlens/duplicates/{dup}/resolve",
        json={"keep": [world["c"]["id"]]},
        headers=alice.bearer,
    )
    assert r.status_code == 200, r.text
    bump_data_version(gateway_settings.cache_url)  # nothing remembered from the resolve
    # When it is undone with a key that may not look the files up (no asset.upload)
    weak = immich.state.add_api_key(
        alice.user["id"], ["user.read", "duplicate.delete", "asset.delete"]
    )
    r = requests.delete(
        f"{gateway.url}/api/twinlens/duplicates/{dup}/resolution", headers={"x-api-key": weak}
    )
    # Then it is refused and says why; the decision and the trashed file stay as they
    # were (before, "not found" withdrew the decision and left the file in the trash)
    assert r.status_code == 403 and "asset.upload" in r.json()["message"], r.text
    assert catalog.status(dup) == "resolved" and len(catalog.decisions(dup)) == 1
    assert dedup_api.count("DELETE", f"/duplicates/{dup}/resolution") == 0
    assert immich.state.assets[world["d"]["id"]]["isTrashed"]


def test_bulk_resolution_reports_each_group(gateway, immich, alice, world, catalog):
    r = _bulk(
        gateway,
        alice,
        [
            {"id": world["dup2"]["id"], "keep": [world["c"]["id"]]},
            {"id": world["dup1"]["id"], "action": "not_duplicate"},
            {"id": "nope", "keep": ["x"]},
        ],
    )
    body = r.json()
    assert r.status_code == 200 and body["succeeded"] == 2 and body["failed"] == 1
    assert [x["status"] for x in body["results"]] == [200, 200, 404]
    assert immich.state.assets[world["d"]["id"]]["isTrashed"]
    assert not immich.state.assets[world["b"]["id"]]["isTrashed"]  # not_duplicate trashes nothing
    assert [(d["group"], d["action"]) for d in catalog.decisions()] == [
        (world["dup2"]["id"], "trash"),
        (world["dup1"]["id"], "not_duplicate"),
    ]


def test_a_bulk_item_whose_id_no_group_can_have_fails_alone(gateway, immich, alice, world, catalog):
    # Given a bulk request whose second item's id holds a lone surrogate (JSON carries it)
    r = _bulk(
        gateway,
        alice,
        [
            {"id": world["dup1"]["id"], "action": "not_duplicate"},
            {"id": "\udcff", "action": "not_duplicate"},
        ],
    )
    # Then the answer reports each item: the first done, the second refused (not a 500
    # that hides that the first was recorded)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == [200, 400]
    assert [d["group"] for d in catalog.decisions()] == [world["dup1"]["id"]]


def test_malformed_requests_to_twinlens_routes_are_json_4xx(
    gateway, alice, library, catalog, grouping_api
):
    url = gateway.url + "/api/twinlens"
    # a scan path no file name is made of, or longer than any file name
    for path in ("\ud800", str(library) + "/a" * 3000):
        r = requests.post(url + "/jobs", json={"path": path}, headers=alice.bearer)
        assert r.status_code == 400 and r.json()["statusCode"] == 400, r.text
    assert catalog.jobs() == [] and grouping_api.writes() == []
    # a split whose files are null: not "all of them" (that is leaving the field out)
    catalog.add("a.JPG")
    catalog.add("a.CR3")
    catalog.regroup()
    gid = catalog.group_of("a.JPG")["id"]
    r = requests.post(f"{url}/groups/{gid}/split", json={"paths": None}, headers=alice.bearer)
    assert r.status_code == 400 and "paths" in r.json()["message"], r.text
    assert catalog.group_of("a.CR3")["id"] == gid and grouping_api.writes() == []


def test_what_no_service_url_could_carry_is_refused_by_the_gateway(
    gateway, alice, library, catalog, grouping_api, dedup_api
):
    url = gateway.url + "/api/twinlens"
    # Given a folder longer than any path, and an id longer than any the services make
    folder = str(library) + ("/" + "写真" * 40) * 30  # 7,200 bytes as UTF-8
    # When they are asked for
    r = requests.get(url + "/groups", params={"path_prefix": folder}, headers=alice.bearer)
    assert r.status_code == 400 and "4096 bytes" in r.json()["message"], r.text
    r = requests.get(url + "/groups/" + "g" * 5000, headers=alice.bearer)
    assert r.status_code == 404, r.text
    bulk = requests.post(
        url + "/duplicates/resolve",
        json={"groups": [{"id": "y" * 90_000, "keep": []}], "dryRun": True},
        headers=alice.bearer,
    )
    # Then each is refused as what it is, and no service is asked to carry it
    assert bulk.status_code == 200 and bulk.json()["results"][0]["status"] == 404, bulk.text[-300:]
    assert grouping_api.total() == 0 and dedup_api.total() == 0


def test_a_services_own_refusal_without_json_keeps_its_status(gateway, alice, grouping_api):
    # Given the grouping API's server refusing a request itself (gunicorn's 414 page for a
    # request line too long for it), before the API's own JSON answer
    grouping_api.fail("GET", "/groups", 414)
    # When the groups are asked for, Then the client is told that, not 502
    r = requests.get(gateway.url + "/api/twinlens/groups", headers=alice.bearer)
    assert r.status_code == 414 and "refused the request" in r.json()["message"], r.text
    # While a page that is not the API's for another reason (a wrong service address: a
    # 404 or 401 of whatever answers there) is the service's fault, not the caller's
    for status in (404, 401):
        grouping_api.heal()
        grouping_api.fail("GET", "/groups", status)
        r = requests.get(gateway.url + "/api/twinlens/groups", headers=alice.bearer)
        assert r.status_code == 502 and "non-JSON" in r.json()["message"], (status, r.text)


def test_a_bulk_dry_run_moves_and_records_nothing(gateway, immich, alice, world, catalog):
    # Given two open groups, when the UI asks for the bulk preview
    r = _bulk(
        gateway,
        alice,
        [
            {"id": world["dup2"]["id"], "keep": [world["c"]["id"]]},
            {"id": world["dup1"]["id"], "keep": [world["a"]["id"]]},
        ],
        dryRun=True,
    )
    # Then it says what would move, and nothing is trashed or recorded
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == [200, 200] and all(x["dryRun"] for x in results)
    assert world["d"]["id"] in {t["assetId"] for t in results[0]["trash"]}
    assert not any(a["isTrashed"] for a in immich.state.assets.values())
    assert catalog.decisions() == []


def test_a_bulk_request_never_keeps_and_trashes_one_file(gateway, immich, alice, world, catalog):
    # Given the copies of A (an exact group) and a look-alike group of A and C (C edited
    # to look like A): one file, 2024/A.JPG, is in both
    a_path, c_path = f"{world['lib']}/2024/A.JPG", f"{world['lib']}/2024/C.JPG"
    catalog.change("2024/C.JPG", phash=phash(1, 3))
    catalog.dedupe()
    looks = catalog.duplicate_of("2024/C.JPG", "perceptual")
    assert {m["path"] for m in looks["members"]} == {a_path, c_path}
    assert catalog.duplicate_of("2024/A.JPG", "exact")["id"] == world["dup1"]["id"]
    items = [
        {"id": world["dup1"]["id"], "keep": [a_path]},  # keeps A
        {"id": looks["id"], "keep": [c_path]},  # would trash A
    ]
    for dry in (True, False):
        # When one request keeps A in the first and trashes it in the second
        r = _bulk(gateway, alice, items, dryRun=dry)
        # Then the second is refused as contradicting the first; the first goes ahead
        results = r.json()["results"]
        assert [x["status"] for x in results] == [200, 409], r.text
        assert (
            f"would trash {a_path}, which group {world['dup1']['id']} keeps"
            in (results[1]["message"])
        )
        assert results[1]["dryRun"] is dry  # a real request's refusal is not called a dry run
    assert not immich.state.assets[world["a"]["id"]]["isTrashed"]
    assert immich.state.assets[world["b"]["id"]]["isTrashed"]
    assert [d["group"] for d in catalog.decisions()] == [world["dup1"]["id"]]
    assert catalog.status(looks["id"]) == "open"


def test_a_bulk_confirmation_of_a_changed_group_is_refused(gateway, immich, alice, world, catalog):
    dup = world["dup2"]["id"]
    item = {"id": dup, "keep": [world["c"]["id"]]}
    shown = _bulk(gateway, alice, [item], dryRun=True)
    expect = [t["path"] for t in shown.json()["results"][0]["trash"]]
    # When a copy joins the group before the user confirms
    _a_copy_joins(dup, catalog, immich, alice)
    r = _bulk(gateway, alice, [{**item, "expectTrash": expect}])
    # Then that group is refused and nothing moves
    assert r.status_code == 200 and r.json()["results"][0]["status"] == 409, r.text
    assert not catalog.decisions()
    assert not any(a["isTrashed"] for a in immich.state.assets.values())


def _jpeg(path, size=(1200, 800)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 50, 50)).save(path, "JPEG")


def test_thumbnails_confined_to_library_and_cached(
    gateway, alice, library, gateway_settings, tmp_path
):
    pic = library / "2024" / "T.JPG"
    _jpeg(pic)
    url = gateway.url + "/api/twinlens/thumbnail"
    r = requests.get(url, params={"path": str(pic), "size": 200}, headers=alice.bearer)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    # a private picture: a shared cache in front of Immich must not keep it
    cache_control = r.headers["Cache-Control"]
    assert "private" in cache_control and "public" not in cache_control
    img = Image.open(io.BytesIO(r.content))
    assert max(img.size) == 200 and img.size == (200, 133)
    cached = list((gateway_settings.data_dir / "thumbs").rglob("*.jpg"))
    assert len(cached) == 1
    # Another size is another picture, not the first one from the cache
    r = requests.get(url, params={"path": str(pic), "size": 400}, headers=alice.bearer)
    assert Image.open(io.BytesIO(r.content)).size == (400, 267)
    # And an edit in place is a new picture too, even one that keeps the file's size
    before = pic.stat()
    edited = io.BytesIO()
    Image.new("RGB", (800, 800), (20, 90, 200)).save(edited, "JPEG")
    assert edited.tell() < before.st_size
    # padded to the old size: bytes after the JPEG's end are ignored by readers
    pic.write_bytes(edited.getvalue().ljust(before.st_size, b"\0"))
    os.utime(pic, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    r = requests.get(url, params={"path": str(pic), "size": 200}, headers=alice.bearer)
    assert Image.open(io.BytesIO(r.content)).size == (200, 200)
    outside = tmp_path / "secret.jpg"
    _jpeg(outside)
    for bad in (str(outside), str(library / ".." / "secret.jpg")):
        r = requests.get(url, params={"path": bad}, headers=alice.bearer)
        assert r.status_code == 400 and "outside" in r.json()["message"]
    (library / "link.jpg").symlink_to(outside)
    assert (
        requests.get(
            url, params={"path": str(library / "link.jpg")}, headers=alice.bearer
        ).status_code
        == 400
    )
    assert (
        requests.get(
            url, params={"path": str(pic), "size": "huge"}, headers=alice.bearer
        ).status_code
        == 400
    )
    (library / "bad.jpg").write_bytes(b"not an image")
    assert (
        requests.get(
            url, params={"path": str(library / "bad.jpg")}, headers=alice.bearer
        ).status_code
        == 422
    )
    assert requests.get(url, params={"path": str(pic)}).status_code == 401


def test_thumbnail_of_a_huge_video_is_refused_without_reading_it(gateway, alice, library):
    import resource

    # Given a 2 GB video in the library (sparse: it takes no disk)
    clip = library / "clip.mov"
    with open(clip, "wb") as fh:
        fh.write(b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ")
        fh.truncate(2 << 30)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    # When its thumbnail is asked for
    r = requests.get(
        gateway.url + "/api/twinlens/thumbnail", params={"path": str(clip)}, headers=alice.bearer
    )
    # Then it is refused with the reason, and the file was not read into memory
    assert r.status_code == 422 and "video" in r.json()["message"], r.text
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mb < 500, grown_mb


def test_thumbnails_keep_the_pixel_limit(gateway_settings, alice, library):
    import dataclasses

    # Given a gateway whose pixel limit is below a picture's size
    pic = library / "big.png"
    Image.new("RGB", (400, 300), (20, 120, 200)).save(pic)
    settings = dataclasses.replace(gateway_settings, max_image_pixels=50_000)
    client = create_app({"SETTINGS": settings}).test_client()
    # When its thumbnail is asked for, then it is refused rather than decoded
    r = client.get("/api/twinlens/thumbnail", query_string={"path": str(pic)}, headers=alice.bearer)
    assert r.status_code == 422 and "bomb" in r.get_json()["message"], r.get_json()


def test_thumbnail_of_a_file_whose_name_is_not_utf8(gateway, alice, library):
    # Given a picture from an old PC whose folder name is Latin-1 ("café" as one byte)
    folder = os.path.join(os.fsencode(library), b"caf\xe9")
    os.mkdir(folder)
    _jpeg(Path(os.fsdecode(os.path.join(folder, b"IMG_1.JPG"))))
    # When the client names it with the byte percent-encoded, as the UI does
    url = (
        f"{gateway.url}/api/twinlens/thumbnail?path={quote(os.fsencode(library))}/caf%E9/IMG_1.JPG"
    )
    r = requests.get(url, headers=alice.bearer)
    # Then that very file is found and shown
    assert (r.status_code, r.headers["Content-Type"]) == (200, "image/jpeg"), r.text
    assert Image.open(io.BytesIO(r.content)).size == (320, 213)


def test_query_parameters_are_checked_not_ignored(
    gateway, immich, alice, world, catalog, dedup_api
):
    # A misspelt filter ("state" is the jobs' name for the duplicates' "status") would
    # widen the answer; a misspelt dryRun would make a real undo.
    base = gateway.url + "/api/twinlens"
    calls = dedup_api.total()
    for url, words in (
        ("/duplicates?state=resolved", "unknown query parameters: state"),
        ("/groups?page=1&pathprefix=/x", "unknown query parameters: pathprefix"),
        ("/jobs?service=dedup&status=failed", "unknown query parameters: status"),
        ("/thumbnail?path=/x&width=9", "unknown query parameters: width"),
    ):
        r = requests.get(base + url, headers=alice.bearer)
        assert (r.status_code, r.json()["message"]) == (400, words), url
    dup = world["dup1"]
    catalog.decide(dup["id"], "not_duplicate")  # a decision there is to undo
    for query in ("dryRun=ture", "dryrun=true"):
        r = requests.delete(
            f"{base}/duplicates/{dup['id']}/resolution?{query}", headers=alice.bearer
        )
        assert r.status_code == 400, query
    assert catalog.status(dup["id"]) == "dismissed" and len(catalog.decisions()) == 1
    assert dedup_api.total() == calls
    r = requests.get(base + "/jobs?service=dedup&state=failed", headers=alice.bearer)
    assert r.status_code == 200, r.text


def _local_client(tmp_path, library, grouping_url, dedup_url):
    """A test client of a local-mode gateway (no Immich URL) over the real services."""
    settings = load_settings(
        {},
        immich_url="",
        data_dir=tmp_path / "d",
        library_roots=(library,),
        grouping_url=grouping_url,
        dedup_url=dedup_url,
        service_token=SERVICE_TOKEN,
    )
    return create_app({"SETTINGS": settings}).test_client()


def test_a_doubled_slash_is_a_json_404_not_a_redirect(
    tmp_path, library, grouping_url, dedup_url, catalog
):
    # Werkzeug answers "//" with an HTML 308 to the merged path: under /api that turned
    # a one-group resolve (duplicates/%2F/resolve) into a request to the bulk route
    client = _local_client(tmp_path, library, grouping_url, dedup_url)
    for method, path in (("post", "/duplicates//resolve"), ("get", "//groups")):
        r = client.open(
            "/api/twinlens" + path,
            method=method.upper(),
            json={"action": "not_duplicate", "dryRun": True} if method == "post" else None,
        )
        assert r.status_code == 404, (path, r.status_code, r.get_data(as_text=True)[:200])
        assert r.is_json, path
    assert catalog.decisions() == []


def test_local_mode_thumbnails_and_no_trash(tmp_path, library, grouping_url, dedup_url, catalog):
    pic = library / "L.JPG"
    _jpeg(pic, (300, 300))
    for rel in ("L.JPG", "L2.JPG"):
        catalog.add(rel, sha256=sha256_of("L"), phash=phash(7))
    catalog.dedupe()
    dup = catalog.duplicate_of("L.JPG")
    client = _local_client(tmp_path, library, grouping_url, dedup_url)
    assert client.get("/api/twinlens/thumbnail", query_string={"path": str(pic)}).status_code == 200
    # A trash needs Immich: refused, the dry run saying so as the real run does
    for dry in (True, False):
        r = client.post(
            f"/api/twinlens/duplicates/{dup['id']}/resolve",
            json={"keep": [str(pic)], "dryRun": dry},
        )
        assert r.status_code == 409 and "needs Immich" in r.get_json()["message"], r.get_json()
    assert catalog.decisions() == []
    r = client.post(
        f"/api/twinlens/duplicates/{dup['id']}/resolve", json={"action": "not_duplicate"}
    )
    assert r.status_code == 200 and catalog.decisions()[0]["action"] == "not_duplicate"
    assert catalog.status(dup["id"]) == "dismissed"


def test_local_mode_answers_only_requests_addressed_to_this_machine(
    tmp_path, library, grouping_url, dedup_url
):
    # Given a local-mode gateway (no login: it trusts being reachable from here only)
    client = _local_client(tmp_path, library, grouping_url, dedup_url)
    # When a web page rebinds its own name to 127.0.0.1 and asks (DNS rebinding)
    for path in ("/api/twinlens/groups", "/api/twinlens/me", "/"):
        for evil in ("photos-evil.example:3000", "localhost.evil.example", "evil-localhost"):
            r = client.get(path, headers={"Host": evil})
            # Then it is refused, whatever the path, and however like localhost it looks
            assert r.status_code == 403 and "local mode" in r.get_json()["message"], (path, evil)
    # While the names of this machine are answered
    for host in ("localhost:3000", "127.0.0.1:3000", "[::1]:3000", "twinlens.localhost"):
        assert client.get("/api/twinlens/me", headers={"Host": host}).status_code == 200, host


def test_files_read_with_an_error_are_listed_to_a_signed_in_user(gateway, alice, catalog):
    # Given a library with one file read fine and one cut short
    catalog.add("2024/ok.jpg")
    catalog.add("2024/cut.jpg", error="truncated: the file ends at 100 bytes")
    url = gateway.url + "/api/twinlens/files/errors"
    # Then nobody signed out sees them; a user gets the list from the grouping API
    assert requests.get(url).status_code == 401
    r = requests.get(url, params={"path_prefix": catalog.path("2024")}, headers=alice.bearer)
    assert r.status_code == 200, r.text
    assert [(f["path"], f["error"]) for f in r.json()["items"]] == [
        (catalog.path("2024/cut.jpg"), "truncated: the file ends at 100 bytes")
    ]
    assert r.json()["total"] == 1
    # And a malformed page or a misspelt filter is refused, saying why
    for params in ({"size": "ten"}, {"folder": "2024"}):
        bad = requests.get(url, params=params, headers=alice.bearer)
        assert bad.status_code == 400 and bad.json()["message"], (params, bad.text)


def test_the_demo_library_is_named_as_such_among_the_roots(
    alice, gateway_settings, api_settings, api_broker
):
    # Given the demo library `twinlens up` generates when given none, in its data folder
    # (reached through a symlink: it is scanned as its resolved path), beside a library
    data = (gateway_settings.data_dir.parent / "real-data").resolve()
    demo = data / "demo-library"
    demo.mkdir(parents=True)
    linked = gateway_settings.data_dir.parent / "linked-data"
    linked.symlink_to(data)
    roots = (*api_settings.library_roots, demo)
    grouping = start_api(
        "grouping", dataclasses.replace(api_settings, library_roots=roots), api_broker
    )
    settings = dataclasses.replace(
        gateway_settings, data_dir=linked, library_roots=roots, grouping_url=grouping.url
    )
    server = ThreadedServer(create_app({"SETTINGS": settings, "TESTING": True})).start()
    try:
        # When the UI asks for the roots
        r = requests.get(server.url + "/api/twinlens/roots", headers=alice.bearer)
        # Then the demo says it is one, the library says nothing of the kind
        assert r.status_code == 200, r.text
        assert r.json() == {
            "items": [
                {"id": None, "path": str(api_settings.library_roots[0]), "files": 0},
                {"id": None, "path": str(demo), "files": 0, "demo": True},
            ]
        }
    finally:
        server.stop()
        grouping.stop()


def test_the_library_roots_are_listed_to_a_signed_in_administrator(
    catalog, alice, bob, library, two_roots
):
    # Given a Twinlens over two library roots, files cataloged in the first only
    server, apis, second = two_roots
    catalog.add("2019/Trip/IMG_1.JPG")
    catalog.add("2019/Trip/IMG_2.JPG")
    url = server.url + "/api/twinlens/roots"
    # When an administrator asks, Then both, in their configured order, from the
    # grouping API (the second with no catalog root yet: no scan reached it)
    r = requests.get(url, headers=alice.bearer)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "items": [
            {"id": catalog.root_id, "path": str(library), "files": 2},
            {"id": None, "path": str(second), "files": 0},
        ]
    }
    assert apis[0].count("GET", "/roots") == 1
    # And nobody signed out, nor an ordinary user, learns them
    assert requests.get(url).status_code == 401
    assert requests.get(url, headers=bob.bearer).status_code == 403
    # And a query parameter it does not take is refused, saying why
    bad = requests.get(url, params={"path": "x"}, headers=alice.bearer)
    assert bad.status_code == 400 and "unknown query parameters" in bad.json()["message"]
    # And a grouping API that fails is said as such
    apis[0].fail("GET", "/roots", 503, "database unavailable")
    r = requests.get(url, headers=alice.bearer)
    assert r.status_code == 503 and "database unavailable" in r.json()["message"], r.text
