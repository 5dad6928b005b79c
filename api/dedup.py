"""The dedup API (port 8001): duplicate groups, decisions, statistics, file lookup, runs.

Paths are absolute, as the library is mounted for Twinlens (``TWINLENS_PATH_MAP`` maps
Immich's paths to these). Names that are not UTF-8 travel as JSON ``\\udcXX`` escapes.
This service never touches a library file: the gateway carries out ``trash`` through
Immich (recoverable) and then records the decision here.

A full dedup pass is started with ``POST /dedup/runs {"full": true}``; ``POST /scans``
(shared with the grouping API) starts a catalog scan, whose finish runs an incremental
dedup pass over what changed.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from api.common import (
    BAD_REQUEST,
    ID_PARAM,
    LOOKUP_BODY,
    NOT_FOUND,
    PAGE_PARAMS,
    SHA1_HEX,
    ApiError,
    broker,
    check_id,
    choice_arg,
    db,
    float_arg,
    int_arg,
    json_body,
    json_content,
    lookup_request,
    only_args,
    only_fields,
    paging,
    prefix_arg,
    serialise,
    settings,
    str_list,
)
from api.jobs import view as job_view
from core import dataversion, jobs
from core.dedup import queries as Q
from core.dedup import service

bp = Blueprint("dedup", __name__)

MAX_KEEP = 10_000
# A decision names its group's members up to three times (keep, trashed, members): for a
# group of thousands of byte copies under long backup folders that is several MiB, past
# the APIs' 1 MiB body limit. Room for MAX_KEEP members of paths ~1,000 characters long.
RESOLUTION_MAX_BYTES = 32 << 20
TYPES = ("exact", "perceptual")


def _iso(value: Any) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def member_json(m: Q.MemberView) -> dict[str, Any]:
    return {
        "path": m.path,
        "file_id": m.file_id,
        "size": m.size,
        "width": m.width,
        "height": m.height,
        "taken_at": (m.taken_at.isoformat() + (m.taken_offset or "")) if m.taken_at else None,
        "make": m.make,
        "model": m.model,
        "similarity": round(m.similarity, 4),
        "sha1": m.sha1,
        "kind": m.kind,
        "format": m.format,
        "exact_group": m.exact_group,
        "missing": m.file_status != "present",
    }


def dup_json(v: Q.DupView) -> dict[str, Any]:
    return {
        "id": v.id,
        "type": v.type,
        "status": v.status,
        "similarity": round(v.similarity, 4),
        "keep": v.keep,
        "keep_reason": v.keeper_reason,
        "reclaimable_bytes": v.reclaimable,
        "members": [member_json(m) for m in v.members],
        "resolution": v.resolution,
        "previous_resolution": v.previous_resolution,
        "created_at": _iso(v.created_at),
        "updated_at": _iso(v.updated_at),
    }


def _one(group_id: str) -> dict[str, Any]:
    views = Q.dup_views(db(), [check_id(group_id, "duplicate group")])
    if not views:
        raise ApiError(404, f"no duplicate group {group_id}")
    return dup_json(views[0])


@bp.get("/duplicates")
def list_duplicates() -> Any:
    only_args("type", "status", "min_similarity", "path_prefix", "page", "size")
    page, size = paging()
    dup_type = choice_arg("type", TYPES)
    status = choice_arg("status", Q.STATUSES)
    min_sim = float_arg("min_similarity", None, 0.0, 1.0)
    prefix = prefix_arg()
    session = db()
    ids, total = Q.list_group_ids(
        session,
        dup_type=dup_type,
        status=status,
        min_similarity=min_sim,
        path_prefix=prefix,
        limit=size,
        offset=(page - 1) * size,
    )
    return jsonify(
        items=[dup_json(v) for v in Q.dup_views(session, ids)], page=page, size=size, total=total
    )


@bp.get("/duplicates/<group_id>")
def get_duplicate(group_id: str) -> Any:
    return jsonify(_one(group_id))


def _decided(group_id: str) -> Any:
    db().commit()
    dataversion.bump(settings().cache_url)
    return jsonify(_one(group_id))


@bp.post("/duplicates/<group_id>/resolution")
def resolve(group_id: str) -> Any:
    check_id(group_id, "duplicate group")
    request.max_content_length = RESOLUTION_MAX_BYTES
    body = json_body(required=True)
    only_fields(body, {"keep", "action", "trashed", "members"})
    action = body.get("action")
    if not isinstance(action, str):
        raise ApiError(400, f"action is required: one of {', '.join(service.ACTIONS)}")
    keep = str_list(body, "keep")
    if len(keep) > MAX_KEEP:
        raise ApiError(400, f"keep may name at most {MAX_KEEP} files")
    trashed = _trashed(body.get("trashed"))
    members = str_list(body, "members") if "members" in body else None
    if members is not None and len(members) > MAX_KEEP:
        raise ApiError(400, f"members may name at most {MAX_KEEP} files")
    # One decision per group: the row lock does that on PostgreSQL; SQLite (embedded)
    # has none, and two reviewers would both find the group open and both trash a copy.
    serialise(db(), f"decision:{group_id}")
    try:
        service.record_resolution(db(), group_id, keep, action, trashed, members)
    except service.DedupError as exc:
        raise ApiError(exc.status, str(exc)) from None
    return _decided(group_id)


def _trashed(raw: Any) -> list[dict[str, Any]] | None:
    """``trashed``: [{"path": str, "sha1": str | null}], what the decision sends to the
    trash (400 otherwise); None when not said (undo then reads the members not kept)."""
    if raw is None:
        return None
    ok = isinstance(raw, list) and len(raw) <= MAX_KEEP
    for t in raw if ok else []:
        ok = ok and isinstance(t, dict) and set(t) <= {"path", "sha1"}
        ok = ok and isinstance(t.get("path"), str) and bool(t["path"])
        sha1 = t.get("sha1") if ok else None
        ok = ok and (sha1 is None or (isinstance(sha1, str) and bool(SHA1_HEX.fullmatch(sha1))))
    ok = ok and len({t["path"] for t in raw}) == len(raw)  # each file once
    if not ok:
        raise ApiError(
            400,
            f'trashed must be a list of at most {MAX_KEEP} {{"path", "sha1"}} objects, '
            "each file once, sha1 40 hex digits or null",
        )
    return raw


@bp.delete("/duplicates/<group_id>/resolution")
def withdraw(group_id: str) -> Any:
    check_id(group_id, "duplicate group")
    only_args("decision")
    # The decision the caller read and means to withdraw (0: whichever is shown)
    decision = int_arg("decision", 0, 1, 2**63 - 1) or None
    serialise(db(), f"decision:{group_id}")
    try:
        service.reopen(db(), group_id, decision)
    except service.DedupError as exc:
        raise ApiError(exc.status, str(exc)) from None
    return _decided(group_id)


@bp.get("/stats")
def stats() -> Any:
    return jsonify(Q.stats(db()))


@bp.post("/duplicates/lookup")
def lookup() -> Any:
    resolved, sha1s = lookup_request()
    session = db()
    files = Q.lookup_files(session, resolved, sha1s)
    groups = Q.groups_of_files(session, [f.id for f in files])
    wanted = sorted({gid for gs in groups.values() for gid, _t in gs})
    views = {v.id: dup_json(v) for v in Q.dup_views(session, wanted)}
    out = []
    for f in files:
        gids = [gid for gid, _t in groups.get(f.id, []) if gid in views]
        out.append({
            "path": f.path, "sha1": f.sha1, "size": f.size, "kind": f.kind,
            # Byte-identical copies first: the strongest statement about this file.
            "duplicate": views[gids[0]] if gids else None,
            "duplicate_ids": gids,
        })  # fmt: skip
    return jsonify(files=out)


@bp.post("/dedup/runs")
def start_run() -> Any:
    body = json_body()
    only_fields(body, {"full"})
    full = body.get("full", True)
    if not isinstance(full, bool):
        raise ApiError(400, "full must be true or false")
    session = db()
    # Without it, two requests at once both find no queued pass and both queue one.
    serialise(session, "dedup-run")
    job, created = service.start_run(session, full=full)
    session.commit()
    if created:
        jobs.enqueue(broker(), "dedup_run", job.id)
    return jsonify(job_view(job)), 202 if created else 200


# --- OpenAPI --------------------------------------------------------------------------------

_DUP_REF = {"$ref": "#/components/schemas/Duplicate"}
_CONFLICT = {
    "description": "the group's state does not allow this (already decided, or open)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
_TRASHED_ITEM = {
    "type": "object",
    "required": ["path"],
    "properties": {"path": {"type": "string"}, "sha1": _NULLABLE_STR},
}


_DECISION = {
    "type": ["object", "null"],
    "properties": {
        "id": {
            "type": "integer",
            "description": "the decision's id; DELETE .../resolution?decision=<id> withdraws "
            "only this one",
        },
        "action": {"type": "string", "enum": list(service.ACTIONS)},
        "keep": {"type": "array", "items": {"type": "string"}},
        "trashed": {
            "type": ["array", "null"],
            "items": _TRASHED_ITEM,
            "description": "what the decision sent to Immich's trash",
        },
        "created_at": {"type": "string"},
    },
}


OPENAPI_SCHEMAS: dict[str, Any] = {
    "DuplicateMember": {
        "type": "object",
        "required": ["path", "file_id", "size", "similarity"],
        "properties": {
            "path": {"type": "string"},
            "file_id": {"type": "integer"},
            "size": {"type": "integer"},
            "width": _NULLABLE_INT,
            "height": _NULLABLE_INT,
            "taken_at": {
                "type": ["string", "null"],
                "description": "EXIF capture time (wall clock), with its offset when known",
            },
            "make": _NULLABLE_STR,
            "model": _NULLABLE_STR,
            "similarity": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "1 - pHash distance/64 to the suggested keeper (1.0 for exact)",
            },
            "sha1": _NULLABLE_STR,
            "kind": {
                "type": ["string", "null"],
                "enum": ["raw", "image", "video", "sidecar", "other", None],
            },
            "format": _NULLABLE_STR,
            "exact_group": {
                "type": ["string", "null"],
                "description": "perceptual groups: the exact group this member stands for",
            },
            "missing": {"type": "boolean", "description": "the file is no longer on disk"},
        },
    },
    "Duplicate": {
        "type": "object",
        "required": [
            "id",
            "type",
            "status",
            "similarity",
            "keep",
            "keep_reason",
            "reclaimable_bytes",
            "members",
            "created_at",
        ],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string", "enum": list(TYPES)},
            "status": {"type": "string", "enum": list(Q.STATUSES)},
            "similarity": {"type": "number", "description": "the least similar pair"},
            "keep": {"type": ["string", "null"], "description": "path of the suggested keeper"},
            "keep_reason": {
                "type": ["string", "null"],
                "description": "rule that chose it, in the order they apply: intact "
                "(the other copies are broken), resolution, capture_time, folder, file_group "
                "(the copy its RAW, video or sidecar belongs with), format, "
                "jpeg_quality (the JPEG encoded at the higher quality), size, name (not "
                "named as a copy); 'tie: path' after them",
            },
            "reclaimable_bytes": {"type": "integer"},
            "members": {"type": "array", "items": {"$ref": "#/components/schemas/DuplicateMember"}},
            "resolution": {**_DECISION, "description": "the decision on a group not open"},
            "previous_resolution": {
                **_DECISION,
                "description": "an open group's last decision, made before a new copy "
                "joined and reopened it; DELETE .../resolution withdraws it",
            },
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
        },
    },
    "DuplicatePage": {
        "type": "object",
        "required": ["items", "page", "size", "total"],
        "properties": {
            "items": {"type": "array", "items": _DUP_REF},
            "page": {"type": "integer"},
            "size": {"type": "integer"},
            "total": {"type": "integer"},
        },
    },
    "DuplicateStats": {
        "type": "object",
        "properties": {
            "groups": {"type": "integer"},
            "open": {"type": "integer"},
            "reclaimable_bytes": {
                "type": "integer",
                "description": "bytes freed by resolving every open group "
                "as suggested (each file counted once)",
            },
            "by_type": {"type": "object", "additionalProperties": {"type": "integer"}},
            "by_status": {"type": "object", "additionalProperties": {"type": "integer"}},
            "reclaimable": {
                "type": "object",
                "properties": {
                    "exact_bytes": {"type": "integer"},
                    "perceptual_bytes": {"type": "integer"},
                },
            },
        },
    },
    "DuplicateLookupFile": {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "sha1": {"type": ["string", "null"]},
            "size": {"type": "integer"},
            "kind": {"type": "string"},
            "duplicate": {"oneOf": [_DUP_REF, {"type": "null"}]},
            "duplicate_ids": {"type": "array", "items": {"type": "string"}},
        },
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/duplicates": {
        "get": {
            "summary": "Duplicate groups, most reclaimable bytes first",
            "parameters": [
                {"name": "type", "in": "query", "schema": {"type": "string", "enum": list(TYPES)}},
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(Q.STATUSES)},
                },
                {
                    "name": "min_similarity",
                    "in": "query",
                    "schema": {"type": "number", "minimum": 0, "maximum": 1},
                },
                {
                    "name": "path_prefix",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "only groups with a member in this folder (inside the library roots)",
                },
                *PAGE_PARAMS,
            ],
            "responses": {
                "200": {
                    "description": "a page of groups",
                    "content": json_content({"$ref": "#/components/schemas/DuplicatePage"}),
                },
                "400": BAD_REQUEST,
            },
        }
    },
    "/duplicates/{id}": {
        "get": {
            "summary": "One duplicate group with its members and the suggested keeper",
            "parameters": [ID_PARAM],
            "responses": {
                "200": {"description": "the group", "content": json_content(_DUP_REF)},
                "404": NOT_FOUND,
            },
        }
    },
    "/duplicates/{id}/resolution": {
        "post": {
            "summary": "Record the user's decision on an open group (files are not touched)",
            "parameters": [ID_PARAM],
            "requestBody": {
                "required": True,
                "content": json_content(
                    {
                        "type": "object",
                        "required": ["action"],
                        "properties": {
                            "action": {"type": "string", "enum": list(service.ACTIONS)},
                            "keep": {
                                "type": "array",
                                "items": {"type": "string"},
                                "description": "member paths that stay; trash needs at least one",
                            },
                            "trashed": {
                                "type": "array",
                                "items": _TRASHED_ITEM,
                                "description": "members the caller sends to Immich's trash "
                                "(undo restores exactly these)",
                            },
                            "members": {
                                "type": "array",
                                "items": {"type": "string"},
                                "description": "the member paths the decision was made on; "
                                "409 if the group holds others now",
                            },
                        },
                    }
                ),
            },
            "responses": {
                "200": {
                    "description": "the group, resolved or dismissed",
                    "content": json_content(_DUP_REF),
                },
                "400": BAD_REQUEST,
                "404": NOT_FOUND,
                "409": _CONFLICT,
            },
        },
        "delete": {
            "summary": "Withdraw the decision: the group is open again. On an open group, "
            "withdraws its previous_resolution (409 when it has none)",
            "parameters": [
                ID_PARAM,
                {
                    "name": "decision",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1},
                    "description": "the id of the decision the caller read: 409 when another "
                    "is shown by now (someone decided meanwhile)",
                },
            ],
            "responses": {
                "200": {"description": "the group, open", "content": json_content(_DUP_REF)},
                "404": NOT_FOUND,
                "409": _CONFLICT,
            },
        },
    },
    "/stats": {
        "get": {
            "summary": "Counts by type and status, reclaimable bytes",
            "responses": {
                "200": {
                    "description": "statistics",
                    "content": json_content({"$ref": "#/components/schemas/DuplicateStats"}),
                }
            },
        }
    },
    "/duplicates/lookup": {
        "post": {
            "summary": "Files by path or SHA-1 (up to 1000 in all), each with its duplicate group",
            "requestBody": LOOKUP_BODY,
            "responses": {
                "200": {
                    "description": "the files found (unknown ones are left out); "
                    "duplicate is the exact group if the file has one",
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "files": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/DuplicateLookupFile"},
                                }
                            },
                        }
                    ),
                },
                "400": BAD_REQUEST,
            },
        }
    },
    "/dedup/runs": {
        "post": {
            "summary": "Start a dedup pass over the catalog (full by default; no files are read)",
            "requestBody": {
                "content": json_content(
                    {
                        "type": "object",
                        "properties": {
                            "full": {
                                "type": "boolean",
                                "default": True,
                                "description": "false: only what changed since the last pass",
                            }
                        },
                    }
                )
            },
            "responses": {
                "202": {
                    "description": "pass started",
                    "content": json_content({"$ref": "#/components/schemas/Job"}),
                },
                "200": {
                    "description": "an equivalent pass is already queued; that job",
                    "content": json_content({"$ref": "#/components/schemas/Job"}),
                },
                "400": BAD_REQUEST,
            },
        }
    },
}
