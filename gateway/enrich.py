"""Twinlens data merged into Immich answers, under the single key ``"twinlens"``.

Each asset object gains::

    "twinlens": {
      "path": "/photos/2024/IMG_1.JPG" | null,        # the library file this asset is
      "group": null | {"id", "type", "primaryPath", "primaryAssetId",
                       "memberAssetIds": [...],         # members Immich has indexed
                       "members": [{"path", "kind", "role", "isPrimary", "size", "assetId"|null}]},
      "duplicate": null | {"id", "type", "status", "similarity", "keepPath",
                           "suggestedKeepAssetId", "reclaimableBytes", "memberAssetIds": [...],
                           "members": [{"path", "size", "similarity", "assetId"|null}]}
    }

Members Immich has not indexed yet keep ``assetId: null`` and are listed by path, except
to an ordinary user while ``TWINLENS_ADMIN_ONLY`` is on: for them "not indexed" cannot be
told from "another user's file", and the admin-only setting exists so that only Immich
administrators see every file's path. They see a member's path only when that file is
one of their own assets by its path (an external-library asset at that path, or the
asset enriched): a match by content only says they hold the same bytes, and an upload of
a downloaded picture must not reveal where else it lies on the NAS. Other members get
``path: null`` (and a null ``primaryPath``/``keepPath`` when that file is one of them),
and a group or duplicate none of whose files is theirs by path is not shown at all. The
timeline bucket (columnar) gains one parallel array ``"twinlens"`` of these objects (or
null). No field Immich sent is changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from flask import current_app, g

from gateway import budget, services
from gateway.auth import as_caller, upstream_failure
from gateway.cache import cache, data_version, digest, get_many_or_none, set_many_if_up
from gateway.mapping import FileKey, batched, file_key, member_checksums

KEY = "twinlens"


# --- pure ------------------------------------------------------------------------------


Named = Callable[[str | None], bool] | None  # whether the caller may see a path (None: all)


def _shown(path: str | None, named: Named) -> str | None:
    """A member's path as the caller may see it."""
    return path if named is None or named(path) else None


def _resolved(
    members: list[dict], path: str | None, asset_id_of: Callable[[str, str | None], str | None]
) -> str | None:
    """Asset id of the member at ``path`` (the primary, the suggested keeper)."""
    if not path:
        return None
    sha1 = next((m.get("sha1") for m in members if m.get("path") == path), None)
    return asset_id_of(path, sha1)


def shape_group(
    group: Mapping[str, Any],
    asset_id_of: Callable[[str, str | None], str | None],
    named: Named = None,
) -> dict:
    members = []
    for m in group.get("members") or []:
        asset_id = asset_id_of(m.get("path"), m.get("sha1"))
        members.append(
            {
                "path": _shown(m.get("path"), named),
                "kind": m.get("kind"),
                "role": m.get("role"),
                "isPrimary": bool(m.get("is_primary")),
                "size": m.get("size"),
                "assetId": asset_id,
            }
        )
    primary = group.get("primary")
    primary_id = _resolved(group.get("members") or [], primary, asset_id_of)
    return {
        "id": group.get("id"),
        "type": group.get("type"),
        "primaryPath": _shown(primary, named),
        "primaryAssetId": primary_id,
        "memberAssetIds": list(dict.fromkeys(m["assetId"] for m in members if m["assetId"])),
        "members": members,
    }


def shape_duplicate(
    dup: Mapping[str, Any],
    asset_id_of: Callable[[str, str | None], str | None],
    named: Named = None,
) -> dict:
    members = []
    for m in dup.get("members") or []:
        asset_id = asset_id_of(m.get("path"), m.get("sha1"))
        members.append(
            {
                "path": _shown(m.get("path"), named),
                "size": m.get("size"),
                "similarity": m.get("similarity"),
                "assetId": asset_id,
            }
        )
    keep = dup.get("keep")
    keep_id = _resolved(dup.get("members") or [], keep, asset_id_of)
    return {
        "id": dup.get("id"),
        "type": dup.get("type"),
        "status": dup.get("status"),
        "similarity": dup.get("similarity"),
        "keepPath": _shown(keep, named),
        "suggestedKeepAssetId": keep_id,
        "reclaimableBytes": dup.get("reclaimable_bytes"),
        "memberAssetIds": list(dict.fromkeys(m["assetId"] for m in members if m["assetId"])),
        "members": members,
    }


def index_lookups(files: Iterable[Mapping[str, Any]], field: str) -> tuple[dict, dict]:
    by_path: dict[str, Any] = {}
    by_sha1: dict[str, Any] = {}
    for f in files:
        value = f.get(field)
        if f.get("path"):
            by_path[f["path"]] = value
        if f.get("sha1"):
            by_sha1[f["sha1"].lower()] = value
    return by_path, by_sha1


def pick(key: FileKey, by_path: Mapping[str, Any], by_sha1: Mapping[str, Any]) -> Any:
    if key.path and by_path.get(key.path) is not None:
        return by_path[key.path]
    if key.sha1 and by_sha1.get(key.sha1) is not None:
        return by_sha1[key.sha1]
    return None


# --- with I/O --------------------------------------------------------------------------


def _lookup(keys: list[FileKey], version: int) -> dict[FileKey, tuple[Any, Any]]:
    """(group, duplicate) per file key; per-file answers cached under the data version."""
    wanted = list(dict.fromkeys(k for k in keys if k.path or k.sha1))
    ckeys = [f"v{version}:fk:" + digest(k.path or "", k.sha1 or "") for k in wanted]
    cached = cache.get_many(*ckeys) if ckeys else []
    out: dict[FileKey, tuple[Any, Any]] = {}
    missing = []
    for k, ck, hit in zip(wanted, ckeys, cached, strict=True):
        if hit is None:
            missing.append((k, ck))
        else:
            out[k] = (hit[0], hit[1])
    if missing:
        paths = sorted({k.path for k, _ in missing if k.path})
        sha1s = sorted({k.sha1 for k, _ in missing if k.sha1})
        g_path, g_sha = index_lookups(services.lookup("grouping", paths, sha1s), "group")
        d_path, d_sha = index_lookups(services.lookup("dedup", paths, sha1s), "duplicate")
        fresh = {}
        for k, ck in missing:
            pair = (pick(k, g_path, g_sha), pick(k, d_path, d_sha))
            out[k] = pair
            fresh[ck] = list(pair)
        cache.set_many(fresh, timeout=current_app.config["CACHE_TTL"])
    return out


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value``. A file name that is not UTF-8 reaches here as lone
    surrogates (the APIs' ``\\udcXX`` escapes, decoded), which UTF-8 cannot encode: then
    the whole value is written with ASCII escapes, as jsonify does, and the client gets
    the same name back rather than the enrichment dropped."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


class AssetLookupFailed(Exception):
    """Immich refused or did not answer the asset lookup: ``status`` and ``body`` are
    what the client gets (Immich's own refusal, or the gateway's 502/504)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _lookup_failure(exc: requests.RequestException | None, resp: Any = None) -> AssetLookupFailed:
    if exc is not None:
        return AssetLookupFailed(*upstream_failure(exc))
    try:
        detail = resp.json().get("message")
    except (ValueError, AttributeError):
        detail = None
    message = (
        "Immich refused to look up these files' assets (POST /api/assets/bulk-upload-check"
        f", which needs asset.upload): {detail or resp.status_code}"
    )
    return AssetLookupFailed(resp.status_code, {"message": message, "statusCode": resp.status_code})


@dataclass(frozen=True)
class Assets:
    """A library file's Immich assets for the current user: the live one, and the one
    in Immich's trash (either may be None). ``by_path``: the live asset is this very file
    (found by its path), not only the same bytes elsewhere (an upload).

    The file's own asset (found by its path) decides when Immich has one: live or in the
    trash, an upload of the same bytes does not stand for it (a NAS file trashed in
    Immich is in the trash, whatever the phone uploaded). ``same_bytes``: the live upload
    of its content, own asset or not: an asset a kept copy is, never to be trashed."""

    live: str | None = None
    trashed: str | None = None
    by_path: bool = False
    same_bytes: str | None = None
    trashed_bytes: str | None = None  # an upload of its content in Immich's trash


NO_ASSETS = Assets()


def find_assets(
    members: Iterable[tuple[str, str | None]],
    known: Mapping[str, str],
    version: int | None,
    strict: bool = False,
    own: Collection[str] = frozenset(),
) -> dict[str, Assets]:
    """The Immich assets of each library file (path, sha1) for the current user.

    Files already seen in this answer come from ``known`` (those in ``own`` are the
    caller's own assets: a partner's or a shared album's are not); the rest are found by checksum
    (path-based for external libraries, content SHA-1 for uploads) with the user's own
    credentials through bulk-upload-check, which answers with the existing asset id and
    whether it is in the trash: one lookup serves enrichment, resolving and undoing.
    When Immich refuses or does not answer the lookup, the files count as absent
    (enrichment lists them by path), or with ``strict`` (acting on them: trash, restore)
    ``AssetLookupFailed`` is raised: "not in Immich" must never stand for "could not ask";
    ``strict`` also reads nothing from the cache (it still writes what it learns).
    With ``version`` None (Redis not answering) the cache is neither read nor written.
    """
    cfg = current_app.config
    path_map = cfg["SETTINGS"].path_map
    result: dict[str, Assets] = {}
    todo: dict[str, list[str]] = {}
    for path, sha1 in members:
        if not path or path in result or path in todo:
            continue
        if path in known:
            result[path] = Assets(live=known[path], by_path=path in own)
        else:
            todo[path] = member_checksums(path, sha1, path_map)
    if not todo:
        return result
    user = g.user["id"]
    all_sums = sorted({s for sums in todo.values() for s in sums})
    # One entry per checksum: "" not in Immich, "<id>" a live asset, "~<id>" one in the
    # trash (asset ids are UUIDs, never starting with "~")
    ckeys = [f"v{version}:u:{user}:as:{s}" for s in all_sums]
    # Acting on them, ask Immich afresh: a trash or restore made in Immich itself since
    # the list was shown bumps no data version, and a copy in Immich's trash must never
    # be the one kept
    cached = [None] * len(ckeys) if strict or version is None else get_many_or_none(*ckeys)
    hits = dict(zip(all_sums, cached, strict=True))
    unknown = [s for s in all_sums if hits[s] is None]
    creds = getattr(g, "creds", None)
    if unknown and creds is not None and creds.present:
        fresh: dict[str, str] = {}
        for batch in batched(unknown, 1000):
            try:
                resp = as_caller(
                    "POST",
                    "assets/bulk-upload-check",
                    json={"assets": [{"id": s, "checksum": s} for s in batch]},
                )
            except requests.RequestException as exc:
                if strict:
                    raise _lookup_failure(exc) from None
                budget.mark_partial()  # listed by path this time; not cached
                break
            if resp.status_code != 200:  # e.g. an API key without asset.upload: list by path
                if strict:
                    raise _lookup_failure(None, resp)
                budget.mark_partial()
                break
            for r in resp.json().get("results", []):
                found = r.get("assetId") if r.get("action") == "reject" else None
                value = ("~" + found if r.get("isTrashed") else found) if found else ""
                hits[r["id"]] = fresh[f"v{version}:u:{user}:as:{r['id']}"] = value
        if fresh and version is not None:
            set_many_if_up(fresh, cfg["MEMBER_TTL"])
    for path, sums in todo.items():
        values = [hits.get(s) or "" for s in sums]  # the path checksum first
        decides = values[:1] if values[0] else values[1:]  # its own asset, if Immich has one
        result[path] = Assets(
            live=_live_of(decides),
            trashed=_trashed_of(decides),
            by_path=_live_of(values[:1]) is not None,
            same_bytes=_live_of(values[1:]),
            trashed_bytes=_trashed_of(values[1:]),
        )
    if not strict:  # acting on them, Immich itself refuses what the session cannot reach
        shown = not_locked(
            {a.live for p, a in result.items() if a.live and p not in known}, version
        )
        for path, a in result.items():
            if a.live and path not in known and a.live not in shown:
                result[path] = Assets(trashed=a.trashed)
    return result


def _live_of(values: list[str]) -> str | None:
    """The first live asset among cached look-up values ("" none, "~<id>" in the trash)."""
    return next((v for v in values if v and v[0] != "~"), None)


def _trashed_of(values: list[str]) -> str | None:
    """The first asset in Immich's trash among cached look-up values."""
    return next((v[1:] for v in values if v[:1] == "~"), None)


def not_locked(ids: set[str], version: int | None) -> set[str]:
    """Those of the caller's ``ids`` that are not in Immich's locked folder.

    bulk-upload-check finds an owner's locked assets too, which Immich shows only to a
    session unlocked by PIN: a member that is one counts as not in Immich, for every
    session (a per-user answer cannot tell an unlocked session from another). Asked one
    by one (``GET /api/assets/{id}``: Immich refuses a locked asset to a session not
    unlocked, and names its visibility to one that is), up to eight at a time, and
    remembered per user for ``MEMBER_TTL`` (not under the data version: a scan moves
    nothing into the locked folder). A refusal (an API key without asset.read) counts as
    locked: nothing is linked that the caller could not open. An asset that could not be
    asked about is left out, and the answer is partial (not cached). ``version`` None:
    Redis is not answering, so nothing is read from it or kept in it.
    """
    creds = getattr(g, "creds", None)
    if not ids or creds is None or not creds.present:
        if ids:
            budget.mark_partial()
        return set()
    cfg = current_app.config
    user = g.user["id"]
    ckeys = {i: f"u:{user}:vis:{i}" for i in sorted(ids)}
    cached = get_many_or_none(*ckeys.values()) if version is not None else [None] * len(ckeys)
    known = {i: hit for i, hit in zip(ckeys, cached, strict=True) if hit is not None}
    todo = [i for i in ckeys if i not in known]
    if todo:
        asked = asset_answers(todo, budget.deadline(), cfg["AUTH_TIMEOUT"])
        answers = {i: _shown_to_all(r) for i, r in asked.items()}
        fresh = {ckeys[i]: v for i, v in answers.items() if v is not None}
        if len(fresh) < len(todo):
            budget.mark_partial()
        if fresh and version is not None:
            set_many_if_up(fresh, cfg["MEMBER_TTL"])
        known.update(answers)
    return {i for i, v in known.items() if v == "1"}


def _shown_to_all(r: requests.Response | None) -> str | None:
    """What an asset's own answer says for ``not_locked``: "1" shown, "0" locked (or
    refused), None: could not tell."""
    if r is None:
        return None
    if r.status_code in (400, 403):  # "Not found or no asset.read access"
        return "0"
    if r.status_code != 200:
        return None
    try:
        return "0" if r.json().get("visibility") == "locked" else "1"
    except ValueError:
        return None


def asset_answers(
    ids: list[str], until: float | None, read: float
) -> dict[str, requests.Response | None]:
    """Immich's answer to ``GET /api/assets/{id}`` for each of ``ids``, asked with the
    caller's own credentials, up to eight at a time; each call within what the budget's
    deadline ``until`` leaves (the pool's threads have no request: they take it), so that
    many asked one by one cannot outlast it however slowly Immich answers. None for a
    call that failed, or found the time spent."""
    cfg = current_app.config
    http, creds = current_app.extensions["twinlens_http"], g.creds
    url = cfg["SETTINGS"].immich_url + "/api/assets/"
    connect = cfg["UPSTREAM_CONNECT_TIMEOUT"]

    def one(asset_id: str) -> requests.Response | None:
        try:
            return http.get(
                url + asset_id,
                headers=creds.headers,
                params=creds.params,
                timeout=budget.limits(until, connect, read),
            )
        except (budget.Spent, requests.RequestException):
            return None

    if len(ids) == 1:
        return {ids[0]: one(ids[0])}
    with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
        return dict(zip(ids, pool.map(one, ids), strict=True))


def paths_of_unindexed(user: Mapping[str, Any], settings: Any) -> bool:
    """Whether members the caller's Immich does not show are listed by path: to
    administrators, and to everyone when ``TWINLENS_ADMIN_ONLY`` is off (one household)."""
    return bool(user.get("isAdmin")) or not settings.admin_only


def enrich_assets(
    assets: list[dict[str, Any]], keys: list[FileKey] | None = None, version: int | None = None
) -> list[dict | None]:
    """Twinlens objects for ``assets`` (same order)."""
    settings = current_app.config["SETTINGS"]
    version = data_version() if version is None else version
    keys = keys if keys is not None else [file_key(a, settings.path_map) for a in assets]
    found = _lookup(keys, version)
    pairs = list(zip(assets, keys, strict=True))
    known = {k.path: a["id"] for a, k in pairs if k.path and a.get("id")}
    # An asset in the answer is the caller's by its path only if it is theirs: Immich also
    # shows partners' and shared albums' assets
    own = {k.path for a, k in pairs if k.path and a.get("ownerId") == g.user["id"]}
    members: list[tuple[str, str | None]] = []
    for group, dup in found.values():
        for obj in (group, dup):
            if obj:
                members.extend((m.get("path"), m.get("sha1")) for m in obj.get("members") or [])
    assets = find_assets(members, known, version, own=own)
    asset_id_of = lambda path, _sha1: assets.get(path, NO_ASSETS).live  # noqa: E731
    named: Named = None
    if not paths_of_unindexed(g.user, settings):
        mine = {p for p, a in assets.items() if a.by_path}
        named = mine.__contains__
    out: list[dict | None] = []
    for k in keys:
        group, dup = (_theirs(obj, named) for obj in found.get(k, (None, None)))
        out.append(
            {
                "path": k.path,
                "group": shape_group(group, asset_id_of, named) if group else None,
                "duplicate": shape_duplicate(dup, asset_id_of, named) if dup else None,
            }
        )
    return out


def _theirs(obj: Mapping[str, Any] | None, named: Named) -> Mapping[str, Any] | None:
    """``obj`` (a group or duplicate), unless none of its files may be named to the caller:
    then even its existence would tell them about files that are not theirs."""
    if obj is None or named is None:
        return obj
    return obj if any(named(m.get("path")) for m in obj.get("members") or []) else None


def attach(assets: list[dict[str, Any]]) -> None:
    for asset, extra in zip(assets, enrich_assets(assets), strict=True):
        asset[KEY] = extra


# In front of the Redis lookups, per process: the Twinlens object of one asset as JSON,
# keyed by (data version, user, asset id, file key). The data version is checked on
# every request (core.dataversion: kept in-process, invalidated by Redis), so a bump
# after a scan is seen at once; the entry also expires with the shortest TTL of what
# it is made of (MEMBER_TTL: member asset ids).
_MEMO_KEY = "twinlens_asset_memo"
_MEMO_MAX = 20_000


def asset_json(asset: dict[str, Any]) -> bytes:
    """The ``"twinlens"`` value for one Immich asset, as JSON bytes."""
    app = current_app
    settings = app.config["SETTINGS"]
    version = data_version()
    key = file_key(asset, settings.path_map)
    memo = app.extensions.setdefault(_MEMO_KEY, {})
    mk = (version, g.user["id"], asset.get("id"), key)
    now = time.monotonic()
    hit = memo.get(mk)
    if hit is not None and hit[0] > now:
        return hit[1]
    extra = enrich_assets([asset], [key], version)[0]
    out = json_bytes(extra)
    if budget.partial():
        return out  # Immich could not be asked about every member: ask again next time
    if len(memo) >= _MEMO_MAX:
        memo.clear()  # crude bound: entries are cheap to rebuild from Redis
    memo[mk] = (now + min(app.config["MEMBER_TTL"], app.config["CACHE_TTL"]), out)
    return out
