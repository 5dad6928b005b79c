"""How long an Immich answer may wait for what Twinlens adds to it.

Enrichment is an addition to Immich's answer, which the gateway already holds: a
Twinlens service, Redis or an Immich lookup that hangs must cost the client a few
seconds at most, not 30 s per call, and must not hold the gateway's threads until
uploads and logins queue behind it. ``proxy.enriched_answer`` opens a budget
(``ENRICH_BUDGET`` seconds); every call made for the enrichment takes its timeouts from
what is left and raises ``Spent`` when nothing is (Immich's answer then goes out as it
came, flagged ``X-Twinlens-Enrichment: unavailable``). A service that failed during an
enrichment is skipped by the enrichments of the next ``ENRICH_SKIP_AFTER_FAILURE``
seconds, in this process: while it is down, each answer costs nothing extra.
Calls made outside an enrichment (resolve, undo, Twinlens's own routes) are unchanged.

An enrichment that could not ask everything it needed (an Immich lookup refused or
failed) is ``partial``: sent, but not cached, so that the next request asks again.
"""

from __future__ import annotations

import threading
import time

from flask import current_app, g

_skip_until: dict[str, float] = {}
_lock = threading.Lock()


class Spent(LookupError):
    """The enrichment's time is up."""


def open_budget() -> None:
    g.twinlens_deadline = time.monotonic() + current_app.config["ENRICH_BUDGET"]
    g.twinlens_partial = False


def enriching() -> bool:
    return g.get("twinlens_deadline") is not None


def timeout(read: float) -> tuple[float, float]:
    """(connect, read) timeouts of a call: as configured, or what the budget has left."""
    connect = current_app.config["UPSTREAM_CONNECT_TIMEOUT"]
    deadline = g.get("twinlens_deadline")
    if deadline is None:
        return connect, read
    left = deadline - time.monotonic()
    if left <= 0:
        raise Spent(f"enrichment took longer than {current_app.config['ENRICH_BUDGET']} s")
    return min(connect, left), min(read, left)


def skipped(name: str) -> bool:
    """Whether an enrichment should not call ``name``, which failed a moment ago."""
    if not enriching():
        return False
    with _lock:
        return _skip_until.get(name, 0.0) > time.monotonic()


def failed(name: str) -> None:
    """``name`` failed (timed out, unreachable) during an enrichment."""
    if enriching():
        pause = current_app.config["ENRICH_SKIP_AFTER_FAILURE"]
        with _lock:
            _skip_until[name] = time.monotonic() + pause


def mark_partial() -> None:
    if enriching():
        g.twinlens_partial = True


def partial() -> bool:
    return bool(g.get("twinlens_partial"))
