"""gunicorn entry point for ``twinlens gateway``."""

from __future__ import annotations

import os

from gunicorn.app.base import BaseApplication

from core.config import Settings

PORT = 3000


def bind_address(settings: Settings, port: int = PORT) -> str:
    # Local mode has no login: never expose it beyond this machine.
    host = "127.0.0.1" if settings.local_mode else settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


class GatewayServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from gateway import create_app

        return create_app({"SETTINGS": self.settings})


def run(settings: Settings, workers: int | None = None, threads: int = 16, port: int = PORT,
        access_log: bool = True) -> None:
    options = {
        "bind": bind_address(settings, port),
        "workers": workers or max(2, (os.cpu_count() or 1)),
        "worker_class": "gthread",
        "threads": threads,
        # gthread: the heartbeat comes from the main thread, so long streams are not killed.
        "timeout": 120,
        "graceful_timeout": 30,
        "keepalive": 30,
        "loglevel": settings.log_level.lower(),
        # Access log lines carry no query string: ?apiKey= / ?key= are credentials.
        "accesslog": "-" if access_log else None,
        "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms',
    }
    GatewayServer(settings, options).run()
