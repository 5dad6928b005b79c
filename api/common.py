"""What both Twinlens APIs share: a session per request, JSON errors, the service
token, request parsing that answers 400 with a reason instead of a stack trace."""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from flask import Flask, current_app, g, jsonify, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from core.config import Settings
from core.paths import PathOutsideRoots, confine

log = logging.getLogger("twinlens.api")

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
MAX_PAGE_SIZE = 1000


class ApiError(Exception):
    """An error answered as JSON with a status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def settings() -> Settings:
    return current_app.config["TWINLENS_SETTINGS"]  # type: ignore[no-any-return]


def db() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = current_app.config["TWINLENS_SESSIONMAKER"]()
    return g.db  # type: ignore[no-any-return]


def broker() -> Any:
    return current_app.extensions["twinlens_broker"]


def json_body(required: bool = False) -> dict[str, Any]:
    """The request's JSON object; 400 for malformed JSON or a non-object."""
    if not request.data:
        if required:
            raise ApiError(400, "a JSON body is required")
        return {}
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "malformed JSON body")
    if not isinstance(data, dict):
        raise ApiError(400, "the JSON body must be an object")
    return data


MAX_LOOKUP = 1000
_SHA1 = re.compile(r"[0-9a-fA-F]{40}")


def only_fields(body: dict[str, Any], allowed: set[str]) -> None:
    """400 for any field of the JSON body not in ``allowed``."""
    unknown = set(body) - allowed
    if unknown:
        raise ApiError(400, f"unknown fields: {', '.join(sorted(unknown))}")


def lookup_request() -> tuple[list[str], list[str]]:
    """The body of a ``/…/lookup`` request: (confined paths, SHA-1 hex values)."""
    body = json_body(required=True)
    only_fields(body, {"paths", "sha1"})
    paths = str_list(body, "paths")
    sha1s = str_list(body, "sha1")
    if not paths and not sha1s:
        raise ApiError(400, "give paths or sha1 (or both)")
    if len(paths) + len(sha1s) > MAX_LOOKUP:
        raise ApiError(400, f"at most {MAX_LOOKUP} paths and checksums per request")
    bad = next((x for x in sha1s if not _SHA1.fullmatch(x)), None)
    if bad is not None:
        raise ApiError(400, f"sha1 values must be 40 hex digits, got {bad[:60]!r}")
    return [confined_path(p, "paths[]") for p in paths], sha1s


# --- OpenAPI pieces both APIs' documents use -------------------------------------------------


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
BAD_REQUEST = {"$ref": "#/components/responses/BadRequest"}
NOT_FOUND = {"$ref": "#/components/responses/NotFound"}
# The body lookup_request() reads.
LOOKUP_BODY = {
    "required": True,
    "content": json_content(
        {
            "type": "object",
            "properties": {
                "paths": {"type": "array", "items": {"type": "string"}},
                "sha1": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^[0-9a-fA-F]{40}$"},
                },
            },
        }
    ),
}


def str_list(body: dict[str, Any], name: str, *, required: bool = False) -> list[str]:
    """A list of non-empty strings from a JSON body (400 otherwise)."""
    raw = body.get(name)
    if raw is None:
        if required:
            raise ApiError(400, f"{name} is required")
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise ApiError(400, f"{name} must be a list of non-empty strings")
    return raw


def int_arg(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ApiError(400, f"{name} must be at least {minimum}{upper}, got {value}")
    return value


def float_arg(name: str, default: float | None, minimum: float, maximum: float) -> float | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ApiError(400, f"{name} must lie between {minimum} and {maximum}, got {value}")
    return value


def choice_arg(name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise ApiError(400, f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def paging() -> tuple[int, int]:
    """(page starting at 1, size) from the query string."""
    return int_arg("page", 1, 1), int_arg("size", 50, 1, MAX_PAGE_SIZE)


def confined_path(raw: Any, name: str = "path") -> str:
    """A path from a request, resolved and confined to the library roots (else 400)."""
    if not isinstance(raw, str) or not raw:
        raise ApiError(400, f"{name} must be a non-empty string")
    roots = settings().library_roots
    if not roots:
        raise ApiError(400, "no library roots are configured (TWINLENS_LIBRARY_ROOTS)")
    try:
        return confine(raw, roots)
    except PathOutsideRoots as exc:
        raise ApiError(400, str(exc)) from None


def _check_token() -> None:
    if request.endpoint in (None, "common.healthz") or request.path == "/healthz":
        return
    token = settings().service_token
    if not token:
        # No token configured: only callers on this machine (embedded default).
        if request.remote_addr not in LOOPBACK:
            raise ApiError(401, "service token required")
        return
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else ""
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(401, "missing or wrong service token")


def install(app: Flask) -> None:
    """Hook auth, sessions and JSON errors into ``app``."""
    app.before_request(_check_token)

    @app.teardown_appcontext
    def _close(exc: BaseException | None) -> None:
        session = g.pop("db", None)
        if session is not None:
            if exc is not None:
                session.rollback()
            session.close()

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return jsonify(error=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        return jsonify(error=exc.description or exc.name), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error="internal error; see the server log"), 500
