"""Authentication delegated to Immich.

The gateway accepts exactly what Immich accepts, because it asks Immich: the caller's
credential parts are replayed to ``GET /api/users/me`` and Immich's answer decides.
A failure (401, 403 "Missing required permission: user.read", 403 for a shared link)
is returned to the caller unchanged (enrichment, which only skips its data then, does
not ask again about a refused caller for ``AUTH_TTL``). A success is cached for ``AUTH_TTL`` seconds under
the SHA-256 of every credential part replayed (not only the one expected to win, so a
difference in parsing can never pin one caller's identity on another's request), never
the credentials themselves: in the shared cache (Redis), and in front of it in the
process, until the same moment (the entry carries when Immich's answer expires, so no
copy is trusted longer than ``AUTH_TTL``).

API keys carry permissions. Immich checks them per route; for Twinlens's own routes the
gateway does the same with the key's permissions from ``GET /api/api-keys/me``, each
route naming the Immich permission closest to what it reads or does.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

import requests
from flask import Response, current_app, g, request
from redis.exceptions import RedisError
from werkzeug.http import parse_cookie
from werkzeug.wrappers import Request

from core import dataversion
from core.dataversion import AUTH_KEY
from core.hosts import is_local_host
from gateway import budget
from gateway.cache import cache, digest, get_many_or_none, guarded, set_many_if_up
from gateway.errors import immich_refusal, json_error
from gateway.upstream import client_header

LOCAL_USER = {"id": "local", "email": "", "name": "local", "isAdmin": True}


@dataclass(frozen=True)
class Credentials:
    """The credential-bearing parts of a request, in the form Immich reads them."""

    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    kind: str = ""  # which one Immich will use (its validate() order)
    secret: str = ""

    @property
    def present(self) -> bool:
        return bool(self.kind)

    def cache_key(self) -> str:
        # Everything replayed to Immich: whichever part Immich picks, the same parts
        # always get the same answer.
        parts = [sorted(self.headers.items()), sorted(self.params.items())]
        return "auth:" + digest(json.dumps(parts, ensure_ascii=False))

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(kind={self.kind!r})"


_HEADERS = (
    "Authorization",
    "x-api-key",
    "x-immich-user-token",
    "x-immich-session-token",
    "x-immich-share-key",
    "x-immich-share-slug",
    "Cookie",
)
_PARAMS = ("key", "slug", "sessionKey", "apiKey")
_ENVIRON = tuple((name, "HTTP_" + name.upper().replace("-", "_")) for name in _HEADERS)


class EnvironView:
    """The parts of a request ``extract`` reads, straight from a WSGI environ: the
    enriched fast path (gateway.proxy.FastPath) has no Flask request. Header lookups are
    dict lookups (werkzeug's EnvironHeaders scans the environ for each); a query string
    that may hold a credential and the cookies are parsed by werkzeug, as Flask does."""

    __slots__ = ("headers", "args", "cookies")

    def __init__(self, environ: dict[str, Any]) -> None:
        self.headers = {
            name: value
            for name, key in _ENVIRON
            if (value := client_header(environ, key)) is not None
        }
        qs = environ.get("QUERY_STRING", "")
        # "%" too: Immich decodes parameter names (``ke%79=`` is ``key=``), so must this.
        if qs and ("%" in qs or any(p + "=" in qs for p in _PARAMS)):
            self.args: Any = Request(environ).args
        else:
            self.args = {}
        cookie = self.headers.get("Cookie")
        self.cookies = parse_cookie(cookie) if cookie else {}


def bearer_token(authorization: str) -> str | None:
    """Immich's getBearerToken: ``authorization.split(' ', 2)``, the second piece when the
    first is "bearer" in any case; "Bearer  x" gives "" (no token: the cookie is next)."""
    kind, _, rest = authorization.partition(" ")
    return rest.split(" ", 1)[0] if kind.lower() == "bearer" else None


def extract(req=None) -> Credentials:
    """Credentials in Immich's order: share key, share slug, session token, API key."""
    req = req or request
    h, q = req.headers, req.args
    headers: dict[str, str] = {}
    for name in _HEADERS:
        if name in h:
            headers[name] = h[name]
    params = {k: q[k] for k in _PARAMS if k in q}
    order: list[tuple[str, str | None]] = [
        ("share-key", h.get("x-immich-share-key") or q.get("key")),
        ("share-slug", h.get("x-immich-share-slug") or q.get("slug")),
        (
            "session",
            h.get("x-immich-user-token")
            or h.get("x-immich-session-token")
            or q.get("sessionKey")
            or bearer_token(h.get("Authorization", ""))
            or req.cookies.get("immich_access_token"),
        ),
        ("api-key", h.get("x-api-key") or q.get("apiKey")),
    ]
    for kind, secret in order:
        if secret:
            return Credentials(headers, params, kind, secret)
    return Credentials(headers, params)


def upstream_error(exc: requests.RequestException) -> Response:
    if isinstance(exc, requests.Timeout):
        return json_error(504, "Immich did not answer in time")
    return json_error(502, "Immich is unreachable")


def upstream_failure(exc: requests.RequestException) -> tuple[int, Any]:
    """``upstream_error``'s answer as (status, JSON body), to build on."""
    err = upstream_error(exc)
    return err.status_code, err.get_json()


def immich_refusal_of(resp: requests.Response) -> tuple[int, Any]:
    """Immich's refusal as (status, body), its body kept when it is JSON."""
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, {"message": resp.text[:200]}


log = logging.getLogger("twinlens.gateway")

_LOCAL_KEY = "twinlens_auth_local"
_LOCAL_MAX = 10_000


def _remember(key: str, user: dict[str, Any], expires: float, epoch: int) -> None:
    """Keep ``user`` in this process until ``expires`` (wall clock), or until the identity
    epoch moves on from ``epoch`` (a logout, in any gateway process)."""
    local = current_app.extensions.setdefault(_LOCAL_KEY, {})
    if len(local) >= _LOCAL_MAX:
        local.clear()  # crude bound; entries are cheap to fetch again
    local[key] = (time.monotonic() + (expires - time.time()), user, epoch)


_REFUSED_KEY = "twinlens_auth_refused"


def refused_lately(creds: Credentials) -> bool:
    """Whether Immich refused ``creds`` on ``/users/me`` within ``AUTH_TTL`` in this
    process. Only enrichment asks: an API key without ``user.read`` reads its assets
    freely, and without this memo each of its answers cost one more refused call."""
    memo = current_app.extensions.get(_REFUSED_KEY)
    until = memo.get(creds.cache_key()) if memo else None
    return until is not None and until > time.monotonic()


def _note_refusal(key: str) -> None:
    memo = current_app.extensions.setdefault(_REFUSED_KEY, {})
    if len(memo) >= _LOCAL_MAX:
        memo.clear()  # crude bound, as for identities
    memo[key] = time.monotonic() + current_app.config["AUTH_TTL"]


def _epoch() -> int | None:
    """The identity epoch (core.dataversion's second counter, kept in-process under
    Redis's CLIENT TRACKING like the data version: one poll a call); None when Redis is
    not answering (then nothing remembered is trusted, and nothing is remembered)."""
    try:
        return guarded(dataversion.current, current_app.config["SETTINGS"].cache_url, AUTH_KEY)
    except RedisError:
        return None


def forget(creds: Credentials) -> None:
    """Drop what this gateway remembers of ``creds`` (Immich ended their session): in
    Redis, and, by moving the identity epoch on, in every gateway process (each then asks
    Redis or Immich again about every caller once: logouts are rare)."""
    if not creds.present:
        return
    key = creds.cache_key()
    local = current_app.extensions.get(_LOCAL_KEY)
    if local:
        local.pop(key, None)
    for step in (
        lambda: cache.delete(key),
        lambda: dataversion.bump(current_app.config["SETTINGS"].cache_url, AUTH_KEY),
    ):
        try:  # each on its own, past the down window: a logout is worth one more try
            step()
        except RedisError:
            # Redis not answering: what others remember expires within AUTH_TTL
            log.warning(
                "a logout could not reach Redis: other gateway processes may "
                "trust that session for up to %s s",
                current_app.config["AUTH_TTL"],
            )


def whoami(creds: Credentials, fresh: bool = False) -> dict[str, Any] | Response:
    """The Immich user behind ``creds``, or Immich's own refusal as a Response; with
    ``fresh`` Immich is asked even when the answer is remembered (before a change: a
    session ended or a user demoted a moment ago must not act on what was remembered)."""
    key = creds.cache_key() if creds.present else None
    # Read before Immich is asked: an answer fetched before a logout carries the epoch
    # the logout moved on from, and is never trusted after it
    epoch = _epoch() if key else None
    if key and not fresh and epoch is not None:
        local = current_app.extensions.get(_LOCAL_KEY)
        mine = local.get(key) if local else None
        if mine is not None and mine[0] > time.monotonic() and mine[2] == epoch:
            return mine[1]
        hit = get_many_or_none(key)[0]  # Redis not answering: Immich is asked
        if isinstance(hit, dict) and "user" in hit and "exp" in hit and hit.get("epoch") == epoch:
            _remember(key, hit["user"], hit["exp"], epoch)
            return hit["user"]
    cfg = current_app.config
    url = cfg["SETTINGS"].immich_url + "/api/users/me"
    try:
        resp = current_app.extensions["twinlens_http"].get(
            url,
            headers=creds.headers,
            params=creds.params,
            timeout=budget.timeout(cfg["AUTH_TIMEOUT"]),
        )
    except requests.RequestException as exc:
        return upstream_error(exc)
    if resp.status_code != 200:
        if key:  # nothing remembered of it stays, whatever the epoch does later
            (current_app.extensions.get(_LOCAL_KEY) or {}).pop(key, None)
            if resp.status_code in (401, 403):
                _note_refusal(key)
        # Immich's refusal, unchanged (status, body, content type, correlation id).
        out = Response(
            resp.content,
            status=resp.status_code,
            content_type=resp.headers.get("Content-Type", "application/json"),
        )
        if "X-Correlation-ID" in resp.headers:
            out.headers["X-Correlation-ID"] = resp.headers["X-Correlation-ID"]
        return out
    if key:  # a key given user.read meanwhile: enrichment may ask again
        (current_app.extensions.get(_REFUSED_KEY) or {}).pop(key, None)
    body = resp.json()
    user = {k: body.get(k) for k in ("id", "email", "name", "isAdmin")}
    permissions = _key_permissions(creds)
    if isinstance(permissions, Response):
        return permissions
    user["apiKeyPermissions"] = permissions
    if key and epoch is not None:
        expires = time.time() + cfg["AUTH_TTL"]
        set_many_if_up({key: {"user": user, "exp": expires, "epoch": epoch}}, cfg["AUTH_TTL"])
        _remember(key, user, expires, epoch)
    return user


def _key_permissions(creds: Credentials) -> list[str] | None | Response:
    """The permissions of the API key Immich authenticated the caller with; None when
    it used no API key (a session may do all its user may)."""
    if "x-api-key" not in creds.headers and "apiKey" not in creds.params:
        return None  # no key sent: Immich cannot have used one
    cfg = current_app.config
    try:
        resp = current_app.extensions["twinlens_http"].get(
            cfg["SETTINGS"].immich_url + "/api/api-keys/me",
            headers=creds.headers,
            params=creds.params,
            timeout=(cfg["UPSTREAM_CONNECT_TIMEOUT"], cfg["AUTH_TIMEOUT"]),
        )
    except requests.RequestException as exc:
        return upstream_error(exc)
    if resp.status_code == 403:  # "Not authenticated with an API Key": a session won
        return None
    try:
        permissions = resp.json()["permissions"] if resp.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        permissions = None
    if not isinstance(permissions, list):
        # Fail closed: an API key whose permissions are unknown gets nothing.
        return json_error(502, f"Immich did not say what this API key may do ({resp.status_code})")
    return [p for p in permissions if isinstance(p, str)]


def granted(user: dict[str, Any], permission: str) -> bool:
    """Immich's isGranted: a session may do anything its user may; a key needs the
    permission itself or ``all``."""
    held = user.get("apiKeyPermissions")
    return held is None or "all" in held or permission in held


def as_caller(method: str, path: str, **kwargs: Any) -> requests.Response:
    """Immich's ``/api/<path>`` with the caller's own credentials (``g.creds``), with the
    gateway's timeouts; requests' exceptions are the caller's to handle."""
    cfg = current_app.config
    creds: Credentials = g.creds
    return current_app.extensions["twinlens_http"].request(
        method,
        f"{cfg['SETTINGS'].immich_url}/api/{path}",
        headers=creds.headers,
        params=creds.params,
        timeout=budget.timeout(cfg["SERVICE_TIMEOUT"]),
        **kwargs,
    )


def require_user(permission: str, admin: bool = True):
    """Twinlens routes: an Immich-authenticated user (or the local user in local mode)
    whose API key, if one was used, holds ``permission``; with ``admin`` (and the
    ``admin_only`` setting) an Immich administrator. Refusals are Immich's own, in
    Immich's order: who you are, then admin, then the key's permission."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            settings = current_app.config["SETTINGS"]
            if settings.local_mode:
                g.user, g.creds = LOCAL_USER, Credentials()
                return view(*args, **kwargs)
            creds = extract()
            # Reads may use a remembered identity (at most AUTH_TTL old); changes ask
            # Immich, so a logout, a revoked key or a demotion stops them at once
            user = whoami(creds, fresh=request.method not in ("GET", "HEAD"))
            if isinstance(user, Response):
                return user
            if admin and settings.admin_only and not user.get("isAdmin"):
                # Immich's answer on its admin-only routes (AuthService.authenticate).
                return immich_refusal(403, "Forbidden")
            if not granted(user, permission):
                return immich_refusal(403, f"Missing required permission: {permission}")
            g.user, g.creds = user, creds
            return view(*args, **kwargs)

        wrapper.requires_user = True  # type: ignore[attr-defined]
        wrapper.permission = permission  # type: ignore[attr-defined]
        wrapper.admin = admin  # type: ignore[attr-defined]
        return wrapper

    return decorate


def local_hosts_only(wsgi_app: Any, bind_host: str) -> Any:
    """WSGI guard for local mode, which answers without a login: a request whose Host
    names another site is refused (DNS rebinding; see core.hosts)."""
    body = json.dumps(
        {
            "message": "local mode answers only requests addressed to this machine "
            "(Host: localhost or 127.0.0.1)",
            "statusCode": 403,
        }
    ).encode()

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if is_local_host(environ.get("HTTP_HOST"), bind_host):
            return wsgi_app(environ, start_response)
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return guarded
