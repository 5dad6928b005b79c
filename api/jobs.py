"""Endpoints both APIs serve: health, scans and jobs."""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import select

from api.common import (
    ApiError,
    broker,
    check_id,
    choice_arg,
    confined_path,
    db,
    json_body,
    only_args,
    only_fields,
    paging,
    serialise,
    settings,
)
from core import jobs
from core.models import Job, Root
from core.paths import root_of

bp = Blueprint("common", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    db().execute(select(1))
    return jsonify(status="ok")


def _root_path(job: Job) -> str | None:
    if job.root_id is None:
        return None
    root = db().get(Root, job.root_id)
    return root.path if root else None


def view(job: Job, with_errors: bool = False) -> dict[str, Any]:
    errors = jobs.job_errors(db(), job.id) if with_errors else None
    return jobs.job_view(job, errors, root=_root_path(job))


def start_scan(body: dict[str, Any], trigger: str = "api") -> Any:
    """Start a catalog scan (which then groups and deduplicates what changed), or
    answer with the scan already running on that root."""
    cfg = settings()
    # A misspelt field must not quietly widen the scan (no path: the whole root).
    only_fields(body, {"path", "full"})
    full = body.get("full", False)
    if not isinstance(full, bool):
        raise ApiError(400, "full must be true or false")
    raw = body.get("path")
    if raw is None and "path" in body:
        raise ApiError(400, "path must be a folder path; leave it out to scan the whole root")
    if raw is None:
        if not cfg.library_roots:
            raise ApiError(400, "no library roots are configured (TWINLENS_LIBRARY_ROOTS)")
        if len(cfg.library_roots) != 1:
            raise ApiError(400, "path is required when more than one library root is configured")
        raw = str(cfg.library_roots[0])
    path = confined_path(raw)
    if os.path.lexists(path) and not os.path.isdir(path):
        # A folder is scanned; a file is seen by a scan of its folder (a folder gone from
        # disk is let through: the scan reports it unlistable, as the watcher's would)
        raise ApiError(400, "path is a file, not a folder: scan the folder it is in")
    roots = [str(r) for r in cfg.library_roots]
    root_path = root_of(path, roots) or next(
        (r for r in roots if path.startswith(r.rstrip("/") + "/") or path == r), None
    )
    if root_path is None:
        raise ApiError(400, "path is outside the library roots")
    session = db()
    # Two requests for a root no scan has seen would both insert its row (a 500 for the
    # second); for a known root, start_job's row lock already makes the second wait.
    serialise(session, f"scan:{root_path}")
    root = jobs.get_or_create_root(session, root_path)
    job, created = jobs.start_job(
        session,
        "scan",
        root=root,
        path=path,
        trigger=trigger,
        full=full,
        stale_seconds=cfg.job_stale_seconds,
    )
    session.commit()
    if created:
        jobs.enqueue(broker(), "scan_plan", job.id)
    return jsonify(view(job)), 202 if created else 200


@bp.post("/scans")
def post_scan() -> Any:
    return start_scan(json_body())


@bp.get("/jobs")
def list_jobs() -> Any:
    only_args("kind", "state", "page", "size")
    page, size = paging()
    kind = choice_arg("kind", jobs.JOB_KINDS)
    state = choice_arg("state", jobs.ACTIVE_STATES + jobs.FINAL_STATES)
    rows, total = jobs.list_jobs(db(), kind=kind, state=state, limit=size, offset=(page - 1) * size)
    return jsonify(items=[view(j) for j in rows], page=page, size=size, total=total)


def _job_or_404(job_id: str) -> Job:
    job = db().get(Job, check_id(job_id, "job"))
    if job is None:
        raise ApiError(404, f"no job {job_id}")
    return job


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Any:
    return jsonify(view(_job_or_404(job_id), with_errors=True))


@bp.delete("/jobs/<job_id>")
def cancel(job_id: str) -> Any:
    _job_or_404(job_id)
    job = jobs.cancel_job(db(), job_id)
    db().commit()
    assert job is not None
    return jsonify(view(job))


OPENAPI_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Liveness and database check",
            "security": [],
            "responses": {"200": {"description": "ok"}},
        }
    },
    "/scans": {
        "post": {
            "summary": "Start a scan of a library root or a folder inside one",
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"path": {"type": "string"}, "full": {"type": "boolean"}},
                        }
                    }
                }
            },
            "responses": {
                "202": {
                    "description": "scan started",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Job"}}
                    },
                },
                "200": {
                    "description": "a scan of that root is already running; that job",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Job"}}
                    },
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
            },
        }
    },
    "/jobs": {
        "get": {
            "summary": "Jobs, newest first",
            "parameters": [
                {"name": n, "in": "query", "schema": {"type": t}}
                for n, t in (
                    ("kind", "string"),
                    ("state", "string"),
                    ("page", "integer"),
                    ("size", "integer"),
                )
            ],
            "responses": {
                "200": {"description": "a page of jobs"},
                "400": {"$ref": "#/components/responses/BadRequest"},
            },
        }
    },
    "/jobs/{id}": {
        "get": {
            "summary": "One job with the files that failed",
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "the job",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Job"}}
                    },
                },
                "404": {"$ref": "#/components/responses/NotFound"},
            },
        },
        "delete": {
            "summary": "Cancel a job",
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "the cancelled job"},
                "404": {"$ref": "#/components/responses/NotFound"},
            },
        },
    },
}

JOB_SCHEMA = {
    "type": "object",
    "required": ["id", "kind", "state", "total", "done", "failed"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": list(jobs.JOB_KINDS)},
        "state": {"type": "string", "enum": list(jobs.ACTIVE_STATES + jobs.FINAL_STATES)},
        "phase": {"type": "string"},
        "trigger": {"type": "string"},
        "root": {"type": ["string", "null"]},
        "total": {"type": "integer"},
        "done": {"type": "integer"},
        "failed": {"type": "integer"},
        "bytes_read": {"type": "integer"},
        "rate": {"type": "number"},
        "eta_seconds": {"type": ["number", "null"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "error": {"type": "string"}},
            },
        },
    },
}
