"""The grouping (8000) and dedup (8001) APIs: one application factory, two apps.

``create_app("grouping")`` and ``create_app("dedup")`` share health, scans, jobs,
auth and error handling (api.common, api.jobs) and add their own blueprint.
"""

from __future__ import annotations

import importlib
from typing import Any

from flask import Flask, jsonify

from api import common
from api import jobs as jobs_api
from core.config import Settings, load_settings
from core.db import engine_for, session_factory

PORTS = {"grouping": 8000, "dedup": 8001}


def create_app(which: str, test_config: dict[str, Any] | None = None) -> Flask:
    """Build an API app. ``test_config`` may hold ``settings`` (a Settings),
    ``broker`` (a Dramatiq broker) and any Flask config keys."""
    if which not in PORTS:
        raise ValueError(f"unknown API {which!r}")
    cfg = dict(test_config or {})
    settings: Settings = cfg.pop("settings", None) or load_settings()
    broker = cfg.pop("broker", None)
    app = Flask(f"twinlens.{which}")
    app.config.update(
        TWINLENS_SETTINGS=settings,
        TWINLENS_SESSIONMAKER=session_factory(engine_for(settings.database_url)),
        MAX_CONTENT_LENGTH=1 << 20,
        JSON_SORT_KEYS=False,
    )
    app.config.update(cfg)
    if broker is None:
        from core.broker import make_broker

        broker = make_broker(settings)
    app.extensions["twinlens_broker"] = broker
    common.install(app)
    app.register_blueprint(jobs_api.bp)
    module = importlib.import_module(f"api.{which}")
    app.register_blueprint(module.bp)
    document = openapi(which, module)

    @app.get("/openapi.json")
    def _openapi() -> Any:
        return jsonify(document)

    return app


def openapi(which: str, module: Any) -> dict[str, Any]:
    paths = dict(jobs_api.OPENAPI_PATHS)
    paths.update(getattr(module, "OPENAPI_PATHS", {}))
    schemas = {
        "Job": jobs_api.JOB_SCHEMA,
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
    }
    schemas.update(getattr(module, "OPENAPI_SCHEMAS", {}))
    err = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Twinlens {which} API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "BadRequest": {"description": "bad input; the message says why", "content": err},
                "NotFound": {"description": "unknown id", "content": err},
                "Unauthorized": {"description": "missing or wrong service token", "content": err},
            },
            "securitySchemes": {"serviceToken": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"serviceToken": []}],
    }


def serve(which: str, settings: Settings, port: int | None = None) -> int:
    """Run an API under gunicorn (production WSGI server)."""
    from gunicorn.app.base import BaseApplication

    from core.db import migrate

    migrate(settings.database_url)

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{port or PORTS[which]}")
            self.cfg.set("workers", 2)
            self.cfg.set("threads", 4)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")
            # No limit on the request line (gunicorn's is 4094 bytes): a folder asked for
            # by path_prefix may be 4096 bytes, three times that percent-encoded. Only
            # the gateway and the workers call these APIs, with the service token.
            self.cfg.set("limit_request_line", 0)

        def load(self) -> Flask:
            # Built in each worker after the fork, so no database pool is shared.
            return create_app(which, {"settings": settings})

    _App().run()
    return 0


__all__ = ["create_app", "serve", "PORTS", "load_settings"]
