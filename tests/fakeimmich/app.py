"""A small, honest stand-in for an unmodified Immich v3 server (tests and benchmarks only).

It answers the endpoints the gateway touches with Immich's shapes (checked against the
OpenAPI spec by tests/unit/test_gateway_fakeimmich.py) and Immich's authentication rules
(NOTES.md §1): credential order, 401 bodies, API-key permissions taken from the spec.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

from flask import Flask, Response, g, jsonify, request, send_file

from tests.fakeimmich import spec

COOKIE_TOKEN = "immich_access_token"
COOKIE_AUTH_TYPE = "immich_auth_type"
COOKIE_IS_AUTH = "immich_is_authenticated"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def path_checksum(path: str) -> str:
    """Immich's checksum of an external-library asset: base64(SHA-1("path:" + path))."""
    return b64(hashlib.sha1(b"path:" + os.fsencode(path)).digest())


@dataclass
class FakeState:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)  # email -> password
    sessions: dict[str, str] = field(default_factory=dict)  # token -> user id
    # Sessions unlocked by PIN: only they reach assets in the locked folder
    elevated: set[str] = field(default_factory=set)
    api_keys: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    shared_links: dict[str, tuple[str, frozenset[str]]] = field(
        default_factory=dict
    )  # key -> (user, asset ids)
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Immich's stack table (id -> owner and primary) and each asset's stackId
    stacks: dict[str, dict[str, str]] = field(default_factory=dict)
    stack_of: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, bytes | str] = field(default_factory=dict)  # asset id -> bytes or file path
    calls: Counter = field(default_factory=Counter)
    delay: float = 0.0
    # Seconds one route waits before answering, by (method, spec path): a slow lookup
    route_delay: dict[tuple[str, str], float] = field(default_factory=dict)
    # When set, DELETE /api/assets trashes and then answers this status, as Immich does
    # when something after its update fails (announcing the trash, a proxy timing out)
    trash_error: int | None = None
    trash_enabled: bool = True  # Immich's trash setting (server/features "trash")
    # When set, called (once) as a restore from the trash begins: another client acting
    # while this one waits on Immich
    while_restoring: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- fixtures -----------------------------------------------------------------------
    def add_user(self, email: str, password: str, name: str = "", is_admin: bool = False) -> dict:
        uid = str(uuid.uuid4())
        now = iso(datetime(2024, 1, 1, tzinfo=UTC))
        user = {
            "id": uid,
            "email": email,
            "name": name or email.split("@")[0],
            "isAdmin": is_admin,
            "status": "active",
            "storageLabel": "admin" if is_admin else None,
            "quotaSizeInBytes": None,
            "quotaUsageInBytes": 0,
            "oauthId": "",
            "avatarColor": "primary",
            "profileImagePath": "",
            "profileChangedAt": now,
            "shouldChangePassword": False,
            "createdAt": now,
            "updatedAt": now,
            "deletedAt": None,
            "license": None,
        }
        self.users[uid] = user
        self.passwords[email] = password
        return user

    def new_session(self, user_id: str) -> str:
        token = secrets.token_urlsafe(32)
        self.sessions[token] = user_id
        return token

    def add_api_key(self, user_id: str, permissions: list[str] | tuple[str, ...] = ("all",)) -> str:
        key = secrets.token_urlsafe(30)
        self.api_keys[key] = (user_id, frozenset(permissions))
        return key

    def add_shared_link(self, user_id: str, asset_ids: list[str]) -> str:
        key = secrets.token_hex(50)
        self.shared_links[key] = (user_id, frozenset(asset_ids))
        return key

    def add_stack(self, owner_id: str, asset_ids: list[str]) -> str:
        """StackRepository.create: the first id is the cover; a stack of this owner whose
        cover is listed is merged in (its assets not in the trash, listed or not) and
        deleted, its trashed members left with no stack (``ON DELETE SET NULL``); a listed
        member of another stack moves alone. Returns the new stack's id."""
        merged = [sid for sid, st in self.stacks.items()
                  if st["ownerId"] == owner_id and st["primaryAssetId"] in asset_ids]  # fmt: skip
        members = dict.fromkeys(asset_ids)
        for sid in merged:
            for aid in [a for a, s in self.stack_of.items() if s == sid]:
                if not self.assets[aid]["isTrashed"]:
                    members[aid] = None
                del self.stack_of[aid]
            del self.stacks[sid]
        sid = str(uuid.uuid4())
        self.stacks[sid] = {"id": sid, "ownerId": owner_id, "primaryAssetId": asset_ids[0]}
        now = iso(datetime.now(UTC))
        for aid in members:
            self.stack_of[aid] = sid
            self.assets[aid]["updatedAt"] = now
        self.refresh_stacks()
        return sid

    def stack_assets(self, stack_id: str) -> list[str]:
        """A stack's assets as its answers list them (``withAssets``): not in the trash,
        in the timeline or archived (``withDefaultVisibility``), the cover first."""
        cover = self.stacks[stack_id]["primaryAssetId"]
        found = [a for a, s in self.stack_of.items()
                 if s == stack_id and not self.assets[a]["isTrashed"]
                 and self.assets[a]["visibility"] in ("archive", "timeline")]  # fmt: skip
        return sorted(found, key=lambda a: a != cover)

    def refresh_stacks(self) -> None:
        """Each asset's ``stack`` as ``getById`` fills it: ``assetCount`` counts the
        members other than the cover that are in the timeline and not in the trash, plus
        one for the cover; with no such member, ``stack`` is null."""
        for aid in [a for a in self.stack_of if a not in self.assets]:  # deleted by a test
            del self.stack_of[aid]
        for sid in [s for s in self.stacks if s not in set(self.stack_of.values())]:
            del self.stacks[sid]
        others: Counter = Counter(
            s for a, s in self.stack_of.items()
            if a != self.stacks[s]["primaryAssetId"] and not self.assets[a]["isTrashed"]
            and self.assets[a]["visibility"] == "timeline"
        )  # fmt: skip
        for aid, asset in self.assets.items():
            sid = self.stack_of.get(aid)
            asset["stack"] = (
                {"id": sid, "primaryAssetId": self.stacks[sid]["primaryAssetId"],
                 "assetCount": others[sid] + 1}
                if sid and others[sid] else None
            )  # fmt: skip

    def forget_asset(self, asset_id: str) -> None:
        """An asset deleted for good: out of its stack, whose cover passes to another
        member, or which dissolves with fewer than two left (handleAssetDeletion)."""
        self.assets.pop(asset_id, None)
        sid = self.stack_of.pop(asset_id, None)
        if sid is None:
            return
        left = [a for a, s in self.stack_of.items() if s == sid]
        if len(left) < 2:
            for a in left:
                del self.stack_of[a]
            self.stacks.pop(sid, None)
        elif self.stacks[sid]["primaryAssetId"] == asset_id:
            self.stacks[sid]["primaryAssetId"] = left[0]
        self.refresh_stacks()

    def add_asset(
        self,
        owner_id: str,
        original_path: str,
        content: bytes | None = None,
        file: str | None = None,
        library_id: str | None = None,
        taken: datetime | None = None,
        width: int = 4000,
        height: int = 3000,
        make: str | None = "Canon",
        model: str | None = "EOS R5",
        duplicate_id: str | None = None,
        asset_id: str | None = None,
    ) -> dict[str, Any]:
        aid = asset_id or str(uuid.uuid4())
        taken = taken or datetime(2024, 5, 17, 10, 30, tzinfo=UTC)
        if library_id:
            checksum = path_checksum(original_path)
        elif content is not None:
            checksum = b64(hashlib.sha1(content).digest())
        else:
            h = hashlib.sha1()
            with open(file or original_path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            checksum = b64(h.digest())
        if content is not None:
            size = len(content)
            self.blobs[aid] = content
        else:
            size = os.path.getsize(file or original_path)
            self.blobs[aid] = file or original_path
        ext = os.path.splitext(original_path)[1].lower()
        mime = {
            ".jpg": "image/jpeg",
            ".jpeg": "image/jpeg",
            ".cr3": "image/x-canon-cr3",
            ".heic": "image/heic",
            ".mov": "video/quicktime",
            ".mp4": "video/mp4",
            ".dng": "image/x-adobe-dng",
            ".png": "image/png",
        }.get(ext, "application/octet-stream")
        is_video = mime.startswith("video/")
        owner = self.users[owner_id]
        asset = {
            "id": aid,
            "ownerId": owner_id,
            "owner": {
                k: owner[k]
                for k in (
                    "id",
                    "email",
                    "name",
                    "avatarColor",
                    "profileImagePath",
                    "profileChangedAt",
                )
            },
            "libraryId": library_id,
            "type": "VIDEO" if is_video else "IMAGE",
            "originalPath": original_path,
            "originalFileName": os.path.basename(original_path),
            "originalMimeType": mime,
            "checksum": checksum,
            "fileCreatedAt": iso(taken),
            "fileModifiedAt": iso(taken),
            "localDateTime": iso(taken),
            "createdAt": iso(taken + timedelta(days=1)),
            "updatedAt": iso(taken + timedelta(days=1)),
            "isFavorite": False,
            "isArchived": False,
            "isTrashed": False,
            "isOffline": False,
            "isEdited": False,
            "hasMetadata": True,
            "visibility": "timeline",
            "width": width,
            "height": height,
            "duration": 5000 if is_video else None,
            "thumbhash": "1QcSHQRnh493V4dIh4eXh1h4kJUI",
            "livePhotoVideoId": None,
            "duplicateId": duplicate_id,
            "stack": None,
            "tags": [],
            "people": [],
            "exifInfo": {
                "make": make,
                "model": model,
                "lensModel": None,
                "dateTimeOriginal": iso(taken),
                "modifyDate": iso(taken),
                "timeZone": "UTC",
                "exifImageWidth": width,
                "exifImageHeight": height,
                "fileSizeInByte": size,
                "orientation": "1",
                "fNumber": 2.8,
                "exposureTime": "1/200",
                "iso": 100,
                "focalLength": 50.0,
                "rating": None,
                "description": "",
                "latitude": None,
                "longitude": None,
                "city": None,
                "state": None,
                "country": None,
                "projectionType": None,
            },
        }
        self.assets[aid] = asset
        return asset


def _error(status: int, message: str) -> Response:
    resp = jsonify({"message": message})
    resp.status_code = status
    resp.headers["X-Correlation-ID"] = str(uuid.uuid4())
    return resp


def _validation(message: str, code: str = "custom", path: list | None = None) -> Response:
    resp = jsonify(
        {
            "message": "Validation failed",
            "errors": [{"code": code, "path": path or [], "message": message}],
        }
    )
    resp.status_code = 400
    resp.headers["X-Correlation-ID"] = str(uuid.uuid4())
    return resp


_THUMB: bytes | None = None


def _thumbnail_bytes() -> bytes:
    global _THUMB
    if _THUMB is None:
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (250, 188), (120, 160, 200)).save(buf, "WEBP", quality=60)
        _THUMB = buf.getvalue()
    return _THUMB


def create_app(state: FakeState | None = None) -> Flask:
    app = Flask("fakeimmich")
    state = state or FakeState()
    app.config["STATE"] = state

    def authenticate(method: str, spec_path: str) -> Response | None:
        """Immich's AuthService.validate(): first credential present wins (NOTES.md §1)."""
        if spec.is_public(method, spec_path):
            g.user = None
            return None
        h, q = request.headers, request.args
        share_key = h.get("x-immich-share-key") or q.get("key")
        share_slug = h.get("x-immich-share-slug") or q.get("slug")
        # getBearerToken: authorization.split(' ', 2), the second piece if the first is
        # "bearer" in any case ("Bearer  x" gives an empty token, so the cookie is next).
        kind, _, rest = h.get("Authorization", "").partition(" ")
        bearer = rest.split(" ", 1)[0] if kind.lower() == "bearer" else None
        session = (
            h.get("x-immich-user-token")
            or h.get("x-immich-session-token")
            or q.get("sessionKey")
            or bearer
            or request.cookies.get(COOKIE_TOKEN)
        )
        api_key = h.get("x-api-key") or q.get("apiKey")
        g.shared_assets = None
        g.session_token = None
        g.api_key = None
        perms = None
        if share_key:
            link = state.shared_links.get(share_key)
            if not link:
                return _error(401, "Invalid share key")
            g.user, g.shared_assets = state.users[link[0]], link[1]
        elif share_slug:
            return _error(401, "Invalid share slug")
        elif session:
            uid = state.sessions.get(session)
            if not uid:
                return _error(401, "Invalid user token")
            g.user, g.session_token = state.users[uid], session
        elif api_key:
            entry = state.api_keys.get(api_key)
            if not entry:
                return _error(401, "Invalid API key")
            uid, perms = entry
            g.user, g.api_key = state.users[uid], api_key
        else:
            return _error(401, "Authentication required")
        # AuthService.authenticate(), in its order: admin routes, shared-link routes, then
        # the API key's permission.
        if spec.admin_only(method, spec_path) and not g.user["isAdmin"]:
            return _error(403, "Forbidden")
        if share_key and not spec.allows_shared_link(method, spec_path):
            return _error(403, "Forbidden")
        if perms is not None:
            needed = spec.permission(method, spec_path)
            needed = "all" if needed is None else needed
            if needed is not False and "all" not in perms and needed not in perms:
                return _error(403, f"Missing required permission: {needed}")
        return None

    def route(rule: str, spec_path: str, methods: list[str]):
        def deco(fn):
            @wraps(fn)
            def wrapper(**kwargs):
                state.calls[(request.method, spec_path)] += 1
                wait = state.delay + state.route_delay.get((request.method, spec_path), 0.0)
                if wait:
                    time.sleep(wait)
                denied = authenticate(request.method, spec_path)
                if denied is not None:
                    return denied
                return fn(**kwargs)

            app.add_url_rule(
                "/api" + rule, endpoint=fn.__name__, view_func=wrapper, methods=methods
            )
            return wrapper

        return deco

    def elevated() -> bool:
        # auth.session?.hasElevatedPermission: an API key has no session
        return g.session_token is not None and g.session_token in state.elevated

    def visible(asset_id: str, perm: str) -> dict[str, Any] | Response:
        asset = state.assets.get(asset_id)
        ok = asset is not None and (
            asset["id"] in g.shared_assets
            if g.shared_assets is not None
            # checkOwnerAccess(userId, ids, hasElevatedPermission): the locked folder's
            # assets only to a session unlocked by PIN
            else asset["ownerId"] == g.user["id"]
            and (asset["visibility"] != "locked" or elevated())
        )
        if not ok:
            return _error(400, f"Not found or no {perm} access")
        return asset

    def own_assets(with_deleted: bool = False) -> list[dict[str, Any]]:
        uid = g.user["id"]
        return [
            a
            for a in state.assets.values()
            if a["ownerId"] == uid and (with_deleted or not a["isTrashed"])
        ]

    def json_body() -> dict[str, Any] | None:
        body = request.get_json(silent=True)
        return body if isinstance(body, dict) else None

    # --- server ---------------------------------------------------------------------------
    @app.get("/.well-known/immich")
    def well_known():
        # Outside /api and the spec (Immich answers it beside its web app; constants.ts
        # excludePaths): where the mobile app learns the API's path before it logs in
        return jsonify({"api": {"endpoint": "/api"}})

    @route("/server/ping", "/server/ping", ["GET"])
    def ping():
        return jsonify({"res": "pong"})

    @route("/server/version", "/server/version", ["GET"])
    def version():
        return jsonify({"major": 3, "minor": 1, "patch": 0, "prerelease": None})

    @route("/server/features", "/server/features", ["GET"])
    def features():
        # ServerFeaturesDto; no authentication in Immich either. With trash off, Immich
        # purges what DELETE /assets "trashes" at its next deletion check.
        on = {
            "configFile": False, "duplicateDetection": True, "email": False,
            "facialRecognition": True, "importFaces": False, "map": True, "oauth": False,
            "oauthAutoLaunch": False, "ocr": True, "passwordLogin": True,
            "realtimeTranscoding": False, "reverseGeocoding": True, "search": True,
            "sidecar": True, "smartSearch": True,
        }  # fmt: skip
        return jsonify({**on, "trash": state.trash_enabled})

    # --- auth -----------------------------------------------------------------------------
    @route("/auth/login", "/auth/login", ["POST"])
    def login():
        body = json_body()
        if (
            not body
            or not isinstance(body.get("email"), str)
            or not isinstance(body.get("password"), str)
        ):
            return _validation("email and password are required")
        email = body["email"].lower()
        if state.passwords.get(email) != body["password"]:
            return _error(401, "Incorrect email or password")
        user = next(u for u in state.users.values() if u["email"] == email)
        token = state.new_session(user["id"])
        resp = jsonify(
            {
                "accessToken": token,
                "userId": user["id"],
                "userEmail": user["email"],
                "name": user["name"],
                "isAdmin": user["isAdmin"],
                "isOnboarded": True,
                "profileImagePath": user["profileImagePath"],
                "shouldChangePassword": user["shouldChangePassword"],
            }
        )
        resp.status_code = 201
        age = 400 * 24 * 3600
        secure = request.headers.get("X-Forwarded-Proto", request.scheme) == "https"
        resp.set_cookie(
            COOKIE_TOKEN, token, max_age=age, httponly=True, samesite="Lax", secure=secure
        )
        resp.set_cookie(
            COOKIE_AUTH_TYPE, "password", max_age=age, httponly=True, samesite="Lax", secure=secure
        )
        resp.set_cookie(
            COOKIE_IS_AUTH, "true", max_age=age, httponly=False, samesite="Lax", secure=secure
        )
        return resp

    @route("/auth/logout", "/auth/logout", ["POST"])
    def logout():
        if g.session_token:
            state.sessions.pop(g.session_token, None)
        resp = jsonify({"successful": True, "redirectUri": "/auth/login?autoLaunch=0"})
        for name in (COOKIE_TOKEN, COOKIE_AUTH_TYPE, COOKIE_IS_AUTH):
            resp.delete_cookie(name)
        return resp

    @route("/auth/validateToken", "/auth/validateToken", ["POST"])
    def validate_token():
        return jsonify({"authStatus": True})

    @route("/api-keys/me", "/api-keys/me", ["GET"])
    def my_api_key():
        if not g.api_key:  # ApiKeyService.getMine
            return _error(403, "Not authenticated with an API Key")
        _, perms = state.api_keys[g.api_key]
        key_id = str(uuid.UUID(bytes=hashlib.sha256(g.api_key.encode()).digest()[:16], version=4))
        return jsonify(
            {
                "id": key_id,
                "name": "fake key",
                "createdAt": "2024-01-01T00:00:00.000Z",
                "updatedAt": "2024-01-01T00:00:00.000Z",
                "permissions": sorted(perms),
            }
        )

    @route("/server/statistics", "/server/statistics", ["GET"])
    def server_statistics():
        # Admin-only in Immich (x-immich-admin-only): the check in authenticate() refuses
        # everyone else before this runs, as it refuses them on every admin route.
        by_user = []
        for uid, user in state.users.items():
            mine = [a for a in state.assets.values() if a["ownerId"] == uid]
            sizes = {
                kind: sum(a["exifInfo"]["fileSizeInByte"] or 0 for a in mine if a["type"] == kind)
                for kind in ("IMAGE", "VIDEO")
            }
            by_user.append(
                {
                    "userId": uid,
                    "userName": user["name"],
                    "photos": sum(1 for a in mine if a["type"] == "IMAGE"),
                    "videos": sum(1 for a in mine if a["type"] == "VIDEO"),
                    "usage": sizes["IMAGE"] + sizes["VIDEO"],
                    "usagePhotos": sizes["IMAGE"],
                    "usageVideos": sizes["VIDEO"],
                    "quotaSizeInBytes": user["quotaSizeInBytes"],
                }
            )
        totals = {
            k: sum(u[k] for u in by_user)
            for k in ("photos", "videos", "usage", "usagePhotos", "usageVideos")
        }
        return jsonify({**totals, "usageByUser": by_user})

    @route("/users/me", "/users/me", ["GET"])
    def users_me():
        return jsonify(g.user)

    # --- assets ---------------------------------------------------------------------------
    @route("/assets/statistics", "/assets/statistics", ["GET"])
    def asset_statistics():
        mine = own_assets()
        images = sum(1 for a in mine if a["type"] == "IMAGE")
        videos = sum(1 for a in mine if a["type"] == "VIDEO")
        return jsonify({"images": images, "videos": videos, "total": images + videos})

    @route("/assets/<asset_id>", "/assets/{id}", ["GET", "PUT", "PATCH"])
    def asset_info(asset_id: str):
        perm = "asset.read" if request.method == "GET" else "asset.update"
        asset = visible(asset_id, perm)
        if isinstance(asset, Response):
            return asset
        if request.method != "GET":
            body = json_body()
            if body is None:
                return _validation("body must be an object")
            for key in ("isFavorite", "visibility"):
                if key in body:
                    asset[key] = body[key]
            state.refresh_stacks()  # an archived member no longer counts
            if "description" in body:
                asset["exifInfo"]["description"] = body["description"]
            if "rating" in body:
                asset["exifInfo"]["rating"] = body["rating"]
        return jsonify(asset)

    @route("/assets/<asset_id>/thumbnail", "/assets/{id}/thumbnail", ["GET"])
    def thumbnail(asset_id: str):
        asset = visible(asset_id, "asset.view")
        if isinstance(asset, Response):
            return asset
        size = request.args.get("size", "thumbnail")
        if size not in ("thumbnail", "preview", "fullsize"):
            return _validation("size must be one of thumbnail, preview, fullsize")
        resp = Response(_thumbnail_bytes(), mimetype="image/webp")
        resp.headers["Cache-Control"] = "private, max-age=86400, no-transform"
        return resp

    @route("/assets/<asset_id>/original", "/assets/{id}/original", ["GET"])
    def original(asset_id: str):
        asset = visible(asset_id, "asset.download")
        if isinstance(asset, Response):
            return asset
        blob = state.blobs[asset_id]
        src = io.BytesIO(blob) if isinstance(blob, bytes) else blob
        resp = send_file(
            src,
            mimetype=asset["originalMimeType"],
            conditional=True,
            download_name=asset["originalFileName"],
            etag=asset["checksum"],
            max_age=0,
        )
        resp.headers["Cache-Control"] = "private, max-age=86400, no-transform"
        return resp

    @route("/assets", "/assets", ["POST"])
    def upload_asset():
        """Multipart upload (AssetMediaCreateDto); werkzeug spools big files to disk."""
        file = request.files.get("assetData")
        if file is None:
            return _validation("assetData is required")
        import tempfile

        h = hashlib.sha1()
        tmp = tempfile.NamedTemporaryFile(prefix="fakeimmich-", delete=False)
        with tmp:
            for chunk in iter(lambda: file.stream.read(1 << 20), b""):
                h.update(chunk)
                tmp.write(chunk)
        checksum = b64(h.digest())
        for a in state.assets.values():
            if a["ownerId"] == g.user["id"] and a["checksum"] == checksum and not a["libraryId"]:
                os.unlink(tmp.name)
                return jsonify({"id": a["id"], "status": "duplicate"}), 200
        asset = state.add_asset(
            g.user["id"], f"/data/upload/{g.user['id']}/{file.filename}", file=tmp.name
        )
        return jsonify({"id": asset["id"], "status": "created"}), 201

    def bulk_ids(body: dict[str, Any] | None, perm: str) -> list[str] | Response:
        """BulkIdsDto's ids, after Immich's access check of every one (all or nothing)."""
        if body is None or not isinstance(body.get("ids"), list):
            return _validation("ids must be an array")
        for aid in body["ids"]:
            res = visible(aid, perm)
            if isinstance(res, Response):
                return res
        return body["ids"]

    @route("/assets", "/assets", ["DELETE"])
    def delete_assets():
        body = json_body()
        ids = bulk_ids(body, "asset.delete")
        if isinstance(ids, Response):
            return ids
        with state.lock:
            for aid in ids:
                if body.get("force"):
                    state.forget_asset(aid)
                else:
                    state.assets[aid]["isTrashed"] = True
                    state.assets[aid]["updatedAt"] = iso(datetime.now(UTC))
            state.refresh_stacks()  # a trashed member is no longer counted
        if state.trash_error:
            return _error(state.trash_error, "Internal server error")
        return Response(status=204)

    @route("/trash/restore/assets", "/trash/restore/assets", ["POST"])
    def restore_assets():
        # TrashService.restoreAssets: access to every id is checked first (asset.delete),
        # then the trashed ones among them come back; count is how many did.
        ids = bulk_ids(json_body(), "asset.delete")
        if isinstance(ids, Response):
            return ids
        meanwhile, state.while_restoring = state.while_restoring, None
        if meanwhile:
            meanwhile()
        count = 0
        with state.lock:
            for aid in dict.fromkeys(ids):
                if state.assets[aid]["isTrashed"]:
                    state.assets[aid]["isTrashed"] = False
                    state.assets[aid]["updatedAt"] = iso(datetime.now(UTC))
                    count += 1
            state.refresh_stacks()
        return jsonify({"count": count})

    # --- stacks (NOTES.md §3; StackService, StackRepository) -------------------------------
    def stack_json(sid: str) -> dict[str, Any]:
        # mapStack: the assets as withAssets lists them, without their own stack field
        assets = [{k: v for k, v in state.assets[a].items() if k != "stack"}
                  for a in state.stack_assets(sid)]  # fmt: skip
        return {"id": sid, "primaryAssetId": state.stacks[sid]["primaryAssetId"], "assets": assets}

    def own_stack(sid: str, perm: str) -> dict[str, str] | Response:
        st = state.stacks.get(sid)
        if st is None or st["ownerId"] != g.user["id"]:
            return _error(400, f"Not found or no {perm} access")
        return st

    def is_uuid(value: Any) -> bool:
        try:
            return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
        except ValueError:
            return False

    @route("/stacks", "/stacks", ["GET", "POST"])
    def stacks():
        if request.method == "GET":  # StackService.search: the caller's, by cover
            primary = request.args.get("primaryAssetId")
            if primary is not None and not is_uuid(primary):
                return _validation("primaryAssetId must be a UUID", "invalid_string",
                                   ["primaryAssetId"])  # fmt: skip
            found = [sid for sid, st in state.stacks.items()
                     if st["ownerId"] == g.user["id"]
                     and (primary is None or st["primaryAssetId"] == primary)]  # fmt: skip
            return jsonify([stack_json(sid) for sid in found])
        body = json_body()
        ids = body.get("assetIds") if body else None
        if not isinstance(ids, list) or not all(is_uuid(i) for i in ids):
            return _validation("Invalid uuid", "invalid_string", ["assetIds"])
        if len(ids) < 2:
            return _validation("Array must contain at least 2 element(s)", "too_small",
                               ["assetIds"])  # fmt: skip
        for aid in ids:  # requireAccess(asset.update, assetIds): all or nothing
            res = visible(aid, "asset.update")
            if isinstance(res, Response):
                return res
        with state.lock:
            sid = state.add_stack(g.user["id"], ids)
        return jsonify(stack_json(sid)), 201

    @route("/stacks/<stack_id>", "/stacks/{id}", ["GET", "DELETE"])
    def one_stack(stack_id: str):
        perm = "stack.read" if request.method == "GET" else "stack.delete"
        st = own_stack(stack_id, perm)
        if isinstance(st, Response):
            return st
        if request.method == "GET":
            return jsonify(stack_json(stack_id))
        with state.lock:  # the assets are kept, unstacked
            for aid in [a for a, s in state.stack_of.items() if s == stack_id]:
                del state.stack_of[aid]
            state.refresh_stacks()
        return Response(status=204)

    @route("/assets/bulk-upload-check", "/assets/bulk-upload-check", ["POST"])
    def bulk_upload_check():
        body = json_body()
        if body is None or not isinstance(body.get("assets"), list):
            return _validation("assets must be an array")
        by_sum: dict[bytes, dict] = {}
        for a in own_assets(with_deleted=True):
            by_sum[base64.b64decode(a["checksum"])] = a
        results = []
        for item in body["assets"]:
            raw = item.get("checksum", "")
            try:
                digest = bytes.fromhex(raw) if len(raw) == 40 else base64.b64decode(raw)
            except ValueError:
                return _validation("checksum must be base64 or hex")
            hit = by_sum.get(digest)
            if hit:
                results.append(
                    {
                        "id": item.get("id"),
                        "action": "reject",
                        "reason": "duplicate",
                        "assetId": hit["id"],
                        "isTrashed": hit["isTrashed"],
                    }
                )
            else:
                results.append({"id": item.get("id"), "action": "accept"})
        return jsonify({"results": results})

    # --- search ---------------------------------------------------------------------------
    @route("/search/metadata", "/search/metadata", ["POST"])
    def search_metadata():
        body = json_body()
        if body is None:
            return _validation("body must be an object")
        page = int(body.get("page") or 1)
        size = int(body.get("size") or 250)
        if page < 1 or not 1 <= size <= 1000:
            return _validation("page must be >= 1 and size between 1 and 1000")
        items = own_assets(with_deleted=bool(body.get("withDeleted")))
        if g.shared_assets is not None:
            items = [a for a in items if a["id"] in g.shared_assets]
        if body.get("visibility") == "locked" and not elevated():
            return _error(401, "Elevated permission is required")
        if not body.get("visibility"):  # withDefaultVisibility: archive and timeline
            items = [a for a in items if a["visibility"] in ("archive", "timeline")]
        for key in ("id", "libraryId", "checksum", "type", "isOffline", "isFavorite", "visibility"):
            if key in body and body[key] is not None:
                items = [a for a in items if a.get(key) == body[key]]
        for key in ("originalPath", "originalFileName"):
            if body.get(key):
                needle = body[key].lower()
                items = [a for a in items if needle in a[key].lower()]
        if body.get("takenAfter"):
            items = [a for a in items if a["fileCreatedAt"] >= body["takenAfter"]]
        if body.get("takenBefore"):
            items = [a for a in items if a["fileCreatedAt"] <= body["takenBefore"]]
        items.sort(
            key=lambda a: (a["fileCreatedAt"], a["id"]), reverse=body.get("order", "desc") == "desc"
        )
        chunk = items[(page - 1) * size : page * size]
        more = len(items) > page * size
        out = []
        for a in chunk:
            a2 = dict(a)
            a2.pop("stack", None)  # search results leave stack undefined
            if not body.get("withExif"):
                a2.pop("exifInfo", None)
            out.append(a2)
        return jsonify(
            {
                "albums": {"total": 0, "count": 0, "items": [], "facets": []},
                "assets": {
                    "total": len(chunk),
                    "count": len(chunk),
                    "items": out,
                    "facets": [],
                    "nextPage": str(page + 1) if more else None,
                },
            }
        )

    # --- timeline -------------------------------------------------------------------------
    def timeline_assets() -> list[dict[str, Any]]:
        trashed = request.args.get("isTrashed")
        items = own_assets(with_deleted=True)
        if trashed == "true":
            items = [a for a in items if a["isTrashed"]]
        else:
            items = [a for a in items if not a["isTrashed"]]
        return [a for a in items if a["visibility"] == "timeline"]

    @route("/timeline/buckets", "/timeline/buckets", ["GET"])
    def buckets():
        counts: Counter = Counter(a["localDateTime"][:7] + "-01" for a in timeline_assets())
        return jsonify(
            [{"timeBucket": k, "count": v} for k, v in sorted(counts.items(), reverse=True)]
        )

    bucket_memo: dict[tuple, bytes] = {}

    @route("/timeline/bucket", "/timeline/bucket", ["GET"])
    def bucket():
        tb = request.args.get("timeBucket")
        if not tb:
            return _validation("timeBucket is required")
        items = [a for a in timeline_assets() if a["localDateTime"][:7] == tb[:7]]
        # Benchmarks time the gateway, not this fake: reuse the encoded answer while
        # nothing that the columns show has changed.
        memo_key = (
            g.user["id"],
            tb,
            request.args.get("order", "desc"),
            tuple(
                (
                    a["id"],
                    a["isFavorite"],
                    a["isTrashed"],
                    a["visibility"],
                    a["fileCreatedAt"],
                    id(a.get("stack")),
                    a["livePhotoVideoId"],
                )
                for a in items
            ),
        )
        if memo_key in bucket_memo:
            return Response(bucket_memo[memo_key], mimetype="application/json")
        items.sort(
            key=lambda a: a["fileCreatedAt"], reverse=request.args.get("order", "desc") == "desc"
        )
        cols: dict[str, list] = {
            k: []
            for k in (
                "id",
                "ownerId",
                "ratio",
                "isFavorite",
                "isImage",
                "isTrashed",
                "visibility",
                "fileCreatedAt",
                "localOffsetHours",
                "createdAt",
                "duration",
                "livePhotoVideoId",
                "projectionType",
                "thumbhash",
                "stack",
                "city",
                "country",
                "latitude",
                "longitude",
            )
        }
        for a in items:
            cols["id"].append(a["id"])
            cols["ownerId"].append(a["ownerId"])
            cols["ratio"].append(round((a["width"] or 1) / (a["height"] or 1), 4))
            cols["isFavorite"].append(a["isFavorite"])
            cols["isImage"].append(a["type"] == "IMAGE")
            cols["isTrashed"].append(a["isTrashed"])
            cols["visibility"].append(a["visibility"])
            cols["fileCreatedAt"].append(a["fileCreatedAt"])
            cols["localOffsetHours"].append(0)
            cols["createdAt"].append(a["createdAt"])
            cols["duration"].append(a["duration"])
            cols["livePhotoVideoId"].append(a["livePhotoVideoId"])
            cols["projectionType"].append(None)
            cols["thumbhash"].append(a["thumbhash"])
            stack = a.get("stack")
            cols["stack"].append([stack["id"], str(stack["assetCount"])] if stack else None)
            for key in ("city", "country", "latitude", "longitude"):
                cols[key].append((a.get("exifInfo") or {}).get(key))
        resp = jsonify(cols)
        if len(bucket_memo) > 64:
            bucket_memo.clear()
        bucket_memo[memo_key] = resp.get_data()
        return resp

    # --- duplicates -----------------------------------------------------------------------
    @route("/duplicates", "/duplicates", ["GET"])
    def duplicates():
        groups: dict[str, list[dict]] = {}
        for a in own_assets():
            if a.get("duplicateId") and not a.get("stack"):
                groups.setdefault(a["duplicateId"], []).append(a)
        out = []
        for dup_id, members in sorted(groups.items()):
            if len(members) < 2:  # singletons are pruned on read
                continue
            keep = max(
                members,
                key=lambda a: (
                    a["exifInfo"]["fileSizeInByte"] or 0,
                    sum(v is not None for v in a["exifInfo"].values()),
                ),
            )
            out.append(
                {"duplicateId": dup_id, "assets": members, "suggestedKeepAssetIds": [keep["id"]]}
            )
        return jsonify(out)

    @app.errorhandler(404)
    def not_found(_e):
        return _error(404, f"Cannot {request.method} {request.path}")

    @app.errorhandler(405)
    def not_allowed(_e):
        return _error(404, f"Cannot {request.method} {request.path}")

    return app
