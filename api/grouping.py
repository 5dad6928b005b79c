"""The grouping API (port 8000): groups, the group of a file, file lookup, corrections.

Paths are absolute, as the library is mounted for Twinlens (``TWINLENS_PATH_MAP`` maps
Immich's paths to these). Names that are not UTF-8 travel as JSON ``\\udcXX`` escapes.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import func, select

from api.common import (
    BAD_REQUEST,
    ID_PARAM,
    LOOKUP_BODY,
    MAX_LOOKUP,
    NOT_FOUND,
    PAGE_PARAMS,
    ApiError,
    check_id,
    choice_arg,
    confined_path,
    db,
    json_body,
    json_content,
    lookup_request,
    only_args,
    only_fields,
    paging,
    path_arg,
    prefix_arg,
    serialise,
    settings,
    str_list,
)
from core import dataversion
from core.filequeries import files_with_errors as files_with_errors_in
from core.grouping import queries as Q
from core.grouping import service
from core.grouping.rules import GROUP_TYPES
from core.models import File, Root
from core.paths import root_of

bp = Blueprint("grouping", __name__)

# Corrections regroup folders: two at once (a double click) insert the same groups and
# one of them failed on a unique key. They are rare, so one lock for all of them.
CORRECTIONS = "grouping-corrections"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def group_json(g: Q.GroupView) -> dict[str, Any]:
    return {
        "id": g.id,
        "type": g.type,
        "primary": g.primary,
        "members": [
            {
                "path": m.path,
                "kind": m.kind,
                "role": m.role,
                "is_primary": m.is_primary,
                "size": m.size,
                "sha1": m.sha1,
                "taken_at": (m.taken_at.isoformat() + (m.taken_offset or ""))
                if m.taken_at
                else None,
            }
            for m in g.members
        ],
        "source": g.source,
        "created_at": _iso(g.created_at),
    }


def _one(group_id: str) -> dict[str, Any]:
    views = Q.group_views(db(), [check_id(group_id, "group")])
    if not views:
        raise ApiError(404, f"no group {group_id}")
    return group_json(views[0])


@bp.get("/groups")
def list_groups() -> Any:
    only_args("type", "path_prefix", "page", "size")
    page, size = paging()
    gtype = choice_arg("type", GROUP_TYPES)
    prefix = prefix_arg()
    rows, total = Q.list_groups(
        db(), group_type=gtype, path_prefix=prefix, limit=size, offset=(page - 1) * size
    )
    return jsonify(items=[group_json(g) for g in rows], page=page, size=size, total=total)


@bp.get("/groups/<group_id>")
def get_group(group_id: str) -> Any:
    return jsonify(_one(group_id))


@bp.get("/files/group")
def file_group() -> Any:
    only_args("path")
    path = confined_path(path_arg("path"))
    gid = service.group_of_path(db(), path)
    if gid is None:
        raise ApiError(
            404,
            "that file is in no group"
            if Q.file_by_path(db(), path)
            else "no cataloged file at that path",
        )
    return jsonify(_one(gid))


@bp.get("/files/errors")
def files_with_errors() -> Any:
    """The library's files read with an error, by path: unreadable, truncated, not what
    their name says, skipped. What a scan's own job lists is only what that scan read;
    these stay listed until the file is read without one."""
    only_args("path_prefix", "page", "size")
    page, size = paging()
    prefix = prefix_arg()
    rows, total = files_with_errors_in(
        db(), path_prefix=prefix, limit=size, offset=(page - 1) * size
    )
    items = [
        {
            "path": f.path,
            "kind": f.kind,
            "size": f.size,
            "error": f.error,
            "retried": f.read_failures > 0,
            "misnamed": f.misnamed,
            "since": f.updated_at.isoformat(),
        }
        for f in rows
    ]
    return jsonify(items=items, page=page, size=size, total=total)


@bp.get("/roots")
def library_roots() -> Any:
    """The library roots (TWINLENS_LIBRARY_ROOTS), in their configured order: the only
    folders requests may name, known before anything was scanned. ``id`` is the
    catalog's root (null until a scan reached it) and ``files`` the files cataloged
    under it, counting those of a folder cataloged as a root of its own before."""
    only_args()
    configured = [str(r) for r in settings().library_roots]
    counts = dict.fromkeys(configured, 0)
    ids: dict[str, int] = {}
    present = (File.root_id == Root.id) & (File.status == "present")
    rows = db().execute(
        select(Root.id, Root.path, func.count(File.id))
        .outerjoin(File, present)
        .group_by(Root.id, Root.path)
    )
    for root_id, path, files in rows:
        holder = root_of(path, configured)
        if holder is None:
            continue  # cataloged by `twinlens scan` outside the roots: no request reaches it
        counts[holder] += files
        if path == holder:
            ids[holder] = root_id
    return jsonify(items=[{"id": ids.get(p), "path": p, "files": counts[p]} for p in configured])


@bp.post("/files/lookup")
def lookup() -> Any:
    resolved, sha1s = lookup_request()
    session = db()
    files = Q.lookup_files(session, resolved, sha1s)
    group_of = Q.group_id_of_files(session, [f.id for f in files])
    views = {g.id: group_json(g) for g in Q.group_views(session, sorted(set(group_of.values())))}
    return jsonify(
        files=[
            {
                "path": f.path,
                "sha1": f.sha1,
                "size": f.size,
                "kind": f.kind,
                "group": views.get(group_of.get(f.id, "")),
            }
            for f in files
        ]
    )


def _corrected(stats: service.Stats) -> None:
    db().commit()
    if stats.changed:
        dataversion.bump(settings().cache_url)


@bp.post("/groups/<group_id>/split")
def split(group_id: str) -> Any:
    check_id(group_id, "group")
    body = json_body()
    only_fields(body, {"paths"})
    paths = [confined_path(p, "paths[]") for p in str_list(body, "paths")]
    session = db()
    serialise(session, CORRECTIONS)
    before = [m.path for g in Q.group_views(session, [group_id]) for m in g.members]
    try:
        stats = service.split_group(session, group_id, paths or None, settings())
    except service.GroupingError as exc:
        raise ApiError(exc.status, str(exc)) from None
    _corrected(stats)
    gids = sorted(set(filter(None, (service.group_of_path(session, p) for p in before))))
    return jsonify(groups=[group_json(g) for g in Q.group_views(session, gids)])


@bp.post("/groups/merge")
def merge() -> Any:
    body = json_body(required=True)
    only_fields(body, {"paths", "primary"})
    paths = [confined_path(p, "paths[]") for p in str_list(body, "paths", required=True)]
    if len(paths) > MAX_LOOKUP:
        raise ApiError(400, f"at most {MAX_LOOKUP} paths per merge")
    primary = body.get("primary")
    if primary is not None:
        primary = confined_path(primary, "primary")
    serialise(db(), CORRECTIONS)
    try:
        gid, stats = service.merge_files(db(), paths, primary, settings())
    except service.GroupingError as exc:
        raise ApiError(exc.status, str(exc)) from None
    _corrected(stats)
    return jsonify(_one(gid)), 201


# --- OpenAPI --------------------------------------------------------------------------------

_GROUP_REF = {"$ref": "#/components/schemas/Group"}
_RACE = {
    "description": "a concurrent change to the same files (a scan's grouping pass) won; retry",
    "content": json_content({"$ref": "#/components/schemas/Error"}),
}


OPENAPI_SCHEMAS: dict[str, Any] = {
    "GroupMember": {
        "type": "object",
        "required": ["path", "kind", "role", "is_primary", "size"],
        "properties": {
            "path": {"type": "string"},
            "kind": {"type": "string", "enum": ["raw", "image", "video", "sidecar", "other"]},
            "role": {
                "type": "string",
                "enum": ["primary", "raw", "rendition", "video", "edit", "sidecar"],
            },
            "is_primary": {"type": "boolean"},
            "size": {"type": "integer"},
            "sha1": {"type": ["string", "null"]},
            "taken_at": {
                "type": ["string", "null"],
                "description": "EXIF capture time (wall clock), with its offset when known",
            },
        },
    },
    "Group": {
        "type": "object",
        "required": ["id", "type", "primary", "members", "source", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string", "enum": list(GROUP_TYPES)},
            "primary": {"type": "string"},
            "members": {"type": "array", "items": {"$ref": "#/components/schemas/GroupMember"}},
            "source": {"type": "string", "enum": ["auto", "manual"]},
            "created_at": {"type": "string"},
        },
    },
    "GroupPage": {
        "type": "object",
        "required": ["items", "page", "size", "total"],
        "properties": {
            "items": {"type": "array", "items": _GROUP_REF},
            "page": {"type": "integer"},
            "size": {"type": "integer"},
            "total": {"type": "integer"},
        },
    },
    "FileErrorPage": {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "kind": {"type": "string"},
                        "size": {"type": "integer"},
                        "error": {"type": "string"},
                        "retried": {
                            "type": "boolean",
                            "description": "the read failed; the next scan reads it again",
                        },
                        "since": {"type": "string", "format": "date-time"},
                    },
                },
            },
            "page": {"type": "integer"},
            "size": {"type": "integer"},
            "total": {"type": "integer"},
        },
    },
    "Root": {
        "type": "object",
        "required": ["id", "path", "files"],
        "properties": {
            "id": {
                "type": ["integer", "null"],
                "description": "the catalog's root; null until a scan reached it",
            },
            "path": {"type": "string"},
            "files": {"type": "integer", "description": "files cataloged under it"},
        },
    },
    "LookupFile": {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "sha1": {"type": ["string", "null"]},
            "size": {"type": "integer"},
            "kind": {"type": "string"},
            "group": {"oneOf": [_GROUP_REF, {"type": "null"}]},
        },
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/groups": {
        "get": {
            "summary": "Groups, ordered by their primary's path",
            "parameters": [
                {
                    "name": "type",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(GROUP_TYPES)},
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
                    "content": json_content({"$ref": "#/components/schemas/GroupPage"}),
                },
                "400": BAD_REQUEST,
            },
        }
    },
    "/groups/{id}": {
        "get": {
            "summary": "One group",
            "parameters": [ID_PARAM],
            "responses": {
                "200": {"description": "the group", "content": json_content(_GROUP_REF)},
                "404": NOT_FOUND,
            },
        }
    },
    "/files/group": {
        "get": {
            "summary": "The group of one file",
            "parameters": [
                {"name": "path", "in": "query", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "its group", "content": json_content(_GROUP_REF)},
                "400": BAD_REQUEST,
                "404": NOT_FOUND,
            },
        }
    },
    "/files/errors": {
        "get": {
            "summary": "Files read with an error (unreadable, truncated, skipped), by path",
            "parameters": [
                {
                    "name": "path_prefix",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "only files in this folder (inside the library roots)",
                },
                *PAGE_PARAMS,
            ],
            "responses": {
                "200": {
                    "description": "a page of such files, and how many there are",
                    "content": json_content({"$ref": "#/components/schemas/FileErrorPage"}),
                },
                "400": BAD_REQUEST,
            },
        }
    },
    "/roots": {
        "get": {
            "summary": "The library roots, in their configured order, with their files",
            "responses": {
                "200": {
                    "description": "every configured root (none configured: an empty list)",
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "items": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Root"},
                                }
                            },
                        }
                    ),
                },
                "400": BAD_REQUEST,
            },
        }
    },
    "/files/lookup": {
        "post": {
            "summary": "Files by path or SHA-1 (up to 1000 in all), each with its group",
            "requestBody": LOOKUP_BODY,
            "responses": {
                "200": {
                    "description": "the files found (unknown ones are left out)",
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "files": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/LookupFile"},
                                }
                            },
                        }
                    ),
                },
                "400": BAD_REQUEST,
            },
        }
    },
    "/groups/{id}/split": {
        "post": {
            "summary": "Take files out of a group (or dissolve it); later scans respect it",
            "parameters": [ID_PARAM],
            "requestBody": {
                "content": json_content(
                    {
                        "type": "object",
                        "properties": {
                            "paths": {
                                "type": "array",
                                "items": {"type": "string"},
                                "description": "members to take out; absent or empty: dissolve the group",
                            }
                        },
                    }
                )
            },
            "responses": {
                "200": {
                    "description": "the groups the former members are in now",
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {"groups": {"type": "array", "items": _GROUP_REF}},
                        }
                    ),
                },
                "400": BAD_REQUEST,
                "404": NOT_FOUND,
                "409": _RACE,
            },
        }
    },
    "/groups/merge": {
        "post": {
            "summary": "Put files into one manual group (may span folders); later scans respect it",
            "requestBody": {
                "required": True,
                "content": json_content(
                    {
                        "type": "object",
                        "required": ["paths"],
                        "properties": {
                            "paths": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                            "primary": {"type": "string"},
                        },
                    }
                ),
            },
            "responses": {
                "201": {"description": "the manual group", "content": json_content(_GROUP_REF)},
                "400": BAD_REQUEST,
                "404": NOT_FOUND,
                "409": _RACE,
            },
        }
    },
}
