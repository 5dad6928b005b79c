"""Stacking a file group in Immich: its photos shown as one, its primary the cover.

Immich cannot stack a RAW and its JPEG by itself; Twinlens knows which files belong
together. ``plan`` is pure: from a group (the grouping API's answer), the caller's own
Immich asset of each member, what Immich says of those assets (visibility, stack) and the
stacks they are in (every member Immich lists), it says what ``POST /api/stacks`` would
do, or why nothing should be done. The gateway then sends it with the caller's own
credentials.

What is stacked: the group's photos and videos that Immich holds for the caller in its
timeline. Sidecars are no Immich assets; a Live Photo's video is hidden by Immich, which
links it to its still itself; an archived or locked asset is left where it is.

What is never done (Immich's own rules, NOTES.md §3): a stack whose cover is listed is
merged in whole, and a listed member of another stack is moved out of it silently. So a
stack that holds anything outside this group leaves the group alone, with the reason:
stacking it would pull a burst into the group, or take a photo out of a stack the user
made. ``asset.stack`` alone cannot tell (Immich counts only the timeline members in it,
and shows none on a cover whose others are archived), so the stacks' own member lists
decide. A stack that holds only this group's assets is taken in (Immich merges it), its
cover kept; one that already holds all of them is left as it is, its cover too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from gateway.auth import as_caller, immich_refusal_of, upstream_failure

# Members that are never stacked: not Immich assets, or the video of a Live Photo
_NOT_STACKED_KINDS = frozenset({"sidecar", "other"})


def stackable(group: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The members of ``group`` that would be stacked if Immich holds them, in the
    group's order (its primary first)."""
    live_photo = group.get("type") == "live_photo"
    out = []
    for m in group.get("members") or []:
        if m.get("kind") in _NOT_STACKED_KINDS:
            continue
        if live_photo and m.get("kind") == "video":  # an edited Live Photo's video too
            continue
        out.append(m)  # (another Live Photo video Immich hid: left out by its visibility)
    return out


def plan(
    group: Mapping[str, Any],
    asset_ids: Mapping[str, str | None],
    assets: Mapping[str, Mapping[str, Any]],
    stacks: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """What stacking ``group`` would do.

    ``asset_ids``: each member path's live Immich asset of the caller (None: not in
    Immich for them); ``assets``: of each such asset, its ``visibility`` and ``stackId``
    (None: in no stack); ``stacks``: of each such stack, its ``primaryAssetId`` and
    ``assetIds`` (every member Immich lists).

    The answer: ``outcome`` ``stack`` (``assetIds``, the cover first, is what to send),
    ``stacked`` (one stack holds them all already: ``stackId``, its cover
    ``coverAssetId``) or ``skip``
    (``reasonCode``, one of ``REASON_CODES``, and ``reason``); with ``members`` (path,
    assetId, stackId) for the user to see.
    """
    primary = group.get("primary")
    owned: dict[str, str] = {}  # asset id -> the first member path it stands for
    shown = []
    for m in stackable(group):
        path = m.get("path")
        aid = asset_ids.get(path) if isinstance(path, str) else None
        info = assets.get(aid) if aid else None
        if info is None:
            aid = None  # Immich would not show it to the caller (locked, gone)
        shown.append({"path": path, "assetId": aid, "stackId": info and info.get("stackId")})
        if aid and aid not in owned:
            owned[aid] = path
    result: dict[str, Any] = {
        "id": group.get("id"),
        "type": group.get("type"),
        "primary": primary,
        "members": shown,
    }
    cover = asset_ids.get(primary) if isinstance(primary, str) else None
    if not cover or cover not in owned:
        if len(owned) < 2:
            return _skip(result, "too_few", _FEWER)
        return _skip(
            result,
            "no_cover",
            f"its cover {primary} is not in Immich for you (not indexed yet, or another "
            "user's): stacked now, another photo would be the cover",
        )
    listed = [a for a in owned if assets[a].get("visibility") == "timeline"]
    touching = list(dict.fromkeys(assets[a]["stackId"] for a in owned
                                  if assets[a].get("stackId")))  # fmt: skip
    for sid in touching:
        if sid not in stacks:  # refused or gone while read: its members are unknown
            return _skip(
                result,
                "stack_unreadable",
                "one of its photos is in an Immich stack that could not be read",
            )
        outside = [a for a in stacks[sid].get("assetIds") or [] if a not in owned]
        if outside:
            path = next(p for a, p in owned.items() if assets[a].get("stackId") == sid)
            return _skip(
                result,
                "in_other_stack",
                f"{path} is in an Immich stack that also holds {len(outside)} photo(s) "
                "outside this group: unstack it in Immich first",
            )
    if len(touching) == 1 and set(listed) <= set(stacks[touching[0]].get("assetIds") or []):
        sid = touching[0]
        cover_now = stacks[sid].get("primaryAssetId")
        return {**result, "outcome": "stacked", "stackId": sid, "coverAssetId": cover_now}
    if cover not in listed:
        return _skip(
            result,
            "cover_hidden",
            f"its cover {primary} is archived or hidden in Immich: stacked, the group would "
            "leave the timeline (unarchive it first)",
        )
    if len(listed) < 2:
        return _skip(result, "too_few", _FEWER)
    # A stack the user made of part of the group grows, its cover kept
    first = stacks[touching[0]].get("primaryAssetId") if len(touching) == 1 else None
    first = first if first in listed else cover
    ids = [first, *(a for a in listed if a != first)]
    # A stack inside the group whose cover is archived: listing its cover merges it whole,
    # where listing only its other photos would move them out and leave the cover alone
    ids += [c for c in (stacks[sid].get("primaryAssetId") for sid in touching)
            if c in owned and c not in ids]  # fmt: skip
    return {**result, "outcome": "stack", "assetIds": ids}


_FEWER = (
    "fewer than two of its photos are in Immich's timeline for you (a sidecar is not an "
    "Immich asset; a Live Photo's video Immich pairs with its still itself; an archived "
    "photo is left where it is)"
)


# Why a group is not stacked, as a code a client can count by (the reason's words name
# the files)
REASON_CODES = ("too_few", "no_cover", "cover_hidden", "in_other_stack", "stack_unreadable")


def _skip(result: dict[str, Any], code: str, reason: str) -> dict[str, Any]:
    return {**result, "outcome": "skip", "reasonCode": code, "reason": reason}


# --- what Immich says of the group's assets (the caller's own credentials) ---------------


class ImmichAnswer(Exception):
    """Immich's refusal or failure, to be answered as it is: (status, body)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def _read(path: str) -> Any:
    """Immich's JSON answer to ``GET /api/<path>``; None when it would not show it (400,
    404: locked away, gone since the lookup); its refusal or failure raised."""
    try:
        resp = as_caller("GET", path)
    except requests.RequestException as exc:
        raise ImmichAnswer(*upstream_failure(exc)) from None
    if resp.status_code in (400, 404):
        return None
    if resp.status_code != 200:  # e.g. an API key without asset.read or stack.read
        status, body = immich_refusal_of(resp)
        raise ImmichAnswer(502 if status >= 500 else status, body)
    try:
        return resp.json()
    except ValueError:
        raise ImmichAnswer(502, {"message": "Immich's answer was not JSON"}) from None


def read(asset_ids: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``plan``'s ``assets`` and ``stacks`` for these assets, as Immich shows the caller:
    each asset's visibility and stack (one in the trash, or that Immich would not show,
    left out), and each stack's cover and members. A stack is found through its members'
    ``asset.stack``, and for an asset that shows none, by asking for stacks it is the
    cover of (one whose other members are archived shows no stack on its cover)."""
    assets: dict[str, dict[str, Any]] = {}
    for aid in asset_ids:
        body = _read(f"assets/{quote(aid, safe='')}")
        if not isinstance(body, dict) or body.get("isTrashed"):
            continue
        st = body.get("stack") if isinstance(body.get("stack"), dict) else {}
        assets[aid] = {"visibility": body.get("visibility"), "stackId": st.get("id")}
    stacks: dict[str, dict[str, Any]] = {}
    for aid, info in assets.items():
        sid = info["stackId"]
        if sid and sid not in stacks:
            found = [_read(f"stacks/{quote(sid, safe='')}")]
        elif not sid:
            found = _read(f"stacks?primaryAssetId={quote(aid, safe='')}") or []
        else:
            continue
        for st in found:
            if isinstance(st, dict) and st.get("id"):
                members = [a.get("id") for a in st.get("assets") or [] if isinstance(a, dict)]
                stacks[st["id"]] = {"primaryAssetId": st.get("primaryAssetId"),
                                    "assetIds": members}  # fmt: skip
    # An archived member shows no stack of its own (asset.stack counts the timeline only)
    for sid, st in stacks.items():
        for a in st["assetIds"]:
            if a in assets and not assets[a]["stackId"]:
                assets[a]["stackId"] = sid
    return assets, stacks
