"""Twinlens gateway (port 3000): Immich's API proxied and enriched, plus /api/twinlens/.

app = create_app()                     # settings from the environment
app = create_app({"SETTINGS": s})      # tests: explicit Settings (and any config key)
serve(settings)                        # gunicorn on settings.host:3000 (loopback in local mode)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from core.config import Settings, load_settings
from core.db import SQLITE_BUSY_SECONDS

DEFAULTS: dict[str, Any] = {
    "UPSTREAM_CONNECT_TIMEOUT": 5.0,  # seconds to reach Immich / a service
    "UPSTREAM_READ_TIMEOUT": 300.0,  # between two bytes from Immich (large uploads/exports)
    "AUTH_TIMEOUT": 10.0,
    "SERVICE_TIMEOUT": 30.0,
    # What Twinlens adds to an Immich answer may take this long in all (gateway.budget);
    # a service that failed meanwhile is skipped by enrichments for the next seconds
    "ENRICH_BUDGET": 5.0,
    "ENRICH_SKIP_AFTER_FAILURE": 15.0,
    "AUTH_TTL": 60,  # seconds a /users/me answer is trusted
    "CACHE_TTL": 600,  # per-file Twinlens lookups (also invalidated by the data version)
    "MEMBER_TTL": 60,  # per-user answers that depend on Immich state (asset ids, trash)
    "ASSET_MAP_TTL": 3600,  # asset id -> library file (paths and checksums rarely change)
    "LIST_TTL": 30,  # /api/twinlens list answers
    # Largest piece of a streamed body: granian queues a few per stream, and 1 MB pieces
    # let a 1 GB download grow the worker by ~40 MB (256 KB: ~9 MB, same throughput).
    "STREAM_CHUNK": 256 * 1024,
    "MAX_JSON_BODY": 1024 * 1024,  # Twinlens endpoints only; the proxy streams any size
    # A bulk resolve runs in the request: ~6 calls a group must end well inside nginx's
    # 600 s proxy_read_timeout, or the client never learns what was trashed
    "MAX_BULK_GROUPS": 200,
    "TIMELINE_MAX_PAGES": 20,
    "TIMELINE_MAX_SINGLE": 200,
    "THUMB_SIZE": 320,
    "HTTP_POOL": 64,
}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    # A path with "//" is passed on (to Immich) or refused as it is: Werkzeug's default
    # answers it with an HTML 308 to the merged path, under /api too, which can turn a
    # one-group resolve (duplicates/%2F/resolve) into a request to the bulk route
    app.url_map.merge_slashes = False
    test_config = dict(test_config or {})
    settings: Settings = test_config.pop("SETTINGS", None) or load_settings()
    app.config.from_mapping(DEFAULTS)
    if settings.database_url.startswith("sqlite"):
        # The APIs' writes wait up to 60 s for SQLite's one writer (a scan's batch): a
        # gateway that gave up first would report a failure for a write that then happens
        app.config["SERVICE_TIMEOUT"] = SQLITE_BUSY_SECONDS + 15.0
    app.config["SETTINGS"] = settings
    app.config.update(test_config)

    from gateway import cache, logredact, proxy, twinlens, ui
    from gateway.upstream import make_session

    cache.init_app(app)
    app.register_error_handler(HTTPException, _json_under_api)
    # The gateway answers, whatever Immich and Redis are doing (compose's healthcheck)
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
    app.extensions["twinlens_http"] = make_session(app.config["HTTP_POOL"])
    app.register_blueprint(twinlens.bp)
    if not settings.local_mode:
        app.register_blueprint(proxy.bp)
    logredact.install()
    dist = Path(app.config.get("UI_DIST") or ui.DEFAULT_DIST)
    if (dist / "index.html").is_file():
        app.wsgi_app = ui.with_ui(app.wsgi_app, dist)  # type: ignore[method-assign]
    if settings.local_mode:
        from gateway.auth import local_hosts_only

        app.wsgi_app = local_hosts_only(app.wsgi_app, settings.host)  # type: ignore[method-assign]
    logging.getLogger("twinlens.gateway").setLevel(settings.log_level)
    return app


def _json_under_api(exc: HTTPException) -> Any:
    """A route or method the gateway does not have (local mode serves no Immich route):
    a JSON error in Immich's shape under /api/, as every other answer there; the page's
    own 404 elsewhere."""
    from flask import request

    from gateway.errors import json_error
    from gateway.ui import is_api_path

    if is_api_path(request.path):
        code = exc.code or 500
        # NestJS's (Immich's) own wording for a route it does not have
        message = f"Cannot {request.method} {request.path}" if code == 404 else exc.name
        resp = json_error(code, message)
        for name, value in exc.get_headers():
            if name.lower() == "allow":  # a 405 says which methods there are
                resp.headers[name] = value
        return resp
    return exc


def serve(
    settings: Settings | None = None,
    workers: int | None = None,
    threads: int = 16,
    port: int = 3000,
    access_log: bool = True,
    server: str | None = None,
) -> None:
    """Run the gateway on settings.host:3000 (127.0.0.1 in local mode) under granian or
    gunicorn (``TWINLENS_GATEWAY_SERVER``, or ``server``); threads per worker process,
    because a streamed original occupies one."""
    from gateway.server import run

    run(
        settings or load_settings(),
        workers=workers,
        threads=threads,
        port=port,
        access_log=access_log,
        server=server,
    )
