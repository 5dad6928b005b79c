"""Stacking a file group in Immich: its photos shown as one, its primary the cover.

Immich cannot stack a RAW and its JPEG by itself; Twinlens knows which files belong
together. ``plan`` is pure: from a group (the grouping API's answer), the caller's own
Immich asset of each member, and the stack each of those assets is in now (``asset.stack``
of ``GET /api/assets/{id}``), it says what ``POST /api/stacks`` would do, or why nothing
should be done. The gateway then sends it with the caller's own credentials.

What is stacked: the group's photos and videos that Immich holds for the caller. Sidecars
are no Immich assets, and a Live Photo's video is one Immich links to its still itself
(``livePhotoVideoId``) and hides: stacking it would show the hidden part again.

What is never done (Immich's own rules, NOTES.md §3): a stack whose primary is listed is
merged in whole, and a listed member of another stack is moved out of it silently. So an
asset already in a stack that holds anything outside this group is left alone, and the
group is skipped with the reason: stacking it would pull a burst into the group, or take
a photo out of a stack the user made. A stack that holds only this group's assets is
taken in (Immich merges it), and one that already holds exactly them is left as it is,
its cover too (the user may have chosen another in Immich).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Members that are never stacked: not Immich assets, or the video of a Live Photo
_NOT_STACKED_KINDS = frozenset({"sidecar", "other"})


def stackable(group: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The members of ``group`` that would be stacked if Immich holds them, in the
    group's order (its primary first)."""
    live_photo = group.get("type") == "live_photo"
    out = []
    for m in group.get("members") or []:
        if m.get("kind") in _NOT_STACKED_KINDS or m.get("role") == "video":
            continue
        if live_photo and m.get("kind") == "video":  # an edited Live Photo's video too
            continue
        out.append(m)
    return out


def plan(
    group: Mapping[str, Any],
    asset_ids: Mapping[str, str | None],
    stacks: Mapping[str, Mapping[str, Any] | None],
) -> dict[str, Any]:
    """What stacking ``group`` would do.

    ``asset_ids``: each member path's live Immich asset of the caller (None: not in
    Immich for them); ``stacks``: each of those assets' ``stack`` as Immich shows it
    (``{id, primaryAssetId, assetCount}`` or None).

    The answer: ``outcome`` ``stack`` (``assetIds``, the cover first, is what to send),
    ``stacked`` (already one stack of exactly these assets: ``stackId``) or ``skip``
    (``reason``); with ``members`` (path, assetId, stackId) for the user to see.
    """
    members = stackable(group)
    primary = group.get("primary")
    ids: dict[str, str] = {}  # asset id -> the first member path it stands for
    shown = []
    for m in members:
        path = m.get("path")
        aid = asset_ids.get(path) if isinstance(path, str) else None
        st = stacks.get(aid) if aid else None
        shown.append({"path": path, "assetId": aid, "stackId": st.get("id") if st else None})
        if aid and aid not in ids:
            ids[aid] = path
    result: dict[str, Any] = {
        "id": group.get("id"),
        "type": group.get("type"),
        "primary": primary,
        "members": shown,
    }
    cover = asset_ids.get(primary) if isinstance(primary, str) else None
    if len(ids) < 2:
        return _skip(
            result,
            "fewer than two of its photos are in Immich for you (a sidecar is not an Immich "
            "asset; a Live Photo's video Immich pairs with its still itself)",
        )
    if not cover or cover not in ids:
        return _skip(
            result,
            f"its cover {primary} is not in Immich for you (not indexed yet, or another "
            "user's): stacked now, another photo would be the cover",
        )
    # Every Immich stack these assets are in, and how many of its assets are this group's
    inside: dict[str, int] = {}
    size: dict[str, int] = {}
    for aid in ids:
        st = stacks.get(aid)
        if st and st.get("id"):
            inside[st["id"]] = inside.get(st["id"], 0) + 1
            size[st["id"]] = int(st.get("assetCount") or 0)
    for sid, count in inside.items():
        if size[sid] > count:
            path = next(p for a, p in ids.items() if (stacks.get(a) or {}).get("id") == sid)
            return _skip(
                result,
                f"{path} is in an Immich stack that also holds {size[sid] - count} photo(s) "
                "outside this group: unstack it in Immich first",
            )
    if len(inside) == 1 and next(iter(inside.values())) == len(ids):
        sid = next(iter(inside))
        return {**result, "outcome": "stacked", "stackId": sid}
    others = [a for a in ids if a != cover]
    return {**result, "outcome": "stack", "assetIds": [cover, *others]}


def _skip(result: dict[str, Any], reason: str) -> dict[str, Any]:
    return {**result, "outcome": "skip", "reason": reason}
