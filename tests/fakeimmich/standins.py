"""Stand-ins for the grouping (8000) and dedup (8001) APIs, following their HTTP contract.

Only for gateway tests until the real services exist; the fixtures in
``tests/fakeimmich/fixtures.py`` hand their base URLs to the gateway, so the lead can
point the same tests at the real ones.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request


@dataclass
class ServiceState:
    token: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> file
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    resolutions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    withdrawals: list[str] = field(default_factory=list)
    # GET of a group answers it as still open: the read of a second reviewer that came
    # before the first one's decision was recorded (a race, made reproducible).
    reads_before_decision: bool = False
    calls: Counter = field(default_factory=Counter)
    lookup_batches: list[int] = field(default_factory=list)
    auth_seen: list[str] = field(default_factory=list)
    fail_decisions: bool = False  # recording a resolution answers 500, as a crashed API
    fail_withdrawals: bool = False  # withdrawing one answers 500 too
    # (status, message) the next POST /scans answers, as the real API refuses a request
    refuse_scans: tuple[int, str] | None = None

    def add_file(
        self, path: str, sha1: str | None = None, size: int = 1000, kind: str = "image"
    ) -> dict:
        f = {"path": path, "sha1": sha1, "size": size, "kind": kind}
        self.files[path] = f
        return f

    def add_group(
        self,
        paths: list[str],
        type_: str = "raw_jpeg",
        primary: str | None = None,
        sha1s: dict[str, str] | None = None,
    ) -> dict:
        gid = str(uuid.uuid4())
        sha1s = sha1s or {}
        primary = primary or paths[0]
        members = []
        for p in paths:
            f = self.files.get(p) or self.add_file(
                p, sha1s.get(p), kind="raw" if p.lower().endswith((".cr3", ".dng")) else "image"
            )
            members.append(
                {
                    "path": p,
                    "kind": f["kind"],
                    "role": "raw" if f["kind"] == "raw" else "rendition",
                    "is_primary": p == primary,
                    "size": f["size"],
                    "sha1": f["sha1"],
                }
            )
        group = {"id": gid, "type": type_, "primary": primary, "members": members}
        self.groups[gid] = group
        return group

    def add_duplicate(
        self,
        paths: list[str],
        type_: str = "exact",
        keep: str | None = None,
        similarity: float = 1.0,
        sha1s: dict[str, str] | None = None,
    ) -> dict:
        did = str(uuid.uuid4())
        sha1s = sha1s or {}
        members = []
        for p in paths:
            f = self.files.get(p) or self.add_file(p, sha1s.get(p))
            members.append(
                {
                    "path": p,
                    "size": f["size"],
                    "width": 4000,
                    "height": 3000,
                    "taken_at": "2024-05-17T10:30:00",
                    "make": "Canon",
                    "model": "EOS R5",
                    "similarity": similarity,
                    "sha1": f["sha1"],
                    "kind": f["kind"],
                    "format": "jpeg",
                    "missing": False,
                }
            )
        dup = {
            "id": did,
            "type": type_,
            "status": "open",
            "similarity": similarity,
            "keep": keep or paths[0],
            "keep_reason": "largest file",
            "reclaimable_bytes": sum(m["size"] for m in members[1:]),
            "members": members,
            "resolution": None,
            "previous_resolution": None,
        }
        self.duplicates[did] = dup
        return dup


def _err(status: int, message: str):
    return jsonify({"error": message}), status


def _paged(items: list[dict]) -> dict:
    page = int(request.args.get("page", 1))
    size = int(request.args.get("size", 50))
    return {
        "items": items[(page - 1) * size : page * size],
        "page": page,
        "size": size,
        "total": len(items),
    }


def create_service_app(kind: str, state: ServiceState) -> Flask:
    app = Flask(f"standin-{kind}")

    @app.before_request
    def check_token():
        state.calls[
            (request.method, request.url_rule.rule if request.url_rule else request.path)
        ] += 1
        header = request.headers.get("Authorization", "")
        state.auth_seen.append(header)
        if header != f"Bearer {state.token}":
            return _err(401, "service token required")
        return None

    @app.post("/scans")
    def scans():
        body = request.get_json(silent=True) or {}
        if state.refuse_scans:
            return _err(*state.refuse_scans)
        # as the API: the scan running on the root asked for (no path: the only root)
        root = body.get("path") or "/photos"
        running = [
            j
            for j in state.jobs.values()
            if j["state"] in ("queued", "running") and body.get("path") in (None, j["root"])
        ]
        if running:
            return jsonify(running[0]), 200
        now = datetime.now(UTC).isoformat()
        job = {
            "id": str(uuid.uuid4()),
            "kind": kind,
            "state": "queued",
            "root": root,
            "trigger": "api",
            "total": 0,
            "done": 0,
            "failed": 0,
            "bytes_read": 0,
            "rate": 0.0,
            "eta_seconds": None,
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "errors": [],
        }
        state.jobs[job["id"]] = job
        return jsonify(job), 202

    @app.get("/jobs")
    def jobs():
        items = list(state.jobs.values())
        for key in ("kind", "state"):  # the filters the real API has
            if request.args.get(key):
                items = [j for j in items if j[key] == request.args[key]]
        return jsonify(_paged(items))

    @app.route("/jobs/<job_id>", methods=["GET", "DELETE"])
    def job(job_id: str):
        j = state.jobs.get(job_id)
        if not j:
            return _err(404, "no such job")
        if request.method == "DELETE":
            j["state"] = "cancelled"
        return jsonify(j)

    if kind == "grouping":

        @app.get("/groups")
        def groups():
            items = list(state.groups.values())
            if request.args.get("type"):
                items = [g for g in items if g["type"] == request.args["type"]]
            if request.args.get("path_prefix"):
                items = [g for g in items if g["primary"].startswith(request.args["path_prefix"])]
            return jsonify(_paged(items))

        @app.get("/groups/<gid>")
        def group(gid: str):
            return jsonify(state.groups[gid]) if gid in state.groups else _err(404, "no such group")

        @app.post("/files/lookup")
        def files_lookup():
            body = request.get_json()
            paths, sha1s = set(body.get("paths") or []), set(body.get("sha1") or [])
            state.lookup_batches.append(len(paths) + len(sha1s))
            out = []
            for f in state.files.values():
                if f["path"] in paths or (f["sha1"] and f["sha1"] in sha1s):
                    grp = next(
                        (
                            g
                            for g in state.groups.values()
                            if any(m["path"] == f["path"] for m in g["members"])
                        ),
                        None,
                    )
                    out.append({**f, "group": grp})
            return jsonify({"files": out})
    else:

        @app.get("/duplicates")
        def duplicates():
            items = list(state.duplicates.values())
            for key in ("type", "status"):
                if request.args.get(key):
                    items = [d for d in items if d[key] == request.args[key]]
            return jsonify(_paged(items))

        @app.get("/duplicates/<did>")
        def duplicate(did: str):
            if did not in state.duplicates:
                return _err(404, "no such duplicate group")
            dup = state.duplicates[did]
            if state.reads_before_decision:  # read before another reviewer's decision
                dup = {**dup, "status": "open", "resolution": None}
            return jsonify(dup)

        @app.post("/duplicates/<did>/resolution")
        def resolution(did: str):
            dup = state.duplicates.get(did)
            if not dup:
                return _err(404, "no such duplicate group")
            body = request.get_json()
            if body.get("action") not in ("trash", "not_duplicate"):
                return _err(400, "bad action")
            if state.fail_decisions:
                return "Internal Server Error", 500
            if dup["status"] != "open":  # as the dedup API: one decision per group
                return _err(409, f"duplicate group {did} is already {dup['status']}")
            state.resolutions.append((did, body))
            dup["status"] = "resolved" if body["action"] == "trash" else "dismissed"
            dup["previous_resolution"] = None
            dup["resolution"] = {
                "action": body["action"],
                "keep": body.get("keep") or [],
                "trashed": body.get("trashed"),
            }
            return jsonify(dup)

        @app.delete("/duplicates/<did>/resolution")
        def withdraw(did: str):
            dup = state.duplicates.get(did)
            if not dup:
                return _err(404, "no such duplicate group")
            if dup["status"] == "open" and not dup.get("previous_resolution"):
                return _err(409, f"duplicate group {did} is open: there is no decision to withdraw")
            if state.fail_withdrawals:
                return _err(500, "database unavailable")
            state.withdrawals.append(did)
            dup["status"], dup["resolution"], dup["previous_resolution"] = "open", None, None
            return jsonify(dup)

        @app.get("/stats")
        def stats():
            open_ = [d for d in state.duplicates.values() if d["status"] == "open"]
            return jsonify(
                {
                    "groups": len(state.duplicates),
                    "open": len(open_),
                    "reclaimable_bytes": sum(d["reclaimable_bytes"] for d in open_),
                }
            )

        @app.post("/duplicates/lookup")
        def dup_lookup():
            body = request.get_json()
            paths, sha1s = set(body.get("paths") or []), set(body.get("sha1") or [])
            state.lookup_batches.append(len(paths) + len(sha1s))
            out = []
            for f in state.files.values():
                if f["path"] in paths or (f["sha1"] and f["sha1"] in sha1s):
                    dup = next(
                        (
                            d
                            for d in state.duplicates.values()
                            if any(m["path"] == f["path"] for m in d["members"])
                        ),
                        None,
                    )
                    out.append({"path": f["path"], "sha1": f["sha1"], "duplicate": dup})
            return jsonify({"files": out})

    return app
