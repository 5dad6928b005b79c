"""The stacking plan: which of a group's photos become one Immich stack, and when not."""

from __future__ import annotations

from gateway.stacking import plan


def group(kind: str = "raw_jpeg", *members: tuple[str, str, str]) -> dict:
    """A grouping API answer; members (path, kind, role), the first the primary."""
    return {
        "id": "g1",
        "type": kind,
        "primary": members[0][0],
        "members": [{"path": p, "kind": k, "role": r} for p, k, r in members],
    }


PAIR = group("raw_jpeg", ("a.jpg", "image", "primary"), ("a.cr3", "raw", "raw"),
             ("a.xmp", "sidecar", "sidecar"))  # fmt: skip
IDS = {"a.jpg": "J", "a.cr3": "R", "a.xmp": None}


def stack(sid: str, primary: str, count: int) -> dict:
    return {"id": sid, "primaryAssetId": primary, "assetCount": count}


def test_a_pair_is_stacked_with_its_primary_first_and_no_sidecar():
    # Given a RAW listed before its JPEG by Immich's ids, the JPEG the group's primary
    p = plan({**PAIR, "members": PAIR["members"][::-1]}, IDS, {})
    # Then the JPEG is the cover and the sidecar (no Immich asset) is left out
    assert p["outcome"] == "stack" and p["assetIds"] == ["J", "R"]


def test_two_members_that_are_one_asset_are_not_a_stack():
    # An upload found by the content of both (one asset for two paths)
    p = plan(PAIR, {"a.jpg": "J", "a.cr3": "J"}, {})
    assert p["outcome"] == "skip" and "fewer than two" in p["reason"]


def test_a_live_photos_video_is_never_stacked_but_its_edit_is():
    live = group("live_photo", ("l.heic", "image", "primary"), ("l.mov", "video", "video"),
                 ("l_e.heic", "image", "edit"), ("l_e.mov", "video", "edit"))  # fmt: skip
    ids = {"l.heic": "S", "l.mov": "V", "l_e.heic": "E", "l_e.mov": "EV"}
    assert plan(live, ids, {})["assetIds"] == ["S", "E"]
    only_video = {"l.heic": "S", "l.mov": "V"}
    assert plan(live, only_video, {})["outcome"] == "skip"


def test_no_stack_without_its_cover():
    p = plan(PAIR, {"a.jpg": None, "a.cr3": "R"}, {})
    assert p["outcome"] == "skip"
    three = group("raw_jpeg", ("b.jpg", "image", "primary"), ("b.cr3", "raw", "raw"),
                  ("b-edited.jpg", "image", "edit"))  # fmt: skip
    p = plan(three, {"b.jpg": None, "b.cr3": "R", "b-edited.jpg": "E"}, {})
    assert p["outcome"] == "skip" and "cover" in p["reason"]


def test_a_stack_holding_photos_outside_the_group_is_left_alone():
    # The JPEG on top of a stack of three (a burst the user stacked), or under one
    for st in (stack("S", "J", 3), stack("S", "X", 2)):
        p = plan(PAIR, IDS, {"J": st, "R": None})
        assert p["outcome"] == "skip" and "outside this group" in p["reason"], st


def test_stacks_wholly_inside_the_group_are_taken_in():
    three = group("raw_jpeg", ("c.jpg", "image", "primary"), ("c.cr3", "raw", "raw"),
                  ("c-edited.jpg", "image", "edit"))  # fmt: skip
    ids = {"c.jpg": "J", "c.cr3": "R", "c-edited.jpg": "E"}
    part = stack("S", "R", 2)
    p = plan(three, ids, {"J": part, "R": part, "E": None})
    assert p["outcome"] == "stack" and p["assetIds"] == ["J", "R", "E"]
    # Two stacks, each inside the group: Immich merges both (their primaries are listed)
    p = plan(three, ids, {"J": stack("S1", "J", 1), "R": stack("S2", "R", 1), "E": None})
    assert p["outcome"] == "stack"


def test_a_group_that_is_one_stack_already_is_left_as_it_is_cover_too():
    whole = stack("S", "R", 2)  # the user made the RAW the cover in Immich
    p = plan(PAIR, IDS, {"J": whole, "R": whole})
    assert (p["outcome"], p["stackId"]) == ("stacked", "S")
    assert [m["stackId"] for m in p["members"]] == ["S", "S"]
