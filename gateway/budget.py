"""How long an Immich answer may wait for what Twinlens adds to it.

Enrichment is an addition to Immich's answer, which the gateway already holds: a
Twinlens service, Redis or an Immich lookup that hangs must cost the client a few
seconds at most, not 30 s per call, and must not hold the gateway's threads until
uploads and logins queue behind it. ``proxy.enriched_answer`` opens a budget
(``ENRICH_BUDGET`` seconds); every call made for the enrichment takes its timeouts from
what is left and raises ``Spent`` when nothing is (Immich's answer then goes out as it
came, flagged ``X-Twinlens-Enrichment: unavailable``). A service that failed during an
enrichment is skipped by the enrichments of the next ``ENRICH_SKIP_AFTER_FAILURE``
seconds, by this app: while it is down, each answer costs nothing extra. A call that
timed out only because the request had little of its budget left blames no one.
Calls made outside an enrichment (resolve, undo, Twinlens's own routes) are unchanged.

An enrichment that could not ask everything it needed (an Immich lookup refused or
failed) is ``partial``: sent, but not cached, so that the next request asks again.
"""

from __future__ import annotations

import threading
import time

from flask import current_app, g

_lock = threading.Lock()


class Spent(LookupError):
    """The enrichment's time is up."""


def open_budget() -> None:
    g.twinlens_deadline = time.monotonic() + current_app.config["ENRICH_BUDGET"]
    g.twinlens_partial = False


def enriching() -> bool:
    return g.get("twinlens_deadline") is not None


def deadline() -> float | None:
    """The enrichment's deadline (``time.monotonic``), for threads without the request."""
    return g.get("twinlens_deadline")


def limits(until: float | None, connect: float, read: float) -> tuple[float, float]:
    """(connect, read) timeouts of a call made before ``until`` (None: no budget); Spent
    when it has passed. Needs no request: the timeline's pool threads call it too."""
    if until is None:
        return connect, read
    left = until - time.monotonic()
    if left <= 0:
        raise Spent("the enrichment's time is up")
    return min(connect, left), min(read, left)


def timeout(read: float) -> tuple[float, float]:
    """(connect, read) timeouts of a call: as configured, or what the budget has left."""
    return limits(deadline(), current_app.config["UPSTREAM_CONNECT_TIMEOUT"], read)


def _skips() -> dict[str, float]:
    return current_app.extensions.setdefault("twinlens_skip_until", {})


def skipped(name: str) -> bool:
    """Whether an enrichment should not call ``name``, which failed a moment ago."""
    if not enriching():
        return False
    with _lock:
        return _skips().get(name, 0.0) > time.monotonic()


def failed(name: str, given: float | None = None) -> None:
    """``name`` failed during an enrichment: unreachable (``given`` None), or it did not
    answer within the ``given`` seconds. Skipped for a while then, unless it was given too
    little to blame it (less than half the budget: the request's own budget ran low)."""
    cfg = current_app.config
    if not enriching() or (given is not None and given < cfg["ENRICH_BUDGET"] / 2):
        return
    with _lock:
        _skips()[name] = time.monotonic() + cfg["ENRICH_SKIP_AFTER_FAILURE"]


def mark_partial() -> None:
    if enriching():
        g.twinlens_partial = True


def partial() -> bool:
    return bool(g.get("twinlens_partial"))
