"""/api/twinlens/: groups (their corrections, and stacking them in Immich), duplicates,
stats, jobs, resolution (and its undoing), thumbnails.

Every route requires an Immich-authenticated user (``auth.require_user``), except in
local mode where there is no Immich, the gateway binds to loopback and needs no login.
Errors are ``{"message": ...}`` with 400 (malformed), 413 (too large), 404, 409, 502/504.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import quote

import requests
from flask import Blueprint, Response, current_app, g, jsonify, request, send_file
from redis.exceptions import RedisError
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from werkzeug.exceptions import HTTPException

from core.config import DEMO_LIBRARY
from core.paths import PATH_MAX, PathOutsideRoots, confine, query_paths, root_of
from core.requestbody import read_body
from gateway import enrich, resolve, stacking, thumbs
from gateway.auth import (
    as_caller,
    immich_refusal_of,
    require_user,
    upstream_error,
    upstream_failure,
)
from gateway.cache import changed, digest, get_many_or_none, set_many_if_up, version_or_none
from gateway.errors import json_error
from gateway.services import ServiceError, call

bp = Blueprint("twinlens", __name__, url_prefix="/api/twinlens")

SERVICES = ("grouping", "dedup")
_WHOLE = re.compile(r"[0-9]{1,9}")  # str.isdigit() also takes "²", which int() refuses


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest) -> Response:
    return json_error(exc.status, exc.message)


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Response:
    resp = json_error(exc.status, exc.message)
    if exc.status == 503:
        resp.headers["Retry-After"] = "10"  # the service is busy, not broken
    return resp


@bp.errorhandler(RedisError)
def _redis_error(_exc: RedisError) -> Response:
    # Logged by the cache's guard (without the URL); the client is told what to do
    resp = json_error(503, "Twinlens's cache (Redis) is not answering: try again shortly")
    resp.headers["Retry-After"] = str(int(current_app.config["ENRICH_SKIP_AFTER_FAILURE"]))
    return resp


@bp.errorhandler(resolve.PlanError)
def _plan_error(exc: resolve.PlanError) -> Response:
    return json_error(exc.status, exc.message)


_MAX_ID = 64  # the services' ids are at most 32 characters


def _segment(value: str) -> str:
    """An id from the caller as one path segment of a service URL: "/", "?", "#" and ".."
    must not steer the call (it carries the service token)."""
    if len(value) > _MAX_ID:  # no row has such an id (and the URL would outgrow the server's)
        raise BadRequest(404, f"no item with the id {value[:40]!r}…")
    try:
        segment = quote(value, safe="")
    except UnicodeEncodeError:  # a lone surrogate: no id is made of one
        raise BadRequest(400, "not a valid id: it holds an unpaired surrogate") from None
    return segment if segment.strip(".") else segment.replace(".", "%2E")


def json_body() -> dict[str, Any]:
    """The request's JSON object. Every route that takes one needs the JSON Content-Type,
    an empty body included (``{}``): a browser sends a cross-site POST without a
    preflight only as a form or text/plain, so this is what keeps another page (another
    port on the same NAS shares Immich's SameSite=Lax cookie) from acting for the user."""
    if not request.is_json:
        raise BadRequest(
            400, "send the body as JSON with Content-Type: application/json ({} for none)"
        )
    limit = current_app.config["MAX_JSON_BODY"]
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(413, f"body larger than {limit} bytes")
    raw = read_body(request, limit + 1, BadRequest, (HTTPException,))
    if len(raw) > limit:
        raise BadRequest(413, f"body larger than {limit} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(400, "body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "body must be a JSON object")
    return body


def _only_args(*names: str) -> None:
    unknown = set(request.args) - set(names)
    if unknown:
        raise BadRequest(400, f"unknown query parameters: {', '.join(sorted(unknown)[:10])}")


def _flag_arg(name: str) -> bool:
    """A true/false query parameter, strictly: "dryRun=ture" must not mean a real run."""
    raw = request.args.get(name, "false").lower()
    if raw not in ("true", "1", "false", "0"):
        raise BadRequest(400, f"{name} must be true or false")
    return raw in ("true", "1")


def _page_args(allowed: tuple[str, ...], own: tuple[str, ...] = ()) -> dict[str, Any]:
    """The query parameters passed on to a service, checked. A name the route does not
    know is refused: a misspelt filter would otherwise widen the answer without a word.
    ``own`` are the gateway's own parameters (read by the route, not passed on)."""
    _only_args(*allowed, *own)
    params: dict[str, Any] = {k: request.args[k] for k in allowed if k in request.args}
    if "path_prefix" in params:
        # The client's bytes (a Latin-1 folder from an old PC), sent on exactly: the
        # service decodes file names as os.fsdecode does.
        params["path_prefix"] = os.fsencode(query_paths(request.query_string)["path_prefix"])
        if len(params["path_prefix"]) > PATH_MAX:
            raise BadRequest(400, f"path_prefix is longer than {PATH_MAX} bytes")
    for key in ("page", "size"):
        if key in params and not _WHOLE.fullmatch(params[key]):
            raise BadRequest(400, f"{key} must be a positive whole number")
    if "min_similarity" in params:
        try:
            float(params["min_similarity"])
        except ValueError:
            raise BadRequest(400, "min_similarity must be a number") from None
    return params


def _cached(kind: str, compute) -> Response:
    """Per-user, per-data-version cache of a 200 answer; errors are never stored."""
    # The raw query string, not request.args: two folder names that differ only in bytes
    # that are not UTF-8 must not share an entry.
    version = version_or_none()
    key = f"v{version}:u:{g.user['id']}:{kind}:" + digest(request.path, request.query_string)
    # Redis not answering: the answer is computed afresh, and not kept
    hit = None if version is None else get_many_or_none(key)[0]
    if hit is not None:
        resp = jsonify(hit)
        resp.headers["X-Twinlens-Cache"] = "hit"
        return resp
    status, body = compute()
    if status == 200 and version is not None:
        set_many_if_up({key: body}, current_app.config["LIST_TTL"])
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _member_assets(objs: list[dict[str, Any]]) -> dict[str, enrich.Assets]:
    if current_app.config["SETTINGS"].local_mode:
        return {}
    members = [(m.get("path"), m.get("sha1")) for o in objs for m in o.get("members") or []]
    return enrich.find_assets(members, {}, version_or_none())


def _with_asset_ids(objs: list[dict[str, Any]], primary_field: str) -> None:
    """Each member's live Immich asset (``assetId``) and, when Immich has it only in its
    trash, that asset (``trashedAssetId``): "in Immich's trash" is not "not in Immich"."""
    found = _member_assets(objs)
    for o in objs:
        for m in o.get("members") or []:
            assets = found.get(m.get("path"), enrich.NO_ASSETS)
            m["assetId"] = assets.live
            m["trashedAssetId"] = None if assets.live else assets.trashed
        o[primary_field + "AssetId"] = found.get(o.get(primary_field), enrich.NO_ASSETS).live


def _error_body(status: int, body: Any) -> tuple[int, Any]:
    msg = body.get("error") if isinstance(body, dict) else None
    return status, {"message": msg or f"error {status}", "statusCode": status}


# --- who am I -----------------------------------------------------------------------------


@bp.get("/me")
@require_user("user.read", admin=False)
def me() -> Response:
    settings = current_app.config["SETTINGS"]
    # Whether the rest of /api/twinlens/ will answer this user (the UI says why if not).
    can_review = bool(g.user.get("isAdmin")) or not settings.admin_only
    return jsonify({"user": g.user, "localMode": settings.local_mode, "canReview": can_review})


# --- groups -------------------------------------------------------------------------------


def _service_json(
    service: str,
    path: str,
    primary_field: str,
    cache_name: str,
    params: dict[str, Any] | None = None,
    paged: bool = False,
) -> Response:
    """A cached answer of a Twinlens service with Immich asset ids added to its groups."""

    def compute():
        status, body = call(service, "GET", path, params=params)
        if status != 200:
            return _error_body(status, body)
        _with_asset_ids((body.get("items") or []) if paged else [body], primary_field)
        return 200, body

    return _cached(cache_name, compute)


@bp.get("/groups")
@require_user("stack.read")
def groups() -> Response:
    params = _page_args(("type", "path_prefix", "page", "size"))
    return _service_json("grouping", "/groups", "primary", "groups", params, paged=True)


@bp.get("/files/errors")
@require_user("asset.read")
def file_errors() -> Response:
    """The library's files read with an error (unreadable, truncated, skipped), paged."""
    status, body = call(
        "grouping", "GET", "/files/errors", params=_page_args(("path_prefix", "page", "size"))
    )
    if status != 200:
        return jsonify(_error_body(status, body)[1]), status
    return jsonify(body)


@bp.get("/roots")
@require_user("library.read")
def roots() -> Response:
    """The library roots (the grouping API's list): what the UI takes a folder under; the
    demo library `twinlens up` generated, none given, with ``"demo": true``."""
    _only_args()
    status, body = call("grouping", "GET", "/roots")
    if status != 200:
        return jsonify(_error_body(status, body)[1]), status
    # The demo is scanned as its resolved path; a string compare (no stat of a library
    # root: a share that hangs must not hang this list)
    demo = os.path.realpath(current_app.config["SETTINGS"].data_dir / DEMO_LIBRARY)
    for item in body.get("items") or []:
        if isinstance(item, dict) and item.get("path") == demo:
            item["demo"] = True
    return jsonify(body)


@bp.get("/groups/<group_id>")
@require_user("stack.read")
def group(group_id: str) -> Response:
    return _service_json("grouping", f"/groups/{_segment(group_id)}", "primary", "group")


def _paths_arg(body: dict[str, Any], required: bool) -> list[str] | None:
    paths = body.get("paths")
    if "paths" not in body and not required:  # (an explicit null must not widen a split)
        return None
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise BadRequest(400, "paths must be a list of file paths")
    return paths


def _unknown_fields(body: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise BadRequest(400, f"unknown fields: {', '.join(extra)}")


def _corrected(status: int, body: Any, expected: int) -> tuple[int, Any] | None:
    """An error answer of a correction, or None when the service made it."""
    if status != expected:
        return _error_body(status, body)
    # The grouping API bumps the data version itself; bumping here too makes the
    # caller's next read fresh even when the two do not share a cache (a stale
    # answer after a user's own correction would look like the correction failed).
    changed()
    return None


@bp.post("/groups/<group_id>/split")
@require_user("stack.update")
def split_group(group_id: str) -> Response:
    """Take ``paths`` out of the group (each on its own), or dissolve it (no ``paths``).
    Later scans respect it. Answers the groups the former members are in now."""
    body = json_body()
    _unknown_fields(body, {"paths"})
    paths = _paths_arg(body, required=False)
    if paths == []:
        raise BadRequest(400, "paths is empty: name the files to split off, or omit it to dissolve")
    status, answer = call(
        "grouping",
        "POST",
        f"/groups/{_segment(group_id)}/split",
        json={"paths": paths} if paths else {},
    )
    failed = _corrected(status, answer, 200)
    if failed:
        return jsonify(failed[1]), failed[0]
    groups = answer.get("groups") or []
    _with_asset_ids(groups, "primary")
    return jsonify({"groups": groups})


@bp.post("/groups/merge")
@require_user("stack.create")
def merge_groups() -> Response:
    """Put ``paths`` (two or more) into one ``manual`` group, ``primary`` optional."""
    body = json_body()
    _unknown_fields(body, {"paths", "primary"})
    paths = _paths_arg(body, required=True)
    request_body: dict[str, Any] = {"paths": paths}
    if body.get("primary") is not None:
        if not isinstance(body["primary"], str):
            raise BadRequest(400, "primary must be a file path")
        request_body["primary"] = body["primary"]
    status, group = call("grouping", "POST", "/groups/merge", json=request_body)
    failed = _corrected(status, group, 201)
    if failed:
        return jsonify(failed[1]), failed[0]
    _with_asset_ids([group], "primary")
    return jsonify(group), 201


# --- stacks in Immich ---------------------------------------------------------------------


def _stack_one(group_id: Any, dry_run: bool, expect: Any = None) -> tuple[int, dict[str, Any]]:
    if not isinstance(group_id, str) or not group_id:
        raise BadRequest(400, "id must be a non-empty string")
    if expect is not None and (
        not isinstance(expect, list) or not all(isinstance(a, str) for a in expect)
    ):
        raise BadRequest(400, "expectAssetIds must be a list of asset ids")
    if current_app.config["SETTINGS"].local_mode:
        raise BadRequest(409, "stacking needs Immich, and local mode has none")
    status, group = call("grouping", "GET", f"/groups/{_segment(group_id)}")
    if status != 200:
        return _error_body(status, group)
    members = [(m.get("path"), m.get("sha1")) for m in stacking.stackable(group)]
    try:  # afresh, not from the cache: an asset trashed in Immich a moment ago is no cover
        found = enrich.find_assets(members, {}, version_or_none(), strict=True)
        ids = {p: a.live for p, a in found.items()}
        assets, stacks = stacking.read(list(dict.fromkeys(a for a in ids.values() if a)))
    except enrich.AssetLookupFailed as exc:
        return exc.status, exc.body
    except stacking.ImmichAnswer as exc:
        return exc.status, exc.body
    result = stacking.plan(group, ids, assets, stacks)
    result["dryRun"] = dry_run
    if result["outcome"] == "skip":
        return 409, {**result, "message": result["reason"], "statusCode": 409}
    if expect is not None and result.get("assetIds", expect) != expect:
        # Not what the dry run the user confirmed showed (a member joined, a RAW was
        # indexed, a stack was made in Immich meanwhile): nothing is stacked unseen.
        message = "this group changed since its dry run: look at it again"
        return 409, {**result, "outcome": "skip", "reasonCode": "changed", "reason": message,
                     "message": message, "statusCode": 409}  # fmt: skip
    result["created"] = False
    if result["outcome"] == "stacked" or dry_run:
        return 200, result
    try:
        resp = as_caller("POST", "stacks", json={"assetIds": result["assetIds"]})
    except requests.RequestException as exc:
        status, err = upstream_failure(exc)
        message = f"{err['message']}; Immich may have stacked them: look again"
        return status, {**result, "message": message, "statusCode": status}
    if resp.status_code != 201:
        status, body = immich_refusal_of(resp)
        status = 502 if status >= 500 else status
        return status, {**result, **(body if isinstance(body, dict) else {}), "statusCode": status}
    try:
        made = resp.json()
        got = [a.get("id") for a in made.get("assets") or []]
    except (ValueError, AttributeError):
        made, got = {}, []
    done = {**result, "outcome": "stacked", "created": True, "stackId": made.get("id"),
            "coverAssetId": made.get("primaryAssetId")}  # fmt: skip
    mine = {m["assetId"] for m in result["members"] if m["assetId"]}
    outside = [a for a in got if a not in mine]
    if outside:
        # A photo made the cover of another stack between the reading and the stacking
        # brought that stack along: say so, Immich's unstack is the way back.
        done["outside"] = outside
        done["message"] = (
            f"Immich also stacked {len(outside)} photo(s) outside this group (a stack made "
            "in Immich meanwhile): look at the stack in Immich"
        )
    return 200, done


def _stack_item(group_id: Any, dry_run: bool, expect: Any) -> tuple[int, dict[str, Any]]:
    try:
        return _stack_one(group_id, dry_run, expect)
    except (ServiceError, BadRequest) as exc:
        return exc.status, {"message": exc.message}


@bp.post("/groups/<group_id>/stack")
@require_user("stack.create")
def stack_group(group_id: str) -> Response:
    """Stack the group's photos in Immich, its primary the cover (``dryRun``: say what
    would happen). 409 with the reason when it should not be stacked."""
    body = json_body()
    _unknown_fields(body, {"dryRun", "expectAssetIds"})
    status, result = _stack_one(group_id, _dry_run(body), body.get("expectAssetIds"))
    return _answered(status, result)


@bp.post("/groups/stack")
@require_user("stack.create")
def stack_groups() -> Response:
    """Stack many groups (``ids``), each on its own: one that is skipped or fails does
    not stop the others, and each says what happened to it."""
    body = json_body()
    _unknown_fields(body, {"ids", "dryRun", "expectAssetIds"})
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids:
        raise BadRequest(400, "ids must be a non-empty list of group ids")
    if len(ids) > current_app.config["MAX_BULK_GROUPS"]:
        raise BadRequest(413, f"at most {current_app.config['MAX_BULK_GROUPS']} groups per call")
    expect = body.get("expectAssetIds", {})
    if not isinstance(expect, dict):
        raise BadRequest(400, "expectAssetIds must map group ids to their dry run's assetIds")
    dry_run = _dry_run(body)
    results = []
    for group_id in dict.fromkeys(i if isinstance(i, str) else repr(i) for i in ids):
        if group_id not in ids:  # not a string: refused alone, as the single route does
            results.append({"id": group_id, "status": 400, "message": "id must be a string"})
            continue
        status, result = _stack_item(group_id, dry_run, expect.get(group_id))
        results.append({"id": group_id, "status": status, **result})
    return _bulk_answer(dry_run, results)


# --- duplicates ---------------------------------------------------------------------------


@bp.get("/duplicates")
@require_user("duplicate.read")
def duplicates() -> Response:
    params = _page_args(("type", "status", "min_similarity", "path_prefix", "page", "size"))
    return _service_json("dedup", "/duplicates", "keep", "dups", params, paged=True)


@bp.get("/duplicates/<dup_id>")
@require_user("duplicate.read")
def duplicate(dup_id: str) -> Response:
    return _service_json("dedup", f"/duplicates/{_segment(dup_id)}", "keep", "dup")


@bp.get("/stats")
@require_user("duplicate.read")
def stats() -> Response:
    def compute():
        status, dedup = call("dedup", "GET", "/stats")
        if status != 200:
            return _error_body(status, dedup)
        status, grouped = call("grouping", "GET", "/groups", params={"size": 1})
        if status != 200:
            return _error_body(status, grouped)
        return 200, {"duplicates": dedup, "groups": {"total": grouped.get("total")}}

    return _cached("stats", compute)


# --- resolution ---------------------------------------------------------------------------


def _immich_trash_on() -> bool:
    """Whether Immich keeps what it deletes in a trash (``GET /api/server/features``),
    asked once per request: with it off, a "trash" is a deletion at Immich's next clean-up."""
    if "immich_trash_on" in g:
        return bool(g.immich_trash_on)
    try:
        resp = as_caller("GET", "server/features")
    except requests.RequestException as exc:
        status, err = upstream_failure(exc)
        raise resolve.PlanError(status, err["message"]) from None
    try:
        on = resp.json().get("trash") if resp.status_code == 200 else None
    except (ValueError, AttributeError):
        on = None
    if not isinstance(on, bool):
        raise resolve.PlanError(
            502, f"Immich did not say whether its trash is on ({resp.status_code})"
        )
    g.immich_trash_on = on
    return on


def _resolve_one(
    dup_id: str, keep: Any, action: str, dry_run: bool, expect_trash: Any = None
) -> tuple[int, dict[str, Any]]:
    if not isinstance(dup_id, str) or not dup_id:
        raise resolve.PlanError(400, "id must be a non-empty string")
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise resolve.PlanError(400, "keep must be a list of member paths or asset ids")
    if expect_trash is not None and (
        not isinstance(expect_trash, list) or not all(isinstance(p, str) for p in expect_trash)
    ):
        raise resolve.PlanError(400, "expectTrash must be a list of member paths")
    quoted = _segment(dup_id)
    status, dup = call("dedup", "GET", f"/duplicates/{quoted}")
    if status != 200:
        return _error_body(status, dup)
    local = current_app.config["SETTINGS"].local_mode
    members = [(m.get("path"), m.get("sha1")) for m in dup.get("members") or []]
    try:
        found = {} if local else enrich.find_assets(members, {}, version_or_none(), strict=True)
    except enrich.AssetLookupFailed as exc:
        return exc.status, exc.body
    ids = {p: a.live for p, a in found.items()}
    # Members whose asset Immich has only in its trash: never a copy to keep
    in_trash = {p: a.trashed for p, a in found.items() if a.trashed and not a.live}
    same = {p: a.same_bytes for p, a in found.items()}
    result = resolve.plan(dup, keep, action, ids, in_trash, same)
    result["dryRun"] = dry_run
    planned = {t["path"] for t in result["trash"]}
    if expect_trash is not None and (
        planned - set(expect_trash) or set(expect_trash) - planned - set(result["inImmichTrash"])
    ):
        # The group changed since the dry run the user confirmed (a scan added a copy):
        # nothing is trashed that was not shown. One shown that is in Immich's trash by
        # now (trashed there, or by an earlier group of the same bulk request) is done.
        return 409, {
            **result,
            "message": "this group changed since its dry run: look at it again",
            "statusCode": 409,
        }
    if action == "trash" and local and result["notInImmich"]:
        raise resolve.PlanError(
            409, "moving files to a trash needs Immich; local mode can only record not_duplicate"
        )
    # Left out because Immich holds it only as the very asset a kept copy is (both found
    # as one upload) is a decision with nothing to move; any other is "not in Immich"
    kept_own = {k["assetId"] for k in result["keep"]} - {None}
    absent = [p for p in result["notInImmich"] if ids.get(p) not in kept_own]
    if action == "trash" and absent and not result["trash"]:
        # Recorded, the group would leave the list with every copy still there
        raise resolve.PlanError(
            409,
            "none of the copies to trash is in Immich for you (not indexed yet, or another "
            "user's), so nothing would move: " + ", ".join(absent[:5]),
        )
    if action == "trash" and result["trash"] and not _immich_trash_on():
        raise resolve.PlanError(
            409,
            "Immich's trash is turned off (Administration > Settings > Trash), so Immich would "
            "delete these files for good at its next clean-up, from disk too for an external "
            "library: turn the trash on to resolve by trashing",
        )
    if dry_run:  # the same refusals as the real run: a dry run says what would happen
        return 200, result
    return _carry_out(quoted, result, members)


def _carry_out(
    quoted: str, result: dict[str, Any], members: list[tuple[Any, Any]]
) -> tuple[int, dict[str, Any]]:
    """Record the decision ``result`` plans, then trash what it trashes.

    The decision first: the dedup API records one decision per group (409 for the second
    of two reviewers), so two people resolving one group differently never both trash,
    and a recorded decision is what undo restores from."""
    action = result["action"]
    decision: dict[str, Any] = {
        "keep": [k["path"] for k in result["keep"]],
        "action": action,
        # What was planned on: a copy that joined since is a new question, not decided
        "members": [p for p, _sha1 in members if p],
    }
    if action == "trash":
        # What goes to the trash, so that undo brings back exactly that, whatever the
        # group holds by then (a member may leave it, another join)
        sha1_of = dict(members)
        decision["trashed"] = [
            {"path": t["path"], "sha1": sha1_of.get(t["path"])} for t in result["trash"]
        ]
    status, recorded = _record(quoted, decision)
    if status >= 300:
        return _error_body(status, recorded)
    adopted = isinstance(recorded, dict) and bool(recorded.pop("adopted", False))
    changed()
    result["recorded"] = recorded
    return _trash(quoted, result, recorded, adopted)


def _trash(
    quoted: str, result: dict[str, Any], recorded: Any, adopted: bool
) -> tuple[int, dict[str, Any]]:
    """Send what ``result`` trashes to Immich's trash once its decision is recorded; when
    Immich surely moved nothing, withdraw a decision this request made (``adopted``: one
    found after a lost answer, perhaps another reviewer's, is never withdrawn)."""
    trash_ids = list(dict.fromkeys(t["assetId"] for t in result["trash"]))
    if not trash_ids:
        return 200, result
    try:
        resp = as_caller("DELETE", "assets", json={"ids": trash_ids, "force": False})
    except requests.RequestException as exc:
        if isinstance(exc, requests.ConnectionError) and _never_sent(exc) and not adopted:
            # Immich cannot have acted: the decision goes too, as for a refusal, and the
            # group is open again.
            return _withdrawn(quoted, recorded, result, upstream_failure(exc))
        # Immich may have trashed them before the answer was lost: the decision stays,
        # so undo restores whatever did go.
        status, err = upstream_failure(exc)
        message = f"{err['message']}; the decision is recorded: undo it to restore"
        return status, {**result, "message": message, "statusCode": status}
    if resp.status_code in (200, 204):
        return 200, result
    if resp.status_code >= 500:
        # Immich failed, perhaps after trashing them (an error while it announced the
        # trash): as for a lost answer, the decision stays, so undo restores what went.
        status = 504 if resp.status_code == 504 else 502
        message = (
            f"Immich answered {resp.status_code} to the trash; the decision is recorded: "
            "undo it to restore whatever went"
        )
        return status, {**result, "message": message, "statusCode": status}
    # Immich refused (e.g. an API key without asset.delete): nothing moved, so the
    # decision goes too and the group is open again.
    refusal = immich_refusal_of(resp)
    if adopted:  # perhaps another reviewer's: not this request's to withdraw
        status, body = refusal
        note = "Immich refused the trash; the decision found recorded for this group stays"
        return status, {**result, **(body if isinstance(body, dict) else {}), "message": note}
    return _withdrawn(quoted, recorded, result, refusal)


def _record(quoted: str, decision: dict[str, Any]) -> tuple[int, Any]:
    """Record ``decision`` through the dedup API. When its answer is a failure (5xx, lost,
    timed out) the decision may stand all the same (committed before the answer was
    lost): the group is read again, and a decision on it with the same action and kept
    copies is taken as recorded, so the trash follows it rather than leaving a group
    "resolved" with nothing moved that a retry could no longer resolve."""
    try:
        status, recorded = call("dedup", "POST", f"/duplicates/{quoted}/resolution", json=decision)
    except ServiceError as exc:
        status, recorded = exc.status, {"error": exc.message}
    if status < 500 or status == 503:  # 503: busy, refused before anything was done
        return status, recorded
    try:
        again, dup = call("dedup", "GET", f"/duplicates/{quoted}")
    except ServiceError:
        return status, recorded
    shown = dup.get("resolution") if again == 200 and isinstance(dup, dict) else None

    def paths(items: Any) -> list[Any]:
        return sorted(t.get("path") for t in items or [] if isinstance(t, dict))

    if (
        isinstance(shown, dict)
        and shown.get("action") == decision["action"]
        and sorted(shown.get("keep") or []) == sorted(decision["keep"])
        and paths(shown.get("trashed")) == paths(decision.get("trashed"))
    ):
        # Ours, or another reviewer's to the letter (then its trash is this one's): never
        # withdrawn by this request, whose own recording is not certain
        return 201, {**dup, "adopted": True}
    return status, recorded


def _never_sent(exc: requests.ConnectionError) -> bool:
    """Whether the request surely never reached Immich: no connection was made (refused,
    a name that does not resolve, a connect timeout). A connection that broke later may
    have carried it."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _withdrawn(
    quoted: str, recorded: Any, result: dict[str, Any], refusal: tuple[int, Any]
) -> tuple[int, Any]:
    """Immich moved nothing: withdraw the decision just recorded (the group is open
    again) and answer Immich's refusal, or say the decision stands if it cannot go."""
    try:
        status, after = call("dedup", "DELETE", _withdraw_path(quoted, _decision_of(recorded)))
    except ServiceError as exc:
        status, after = exc.status, {"error": exc.message}
    changed()
    if status != 200:
        msg = after.get("error") if isinstance(after, dict) else None
        return 502, {
            **result,
            "message": f"Immich did not trash the files ({refusal[0]}) and the decision "
            f"recorded for it could not be withdrawn: {msg or status}",
            "statusCode": 502,
        }
    return refusal


def _in_trash(a: enrich.Assets) -> str | None:
    """The asset in Immich's trash that stands for a file: its own, else an upload of
    its bytes (what stood for it when it was trashed, the file indexed only since)."""
    return a.trashed or a.trashed_bytes


def _answered(status: int, body: dict[str, Any]) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _bulk_answer(dry_run: bool, results: list[dict[str, Any]]) -> Response:
    """A bulk route's answer: each group's own status, and how many went through."""
    ok = sum(1 for r in results if r["status"] == 200)
    return jsonify(
        {"dryRun": dry_run, "succeeded": ok, "failed": len(results) - ok, "results": results}
    )


def _dry_run(body: dict[str, Any]) -> bool:
    value = body.get("dryRun", False)
    if not isinstance(value, bool):
        raise BadRequest(400, "dryRun must be true or false")
    return value


@bp.post("/duplicates/<dup_id>/resolve")
@require_user("duplicate.delete")
def resolve_duplicate(dup_id: str) -> Response:
    body = json_body()
    # A misspelt "dryRun" must not turn a dry run into a real one.
    _unknown_fields(body, {"keep", "action", "dryRun", "expectTrash"})
    status, result = _resolve_one(
        dup_id,
        body.get("keep", []),
        body.get("action", "trash"),
        _dry_run(body),
        body.get("expectTrash"),
    )
    return _answered(status, result)


@bp.post("/duplicates/resolve")
@require_user("duplicate.delete")
def resolve_bulk() -> Response:
    body = json_body()
    items = body.get("groups")
    if not isinstance(items, list) or not items:
        raise BadRequest(400, "groups must be a non-empty list of {id, keep, action}")
    if len(items) > current_app.config["MAX_BULK_GROUPS"]:
        raise BadRequest(413, f"at most {current_app.config['MAX_BULK_GROUPS']} groups per call")
    _unknown_fields(body, {"groups", "dryRun"})
    dry_run = _dry_run(body)
    # Each group is planned before it runs: one file can be in two groups (byte copies
    # inside a look-alike group), and a request that keeps it in one and trashes it in
    # the other contradicts itself. The later of the two is refused; the others run
    # exactly as planned (their plan's trash list is what the real run must still find).
    results: list[dict[str, Any]] = []
    kept: dict[str, str] = {}  # path -> id of the group that keeps it
    trashed: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            results.append({"status": 400, "message": "each group must be an object"})
            continue
        try:
            _unknown_fields(item, {"id", "keep", "action", "expectTrash"})
        except BadRequest as exc:  # this group only: the others still go ahead
            results.append({"id": item.get("id"), "status": exc.status, "message": exc.message})
            continue
        status, result = _resolve_item(item, dry_run=True)
        if status == 200 and result["action"] == "trash":  # "not_duplicate" moves nothing
            clash = _clash(result, kept, trashed)
            if clash:
                status, result = 409, {**result, "message": clash, "statusCode": 409}
            else:
                kept.update((k["path"], item.get("id")) for k in result["keep"])
                trashed.update((t["path"], item.get("id")) for t in result["trash"])
        if status != 200 and "dryRun" in result:
            result["dryRun"] = dry_run  # refused while planning: nothing was done either way
        if status == 200 and not dry_run:
            expect = [t["path"] for t in result["trash"]]
            status, result = _resolve_item({**item, "expectTrash": expect}, dry_run=False)
        results.append({"id": item.get("id"), "status": status, **result})
    return _bulk_answer(dry_run, results)


def _resolve_item(item: dict[str, Any], dry_run: bool) -> tuple[int, dict[str, Any]]:
    try:
        return _resolve_one(
            item.get("id"),
            item.get("keep", []),
            item.get("action", "trash"),
            dry_run,
            item.get("expectTrash"),
        )
    except (resolve.PlanError, ServiceError, BadRequest) as exc:
        return exc.status, {"message": exc.message}


def _clash(plan: dict[str, Any], kept: dict[str, str], trashed: dict[str, str]) -> str | None:
    """Why ``plan`` contradicts the groups planned before it in one request, if it does."""
    for t in plan["trash"]:
        if t["path"] in kept:
            return f"it would trash {t['path']}, which group {kept[t['path']]} keeps"
    for k in plan["keep"]:
        if k["path"] in trashed:
            return f"it keeps {k['path']}, which group {trashed[k['path']]} would trash"
    return None


def _decision_of(dup: Any) -> Any:
    """The id of the decision a dedup answer shows (None if it shows none)."""
    shown = dup.get("resolution") if isinstance(dup, dict) else None
    return shown.get("id") if isinstance(shown, dict) else None


def _withdraw_path(quoted: str, decision_id: Any) -> str:
    """The dedup API's withdraw, naming the decision when its id is known."""
    path = f"/duplicates/{quoted}/resolution"
    return f"{path}?decision={decision_id}" if isinstance(decision_id, int) else path


@bp.delete("/duplicates/<dup_id>/resolution")
@require_user("duplicate.delete")
def undo_resolution(dup_id: str) -> Response:
    """Undo a decision: the files it sent to Immich's trash come back from there (with
    the caller's own credentials) and the group is open again. ``?dryRun=true`` only
    says what would happen."""
    _only_args("dryRun")
    dry_run = _flag_arg("dryRun")
    quoted = _segment(dup_id)
    status, dup = call("dedup", "GET", f"/duplicates/{quoted}")
    if status != 200:
        return jsonify(_error_body(status, dup)[1]), status
    # An open group's previous decision (a new copy joined and reopened the group) can be
    # undone too: what it sent to Immich's trash would otherwise stay there to be purged
    reopened = dup.get("status") == "open"
    decision = dup.get("previous_resolution" if reopened else "resolution") or {}
    if reopened and not decision:
        raise BadRequest(409, f"duplicate group {dup_id} is open: there is no decision to undo")
    action = decision.get("action")
    kept = set(decision.get("keep") or [])
    recorded = isinstance(decision.get("trashed"), list)
    if action != "trash":
        back = []  # "not_duplicate" moved nothing
    elif recorded:
        back = decision["trashed"]  # what it moved, recorded with it
    else:  # a decision recorded before that was kept: the members not kept, as they are now
        back = [m for m in dup.get("members") or [] if m.get("path") and m["path"] not in kept]
    local = current_app.config["SETTINGS"].local_mode
    try:
        found = (
            enrich.find_assets(
                [(m["path"], m.get("sha1")) for m in back], {}, version_or_none(), strict=True
            )
            if back and not local
            else {}
        )
    except enrich.AssetLookupFailed as exc:  # nothing changed: the decision stays
        return jsonify(exc.body), exc.status
    # The copy in Immich's trash is the one to bring back: the file's own, else an upload
    # of its bytes that stood for it when it was trashed (the file indexed by Immich only
    # since); a live one (already restored in Immich) is harmless to name again.
    ids = {p: _in_trash(a) or a.live for p, a in found.items()}
    if not recorded and reopened:
        # Guessed from today's members, which include the copy that reopened the group:
        # only what is in Immich's trash went there
        back = [m for m in back if _in_trash(found.get(m["path"], enrich.NO_ASSETS))]
    result: dict[str, Any] = {
        "id": dup.get("id", dup_id),
        "action": action,
        "restore": [
            {"path": m["path"], "assetId": ids[m["path"]]} for m in back if ids.get(m["path"])
        ],
        "notInImmich": [m["path"] for m in back if not ids.get(m["path"])],
        "dryRun": dry_run,
        "restored": None,
        "duplicate": None,
    }
    if dry_run:
        return jsonify(result)
    if result["restore"]:
        back_ids = [r["assetId"] for r in result["restore"]]
        try:
            resp = as_caller("POST", "trash/restore/assets", json={"ids": back_ids})
        except requests.RequestException as exc:
            return upstream_error(exc)
        if resp.status_code != 200:
            # Immich's refusal (e.g. an API key without asset.delete): nothing changed.
            status, body = immich_refusal_of(resp)
            return jsonify(body), status
        body = resp.json() if resp.content else {}
        result["restored"] = body.get("count") if isinstance(body, dict) else None
    try:
        # Only the decision read above: one a second reviewer recorded meanwhile keeps
        # its record of what it trashed (409, and what came back stays back)
        status, after = call("dedup", "DELETE", _withdraw_path(quoted, decision.get("id")))
    except ServiceError as exc:
        if result["restored"] is None:
            raise
        status, after = exc.status, {"error": exc.message}
    if status != 200:
        msg = after.get("error") if isinstance(after, dict) else None
        if result["restored"] is None:
            return jsonify(_error_body(status, after)[1]), status
        # 409: the group was decided again meanwhile; its new decision stays recorded
        status = 409 if status == 409 else 502
        return jsonify(
            {
                "message": "restored from Immich's trash but the decision was not "
                f"withdrawn: {msg or status}",
                "statusCode": status,
                **result,
            }
        ), status
    changed()
    _with_asset_ids([after], "keep")
    result["duplicate"] = after
    return jsonify(result)


# --- jobs ---------------------------------------------------------------------------------


def _service_arg(value: Any) -> tuple[str, ...]:
    if value in (None, "all", "both"):
        return SERVICES
    if value in SERVICES:
        return (value,)
    raise BadRequest(400, "service must be grouping, dedup or all")


@bp.post("/jobs")
@require_user("job.create")
def start_scan() -> Response:
    body = json_body()
    _unknown_fields(body, {"path", "full", "service"})
    scan: dict[str, Any] = {}
    if "path" in body:
        if not isinstance(body["path"], str):
            raise BadRequest(400, "path must be a string")
        try:
            scan["path"] = confine(body["path"], current_app.config["SETTINGS"].library_roots)
        except PathOutsideRoots as exc:
            raise BadRequest(400, str(exc)) from None
    if "full" in body:
        if not isinstance(body["full"], bool):
            raise BadRequest(400, "full must be true or false")
        scan["full"] = body["full"]
    # No path: every library root (the services want a path when there are several, and
    # "Scan now" means the whole library)
    roots = [str(r) for r in current_app.config["SETTINGS"].library_roots]
    targets = [scan] if "path" in scan or len(roots) < 2 else [{**scan, "path": r} for r in roots]
    jobs, worst = [], 200
    for service in _service_arg(body.get("service")):
        for target in targets:
            try:
                status, job = call(service, "POST", "/scans", json=target)
            except ServiceError as exc:  # failed or unreachable
                status, job = exc.status, {"error": exc.message}
            if status >= 400:
                # the scans already started run on: say which, beside the refusal
                refused = _error_body(status, job)[1]
                return jsonify({**refused, "jobs": jobs} if jobs else refused), status
            # Services on one database (as deployed) both answer with the one scan
            if all(j.get("id") != job.get("id") for j in jobs):
                jobs.append({"service": service, **job})
            worst = 202 if status == 202 else worst
    return jsonify({"jobs": jobs}), worst


_MAX_JOBS_PAGE = 1000  # the services' own largest page


@bp.get("/jobs")
@require_user("job.read")
def list_jobs() -> Response:
    params = _page_args(("state", "page", "size"), own=("service",))
    services = _service_arg(request.args.get("service"))
    page, size = int(params.pop("page", 1)), int(params.pop("size", 50))
    if page < 1 or not 1 <= size <= _MAX_JOBS_PAGE:
        raise BadRequest(400, f"page must be >= 1 and size 1 to {_MAX_JOBS_PAGE}")
    if len(services) == 1:
        status, body = call(
            services[0], "GET", "/jobs", params={**params, "page": page, "size": size}
        )
        if status != 200:
            return jsonify(_error_body(status, body)[1]), status
        items = [{"service": services[0], **job} for job in body.get("items") or []]
        return jsonify({"items": items, "page": page, "size": size, "total": body.get("total")})
    # Both services: page ``page`` of their merged, newest-first list needs the first
    # page * size jobs of each. They may share one database, and then list the same jobs:
    # each job is listed once.
    want = page * size
    if want > _MAX_JOBS_PAGE:
        raise BadRequest(
            400, f"page * size over {_MAX_JOBS_PAGE}: page further with service=grouping or dedup"
        )
    merged: dict[str, dict[str, Any]] = {}
    complete = True
    for service in services:
        status, body = call(service, "GET", "/jobs", params={**params, "page": 1, "size": want})
        if status != 200:
            return jsonify(_error_body(status, body)[1]), status
        got = body.get("items") or []
        complete = complete and (body.get("total") or 0) <= len(got)
        for job in got:
            merged.setdefault(job["id"], {"service": service, **job})
    ordered = sorted(
        merged.values(), key=lambda j: (j.get("created_at") or "", j["id"]), reverse=True
    )
    # The total is exact only when every service's whole list was read.
    total = len(merged) if complete else None
    items = ordered[(page - 1) * size : want]
    return jsonify({"items": items, "page": page, "size": size, "total": total})


@bp.get("/jobs/<service>/<job_id>")
@require_user("job.read")
def job(service: str, job_id: str) -> Response:
    return _job_call(service, job_id)


@bp.delete("/jobs/<service>/<job_id>")
@require_user("job.create")  # Immich's permission for starting and stopping its own jobs
def cancel_job(service: str, job_id: str) -> Response:
    return _job_call(service, job_id)


def _job_call(service: str, job_id: str) -> Response:
    if service not in SERVICES:
        raise BadRequest(404, "no such service")
    status, body = call(service, request.method, f"/jobs/{_segment(job_id)}")
    if status >= 400:
        return jsonify(_error_body(status, body)[1]), status
    return jsonify({"service": service, **body}), status


# --- thumbnails of library files ----------------------------------------------------------


@bp.get("/thumbnail")
@require_user("asset.view")
def thumbnail() -> Response:
    settings = current_app.config["SETTINGS"]
    _only_args("path", "size")
    # Decoded as file names are (os.fsdecode): %FF names the file whose name has that byte.
    path = query_paths(request.query_string).get("path", "")
    size = request.args.get("size", str(current_app.config["THUMB_SIZE"]))
    if not _WHOLE.fullmatch(size) or not 16 <= int(size) <= 2048:
        raise BadRequest(400, "size must be a whole number between 16 and 2048")
    try:
        real = confine(path, settings.library_roots)
    except PathOutsideRoots as exc:
        raise BadRequest(400, str(exc)) from None
    root = root_of(real, settings.library_roots)
    if root is None:  # confine spells the answer under a root: never, but never open it
        raise BadRequest(400, "path is outside the library roots")
    if not os.path.isfile(real):
        raise BadRequest(404, "no such file")
    try:
        out = thumbs.thumbnail(
            real, int(size), settings.data_dir, settings.max_image_pixels,
            real_root=os.path.realpath(root),
        )  # fmt: skip
    except thumbs.ThumbnailError as exc:
        raise BadRequest(422, str(exc)) from None
    resp = send_file(out, mimetype="image/jpeg", conditional=True)
    # Asked again each time (a 304 while the file is unchanged): the URL names the file,
    # not its version, and a re-export over it must not show the old picture for a day
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp
