"""Enrichment of Immich answers with Twinlens data, and its cache invalidation."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from core import dataversion
from gateway import create_app
from gateway.cache import bump_data_version, changed, data_version
from tests.fakeimmich import ThreadedServer
from tests.fakeimmich.fixtures import *  # noqa: F403 - pytest fixtures
from tests.fakeimmich.fixtures import LIBRARY_ID, SERVICE_TOKEN
from tests.netutil import Switch
from tests.realapis import phash, sha256_of

UPLOAD = b"uploaded bytes of a copy"


@pytest.fixture
def world(immich, alice, library, catalog, grouping_api, dedup_api):
    """Alice's Immich: a RAW+JPEG pair from the NAS (external library) and an uploaded
    copy of the JPEG; Twinlens (the real catalog and passes): the pair plus an unindexed
    sidecar, and an exact duplicate of the JPEG in backup/ (the upload's bytes)."""
    st, uid = immich.state, alice.user["id"]
    jpg = st.add_asset(uid, "/mnt/photos/2024/IMG_1.JPG", content=b"j", library_id=LIBRARY_ID)
    raw = st.add_asset(uid, "/mnt/photos/2024/IMG_1.CR3", content=b"r", library_id=LIBRARY_ID)
    up = st.add_asset(uid, "/data/upload/x/ab/cd/upload.jpg", content=UPLOAD)
    lib = str(library)
    sha_up = hashlib.sha1(UPLOAD).hexdigest()
    catalog.add("2024/IMG_1.JPG", sha256=sha256_of("IMG_1"), phash=phash(1))
    catalog.add("2024/IMG_1.CR3", sha256=sha256_of("IMG_1 raw"))
    catalog.add("2024/IMG_1.xmp", sha256=sha256_of("IMG_1 xmp"))
    catalog.add("backup/IMG_1.JPG", sha256=sha256_of("IMG_1"), sha1=sha_up, phash=phash(1))
    catalog.passes()
    group = catalog.group_of("2024/IMG_1.JPG")
    dup = catalog.duplicate_of("2024/IMG_1.JPG")
    assert group["type"] == "raw_jpeg" and group["primary"] == f"{lib}/2024/IMG_1.JPG"
    assert len(group["members"]) == 3
    assert dup["type"] == "exact" and dup["keep"] == f"{lib}/2024/IMG_1.JPG"
    return {"jpg": jpg, "raw": raw, "up": up, "group": group, "dup": dup, "lib": lib}


def strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "twinlens"}


def test_asset_info_keeps_immichs_bytes_and_adds_one_key(gateway, immich, alice, world):
    url = f"/api/assets/{world['jpg']['id']}"
    plain = {**alice.bearer, "Accept-Encoding": "identity"}
    via = requests.get(gateway.url + url, headers=plain)
    direct = requests.get(immich.url + url, headers=plain)
    assert via.headers["X-Twinlens-Enrichment"] == "ok"
    # Immich's body, byte for byte, then the one added key: nothing was re-encoded.
    head = direct.content.rstrip()[:-1]
    assert via.content.startswith(head + b',"twinlens":{')
    assert int(via.headers["Content-Length"]) == len(via.content)
    assert "Content-Encoding" not in via.headers


@pytest.mark.parametrize("route", ["asset", "search"])
def test_enriched_answers_come_compressed_and_with_a_validator_as_immichs_do(
    gateway, immich, alice, world, route
):
    import gzip

    # Given the client of a browser or a phone, which accepts gzip (Immich compresses its
    # JSON answers) and keeps what it was sent, to ask again with its validator
    def ask(**extra: str) -> requests.Response:
        headers = {**alice.bearer, "Accept-Encoding": "gzip, deflate", **extra}
        if route == "asset":
            url = f"{gateway.url}/api/assets/{world['jpg']['id']}"
            return requests.get(url, headers=headers, stream=True)
        url = gateway.url + "/api/search/metadata"
        return requests.post(url, json={"size": 50}, headers=headers, stream=True)

    # When it asks for an enriched answer
    first = ask()
    wire = first.raw.read(decode_content=False)
    # Then the answer comes gzip-compressed, its length that of what was sent, and it
    # says that it varies by what the client accepts
    assert first.headers["X-Twinlens-Enrichment"] == "ok"
    assert first.headers["Content-Encoding"] == "gzip"
    assert int(first.headers["Content-Length"]) == len(wire)
    assert "accept-encoding" in first.headers["Vary"].lower()
    body = json.loads(gzip.decompress(wire))
    if route == "asset":
        assert body["twinlens"]["group"]["type"] == "raw_jpeg"
    else:
        assert any(a.get("twinlens") for a in body["assets"]["items"])
    if route == "search":
        # A search is a POST: no validator (RFC 9110 gives an unsafe method no 304)
        assert "ETag" not in first.headers
        again = ask(**{"If-None-Match": "*"})
        assert again.status_code == 200 and json.loads(gzip.decompress(again.raw.read())) == body
        return
    # And with the validator it was given, the same answer again is a 304 with no body
    tag = first.headers["ETag"]
    assert tag.startswith('W/"')
    again = ask(**{"If-None-Match": tag})
    assert again.status_code == 304 and again.raw.read() == b""
    assert again.headers["ETag"] == tag
    # While a validator of another answer gets the whole answer
    other = ask(**{"If-None-Match": 'W/"0123456789abcdef"'})
    assert other.status_code == 200 and other.headers["ETag"] == tag
    # And a client that accepts no gzip gets the same body plain, under the same validator
    plain = ask(**{"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in plain.headers and plain.headers["ETag"] == tag
    assert json.loads(plain.raw.read()) == body


def test_cache_down_still_gives_immichs_answer(gateway_settings, immich, alice, world):
    # Given a gateway whose Redis cache is unreachable (nothing listens on port 1)
    settings = dataclasses.replace(gateway_settings, cache_url="redis://127.0.0.1:1/0")
    server = ThreadedServer(create_app({"SETTINGS": settings})).start()
    try:
        for url in (
            f"/api/assets/{world['jpg']['id']}",
            "/api/timeline/bucket?timeBucket=2024-05-01",
        ):
            # When a client asks for an enriched answer
            via = requests.get(server.url + url, headers=alice.bearer)
            direct = requests.get(immich.url + url, headers=alice.bearer)
            # Then it gets Immich's answer unchanged, flagged, not a 500
            assert via.status_code == 200, (url, via.text)
            assert via.headers["X-Twinlens-Enrichment"] == "unavailable"
            assert via.json() == direct.json()
    finally:
        server.stop()


def test_asset_routes_that_are_not_assets_pass_through(gateway, immich, alice, world):
    # /api/assets/{id} also matches /api/assets/statistics: not an asset, not enriched.
    via = requests.get(gateway.url + "/api/assets/statistics", headers=alice.bearer)
    direct = requests.get(immich.url + "/api/assets/statistics", headers=alice.bearer)
    assert via.status_code == 200 and via.content == direct.content
    assert "X-Twinlens-Enrichment" not in via.headers
    assert via.json()["total"] == 3


def test_asset_info_gains_group_and_duplicate(gateway, immich, alice, world):
    url = f"/api/assets/{world['jpg']['id']}"
    via = requests.get(gateway.url + url, headers=alice.bearer)
    direct = requests.get(immich.url + url, headers=alice.bearer)
    assert via.status_code == 200 and via.headers["X-Twinlens-Enrichment"] == "ok"
    body = via.json()
    assert strip(body) == direct.json()  # nothing Immich sent is changed
    tl = body["twinlens"]
    assert tl["path"] == f"{world['lib']}/2024/IMG_1.JPG"
    grp = tl["group"]
    assert grp["id"] == world["group"]["id"] and grp["type"] == "raw_jpeg"
    assert grp["primaryAssetId"] == world["jpg"]["id"]
    assert sorted(grp["memberAssetIds"]) == sorted([world["jpg"]["id"], world["raw"]["id"]])
    sidecar = next(m for m in grp["members"] if m["path"].endswith(".xmp"))
    assert sidecar["assetId"] is None  # not indexed by Immich: listed by path
    dup = tl["duplicate"]
    assert dup["id"] == world["dup"]["id"] and dup["type"] == "exact" and dup["similarity"] == 1.0
    assert dup["suggestedKeepAssetId"] == world["jpg"]["id"]
    # The backup copy is known to Immich only as an upload: found by its content SHA-1.
    assert sorted(dup["memberAssetIds"]) == sorted([world["jpg"]["id"], world["up"]["id"]])


def test_search_and_duplicates_and_timeline_are_enriched(gateway, immich, alice, world):
    r = requests.post(
        gateway.url + "/api/search/metadata", json={"withExif": True}, headers=alice.bearer
    )
    direct = requests.post(
        immich.url + "/api/search/metadata", json={"withExif": True}, headers=alice.bearer
    )
    items = r.json()["assets"]["items"]
    assert [strip(a) for a in items] == direct.json()["assets"]["items"]
    by_id = {a["id"]: a["twinlens"] for a in items}
    assert by_id[world["raw"]["id"]]["group"]["id"] == world["group"]["id"]
    assert by_id[world["up"]["id"]]["duplicate"]["id"] == world["dup"]["id"]
    assert by_id[world["up"]["id"]]["group"] is None

    r = requests.get(
        gateway.url + "/api/timeline/bucket",
        params={"timeBucket": "2024-05-01"},
        headers=alice.bearer,
    )
    direct = requests.get(
        immich.url + "/api/timeline/bucket",
        params={"timeBucket": "2024-05-01"},
        headers=alice.bearer,
    ).json()
    cols = r.json()
    assert strip(cols) == direct
    assert len(cols["twinlens"]) == len(cols["id"]) == 3
    # Each asset's own group and duplicate, aligned by position
    gid, did = world["group"]["id"], world["dup"]["id"]
    expected = {
        world["jpg"]["id"]: (gid, did),
        world["raw"]["id"]: (gid, None),
        world["up"]["id"]: (None, did),  # the backup copy's bytes: found by content
    }
    got = {
        asset_id: ((extra["group"] or {}).get("id"), (extra["duplicate"] or {}).get("id"))
        for asset_id, extra in zip(cols["id"], cols["twinlens"], strict=True)
    }
    assert got == expected

    immich.state.assets[world["up"]["id"]]["duplicateId"] = str(uuid.uuid4())
    immich.state.assets[world["jpg"]["id"]]["duplicateId"] = immich.state.assets[world["up"]["id"]][
        "duplicateId"
    ]
    groups = requests.get(gateway.url + "/api/duplicates", headers=alice.bearer).json()
    assert len(groups) == 1
    for a in groups[0]["assets"]:
        assert a["twinlens"]["duplicate"]["id"] == world["dup"]["id"]


def test_a_member_whose_name_is_not_utf8_does_not_cost_the_enrichment(
    gateway, immich, alice, world, catalog
):
    # Given the upload's exact twins (its bytes) in a folder an old PC named in Latin-1
    # (café) and beside it, and no other copy of them (the backup copy edited since)
    latin = world["lib"] + "/" + os.fsdecode(b"caf\xe9") + "/IMG_1.JPG"
    sha_up = hashlib.sha1(UPLOAD).hexdigest()
    catalog.change("backup/IMG_1.JPG", sha256=sha256_of("edited"), sha1="e" * 40)
    for path in (latin, "up.jpg"):
        catalog.add(path, sha256=sha256_of("upload"), sha1=sha_up, phash=phash(2))
    catalog.dedupe()
    assert catalog.duplicate(world["dup"]["id"]) is None  # one copy left: no group
    dup = catalog.duplicate_of(latin)
    assert {m["path"] for m in dup["members"]} == {latin, world["lib"] + "/up.jpg"}
    # When the upload's info and its month are asked for
    info = requests.get(f"{gateway.url}/api/assets/{world['up']['id']}", headers=alice.bearer)
    bucket = requests.get(
        gateway.url + "/api/timeline/bucket",
        params={"timeBucket": "2024-05-01"},
        headers=alice.bearer,
    )
    # Then both are enriched, the name given back as the APIs give it (\udcXX escapes)
    for r in (info, bucket):
        assert r.status_code == 200 and r.headers["X-Twinlens-Enrichment"] == "ok", r.text
    assert info.json()["twinlens"]["duplicate"]["id"] == dup["id"]
    paths = [m["path"] for m in info.json()["twinlens"]["duplicate"]["members"]]
    assert latin in paths
    assert any(t and t["duplicate"] for t in bucket.json()["twinlens"])


def test_timeline_enrichment_is_cached_per_user_and_version(
    gateway, gateway_app, immich, alice, world, grouping_api
):
    params = {"timeBucket": "2024-05-01"}
    first = requests.get(
        gateway.url + "/api/timeline/bucket", params=params, headers=alice.bearer
    ).json()
    lookups = grouping_api.count("POST", "/files/lookup")
    assert lookups >= 1
    second = requests.get(
        gateway.url + "/api/timeline/bucket", params=params, headers=alice.bearer
    ).json()
    assert second == first
    assert grouping_api.count("POST", "/files/lookup") == lookups  # warm: no service call


def _member_paths(extra: dict) -> set:
    return {m["path"] for m in extra["group"]["members"]}


def test_what_is_cached_for_one_user_is_not_served_to_another(gateway, immich, alice, bob, world):
    sidecar = f"{world['lib']}/2024/IMG_1.xmp"  # a member no Immich indexes
    asset_url = f"{gateway.url}/api/assets/{world['jpg']['id']}"
    bucket = (gateway.url + "/api/timeline/bucket", {"timeBucket": "2024-05-01"})
    # Given Alice, an administrator, has opened her JPEG and its timeline bucket
    mine = requests.get(asset_url, headers=alice.bearer).json()["twinlens"]
    cols = requests.get(bucket[0], params=bucket[1], headers=alice.bearer).json()
    assert sidecar in _member_paths(mine)
    at = cols["id"].index(world["jpg"]["id"])
    assert sidecar in _member_paths(cols["twinlens"][at])
    # When the same assets are Bob's (Immich shares them with him), who is no administrator
    for a in immich.state.assets.values():
        a["ownerId"] = bob.user["id"]
    theirs = requests.get(asset_url, headers=bob.bearer).json()["twinlens"]
    cols = requests.get(bucket[0], params=bucket[1], headers=bob.bearer).json()
    # Then he gets his own view, not Alice's cached one: the sidecar is not named to him
    assert sidecar not in _member_paths(theirs) and None in _member_paths(theirs)
    at = cols["id"].index(world["jpg"]["id"])
    assert sidecar not in _member_paths(cols["twinlens"][at])


def _dissolve_the_pair(catalog) -> None:
    """A rescan finds the RAW and its sidecar gone, and the grouping pass after it
    dissolves their group (the JPEG is left alone)."""
    for rel in ("2024/IMG_1.CR3", "2024/IMG_1.xmp"):
        catalog.change(rel, status="missing")
    catalog.regroup()
    assert catalog.group_of("2024/IMG_1.JPG") is None


def test_a_scan_result_reaches_a_cached_timeline_bucket(
    gateway, immich, alice, world, catalog, gateway_settings
):
    bucket = (gateway.url + "/api/timeline/bucket", {"timeBucket": "2024-05-01"})
    # Given a warm bucket showing the pair's group
    cols = requests.get(bucket[0], params=bucket[1], headers=alice.bearer).json()
    assert any(extra["group"] for extra in cols["twinlens"])
    # When a rescan dissolves the group and a worker bumps the data version
    _dissolve_the_pair(catalog)
    bump_data_version(gateway_settings.cache_url)
    # Then the next answer shows no group
    cols = requests.get(bucket[0], params=bucket[1], headers=alice.bearer).json()
    assert not any(extra["group"] for extra in cols["twinlens"])


def test_scan_result_is_visible_after_the_version_bump(
    gateway, gateway_app, immich, alice, world, catalog, gateway_settings
):
    url = f"{gateway.url}/api/assets/{world['jpg']['id']}"
    assert requests.get(url, headers=alice.bearer).json()["twinlens"]["group"] is not None
    _dissolve_the_pair(catalog)  # a rescan dissolved the group ...
    stale = requests.get(url, headers=alice.bearer).json()["twinlens"]["group"]
    assert stale is not None  # ... the cache still answers (that is what it is for) ...
    before = data_version(gateway_settings.cache_url)
    assert bump_data_version(gateway_settings.cache_url) == before + 1  # ... until a worker bumps
    assert requests.get(url, headers=alice.bearer).json()["twinlens"]["group"] is None


def test_member_asset_ids_are_per_user(gateway, immich, alice, bob, world):
    bob_jpg = _bob_sees_the_nas_jpeg(immich, bob)
    requests.get(
        f"{gateway.url}/api/assets/{world['jpg']['id']}", headers=alice.bearer
    )  # warm Alice
    tl = requests.get(f"{gateway.url}/api/assets/{bob_jpg['id']}", headers=bob.bearer).json()[
        "twinlens"
    ]
    assert tl["group"]["memberAssetIds"] == [bob_jpg["id"]]
    assert tl["duplicate"]["memberAssetIds"] == [bob_jpg["id"]]


def _bob_sees_the_nas_jpeg(immich, bob) -> dict:
    """Bob's own library holds the NAS JPEG of Alice's pair; her RAW and upload are not his."""
    return immich.state.add_asset(
        bob.user["id"], "/mnt/photos/2024/IMG_1.JPG", content=b"j", library_id=str(uuid.uuid4())
    )


def test_an_ordinary_user_sees_no_paths_of_files_immich_hides_from_them(
    gateway, immich, alice, bob, world
):
    # Given Bob, not an administrator, who can see only the NAS JPEG of the group
    bob_jpg = _bob_sees_the_nas_jpeg(immich, bob)
    lib = world["lib"]
    # When he opens it
    tl = requests.get(f"{gateway.url}/api/assets/{bob_jpg['id']}", headers=bob.bearer).json()[
        "twinlens"
    ]
    # Then his own file is named, and the members his Immich does not show him (Alice's
    # RAW, the sidecar, Alice's backup copy) are counted but not named
    assert tl["path"] == f"{lib}/2024/IMG_1.JPG"
    grp, dup = tl["group"], tl["duplicate"]
    assert len(grp["members"]) == 3 and len(dup["members"]) == 2
    assert {m["path"] for m in grp["members"] if m["assetId"]} == {f"{lib}/2024/IMG_1.JPG"}
    assert [m["path"] for m in grp["members"] if not m["assetId"]] == [None, None]
    assert [m["path"] for m in dup["members"] if not m["assetId"]] == [None]
    assert grp["primaryPath"] == f"{lib}/2024/IMG_1.JPG" == dup["keepPath"]  # his own file
    assert sorted(m["kind"] for m in grp["members"]) == ["image", "raw", "sidecar"]
    # ... while Alice, an administrator, sees every member by path
    tl = requests.get(
        f"{gateway.url}/api/assets/{world['jpg']['id']}", headers=alice.bearer
    ).json()["twinlens"]
    assert all(m["path"] for m in tl["group"]["members"] + tl["duplicate"]["members"])


def test_an_upload_of_the_same_bytes_tells_an_ordinary_user_nothing_of_the_nas(
    gateway, immich, alice, bob, world
):
    # Given Bob, not an administrator, who uploads the bytes of a file on Alice's NAS
    # (backup/IMG_1.JPG: a picture she shared, downloaded and uploaded again)
    bobs = immich.state.add_asset(bob.user["id"], "/data/upload/b/mine.jpg", content=UPLOAD)
    # When he opens his upload, or finds it by search
    info = requests.get(f"{gateway.url}/api/assets/{bobs['id']}", headers=bob.bearer)
    found = requests.post(
        f"{gateway.url}/api/search/metadata", json={"id": bobs["id"]}, headers=bob.bearer
    ).json()["assets"]["items"]
    # Then Twinlens tells him of no group or duplicate: none of their files is his by
    # its path, so even their existence, their paths or their sizes would be Alice's
    assert info.headers["X-Twinlens-Enrichment"] == "ok"
    assert info.json()["twinlens"] == {
        "path": "/data/upload/b/mine.jpg",
        "group": None,
        "duplicate": None,
    }
    assert [a["twinlens"]["duplicate"] for a in found] == [None]
    # ... while Alice, whose files they are, still sees her copy's duplicate by path
    hers = requests.get(
        f"{gateway.url}/api/assets/{world['up']['id']}", headers=alice.bearer
    ).json()["twinlens"]
    assert f"{world['lib']}/backup/IMG_1.JPG" in {m["path"] for m in hers["duplicate"]["members"]}


def test_a_member_in_immichs_locked_folder_is_not_named(
    gateway, gateway_settings, immich, alice, world
):
    # Given Alice's RAW moved to her locked folder in Immich (bulk-upload-check still
    # finds it by its checksum), and a session of hers not unlocked by PIN
    raw = world["raw"]["id"]
    immich.state.assets[raw]["visibility"] = "locked"
    assert requests.get(f"{immich.url}/api/assets/{raw}", headers=alice.bearer).status_code == 400
    # When she opens the JPEG, or its day in the timeline
    info = requests.get(f"{gateway.url}/api/assets/{world['jpg']['id']}", headers=alice.bearer)
    bucket = requests.get(
        f"{gateway.url}/api/timeline/bucket",
        params={"timeBucket": "2024-05-01"},
        headers=alice.bearer,
    ).json()
    # Then the group is there, but the locked asset is neither listed nor linked to
    for tl in (info.json()["twinlens"], bucket["twinlens"][bucket["id"].index(world["jpg"]["id"])]):
        group = tl["group"]
        assert group["type"] == "raw_jpeg"
        assert raw not in group["memberAssetIds"]
        assert world["jpg"]["id"] in group["memberAssetIds"]
        member = next(m for m in group["members"] if m["kind"] == "raw")
        assert member["assetId"] is None
    assert info.headers["X-Twinlens-Enrichment"] == "ok"
    # ... and a rescan (a new data version) does not ask Immich about it again: only the
    # client's own request reaches Immich's asset route
    asked = immich.state.calls[("GET", "/assets/{id}")]
    bump_data_version(gateway_settings.cache_url)
    again = requests.get(f"{gateway.url}/api/assets/{world['jpg']['id']}", headers=alice.bearer)
    assert raw not in again.json()["twinlens"]["group"]["memberAssetIds"]
    assert immich.state.calls[("GET", "/assets/{id}")] == asked + 1


def test_a_locked_member_stays_unlinked_for_a_session_unlocked_by_pin(
    gateway_settings, immich, alice, world
):
    # Given a session of Alice's unlocked by PIN, which Immich shows the locked RAW to,
    # and a gateway that has remembered nothing of it yet
    raw = world["raw"]["id"]
    immich.state.assets[raw]["visibility"] = "locked"
    immich.state.elevated.add(alice.token)
    assert requests.get(f"{immich.url}/api/assets/{raw}", headers=alice.bearer).ok
    server = ThreadedServer(create_app({"SETTINGS": gateway_settings})).start()
    try:
        # When she opens the JPEG
        tl = requests.get(
            f"{server.url}/api/assets/{world['jpg']['id']}", headers=alice.bearer
        ).json()["twinlens"]
    finally:
        server.stop()
    # Then the locked RAW is still not linked: what is remembered per user cannot tell
    # sessions apart, so the locked folder stays out of Twinlens's answers for all
    assert raw not in tl["group"]["memberAssetIds"]
    assert world["jpg"]["id"] in tl["group"]["memberAssetIds"]


def test_a_partners_asset_is_not_the_viewers_own(gateway_app, immich, alice, bob, world):
    # Given Bob, not an administrator, shown Alice's JPEG (a partner's or a shared
    # album's: Immich shows him the asset, not its RAW nor its copies)
    from flask import g

    from gateway import enrich
    from gateway.auth import Credentials

    hers = dict(immich.state.assets[world["jpg"]["id"]])
    with gateway_app.test_request_context("/"):
        g.user = {"id": bob.user["id"], "isAdmin": False}
        g.creds = Credentials(headers=dict(bob.bearer), kind="bearer")
        # When the gateway enriches it for him
        (seen,) = enrich.enrich_assets([hers])
        # Then nothing of Alice's group or duplicate is told (no file of them is his)
        assert (seen["group"], seen["duplicate"]) == (None, None)
        # ... while the same file as his own asset would show its group
        (own,) = enrich.enrich_assets([{**hers, "ownerId": bob.user["id"]}])
        assert own["group"]["type"] == "raw_jpeg"


def test_an_ordinary_user_is_not_told_the_path_of_a_primary_they_cannot_see(
    gateway, immich, bob, world, catalog
):
    # Given a group whose primary is a file Bob's Immich does not show him (grouped under
    # the policy that makes the RAW the primary)
    lib = world["lib"]
    catalog.regroup(policy="raw")
    assert catalog.group_of("2024/IMG_1.JPG")["primary"] == f"{lib}/2024/IMG_1.CR3"
    bob_jpg = _bob_sees_the_nas_jpeg(immich, bob)
    # When he opens his JPEG, then the primary is marked but not named
    grp = requests.get(f"{gateway.url}/api/assets/{bob_jpg['id']}", headers=bob.bearer).json()[
        "twinlens"
    ]["group"]
    assert grp["primaryPath"] is None and grp["primaryAssetId"] is None
    primary = next(m for m in grp["members"] if m["isPrimary"])
    assert primary["path"] is None and primary["kind"] == "raw"


def test_with_admin_only_off_everyone_sees_unindexed_members_by_path(
    gateway_settings, immich, bob, world
):
    # Given a household gateway (TWINLENS_ADMIN_ONLY=0) and Bob, not an administrator
    settings = dataclasses.replace(gateway_settings, admin_only=False)
    server = ThreadedServer(create_app({"SETTINGS": settings})).start()
    try:
        bob_jpg = _bob_sees_the_nas_jpeg(immich, bob)
        # When he opens his JPEG, then every member is named, his Immich's or not
        tl = requests.get(f"{server.url}/api/assets/{bob_jpg['id']}", headers=bob.bearer).json()[
            "twinlens"
        ]
        lib = world["lib"]
        assert sorted(m["path"] for m in tl["group"]["members"]) == [
            f"{lib}/2024/IMG_1.CR3",
            f"{lib}/2024/IMG_1.JPG",
            f"{lib}/2024/IMG_1.xmp",
        ]
        assert f"{lib}/backup/IMG_1.JPG" in {m["path"] for m in tl["duplicate"]["members"]}
    finally:
        server.stop()


def test_lookups_are_batched_and_use_the_service_token(
    gateway, immich, alice, world, grouping_api, dedup_api, monkeypatch
):
    from gateway import services

    monkeypatch.setattr(services, "LOOKUP_BATCH", 2)
    for i in range(5):
        immich.state.add_asset(
            alice.user["id"], f"/mnt/photos/b/{i}.jpg", content=b"%d" % i, library_id=LIBRARY_ID
        )
    requests.post(gateway.url + "/api/search/metadata", json={}, headers=alice.bearer)
    for api in (grouping_api, dedup_api):
        # 8 assets, each looked up by path or checksum: in batches of 2 at most
        assert len(api.lookup_batches) >= 4 and max(api.lookup_batches) <= 2, api.lookup_batches
        assert min(api.lookup_batches) >= 1
        assert set(api.auth_seen) == {f"Bearer {SERVICE_TOKEN}"}


def test_immich_answer_survives_twinlens_outage(immich, alice, world, gateway_settings):
    import dataclasses

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    settings = dataclasses.replace(gateway_settings, grouping_url=dead, dedup_url=dead)
    server = ThreadedServer(create_app({"SETTINGS": settings})).start()
    try:
        url = f"/api/assets/{world['jpg']['id']}"
        r = requests.get(server.url + url, headers=alice.bearer)
        assert r.status_code == 200 and r.headers["X-Twinlens-Enrichment"] == "unavailable"
        assert r.json() == requests.get(immich.url + url, headers=alice.bearer).json()
    finally:
        server.stop()


def test_errors_are_not_enriched_or_cached(gateway, immich, alice, world, grouping_api):
    missing = str(uuid.uuid4())
    r = requests.get(f"{gateway.url}/api/assets/{missing}", headers=alice.bearer)
    assert r.status_code == 400 and r.json() == {"message": "Not found or no asset.read access"}
    assert grouping_api.count("POST", "/files/lookup") == 0


@pytest.mark.integration
def test_redis_cache_and_version_counter(
    immich, alice, world, gateway_settings, catalog, redis_cache_url
):
    url = redis_cache_url
    import dataclasses

    settings = dataclasses.replace(gateway_settings, cache_url=url)
    app = create_app({"SETTINGS": settings, "CACHE_KEY_PREFIX": f"tltest-{uuid.uuid4().hex}:"})
    server = ThreadedServer(app).start()
    try:
        asset_url = f"{server.url}/api/assets/{world['jpg']['id']}"
        assert requests.get(asset_url, headers=alice.bearer).json()["twinlens"]["group"]
        _dissolve_the_pair(catalog)
        assert requests.get(asset_url, headers=alice.bearer).json()["twinlens"]["group"]
        bump_data_version(url)  # as a worker process would, knowing only the URL
        assert requests.get(asset_url, headers=alice.bearer).json()["twinlens"]["group"] is None
        import redis

        keys = [
            k.decode() for k in redis.Redis.from_url(url).keys(app.config["CACHE_KEY_PREFIX"] + "*")
        ]
        assert keys and not any(alice.token in k or alice.api_key in k for k in keys)
    finally:
        server.stop()


@pytest.mark.parametrize("bucket", ["9999-12-01"])
def test_timeline_at_the_ends_of_the_calendar(gateway, immich, alice, library, bucket):
    # Given photos whose EXIF date is absurd (cameras with a reset clock write such dates)
    from datetime import UTC, datetime

    taken = datetime.fromisoformat(bucket).replace(day=15, tzinfo=UTC)
    immich.state.add_asset(
        alice.user["id"],
        "/mnt/photos/odd/IMG_9.JPG",
        content=b"9",
        library_id=LIBRARY_ID,
        taken=taken,
    )
    params = {"timeBucket": bucket}
    # When their month of the timeline is asked for
    via = requests.get(gateway.url + "/api/timeline/bucket", params=params, headers=alice.bearer)
    direct = requests.get(immich.url + "/api/timeline/bucket", params=params, headers=alice.bearer)
    # Then the client gets Immich's answer (with a Twinlens entry per asset), not an error
    assert direct.status_code == 200 and len(direct.json()["id"]) == 1
    assert via.status_code == 200, via.text
    assert strip(via.json()) == direct.json()
    assert len(via.json()["twinlens"]) == 1


@pytest.fixture
def redis_switch(redis_cache_url, monkeypatch) -> Iterator[tuple[Switch, str]]:
    """This session's cache Redis behind a relay that can hang (``switch.up = False``),
    and the URL through it; Redis's socket timeout made 0.5 s so a hang costs a test
    half a second, not five."""
    monkeypatch.setitem(dataversion.REDIS_TIMEOUTS, "socket_timeout", 0.5)
    parts = urlsplit(redis_cache_url)
    switch = Switch((parts.hostname, parts.port))
    yield switch, f"redis://127.0.0.1:{switch.port}{parts.path}"
    switch.close()


def test_a_hung_redis_costs_one_timeout_not_one_per_answer(
    gateway_settings, immich, alice, world, redis_switch
):
    switch, url = redis_switch
    settings = dataclasses.replace(gateway_settings, cache_url=url)
    app = create_app({"SETTINGS": settings, "ENRICH_SKIP_AFTER_FAILURE": 2.0})
    server = ThreadedServer(app).start()
    try:
        first, second = (f"{server.url}/api/assets/{world[k]['id']}" for k in ("jpg", "raw"))
        assert requests.get(first, headers=alice.bearer).json()["twinlens"]["group"]
        # Given a Redis that stops answering (it reads what it is sent, replies nothing)
        switch.up = False
        # When an answer needs it (an asset this process has not enriched yet)
        via = requests.get(second, headers=alice.bearer)
        # Then Immich's answer goes out, flagged, once Redis's timeout is spent
        assert via.headers["X-Twinlens-Enrichment"] == "unavailable"
        assert (
            via.json()
            == requests.get(second.replace(server.url, immich.url), headers=alice.bearer).json()
        )
        asked = switch.swallowed
        assert asked > 0
        # ... and for a while nothing asks it again: no answer waits on it
        for _ in range(3):
            r = requests.get(
                first.replace(world["jpg"]["id"], world["up"]["id"]), headers=alice.bearer
            )
            assert r.headers["X-Twinlens-Enrichment"] == "unavailable"
        # Twinlens's own lists answer without the cache, even to a caller whose identity
        # this process no longer remembers
        app.extensions["twinlens_auth_local"].clear()
        listed = requests.get(f"{server.url}/api/twinlens/groups", headers=alice.bearer)
        assert listed.status_code == 200, listed.text
        assert switch.swallowed == asked
        # When Redis answers again and the window has passed, enrichment is back
        switch.up = True
        time.sleep(2.1)
        back = requests.get(second, headers=alice.bearer)
        assert back.headers["X-Twinlens-Enrichment"] == "ok"
        assert back.json()["twinlens"]["group"]["type"] == "raw_jpeg"
    finally:
        server.stop()


def test_a_change_made_while_redis_hangs_bumps_the_version_once_it_answers(
    gateway_settings, redis_switch
):
    switch, url = redis_switch
    app = create_app(
        {
            "SETTINGS": dataclasses.replace(gateway_settings, cache_url=url),
            "ENRICH_SKIP_AFTER_FAILURE": 0.2,
        }
    )
    with app.app_context():
        before = data_version()
        # Given a Redis that hangs while a route records a change
        switch.up = False
        changed()  # the change is made: no error for the caller
        assert switch.swallowed > 0
        # When Redis answers again
        switch.up = True
        time.sleep(0.3)
        # Then the first version read pays the bump that was owed, once
        assert data_version() == before + 1
        assert data_version() == before + 1


def test_a_key_that_cannot_read_its_user_costs_one_refused_call_not_one_per_answer(
    gateway, immich, alice, world
):
    # Given an API key that may read assets but not /users/me
    key = immich.state.add_api_key(alice.user["id"], ["asset.read"])
    url = f"{gateway.url}/api/assets/{world['jpg']['id']}"
    asked = immich.state.calls[("GET", "/users/me")]
    # When it opens three photos through the gateway
    answers = [requests.get(url, headers={"x-api-key": key}) for _ in range(3)]
    # Then each gets Immich's answer, unenriched
    direct = requests.get(url.replace(gateway.url, immich.url), headers={"x-api-key": key})
    for r in answers:
        assert r.status_code == 200 and r.headers["X-Twinlens-Enrichment"] == "unavailable"
        assert r.json() == direct.json()
    # And Immich was asked who the key is once, not three times
    assert immich.state.calls[("GET", "/users/me")] == asked + 1
    # When the key is given user.read, and Immich says who it is to a Twinlens route
    # (the memo has not run out: AUTH_TTL is a minute)
    immich.state.api_keys[key] = (
        alice.user["id"],
        frozenset({"asset.read", "asset.upload", "user.read"}),
    )
    assert requests.get(f"{gateway.url}/api/twinlens/me", headers={"x-api-key": key}).ok
    # Then its answers are enriched again
    again = requests.get(url, headers={"x-api-key": key})
    assert again.headers["X-Twinlens-Enrichment"] == "ok"
    assert again.json()["twinlens"]["group"]["type"] == "raw_jpeg"
