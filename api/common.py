"""What both Twinlens APIs share: a session per request, JSON errors, the service
token, request parsing that answers 400 with a reason instead of a stack trace."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sqlite3
import threading
from typing import Any

from flask import Flask, current_app, g, jsonify, request
from sqlalchemy import text
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from core.config import Settings
from core.hosts import LOOPBACK_NAMES, is_local_host
from core.paths import PathOutsideRoots, confine, query_paths
from core.requestbody import read_body

log = logging.getLogger("twinlens.api")

MAX_PAGE_SIZE = 1000
# page * size must fit the databases' 64-bit OFFSET; far past any real catalog.
MAX_PAGE = 1_000_000_000
# Ids are uuid4 hex (core.models.new_id) in String(32) columns.
_ID = re.compile(r"[0-9A-Za-z_-]{1,32}")
_WHOLE = re.compile(r"-?[0-9]{1,30}")


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
    """The request's JSON object; 400 for malformed JSON, a non-object, or a body not
    sent as JSON."""
    # Not request.data: Werkzeug parses a form-encoded body into request.form and leaves
    # request.data empty, so `curl -d '{"path": …}'` would silently become {} (a scan of
    # the whole root, a dissolved group).
    raw = read_body(request, None, ApiError, (HTTPException,))
    if not raw:
        if required:
            raise ApiError(400, "a JSON body is required")
        return {}
    if not request.is_json:
        raise ApiError(400, "the body must be JSON, sent with Content-Type: application/json")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise ApiError(400, "malformed JSON body") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the JSON body must be an object")
    return data


def check_id(raw: str, what: str) -> str:
    """``raw`` if a row could have it as id; 404 otherwise, before the database sees it
    (PostgreSQL refuses a NUL in a string parameter, which was a 500)."""
    if not _ID.fullmatch(raw):
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise ApiError(404, f"no {what} {shown!r}")
    return raw


def only_args(*allowed: str) -> None:
    """400 for a query parameter not in ``allowed``: a misspelt filter (``state`` for
    ``status``) would otherwise be ignored and widen the answer without a word."""
    unknown = set(request.args) - set(allowed)
    if unknown:
        raise ApiError(400, f"unknown query parameters: {', '.join(sorted(unknown))}")


def path_arg(name: str) -> str | None:
    """A query parameter that is a file path, its bytes kept (core.paths.query_paths)."""
    return query_paths(request.query_string).get(name)


def prefix_arg() -> str | None:
    """The lists' ``path_prefix`` filter, confined to the library roots (400 outside
    them); None when it is not given."""
    prefix = path_arg("path_prefix")
    return None if prefix is None else confined_path(prefix, "path_prefix")


# SQLite (the embedded default) serves both APIs from one process: a lock per name there.
_LOCAL_LOCKS: dict[str, threading.Lock] = {}
_LOCAL_LOCKS_GUARD = threading.Lock()


def serialise(session: Session, name: str) -> None:
    """Hold a lock named ``name`` until the request ends (after its commit), so that the
    check-then-insert of concurrent requests (start a job unless one is active) runs one
    at a time.

    PostgreSQL: a transaction-scoped advisory lock (any number of API processes).
    SQLite: a lock in this process, released at teardown; the embedded APIs are one
    process, and SQLite's deferred transactions would otherwise let both requests read
    "nothing active" and both insert.
    """
    if session.get_bind().dialect.name != "postgresql":
        with _LOCAL_LOCKS_GUARD:
            lock = _LOCAL_LOCKS.setdefault(name, threading.Lock())
        held = g.setdefault("serial_locks", [])
        if lock not in held:
            lock.acquire()
            held.append(lock)
        return
    digest = hashlib.blake2b(name.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


MAX_LOOKUP = 1000
SHA1_HEX = re.compile(r"[0-9a-fA-F]{40}")


def only_fields(body: dict[str, Any], allowed: set[str]) -> None:
    """400 for any field of the JSON body not in ``allowed``."""
    unknown = set(body) - allowed
    if unknown:
        raise ApiError(400, f"unknown fields: {', '.join(sorted(unknown))}")


def lookup_request() -> tuple[list[str], list[str]]:
    """The body of a ``/…/lookup`` request: (confined paths, SHA-1 hex values). Paths
    outside the library roots are left out (not found), not refused."""
    body = json_body(required=True)
    only_fields(body, {"paths", "sha1"})
    paths = str_list(body, "paths")
    sha1s = str_list(body, "sha1")
    if not paths and not sha1s:
        raise ApiError(400, "give paths or sha1 (or both)")
    if len(paths) + len(sha1s) > MAX_LOOKUP:
        raise ApiError(400, f"at most {MAX_LOOKUP} paths and checksums per request")
    bad = next((x for x in sha1s if not SHA1_HEX.fullmatch(x)), None)
    if bad is not None:
        raise ApiError(400, f"sha1 values must be 40 hex digits, got {bad[:60]!r}")
    return [c for c in (_known_or_none(p) for p in paths) if c is not None], sha1s


def _known_or_none(path: str) -> str | None:
    """A looked-up path, confined; None for one outside the library roots (or no path at
    all): a lookup only asks what the catalog knows, and it knows nothing there. The
    gateway asks with every asset of an Immich answer, and a phone upload lives in
    Immich's own folder; refusing it refused the whole answer's enrichment."""
    try:
        return confined_path(path, "paths[]")
    except ApiError:
        return None


# --- OpenAPI pieces both APIs' documents use -------------------------------------------------


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
# The two query parameters of every paged list (``paging``)
PAGE_PARAMS = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {
        "name": "size",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    },
]
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
    if raw is None and name not in body:
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
    # Plain ASCII digits only: int() also reads "1_0", " 5" and fullwidth digits.
    if not _WHOLE.fullmatch(raw):
        raise ApiError(400, f"{name} must be a whole number, got {raw[:40]!r}")
    value = int(raw)
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
    return int_arg("page", 1, 1, MAX_PAGE), int_arg("size", 50, 1, MAX_PAGE_SIZE)


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
        # No token configured: only callers on this machine (embedded default), and
        # only what no web page in a browser here can send: a request addressed to
        # another name (DNS rebinding, core.hosts), or a cross-site POST, which a browser
        # sends without asking first only as a form or text/plain.
        if request.remote_addr not in LOOPBACK_NAMES:
            raise ApiError(401, "service token required")
        if not is_local_host(request.headers.get("Host"), settings().host):
            raise ApiError(403, "without a service token only requests to this machine")
        if request.method in ("POST", "PUT", "PATCH") and not request.is_json:
            raise ApiError(
                400, "the body must be JSON, sent with Content-Type: application/json ({} for none)"
            )
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":  # the scheme is case-insensitive (RFC 9110 11.1)
        given = ""
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(401, "missing or wrong service token")


# PostgreSQL SQLSTATEs of a write that lost to a concurrent one: unique_violation,
# deadlock_detected, serialization_failure.
_RETRYABLE = {"23505", "40P01", "40001"}


def lost_race(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that lost to a concurrent writer (retrying works).

    Input is checked before anything is written, so a broken unique key means another
    writer (a worker's grouping pass) got there first. SQLAlchemy wraps the driver's
    error in ``.orig``; core's COPY path raises the driver's own (psycopg2 pgcode).
    """
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "pgcode", None) in _RETRYABLE:
        return True
    return isinstance(orig, sqlite3.IntegrityError) and "UNIQUE" in str(orig)


def _locked(exc: BaseException) -> bool:
    """SQLite's one writer held the lock past its busy timeout (a long scan batch)."""
    orig = getattr(exc, "orig", None) or exc
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)


def _conflict(exc: BaseException) -> Any:
    log.warning("concurrent write lost on %s %s: %s", request.method, request.path, exc)
    session = g.pop("db", None)
    if session is not None:  # the transaction is dead; teardown sees no error to roll back
        session.rollback()
        session.close()
    return jsonify(error="a concurrent change to the same files won; try again"), 409


def install(app: Flask) -> None:
    """Hook auth, sessions and JSON errors into ``app``."""
    app.before_request(_check_token)

    @app.teardown_appcontext
    def _close(exc: BaseException | None) -> None:
        session = g.pop("db", None)
        try:
            if session is not None:
                if exc is not None:
                    session.rollback()
                session.close()
        finally:
            for lock in g.pop("serial_locks", []):
                lock.release()

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return jsonify(error=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        return jsonify(error=exc.description or exc.name), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        if lost_race(exc):
            return _conflict(exc)
        if _locked(exc):
            log.warning("catalog busy on %s %s: %s", request.method, request.path, exc)
            answer = jsonify(error="the catalog is busy (a scan is writing); try again shortly")
            return answer, 503, {"Retry-After": "10"}
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error="internal error; see the server log"), 500
