"""The gateway with nothing added: a yardstick for ``bench_gateway.py``, not a server to run.

``bench_gateway.py --only ...,bare`` serves this under granian with the gateway's workers and
threads, beside the gateway, in front of the same fake Immich. It is the gateway's own app
(the same settings, upstream pool and relay), but every request goes down
``FastPath.passthrough``: no routing, no authentication, no enrichment. On the asset route
its req/s is what the gateway would reach if it passed Immich's answer on untouched, so the
distance between the two is what Twinlens's additions cost, and its distance to the
target is what no speed-up of those additions could close.
"""

from __future__ import annotations

from typing import Any


def app():  # type: ignore[no-untyped-def]
    """granian's factory, built in each worker (the gateway's settings from the environment)."""
    from core.config import load_settings
    from gateway import create_app
    from gateway.proxy import FastPath

    flask_app = create_app({"SETTINGS": load_settings()})
    fast = FastPath(flask_app, flask_app.wsgi_app)

    def passthrough(environ: dict[str, Any], start_response: Any) -> Any:
        return fast.passthrough(environ, start_response)

    return passthrough
