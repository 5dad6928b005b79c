"""The web UI (ui/dist, built by Vite) served by the gateway itself.

In containers nginx serves the UI (docker/nginx.conf); the embedded default has no
nginx, so the gateway answers every path outside /api/ from the built files, with
index.html for the single-page app's own routes and long caching for hashed assets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.middleware.shared_data import SharedDataMiddleware

DEFAULT_DIST = Path(__file__).resolve().parent.parent / "ui" / "dist"


def is_api_path(path: str) -> bool:
    """``/api`` and everything under it: the API's, never the page's."""
    return path == "/api" or path.startswith("/api/")


# Outside /api/ but never the page's: the health check, and the address Immich's mobile
# app asks first for where the API is
APP_PATHS = frozenset({"/healthz", "/.well-known/immich"})


def with_ui(wsgi_app: Callable[..., Any], dist: Path) -> Callable[..., Any]:
    """Wrap ``wsgi_app``: /api/* goes to it, everything else to files under ``dist``."""
    index = dist / "index.html"

    def spa(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Not a file: a client-side route, answered with the app's page.
        body = index.read_bytes()
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
            ],
        )
        return [body]

    static = SharedDataMiddleware(spa, {"/": str(dist)}, cache=True, cache_timeout=365 * 86400)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if is_api_path(path) or path in APP_PATHS:
            return wsgi_app(environ, start_response)
        if path in ("", "/"):
            return spa(environ, start_response)
        return static(environ, start_response)

    return app
