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


def seen(*ids: str, visibility: str = "timeline", stack: str | None = None) -> dict:
    """What Immich says of these assets: their visibility and stack."""
    return {i: {"visibility": visibility, "stackId": stack} for i in ids}


def stack(cover: str, *members: str) -> dict:
    return {"primaryAssetId": cover, "assetIds": [cover, *members]}


def test_a_pair_is_stacked_with_its_primary_first_and_no_sidecar():
    # Given a RAW listed before its JPEG, the JPEG the group's primary
    p = plan({**PAIR, "members": PAIR["members"][::-1]}, IDS, seen("J", "R"), {})
    # Then the JPEG is the cover and the sidecar (no Immich asset) is left out
    assert p["outcome"] == "stack" and p["assetIds"] == ["J", "R"]


def test_two_members_that_are_one_asset_are_not_a_stack():
    # An upload found by the content of both (one asset for two paths)
    p = plan(PAIR, {"a.jpg": "J", "a.cr3": "J"}, seen("J"), {})
    assert p["outcome"] == "skip" and "fewer than two" in p["reason"]
    assert p["reasonCode"] == "too_few"


def test_a_live_photos_video_is_never_stacked_but_its_edit_is():
    live = group("live_photo", ("l.heic", "image", "primary"), ("l.mov", "video", "video"),
                 ("l_e.heic", "image", "edit"), ("l_e.mov", "video", "edit"))  # fmt: skip
    ids = {"l.heic": "S", "l.mov": "V", "l_e.heic": "E", "l_e.mov": "EV"}
    assert plan(live, ids, seen("S", "V", "E", "EV"), {})["assetIds"] == ["S", "E"]
    only_video = {"l.heic": "S", "l.mov": "V"}
    assert plan(live, only_video, seen("S", "V"), {})["outcome"] == "skip"


def test_a_hidden_or_archived_photo_is_left_where_it_is():
    # An edited Live Photo's video in a RAW+JPEG group: Immich hides it (its own link)
    edited = group("raw_jpeg", ("e.jpg", "image", "primary"), ("e.dng", "raw", "raw"),
                   ("e_e.mov", "video", "edit"))  # fmt: skip
    ids = {"e.jpg": "J", "e.dng": "R", "e_e.mov": "V"}
    p = plan(edited, ids, {**seen("J", "R"), **seen("V", visibility="hidden")}, {})
    assert p["assetIds"] == ["J", "R"]
    # An archived cover: stacked, the group would leave the timeline
    p = plan(PAIR, IDS, {**seen("R"), **seen("J", visibility="archive")}, {})
    assert p["outcome"] == "skip" and "archived" in p["reason"]


def test_no_stack_without_its_cover():
    three = group("raw_jpeg", ("b.jpg", "image", "primary"), ("b.cr3", "raw", "raw"),
                  ("b-edited.jpg", "image", "edit"))  # fmt: skip
    p = plan(three, {"b.jpg": None, "b.cr3": "R", "b-edited.jpg": "E"}, seen("R", "E"), {})
    assert p["outcome"] == "skip" and "cover" in p["reason"]
    # Nor when Immich would not show the cover to the caller (locked away)
    p = plan(three, {"b.jpg": "J", "b.cr3": "R", "b-edited.jpg": "E"}, seen("R", "E"), {})
    assert p["outcome"] == "skip" and "cover" in p["reason"]


def test_a_stack_holding_photos_outside_the_group_is_left_alone():
    # The JPEG on top of a burst the user stacked, or under another photo; the outside
    # photo archived, so that asset.stack alone would not show it
    for st in (stack("J", "X", "Y"), stack("X", "J")):
        p = plan(PAIR, IDS, {**seen("J", stack="S"), **seen("R")}, {"S": st})
        assert p["outcome"] == "skip" and "outside this group" in p["reason"], st
        assert p["reasonCode"] == "in_other_stack"
    # A stack that could not be read is not guessed at
    p = plan(PAIR, IDS, {**seen("J", stack="S"), **seen("R")}, {})
    assert p["outcome"] == "skip"


def test_stacks_wholly_inside_the_group_are_taken_in_their_cover_kept():
    three = group("raw_jpeg", ("c.jpg", "image", "primary"), ("c.cr3", "raw", "raw"),
                  ("c-edited.jpg", "image", "edit"))  # fmt: skip
    ids = {"c.jpg": "J", "c.cr3": "R", "c-edited.jpg": "E"}
    part = {**seen("J", "R", stack="S"), **seen("E")}
    p = plan(three, ids, part, {"S": stack("R", "J")})
    assert p["outcome"] == "stack" and p["assetIds"] == ["R", "J", "E"]
    # Two stacks, each inside the group: Immich merges both (their covers are listed)
    two = {**seen("J", stack="S1"), **seen("R", stack="S2"), **seen("E")}
    p = plan(three, ids, two, {"S1": stack("J"), "S2": stack("R")})
    assert p["outcome"] == "stack" and p["assetIds"][0] == "J"


def test_a_group_that_is_one_stack_already_is_left_as_it_is():
    # The user made the RAW the cover in Immich; a sidecar is no asset
    p = plan(PAIR, IDS, seen("J", "R", stack="S"), {"S": stack("R", "J")})
    assert (p["outcome"], p["stackId"], p["coverAssetId"]) == ("stacked", "S", "R")
    assert [m["stackId"] for m in p["members"]] == ["S", "S"]
    # Also when one of them is archived in it
    archived = {**seen("J", stack="S"), **seen("R", visibility="archive", stack="S")}
    assert plan(PAIR, IDS, archived, {"S": stack("J", "R")})["outcome"] == "stacked"


def test_a_stack_inside_the_group_with_an_archived_cover_is_merged_whole():
    # The user stacked the edit (archived, on top) with the RAW; the JPEG is the cover
    three = group("raw_jpeg", ("d.jpg", "image", "primary"), ("d.cr3", "raw", "raw"),
                  ("d-edited.jpg", "image", "edit"))  # fmt: skip
    ids = {"d.jpg": "J", "d.cr3": "R", "d-edited.jpg": "E"}
    seen_now = {**seen("J"), **seen("R", stack="S"), **seen("E", visibility="archive", stack="S")}
    p = plan(three, ids, seen_now, {"S": stack("E", "R")})
    # Then its cover is listed too, so Immich merges it rather than moving the RAW out
    assert p["outcome"] == "stack" and p["assetIds"] == ["J", "R", "E"]


def test_a_manual_groups_video_is_stacked_like_a_photo():
    manual = group("manual", ("m.jpg", "image", "primary"), ("m.mp4", "video", "video"))
    assert plan(manual, {"m.jpg": "P", "m.mp4": "V"}, seen("P", "V"), {})["assetIds"] == ["P", "V"]
