"""Resolving when Immich or the group changes underneath. Byte copies that Immich also
holds as a phone upload of the same bytes: a file's own asset (found by its path) decides,
and the upload is never trashed in place of a NAS copy, nor taken for a kept copy whose
own asset is in Immich's trash. Answers lost, connections refused, a copy joining."""

from __future__ import annotations

import hashlib

import pytest
import requests

from tests.fakeimmich.fixtures import *  # noqa: F403 - pytest fixtures
from tests.fakeimmich.fixtures import LIBRARY_ID
from tests.realapis import phash, sha256_of

BYTES = b"the same jpeg bytes"


@pytest.fixture
def copies(immich, alice, library, catalog, grouping_api, dedup_api):
    """X and backup/X on the NAS, byte copies, each Immich's external-library asset (EX,
    EY), and the same bytes uploaded from Alice's phone (U, found by content SHA-1)."""
    st, uid = immich.state, alice.user["id"]
    ex = st.add_asset(uid, "/mnt/photos/2024/X.JPG", content=BYTES, library_id=LIBRARY_ID)
    ey = st.add_asset(uid, "/mnt/photos/backup/X.JPG", content=BYTES, library_id=LIBRARY_ID)
    up = st.add_asset(uid, "/data/upload/u/PXL_1.jpg", content=BYTES)
    for rel in ("2024/X.JPG", "backup/X.JPG"):
        catalog.add(
            rel, sha256=sha256_of("X"), sha1=hashlib.sha1(BYTES).hexdigest(), phash=phash(1)
        )
    catalog.passes()
    dup = catalog.duplicate_of("2024/X.JPG", "exact")
    return {"ex": ex["id"], "ey": ey["id"], "up": up["id"], "dup": dup, "lib": str(library)}


def _resolve(gateway, alice, copies, **body) -> requests.Response:
    url = f"{gateway.url}/api/twinlens/duplicates/{copies['dup']['id']}/resolve"
    keep = {"keep": [f"{copies['lib']}/2024/X.JPG"]}
    return requests.post(url, json={**keep, **body}, headers=alice.bearer)


def _trashed(immich, copies) -> dict[str, bool]:
    return {k: immich.state.assets[copies[k]]["isTrashed"] for k in ("ex", "ey", "up")}


def test_a_copy_immich_has_not_indexed_is_not_stood_for_by_the_phone_upload(
    gateway, immich, alice, copies, catalog
):
    # Given backup/X with no asset of its own yet (Immich scans its library nightly)
    del immich.state.assets[copies["ey"]]
    # When Alice keeps X and trashes backup/X
    r = _resolve(gateway, alice, copies)
    # Then the upload of the same bytes, which X is too, is not what goes, and since
    # nothing would move the decision is refused: the group stays in the list until
    # Immich indexes backup/X
    assert r.status_code == 409 and "nothing would move" in r.json()["message"], r.text
    assert r.json()["message"].endswith("backup/X.JPG")
    assert immich.state.assets[copies["up"]]["isTrashed"] is False
    assert immich.state.assets[copies["ex"]]["isTrashed"] is False
    assert catalog.status(copies["dup"]["id"]) == "open"


def test_a_kept_copy_whose_own_asset_is_in_immichs_trash_is_refused(gateway, immich, alice, copies):
    # Given X's own asset in Immich's trash, the phone upload of its bytes live
    immich.state.assets[copies["ex"]]["isTrashed"] = True
    # Then X is listed as in Immich's trash, not as the upload
    listed = requests.get(
        f"{gateway.url}/api/twinlens/duplicates/{copies['dup']['id']}", headers=alice.bearer
    ).json()
    x = next(m for m in listed["members"] if m["path"].endswith("2024/X.JPG"))
    assert (x["assetId"], x["trashedAssetId"]) == (None, copies["ex"])
    # And keeping it is refused: trashing backup/X would leave no NAS copy in Immich
    r = _resolve(gateway, alice, copies)
    assert r.status_code == 409 and "in Immich's trash" in r.json()["message"], r.text
    assert _trashed(immich, copies) == {"ex": True, "ey": False, "up": False}


def test_a_copy_trashed_in_immich_after_the_dry_run_is_not_replaced_by_the_upload(
    gateway, immich, alice, copies
):
    # Given a dry run that would trash backup/X's own asset
    dry = _resolve(gateway, alice, copies, dryRun=True).json()
    assert [t["assetId"] for t in dry["trash"]] == [copies["ey"]]
    # When Alice trashes it in Immich herself, then confirms the dry run
    immich.state.assets[copies["ey"]]["isTrashed"] = True
    r = _resolve(gateway, alice, copies, expectTrash=[t["path"] for t in dry["trash"]])
    # Then nothing else goes: the phone upload stays, backup/X is reported in the trash
    assert r.status_code == 200, r.text
    assert r.json()["trash"] == [] and r.json()["inImmichTrash"] == [dry["trash"][0]["path"]]
    assert _trashed(immich, copies) == {"ex": False, "ey": True, "up": False}


def test_the_nas_copy_itself_goes_while_the_upload_stays(gateway, immich, alice, copies):
    # Both NAS copies and the upload live: trashing backup/X trashes its own asset only
    r = _resolve(gateway, alice, copies)
    assert r.status_code == 200, r.text
    assert _trashed(immich, copies) == {"ex": False, "ey": True, "up": False}


def test_a_bulk_run_agrees_with_its_dry_run_when_two_groups_trash_one_file(
    gateway, immich, alice, library, catalog, grouping_api, dedup_api
):
    # Given byte copies X, backup/X (an exact group) inside a look-alike group with Z
    st, uid, lib = immich.state, alice.user["id"], str(library)
    ids = {
        rel: st.add_asset(uid, f"/mnt/photos/{rel}", content=rel.encode(),
                          library_id=LIBRARY_ID)["id"]
        for rel in ("2024/X.JPG", "backup/X.JPG", "2024/Z.JPG")
    }  # fmt: skip
    catalog.add("2024/X.JPG", sha256=sha256_of("X"), phash=phash(5))
    catalog.add("backup/X.JPG", sha256=sha256_of("X"), phash=phash(5))
    catalog.add("2024/Z.JPG", sha256=sha256_of("Z"), phash=phash(5, 3), width=2000, height=1500)
    catalog.passes()
    listed = requests.get(f"{gateway.url}/api/twinlens/duplicates", headers=alice.bearer)
    exact, alike = (next(d for d in listed.json()["items"] if d["type"] == t)
                    for t in ("exact", "perceptual"))  # fmt: skip
    # The look-alike group holds one of the copies; the exact group keeps the other
    shared = next(m["path"] for m in alike["members"] if not m["path"].endswith("Z.JPG"))
    other = next(m["path"] for m in exact["members"] if m["path"] != shared)
    groups = [
        {"id": exact["id"], "keep": [other], "action": "trash"},
        {"id": alike["id"], "keep": [f"{lib}/2024/Z.JPG"], "action": "trash"},
    ]
    url = f"{gateway.url}/api/twinlens/duplicates/resolve"
    # When both trash the shared copy: the dry run says both go ahead
    dry = requests.post(url, json={"groups": groups, "dryRun": True}, headers=alice.bearer)
    assert [r["status"] for r in dry.json()["results"]] == [200, 200], dry.text
    confirm = [
        {**g, "expectTrash": [t["path"] for t in r["trash"]]}
        for g, r in zip(groups, dry.json()["results"], strict=True)
    ]
    real = requests.post(url, json={"groups": confirm}, headers=alice.bearer).json()
    # Then so does the real run: the second finds the copy in the trash, as planned
    assert [r["status"] for r in real["results"]] == [200, 200], real
    assert real["results"][1]["inImmichTrash"] == [shared]
    trashed = {rel for rel, i in ids.items() if st.assets[i]["isTrashed"]}
    assert trashed == {shared.removeprefix(lib + "/")}


def test_a_decision_recorded_whose_answer_was_lost_is_followed_by_the_trash(
    gateway, immich, alice, copies, catalog, monkeypatch
):
    from gateway import twinlens
    from gateway.services import ServiceError

    # Given a dedup API that records the decision and then fails to answer (a timeout)
    real = twinlens.call

    def lost_answer(service, method, path, **kw):
        answer = real(service, method, path, **kw)
        if method == "POST" and path.endswith("/resolution"):
            raise ServiceError(504, "the dedup service did not answer in time")
        return answer

    monkeypatch.setattr(twinlens, "call", lost_answer)
    # When Alice keeps X and trashes backup/X
    r = _resolve(gateway, alice, copies)
    # Then the decision stands and so does the trash it names: no group left "resolved"
    # with its copy still in Immich, which a retry could no longer resolve
    assert r.status_code == 200, r.text
    assert _trashed(immich, copies) == {"ex": False, "ey": True, "up": False}
    assert catalog.status(copies["dup"]["id"]) == "resolved"


def test_an_immich_that_refuses_the_connection_leaves_the_group_open(
    gateway, immich, alice, copies, catalog, monkeypatch
):
    import socket

    from gateway import twinlens

    # Given an Immich that is down when the trash is sent (nothing listens on its port)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}/api/assets"
    s.close()
    real = twinlens.as_caller

    def down(method, path, **kw):
        if method == "DELETE" and path == "assets":
            return requests.delete(dead, timeout=2, **kw)
        return real(method, path, **kw)

    monkeypatch.setattr(twinlens, "as_caller", down)
    r = _resolve(gateway, alice, copies)
    # Then the answer says Immich could not be reached, and the decision is withdrawn:
    # Immich cannot have trashed anything, so the group is open to resolve again
    assert r.status_code == 502, r.text
    assert "undo" not in r.json()["message"]
    assert catalog.status(copies["dup"]["id"]) == "open"
    assert not any(_trashed(immich, copies).values())


def test_a_copy_that_joins_while_a_resolve_runs_is_not_decided_unseen(
    gateway, immich, alice, copies, catalog, monkeypatch
):
    from gateway import twinlens

    # Given a scan that finds a third copy just as the decision is being recorded
    real = twinlens.call

    def a_copy_joins(service, method, path, **kw):
        if method == "POST" and path.endswith("/resolution"):
            catalog.add("phone/X.JPG", sha256=sha256_of("X"), phash=phash(1))
            catalog.passes()
        return real(service, method, path, **kw)

    monkeypatch.setattr(twinlens, "call", a_copy_joins)
    # When Alice keeps X and trashes backup/X
    r = _resolve(gateway, alice, copies)
    # Then nothing is decided or trashed: the group she saw is not the group any more
    assert r.status_code == 409 and "changed since" in r.json()["message"], r.text
    assert catalog.status(copies["dup"]["id"]) == "open"
    assert not any(_trashed(immich, copies).values())


def test_undo_brings_back_the_upload_that_stood_for_a_copy_indexed_since(
    gateway, immich, alice, library, catalog, grouping_api, dedup_api
):
    # Given look-alikes X (in Immich) and backup/Y (not indexed), and Y's bytes uploaded
    # from the phone (U): trashing Y trashes U, which stands for it
    st, uid = immich.state, alice.user["id"]
    x = st.add_asset(uid, "/mnt/photos/2024/X.JPG", content=b"x", library_id=LIBRARY_ID)
    up = st.add_asset(uid, "/data/upload/u/PXL_2.jpg", content=b"y")
    catalog.add("2024/X.JPG", sha256=sha256_of("X"), phash=phash(7))
    catalog.add("backup/Y.JPG", sha256=sha256_of("Y"), sha1=hashlib.sha1(b"y").hexdigest(),
                phash=phash(7, 2), width=2000, height=1500)  # fmt: skip
    catalog.passes()
    dup = catalog.duplicate_of("2024/X.JPG", "perceptual")
    url = f"{gateway.url}/api/twinlens/duplicates/{dup['id']}"
    r = requests.post(url + "/resolve", json={"keep": [x["id"]]}, headers=alice.bearer)
    assert r.status_code == 200 and st.assets[up["id"]]["isTrashed"], r.text
    # When Immich indexes backup/Y meanwhile, and Alice undoes the decision
    y = st.add_asset(uid, "/mnt/photos/backup/Y.JPG", content=b"Y own", library_id=LIBRARY_ID)
    u = requests.delete(url + "/resolution", headers=alice.bearer)
    # Then what the decision trashed comes back: the upload, not Y's own live asset
    assert u.status_code == 200, u.text
    assert [a["assetId"] for a in u.json()["restore"]] == [up["id"]]
    assert st.assets[up["id"]]["isTrashed"] is False and st.assets[y["id"]]["isTrashed"] is False


def test_a_decision_found_after_a_lost_answer_is_not_withdrawn_on_a_refusal(
    gateway, immich, alice, copies, catalog, monkeypatch
):
    from gateway import twinlens
    from gateway.services import ServiceError

    # Given another reviewer's decision, the same to the letter, recorded and carried out
    # while Alice's own recording failed (the dedup API's answer lost)
    real = twinlens.call

    def theirs_first(service, method, path, **kw):
        if method == "POST" and path.endswith("/resolution"):
            real(service, method, path, **kw)  # theirs
            raise ServiceError(504, "the dedup service did not answer in time")
        return real(service, method, path, **kw)

    monkeypatch.setattr(twinlens, "call", theirs_first)
    # And Alice's key may not trash (Immich refuses: 403)
    key = immich.state.add_api_key(
        alice.user["id"], ["user.read", "duplicate.delete", "asset.upload"]
    )
    url = f"{gateway.url}/api/twinlens/duplicates/{copies['dup']['id']}/resolve"
    keep = {"keep": [f"{copies['lib']}/2024/X.JPG"]}
    r = requests.post(url, json=keep, headers={"x-api-key": key})
    # Then Immich's refusal is answered, and the decision found stays: it may be theirs
    assert r.status_code == 403, r.text
    assert "stays" in r.json()["message"]
    assert catalog.status(copies["dup"]["id"]) == "resolved"
    assert len(catalog.decisions(copies["dup"]["id"])) == 1
