"""Production HTTP servers for ``twinlens gateway``: granian (default) or gunicorn.

granian (Rust HTTP, WSGI in a pool of Python threads) costs the gateway about 30% less
CPU per proxied request than gunicorn's gthread worker, whose Python HTTP parsing and
poller-to-thread hand-offs dominate a passthrough (bench/RESULTS.md). Both stream
bodies both ways; gunicorn additionally moves large originals by splice(2)
(gateway.proxy.SplicedBody). ``TWINLENS_GATEWAY_SERVER`` picks one.
"""

from __future__ import annotations

import logging
import os

from core.config import Settings

PORT = 3000
# Access logs: method, path without the query string (?apiKey= / ?key= are
# credentials), status, size or time.
_GUNICORN_ACCESS = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
_GRANIAN_ACCESS = '%(addr)s "%(method)s %(path)s" %(status)d %(dt_ms).1fms'

# The settings granian's workers build the app with: inherited when they are forked
# (Linux); a spawned worker reads the environment, as the command did.
_SETTINGS: Settings | None = None


def bind_address(settings: Settings, port: int = PORT) -> str:
    # Local mode has no login: never expose it beyond this machine.
    host = "127.0.0.1" if settings.local_mode else settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def run(
    settings: Settings,
    workers: int | None = None,
    threads: int = 16,
    port: int = PORT,
    access_log: bool = True,
    server: str | None = None,
) -> None:
    """Serve the gateway until stopped, with ``server`` (default: the settings' choice)."""
    workers = workers or max(2, (os.cpu_count() or 1))
    if settings.cache_url.startswith("memory"):
        # An in-process cache (and data version) is one process's: a second worker would
        # keep serving what the first one's change made stale
        logging.getLogger("twinlens.gateway").warning(
            "TWINLENS_CACHE_URL is memory://: the gateway runs one worker, and sees groups "
            "changed by other processes (scans by separate workers) only as its cached "
            "answers expire; set a Redis URL to run it beside them"
        )
        workers = 1
    if (server or settings.gateway_server) == "gunicorn":
        _run_gunicorn(settings, workers, threads, port, access_log)
    else:
        _run_granian(settings, workers, threads, port, access_log)


def granian_app():  # type: ignore[no-untyped-def]
    """The WSGI app, built in each granian worker."""
    from core.config import load_settings
    from gateway import create_app

    return create_app({"SETTINGS": _SETTINGS or load_settings()})


def _run_granian(
    settings: Settings, workers: int, threads: int, port: int, access_log: bool
) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    global _SETTINGS
    _SETTINGS = settings
    host = bind_address(settings, port).rsplit(":", 1)[0].strip("[]")
    Server(
        "gateway.server:granian_app",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        factory=True,
        workers=workers,
        # A streamed original or upload holds its thread until it ends.
        blocking_threads=threads,
        log_level=settings.log_level.lower(),
        log_access=access_log,
        log_access_format=_GRANIAN_ACCESS,
    ).serve()


def _run_gunicorn(
    settings: Settings, workers: int, threads: int, port: int, access_log: bool
) -> None:
    from gunicorn.app.base import BaseApplication

    class GatewayServer(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):  # type: ignore[no-untyped-def]
            from gateway import create_app

            return create_app({"SETTINGS": settings})

    options = {
        "bind": bind_address(settings, port),
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        # gthread: the heartbeat comes from the main thread, so long streams are not killed.
        "timeout": 120,
        "graceful_timeout": 30,
        "keepalive": 30,
        "loglevel": settings.log_level.lower(),
        "accesslog": "-" if access_log else None,
        "access_log_format": _GUNICORN_ACCESS,
    }
    GatewayServer().run()
