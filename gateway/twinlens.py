"""/api/twinlens/: groups, duplicates, stats, jobs, resolution, thumbnails.

Every route requires an Immich-authenticated user (``auth.require_user``), except in
local mode where there is no Immich, the gateway binds to loopback and needs no login.
Errors are ``{"message": ...}`` with 400 (malformed), 413 (too large), 404, 409, 502/504.
"""

from __future__ import annotations

import json
import os
from typing import Any

import requests
from flask import Blueprint, Response, current_app, g, jsonify, request, send_file

from core.paths import PathOutsideRoots, confine
from gateway import enrich, resolve, thumbs
from gateway.auth import require_user, upstream_error
from gateway.cache import bump_data_version, cache, data_version, digest
from gateway.errors import json_error
from gateway.services import ServiceError, call

bp = Blueprint("twinlens", __name__, url_prefix="/api/twinlens")

SERVICES = ("grouping", "dedup")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest) -> Response:
    return json_error(exc.status, exc.message)


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Response:
    return json_error(exc.status, exc.message)


@bp.errorhandler(resolve.PlanError)
def _plan_error(exc: resolve.PlanError) -> Response:
    return json_error(exc.status, exc.message)


def json_body() -> dict[str, Any]:
    limit = current_app.config["MAX_JSON_BODY"]
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(413, f"body larger than {limit} bytes")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise BadRequest(413, f"body larger than {limit} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "body must be a JSON object")
    return body


def _page_args(allowed: tuple[str, ...]) -> dict[str, str]:
    params = {k: request.args[k] for k in allowed if k in request.args}
    for key in ("page", "size"):
        if key in params and not params[key].isdigit():
            raise BadRequest(400, f"{key} must be a positive whole number")
    if "min_similarity" in params:
        try:
            float(params["min_similarity"])
        except ValueError:
            raise BadRequest(400, "min_similarity must be a number") from None
    return params


def _cached(kind: str, compute) -> Response:
    """Per-user, per-data-version cache of a 200 answer; errors are never stored."""
    key = f"v{data_version()}:u:{g.user['id']}:{kind}:" + digest(
        request.path, json.dumps(sorted(request.args.items()))
    )
    hit = cache.get(key)
    if hit is not None:
        resp = jsonify(hit)
        resp.headers["X-Twinlens-Cache"] = "hit"
        return resp
    status, body = compute()
    if status == 200:
        cache.set(key, body, timeout=current_app.config["LIST_TTL"])
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _member_ids(objs: list[dict[str, Any]]) -> dict[str, str | None]:
    if current_app.config["SETTINGS"].local_mode:
        return {}
    members = [(m.get("path"), m.get("sha1")) for o in objs for m in o.get("members") or []]
    return enrich.resolve_asset_ids(members, {}, data_version())


def _with_asset_ids(objs: list[dict[str, Any]], primary_field: str) -> None:
    ids = _member_ids(objs)
    for o in objs:
        for m in o.get("members") or []:
            m["assetId"] = ids.get(m.get("path"))
        o[primary_field + "AssetId"] = ids.get(o.get(primary_field))


def _error_body(status: int, body: Any) -> tuple[int, Any]:
    msg = body.get("error") if isinstance(body, dict) else None
    return status, {"message": msg or f"error {status}", "statusCode": status}


# --- who am I -----------------------------------------------------------------------------


@bp.get("/me")
@require_user
def me() -> Response:
    return jsonify({"user": g.user, "localMode": current_app.config["SETTINGS"].local_mode})


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
@require_user
def groups() -> Response:
    params = _page_args(("type", "path_prefix", "page", "size"))
    return _service_json("grouping", "/groups", "primary", "groups", params, paged=True)


@bp.get("/groups/<group_id>")
@require_user
def group(group_id: str) -> Response:
    return _service_json("grouping", f"/groups/{group_id}", "primary", "group")


# --- duplicates ---------------------------------------------------------------------------


@bp.get("/duplicates")
@require_user
def duplicates() -> Response:
    params = _page_args(("type", "status", "min_similarity", "page", "size"))
    return _service_json("dedup", "/duplicates", "keep", "dups", params, paged=True)


@bp.get("/duplicates/<dup_id>")
@require_user
def duplicate(dup_id: str) -> Response:
    return _service_json("dedup", f"/duplicates/{dup_id}", "keep", "dup")


@bp.get("/stats")
@require_user
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


def _resolve_one(dup_id: str, keep: Any, action: str, dry_run: bool) -> tuple[int, dict[str, Any]]:
    if not isinstance(dup_id, str) or not dup_id:
        raise resolve.PlanError(400, "id must be a non-empty string")
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise resolve.PlanError(400, "keep must be a list of member paths or asset ids")
    status, dup = call("dedup", "GET", f"/duplicates/{dup_id}")
    if status != 200:
        return _error_body(status, dup)
    local = current_app.config["SETTINGS"].local_mode
    ids = (
        {}
        if local
        else enrich.resolve_asset_ids(
            [(m.get("path"), m.get("sha1")) for m in dup.get("members") or []], {}, data_version()
        )
    )
    result = resolve.plan(dup, keep, action, ids)
    result["dryRun"] = dry_run
    if dry_run:
        return 200, result
    if action == "trash" and local and result["notInImmich"]:
        raise resolve.PlanError(
            409, "moving files to a trash needs Immich; local mode can only record not_duplicate"
        )
    trash_ids = [t["assetId"] for t in result["trash"]]
    if trash_ids:
        cfg = current_app.config
        try:
            resp = current_app.extensions["twinlens_http"].request(
                "DELETE",
                cfg["SETTINGS"].immich_url + "/api/assets",
                json={"ids": trash_ids, "force": False},
                headers=g.creds.headers,
                params=g.creds.params,
                timeout=(cfg["UPSTREAM_CONNECT_TIMEOUT"], cfg["SERVICE_TIMEOUT"]),
            )
        except requests.RequestException as exc:
            err = upstream_error(exc)
            return err.status_code, err.get_json()
        if resp.status_code not in (200, 204):
            try:
                body = resp.json()
            except ValueError:
                body = {"message": resp.text[:200]}
            return resp.status_code, body  # Immich's refusal (e.g. missing asset.delete)
    status, recorded = call(
        "dedup",
        "POST",
        f"/duplicates/{dup_id}/resolution",
        json={"keep": [k["path"] for k in result["keep"]], "action": action},
    )
    if status >= 300:
        msg = (recorded or {}).get("error") if isinstance(recorded, dict) else None
        return 502, {
            "message": f"trashed in Immich (restorable) but the decision was not "
            f"recorded: {msg or status}",
            "statusCode": 502,
            **result,
        }
    bump_data_version(current_app.config["SETTINGS"].cache_url)
    result["recorded"] = recorded
    return 200, result


@bp.post("/duplicates/<dup_id>/resolve")
@require_user
def resolve_duplicate(dup_id: str) -> Response:
    body = json_body()
    status, result = _resolve_one(
        dup_id, body.get("keep", []), body.get("action", "trash"), bool(body.get("dryRun", False))
    )
    resp = jsonify(result)
    resp.status_code = status
    return resp


@bp.post("/duplicates/resolve")
@require_user
def resolve_bulk() -> Response:
    body = json_body()
    items = body.get("groups")
    if not isinstance(items, list) or not items:
        raise BadRequest(400, "groups must be a non-empty list of {id, keep, action}")
    if len(items) > current_app.config["MAX_BULK_GROUPS"]:
        raise BadRequest(413, f"at most {current_app.config['MAX_BULK_GROUPS']} groups per call")
    dry_run = bool(body.get("dryRun", False))
    results = []
    for item in items:
        if not isinstance(item, dict):
            results.append({"status": 400, "message": "each group must be an object"})
            continue
        try:
            status, result = _resolve_one(
                item.get("id"), item.get("keep", []), item.get("action", "trash"), dry_run
            )
        except (resolve.PlanError, ServiceError) as exc:
            status, result = exc.status, {"message": exc.message}
        results.append({"id": item.get("id"), "status": status, **result})
    ok = sum(1 for r in results if r["status"] == 200)
    return jsonify(
        {"dryRun": dry_run, "succeeded": ok, "failed": len(results) - ok, "results": results}
    )


# --- jobs ---------------------------------------------------------------------------------


def _service_arg(value: Any) -> tuple[str, ...]:
    if value in (None, "all", "both"):
        return SERVICES
    if value in SERVICES:
        return (value,)
    raise BadRequest(400, "service must be grouping, dedup or all")


@bp.post("/jobs")
@require_user
def start_scan() -> Response:
    body = json_body()
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
    jobs, worst = [], 200
    for service in _service_arg(body.get("service")):
        status, job = call(service, "POST", "/scans", json=scan)
        if status >= 400:
            return jsonify(_error_body(status, job)[1]), status
        jobs.append({"service": service, **job})
        worst = 202 if status == 202 else worst
    return jsonify({"jobs": jobs}), worst


@bp.get("/jobs")
@require_user
def list_jobs() -> Response:
    params = _page_args(("state", "page", "size"))
    items = []
    for service in _service_arg(request.args.get("service")):
        status, body = call(service, "GET", "/jobs", params=params)
        if status != 200:
            return jsonify(_error_body(status, body)[1]), status
        items.extend({"service": service, **job} for job in body.get("items") or [])
    items.sort(key=lambda j: j.get("created_at") or "", reverse=True)
    return jsonify({"items": items})


@bp.route("/jobs/<service>/<job_id>", methods=["GET", "DELETE"])
@require_user
def job(service: str, job_id: str) -> Response:
    if service not in SERVICES:
        raise BadRequest(404, "no such service")
    status, body = call(service, request.method, f"/jobs/{job_id}")
    if status >= 400:
        return jsonify(_error_body(status, body)[1]), status
    return jsonify({"service": service, **body}), status


# --- thumbnails of library files ----------------------------------------------------------


@bp.get("/thumbnail")
@require_user
def thumbnail() -> Response:
    settings = current_app.config["SETTINGS"]
    path = request.args.get("path", "")
    size = request.args.get("size", str(current_app.config["THUMB_SIZE"]))
    if not size.isdigit() or not 16 <= int(size) <= 2048:
        raise BadRequest(400, "size must be a whole number between 16 and 2048")
    try:
        real = confine(path, settings.library_roots)
    except PathOutsideRoots as exc:
        raise BadRequest(400, str(exc)) from None
    if not os.path.isfile(real):
        raise BadRequest(404, "no such file")
    try:
        out = thumbs.thumbnail(real, int(size), settings.data_dir, settings.max_image_pixels)
    except thumbs.ThumbnailError as exc:
        raise BadRequest(422, str(exc)) from None
    resp = send_file(out, mimetype="image/jpeg", conditional=True, max_age=86400)
    resp.headers["Cache-Control"] = "private, max-age=86400"
    return resp
