"""Stacking Twinlens's file groups in Immich through the gateway: the real grouping API on
PostgreSQL, the fake Immich making stacks as Immich's repository does."""

from __future__ import annotations

import dataclasses

import pytest
import requests

from gateway import create_app
from tests.fakeimmich import ThreadedServer
from tests.fakeimmich.fixtures import *  # noqa: F403 - pytest fixtures
from tests.fakeimmich.fixtures import LIBRARY_ID
from tests.realapis import sha256_of


@pytest.fixture
def shots(immich, alice, library, catalog, grouping_api, dedup_api):
    """Alice's NAS, cataloged and grouped, and what Immich holds of it:
    - A: JPEG + RAW, both in Immich, in no stack;
    - B: JPEG + RAW, the RAW not indexed by Immich yet;
    - C: JPEG + RAW, the JPEG in a stack Alice made with another photo, X;
    - D: JPEG + RAW, already one stack;
    - E: JPEG + RAW + an iPhone-style edit, the JPEG and RAW already stacked;
    - L: a Live Photo (HEIC + MOV), both in Immich."""
    st, uid = immich.state, alice.user["id"]
    names = ("A.JPG", "A.CR3", "B.JPG", "B.CR3", "C.JPG", "C.CR3", "X.JPG", "D.JPG", "D.CR3",
             "E.JPG", "E.CR3", "E-edited.JPG", "L.HEIC", "L.MOV")  # fmt: skip
    asset = {
        rel: st.add_asset(uid, f"/mnt/photos/s/{rel}", content=rel.encode(),
                          library_id=LIBRARY_ID)["id"]
        for rel in names
        if rel != "B.CR3"  # not indexed yet
    }  # fmt: skip
    for rel in names:
        catalog.add(f"s/{rel}", sha256=sha256_of(rel))
    catalog.passes()
    st.add_stack(uid, [asset["C.JPG"], asset["X.JPG"]])
    st.add_stack(uid, [asset["D.JPG"], asset["D.CR3"]])
    st.add_stack(uid, [asset["E.CR3"], asset["E.JPG"]])
    groups = {k: catalog.group_of(f"s/{k}.JPG") for k in "ABCDE"}
    groups["L"] = catalog.group_of("s/L.HEIC")
    assert groups["E"]["type"] == "raw_jpeg" and len(groups["E"]["members"]) == 3
    assert groups["L"]["type"] == "live_photo"
    return {"asset": asset, "group": groups}


def _stack(gateway, who, group: dict, **body) -> requests.Response:
    url = f"{gateway.url}/api/twinlens/groups/{group['id']}/stack"
    return requests.post(url, json=body, headers=who.bearer)


def _stack_of(immich, asset_id: str) -> dict | None:
    return immich.state.assets[asset_id]["stack"]


def test_a_raw_jpeg_pair_becomes_one_immich_stack_with_the_jpeg_on_top(
    gateway, immich, alice, shots
):
    a = shots["asset"]
    # Given the pair A, in Immich and in no stack; when Alice asks what stacking would do
    dry = _stack(gateway, alice, shots["group"]["A"], dryRun=True)
    # Then it says: one stack, the JPEG its cover, and nothing is stacked yet
    assert dry.status_code == 200, dry.text
    assert dry.json()["outcome"] == "stack" and dry.json()["dryRun"] is True
    assert dry.json()["assetIds"] == [a["A.JPG"], a["A.CR3"]]
    assert _stack_of(immich, a["A.JPG"]) is None
    # When she stacks it
    done = _stack(gateway, alice, shots["group"]["A"])
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["outcome"], body["created"]) == ("stacked", True)
    # Then Immich shows the two as one stack, the JPEG on top
    made = _stack_of(immich, a["A.CR3"])
    assert made == {"id": body["stackId"], "primaryAssetId": a["A.JPG"], "assetCount": 2}
    # And asking again changes nothing: it is stacked already
    again = _stack(gateway, alice, shots["group"]["A"]).json()
    assert (again["outcome"], again["created"], again["stackId"], again["coverAssetId"]) == (
        "stacked",
        False,
        body["stackId"],
        a["A.JPG"],
    )
    assert body["coverAssetId"] == a["A.JPG"]
    assert len(immich.state.stacks) == 4  # C's, D's, E's and A's


def test_a_group_is_not_stacked_when_immich_holds_fewer_than_two_of_its_photos(
    gateway, immich, alice, shots
):
    for key, why in (("B", "fewer than two"), ("L", "fewer than two")):
        # Given B, whose RAW Immich has not indexed, and a Live Photo (Immich pairs its
        # video with the still itself)
        r = _stack(gateway, alice, shots["group"][key])
        # Then nothing is stacked, and the answer says why
        assert r.status_code == 409, (key, r.text)
        assert r.json()["outcome"] == "skip" and why in r.json()["message"]
    assert _stack_of(immich, shots["asset"]["L.HEIC"]) is None
    assert _stack_of(immich, shots["asset"]["B.JPG"]) is None


def test_a_stack_the_user_made_with_other_photos_is_left_alone(gateway, immich, alice, shots):
    a = shots["asset"]
    before = _stack_of(immich, a["C.JPG"])
    # Given C's JPEG in a stack with X, a photo outside the group; when Alice stacks C
    r = _stack(gateway, alice, shots["group"]["C"])
    # Then it is refused with the reason, and her stack still holds X and the JPEG
    assert r.status_code == 409 and "outside this group" in r.json()["message"]
    assert _stack_of(immich, a["C.JPG"]) == before == _stack_of(immich, a["X.JPG"])
    assert _stack_of(immich, a["C.CR3"]) is None


def test_a_stack_of_part_of_the_group_grows_to_the_whole_group(gateway, immich, alice, shots):
    a = shots["asset"]
    old = _stack_of(immich, a["E.JPG"])["id"]
    # Given E's JPEG and RAW stacked (the RAW on top, as Alice chose), its edit not;
    # when Alice stacks E
    r = _stack(gateway, alice, shots["group"]["E"])
    assert r.status_code == 200, r.text
    # Then the three are one stack, her cover kept, and the old stack is gone
    new = r.json()["stackId"]
    for name in ("E.JPG", "E.CR3", "E-edited.JPG"):
        assert _stack_of(immich, a[name]) == {
            "id": new,
            "primaryAssetId": a["E.CR3"],
            "assetCount": 3,
        }
    assert old not in immich.state.stacks


def _archive(immich, *ids: str) -> None:
    for i in ids:
        immich.state.assets[i]["visibility"] = "archive"
    immich.state.refresh_stacks()


def test_a_stack_whose_other_photos_are_archived_is_still_seen(gateway, immich, alice, shots):
    a = shots["asset"]
    # Given A's JPEG the cover of a stack with X, which Alice archived: Immich shows no
    # stack on the JPEG then (it counts the timeline's members only)
    sid = immich.state.add_stack(alice.user["id"], [a["A.JPG"], a["X.JPG"]])
    _archive(immich, a["X.JPG"])
    assert _stack_of(immich, a["A.JPG"]) is None
    # When Alice stacks A, then it is refused: X would be pulled into A's stack
    r = _stack(gateway, alice, shots["group"]["A"])
    assert r.status_code == 409 and "outside this group" in r.json()["message"], r.text
    assert immich.state.stack_of[a["X.JPG"]] == sid == immich.state.stack_of[a["A.JPG"]]
    assert a["A.CR3"] not in immich.state.stack_of


def test_an_archived_photo_is_left_where_it_is(gateway, immich, alice, shots):
    a = shots["asset"]
    # Given E's edit archived (E's JPEG and RAW stacked already): E counts as stacked
    _archive(immich, a["E-edited.JPG"])
    r = _stack(gateway, alice, shots["group"]["E"])
    assert (r.status_code, r.json()["outcome"], r.json()["created"]) == (200, "stacked", False)
    assert a["E-edited.JPG"] not in immich.state.stack_of
    # And an archived cover is not stacked over: the pair would leave the timeline
    _archive(immich, a["A.JPG"])
    r = _stack(gateway, alice, shots["group"]["A"])
    assert r.status_code == 409 and "archived" in r.json()["message"], r.text


def test_nothing_is_stacked_that_the_dry_run_did_not_show(gateway, immich, alice, shots):
    a = shots["asset"]
    dry = _stack(gateway, alice, shots["group"]["E"], dryRun=True).json()
    assert dry["assetIds"][0] == a["E.CR3"]  # Alice's cover, kept
    # When Alice unstacks E in Immich before confirming, the plan changes (the JPEG would
    # be the cover): the confirmation is refused rather than doing what she did not see
    sid = immich.state.stack_of[a["E.JPG"]]
    requests.delete(f"{immich.url}/api/stacks/{sid}", headers=alice.bearer)
    r = _stack(gateway, alice, shots["group"]["E"], expectAssetIds=dry["assetIds"])
    assert r.status_code == 409 and "since its dry run" in r.json()["message"], r.text
    assert a["E.JPG"] not in immich.state.stack_of


def test_immich_failing_to_stack_is_not_reported_as_stacked(
    gateway, immich, alice, shots, monkeypatch
):
    from gateway import twinlens

    real = twinlens.as_caller

    def failing(method, path, **kw):
        if method == "POST" and path == "stacks":
            raise requests.ReadTimeout("Immich took too long")
        return real(method, path, **kw)

    monkeypatch.setattr(twinlens, "as_caller", failing)
    r = _stack(gateway, alice, shots["group"]["A"])
    assert r.status_code == 504 and r.json()["outcome"] == "stack", r.text
    assert "may have stacked" in r.json()["message"]


def test_many_groups_at_once_each_say_what_happened(gateway, immich, alice, shots):
    g = shots["group"]
    ids = [g["A"]["id"], g["B"]["id"], g["D"]["id"], "no-such-group", g["A"]["id"]]
    url = f"{gateway.url}/api/twinlens/groups/stack"
    # A dry run first: nothing moves in Immich
    dry = requests.post(url, json={"ids": ids, "dryRun": True}, headers=alice.bearer).json()
    assert [r["status"] for r in dry["results"]] == [200, 409, 200, 404]
    assert [r.get("outcome") for r in dry["results"][:3]] == ["stack", "skip", "stacked"]
    assert _stack_of(immich, shots["asset"]["A.JPG"]) is None
    # Then for real: A is stacked, B skipped with its reason, D left as it was
    body = requests.post(url, json={"ids": ids}, headers=alice.bearer).json()
    assert (body["succeeded"], body["failed"]) == (2, 2)
    a, b, d, missing = body["results"]
    assert (a["outcome"], a["created"], d["outcome"], d["created"]) == (
        "stacked",
        True,
        "stacked",
        False,
    )
    assert "fewer than two" in b["message"] and missing["id"] == "no-such-group"
    assert _stack_of(immich, shots["asset"]["A.CR3"])["primaryAssetId"] == shots["asset"]["A.JPG"]


def test_another_users_assets_are_never_stacked(gateway_settings, immich, alice, bob, shots):
    # Given a household gateway (TWINLENS_ADMIN_ONLY=0) and Bob, who holds none of these
    # photos in Immich
    settings = dataclasses.replace(gateway_settings, admin_only=False)
    server = ThreadedServer(create_app({"SETTINGS": settings})).start()
    try:
        # When he stacks A
        r = _stack(server, bob, shots["group"]["A"])
    finally:
        server.stop()
    # Then nothing is stacked: none of them is his
    assert r.status_code == 409 and "fewer than two" in r.json()["message"], r.text
    assert _stack_of(immich, shots["asset"]["A.JPG"]) is None


def test_malformed_stack_requests_are_refused_with_a_reason(gateway, alice, shots):
    url = f"{gateway.url}/api/twinlens/groups"
    gid = shots["group"]["A"]["id"]
    for path, body, status in (
        (f"/{gid}/stack", {"dryrun": True}, 400),  # a misspelt dry run is no real run
        (f"/{gid}/stack", {"dryRun": "yes"}, 400),
        ("/stack", {}, 400),
        ("/stack", {"ids": []}, 400),
        ("/stack", {"ids": ["x"] * 201}, 413),
    ):
        r = requests.post(url + path, json=body, headers=alice.bearer)
        assert r.status_code == status, (path, body, r.text)
        assert r.json()["message"]


def test_a_confirmed_dry_run_is_carried_out_alone_and_in_bulk(gateway, immich, alice, shots):
    a, g = shots["asset"], shots["group"]
    # A single group, confirmed with what its dry run showed
    dry = _stack(gateway, alice, g["A"], dryRun=True).json()
    done = _stack(gateway, alice, g["A"], expectAssetIds=dry["assetIds"])
    assert (done.status_code, done.json()["created"]) == (200, True), done.text
    assert _stack_of(immich, a["A.CR3"])["primaryAssetId"] == a["A.JPG"]
    # In bulk: E confirmed as its dry run showed, and B with a plan it no longer has
    url = f"{gateway.url}/api/twinlens/groups/stack"
    ids = [g["E"]["id"], g["B"]["id"], None]
    dry = requests.post(url, json={"ids": ids, "dryRun": True}, headers=alice.bearer).json()
    e_plan = dry["results"][0]["assetIds"]
    expect = {g["E"]["id"]: e_plan, g["B"]["id"]: [a["B.JPG"], a["A.CR3"]]}
    body = {"ids": ids, "expectAssetIds": expect}
    real = requests.post(url, json=body, headers=alice.bearer).json()
    e, b, bad = real["results"]
    assert (e["status"], e["outcome"], e["created"]) == (200, "stacked", True)
    assert _stack_of(immich, a["E-edited.JPG"])["id"] == e["stackId"]
    assert (b["status"], b["reasonCode"]) == (409, "too_few")  # refused before the binding
    assert bad["status"] == 400  # an id that is not a string, alone


def test_photos_immich_stacked_beyond_the_plan_are_reported(
    gateway, immich, alice, shots, monkeypatch
):
    from gateway import twinlens

    a = shots["asset"]
    real = twinlens.as_caller

    def meanwhile(method, path, **kw):
        if method == "POST" and path == "stacks":
            # Just before: Alice makes the RAW the cover of a stack with X in Immich
            immich.state.add_stack(alice.user["id"], [a["A.CR3"], a["X.JPG"]])
        return real(method, path, **kw)

    monkeypatch.setattr(twinlens, "as_caller", meanwhile)
    r = _stack(gateway, alice, shots["group"]["A"])
    # Then the answer says Immich also took X in (listing the RAW merged her stack)
    assert r.status_code == 200, r.text
    assert r.json()["outside"] == [a["X.JPG"]] and "outside this group" in r.json()["message"]


def test_twinlens_stack_stacks_the_library_and_only_what_is_new_when_run_again(
    gateway, immich, alice, shots, monkeypatch, capsys, tmp_path
):
    import json

    import twinlens

    a = shots["asset"]
    key = immich.state.add_api_key(
        alice.user["id"], ["user.read", "stack.read", "stack.create", "asset.read", "asset.upload"]
    )
    monkeypatch.setenv("TWINLENS_GATEWAY_URL", gateway.url)
    # Without a key it says what to set, and does nothing
    monkeypatch.delenv("TWINLENS_IMMICH_API_KEY", raising=False)
    assert twinlens.main(["stack"]) == 2
    assert "TWINLENS_IMMICH_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("TWINLENS_IMMICH_API_KEY", key)
    # A dry run: what would be stacked, nothing moves in Immich
    report = tmp_path / "dry.json"
    assert twinlens.main(["stack", "--dry-run", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "5 group(s) with two or more photos: would stack 2, already stacked 1, " in out, out
    assert "not stacked 2, failed 0" in out
    assert "not stacked (in_other_stack): 1" in out and "not stacked (too_few): 1" in out
    dry = json.loads(report.read_text())
    assert dry["dryRun"] is True and len(dry["results"]) == 5  # L: one photo, not asked
    assert _stack_of(immich, a["A.JPG"]) is None
    # The real run stacks A and grows E's stack; D stays, C is skipped
    assert twinlens.main(["stack"]) == 0
    assert "stacked 2, already stacked 1, not stacked 2, failed 0" in capsys.readouterr().out
    assert _stack_of(immich, a["A.CR3"])["primaryAssetId"] == a["A.JPG"]
    assert _stack_of(immich, a["E-edited.JPG"])["assetCount"] == 3
    # Run again (nightly): nothing new, nothing moves
    stacks = dict(immich.state.stacks)
    assert twinlens.main(["stack", "--quiet"]) == 0
    assert capsys.readouterr().out == "" and immich.state.stacks == stacks
    # A key the gateway refuses: said, exit 2
    monkeypatch.setenv("TWINLENS_IMMICH_API_KEY", "not-a-key")
    assert twinlens.main(["stack"]) == 2
    assert "401" in capsys.readouterr().err


def test_twinlens_stack_says_which_groups_failed_and_exits_1(
    gateway, immich, alice, shots, monkeypatch, capsys
):
    import twinlens
    from gateway import twinlens as routes

    key = immich.state.add_api_key(alice.user["id"], ["all"])
    monkeypatch.setenv("TWINLENS_GATEWAY_URL", gateway.url)
    monkeypatch.setenv("TWINLENS_IMMICH_API_KEY", key)
    # Given Immich failing for group A only (the others still go ahead)
    real, failing = routes._stack_one, shots["group"]["A"]["id"]

    def one_fails(group_id, dry_run, expect=None):
        if group_id == failing:
            return 502, {"message": "Immich answered 500"}
        return real(group_id, dry_run, expect)

    monkeypatch.setattr(routes, "_stack_one", one_fails)
    assert twinlens.main(["stack"]) == 1
    out = capsys.readouterr().out
    assert f"failed: group {failing}: Immich answered 500" in out, out
    assert "stacked 1, already stacked 1, not stacked 2, failed 1" in out
    assert _stack_of(immich, shots["asset"]["E-edited.JPG"]) is not None


def _stack_env(monkeypatch, url: str, key: str) -> None:
    monkeypatch.setenv("TWINLENS_GATEWAY_URL", url)
    monkeypatch.setenv("TWINLENS_IMMICH_API_KEY", key)


def test_twinlens_stack_pages_and_batches_each_group_once(
    gateway, immich, alice, shots, monkeypatch, capsys, tmp_path
):
    import json

    import twinlens
    from gateway import stackrun

    _stack_env(monkeypatch, gateway.url, immich.state.add_api_key(alice.user["id"], ["all"]))
    monkeypatch.setattr(stackrun, "PAGE", 2)  # three pages, batches sent mid-page
    report = tmp_path / "r.json"
    assert twinlens.main(["stack", "--json", str(report)]) == 0
    ids = [r["id"] for r in json.loads(report.read_text())["results"]]
    assert len(ids) == len(set(ids)) == 5, ids
    assert "stacked 2, already stacked 1, not stacked 2" in capsys.readouterr().out


def test_twinlens_stack_with_a_key_that_cannot_look_up_or_stack(
    gateway, immich, alice, shots, monkeypatch, capsys
):
    import twinlens

    uid = alice.user["id"]
    # A key without asset.upload: Immich refuses the look-up, each group fails (exit 1),
    # never "nothing to stack" with exit 0
    blind = immich.state.add_api_key(uid, ["user.read", "stack.read", "stack.create", "asset.read"])
    _stack_env(monkeypatch, gateway.url, blind)
    assert twinlens.main(["stack", "--quiet"]) == 1
    err = capsys.readouterr()
    assert err.out == "" and "asset.upload" in err.err, err
    # A key without stack.create: refused at the first batch, nothing done (exit 2)
    no_stack = immich.state.add_api_key(
        uid, ["user.read", "stack.read", "asset.read", "asset.upload"]
    )
    _stack_env(monkeypatch, gateway.url, no_stack)
    assert twinlens.main(["stack"]) == 2
    assert "Missing required permission: stack.create" in capsys.readouterr().err
    assert _stack_of(immich, shots["asset"]["A.JPG"]) is None
    # A key pasted with a line end works; one with a space inside is refused unshown
    _stack_env(monkeypatch, gateway.url, immich.state.add_api_key(uid, ["all"]) + "\r\n")
    assert twinlens.main(["stack", "--dry-run", "--quiet"]) == 0
    _stack_env(monkeypatch, gateway.url, "secret part")
    assert twinlens.main(["stack"]) == 2
    assert "secret" not in capsys.readouterr().err


def test_twinlens_stack_never_follows_a_redirect_with_the_key(monkeypatch, capsys):
    import flask

    import twinlens
    from tests.fakeimmich import ThreadedServer

    elsewhere = flask.Flask("elsewhere")
    seen: list[str] = []

    @elsewhere.route("/<path:p>")
    def anything(p):
        seen.append(flask.request.headers.get("x-api-key", ""))
        return {"items": [], "total": 0}

    target = ThreadedServer(elsewhere).start()
    mover = flask.Flask("mover")
    mover.add_url_rule("/<path:p>", "p", lambda p: flask.redirect(target.url + "/" + p))
    front = ThreadedServer(mover).start()
    try:
        _stack_env(monkeypatch, front.url, "the-key")
        assert twinlens.main(["stack"]) == 2
        assert "redirect" in capsys.readouterr().err and seen == []
    finally:
        front.stop()
        target.stop()


def test_twinlens_stack_that_stops_partway_reports_what_it_did(
    gateway, immich, alice, shots, monkeypatch, capsys
):
    import twinlens
    from gateway import stackrun

    _stack_env(monkeypatch, gateway.url, immich.state.add_api_key(alice.user["id"], ["all"]))
    monkeypatch.setattr(stackrun, "PAGE", 2)
    real = stackrun._call

    def second_page_fails(s, method, url, what, **kw):
        if method == "GET" and kw["params"]["page"] == 2:
            raise stackrun.StackRunError("listing the groups: the gateway answered 503: busy")
        return real(s, method, url, what, **kw)

    monkeypatch.setattr(stackrun, "_call", second_page_fails)
    assert twinlens.main(["stack"]) == 1
    out = capsys.readouterr().out
    assert "2 group(s) with two or more photos" in out
    assert "stopped partway: listing the groups: the gateway answered 503: busy" in out
