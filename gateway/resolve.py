"""Resolving a duplicate group: which members stay, which go to Immich's trash.

``plan`` is pure; ``execute`` trashes through Immich with the caller's own credentials
(``DELETE /api/assets`` with ``force: false``, so it is recoverable from Immich's trash)
and then records the decision through the dedup API. Twinlens itself never deletes a
file: a member Immich does not know is left alone and reported (``notInImmich``), as is
one that Immich knows only as the same asset as a kept member (an upload of the same
bytes, found by content SHA-1): trashing that asset would take the kept copy with it.
One already in Immich's trash is reported as such (``inImmichTrash``): it goes when the
trash is emptied. A copy to keep that is in Immich's trash or gone from disk is refused.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

ACTIONS = ("trash", "not_duplicate")


class PlanError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def plan(
    dup: Mapping[str, Any],
    keep_refs: list[str],
    action: str,
    asset_ids: Mapping[str, str | None],
    in_trash: Mapping[str, str | None] | Collection[str] = (),
    same_bytes: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """What resolving ``dup`` would do. ``keep_refs`` name members by path or asset id;
    ``asset_ids`` are the members' live Immich assets, ``in_trash`` the members whose only
    Immich asset is in Immich's trash already (a mapping also gives that asset's id, so
    that keeping it by id is refused as "in Immich's trash", not "not a member");
    ``same_bytes`` the live upload of each member's content (a kept copy's is never
    trashed: it is that copy too, even when the copy has an asset of its own)."""
    if action not in ACTIONS:
        raise PlanError(400, f"action must be one of {', '.join(ACTIONS)}")
    if dup.get("status") not in (None, "open"):
        raise PlanError(409, f"duplicate group {dup.get('id')} is already {dup.get('status')}")
    members = [m.get("path") for m in dup.get("members") or [] if m.get("path")]
    # A ref names every member it may stand for: exact copies share their content SHA-1,
    # so several files can all be found as one uploaded Immich asset.
    by_ref: dict[str, list[str]] = {}
    for path in members:
        by_ref.setdefault(path, []).append(path)
        if asset_ids.get(path):
            by_ref.setdefault(asset_ids[path], []).append(path)  # type: ignore[index]
        trashed_id = in_trash.get(path) if isinstance(in_trash, Mapping) else None
        if trashed_id:
            by_ref.setdefault(trashed_id, []).append(path)
    if action == "trash":
        if not keep_refs:
            raise PlanError(400, "keep must name at least one member")
        unknown = [r for r in keep_refs if r not in by_ref]
        if unknown:
            raise PlanError(400, f"not members of this group: {', '.join(map(str, unknown[:5]))}")
        keep = list(dict.fromkeys(p for r in keep_refs for p in by_ref[r]))
        if set(members) <= set(keep):
            # Recorded, the group would leave the list "resolved" with every copy there
            raise PlanError(
                400,
                "keep names every copy, so nothing would go to the trash: keep fewer, "
                "or mark the group not duplicates",
            )
        # A copy kept must still be there, or trashing the others would leave none: one
        # in Immich's trash is purged with it, one gone from disk is gone.
        gone_from_disk = {m.get("path") for m in dup.get("members") or [] if m.get("missing")}
        for p in keep:
            if p in in_trash:
                raise PlanError(
                    409, f"{p} is in Immich's trash: restore it there first, or keep another copy"
                )
            if p in gone_from_disk:
                raise PlanError(409, f"{p} is gone from disk: keep another copy")
    else:
        keep = list(members)  # nothing goes anywhere: they are different pictures
    # Never trash an asset that a kept file is: the copy kept would go with it.
    kept_ids = {asset_ids.get(p) for p in keep} | {(same_bytes or {}).get(p) for p in keep}
    kept_ids -= {None}
    trash = [p for p in members if p not in keep]
    gone = [p for p in trash if asset_ids.get(p) and asset_ids[p] not in kept_ids]
    already = [p for p in trash if p not in gone and p in in_trash]
    return {
        "id": dup.get("id"),
        "action": action,
        "keep": [{"path": p, "assetId": asset_ids.get(p)} for p in keep],
        "trash": [{"path": p, "assetId": asset_ids[p]} for p in gone],
        "inImmichTrash": already,
        "notInImmich": [p for p in trash if p not in gone and p not in already],
    }
