"""Gateway cache: flask-caching (RedisCache or SimpleCache) plus a data-version counter.

Every cached Twinlens answer carries the data version in its key. Workers bump the
counter (``bump_data_version``) when groups or duplicates change, so the next request
misses and nobody sees a stale group after a scan. Workers must not import gateway:
the Redis key is the constant ``DATA_VERSION_KEY`` (to move into core).

Keys never contain credentials: identity keys are SHA-256 digests of the credential,
everything user-dependent is keyed by the Immich user id.

A Redis that fails (refuses a connection, or hangs until the socket timeout) is not
asked again by this process for ``ENRICH_SKIP_AFTER_FAILURE`` seconds: every cache call and
version read then raises ``RedisDown`` at once, so a hung Redis costs a timeout per window
(to each request already waiting on it, and to those that ask when the window ends), not
one per answer. Other Redis errors (a refused write) are raised and mark nothing.
Enrichment then sends Immich's answer as it came; Twinlens's own routes answer without
the cache (``version_or_none``, ``get_many_or_none``: nothing read, nothing kept).

A bump that fails after a change is owed, and paid by this process's first version read
once Redis answers again, so nothing cached before the outage outlives a change made
during it (unless this process ends first: then until those entries expire).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, has_app_context
from flask_caching import Cache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import dataversion

REDIS_TIMEOUTS = dataversion.REDIS_TIMEOUTS
DATA_VERSION_KEY = dataversion.KEY  # plain Redis key (not under flask-caching's prefix)
KEY_PREFIX = "twinlens:gw:"

log = logging.getLogger("twinlens.gateway")

_DOWN_UNTIL = "twinlens_redis_down_until"
_BUMP_OWED = "twinlens_bump_owed"


class RedisDown(RedisError):
    """Redis failed a moment ago; it is not asked again until the window ends."""


def redis_down() -> bool:
    return current_app.extensions.get(_DOWN_UNTIL, 0.0) > time.monotonic()


def guarded(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(...)``, unless Redis failed a moment ago (``RedisDown``); a refused or
    timed-out connection starts the window."""
    if redis_down():
        raise RedisDown("Redis failed a moment ago; not asked again yet")
    try:
        return call(*args, **kwargs)
    except (RedisConnectionError, RedisTimeoutError) as exc:  # not answering, not refusing
        seconds = current_app.config["ENRICH_SKIP_AFTER_FAILURE"]
        current_app.extensions[_DOWN_UNTIL] = time.monotonic() + seconds
        # The exception's text names host and port at most, never the URL's password
        log.warning("Redis failed (%s): not asked again for %.0f s", type(exc).__name__, seconds)
        raise


class GuardedCache(Cache):
    """flask-caching's Cache, whose calls do not wait on a Redis that just failed."""

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return guarded(super().get, *args, **kwargs)

    def get_many(self, *args: Any, **kwargs: Any) -> Any:
        return guarded(super().get_many, *args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> Any:
        return guarded(super().set, *args, **kwargs)

    def set_many(self, *args: Any, **kwargs: Any) -> Any:
        return guarded(super().set_many, *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return guarded(super().delete, *args, **kwargs)


cache = GuardedCache()


def cache_config(cache_url: str) -> dict[str, Any]:
    if not dataversion.in_redis(cache_url):
        return {
            "CACHE_TYPE": "SimpleCache",
            "CACHE_THRESHOLD": 50_000,
            "CACHE_KEY_PREFIX": KEY_PREFIX,
        }
    return {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": cache_url,
        "CACHE_KEY_PREFIX": KEY_PREFIX,
        # A Redis that stops answering fails a request in seconds, not never
        "CACHE_OPTIONS": dict(REDIS_TIMEOUTS),
    }


def get_many_or_none(*keys: str) -> list[Any]:
    """``cache.get_many``, or all misses when Redis fails: for answers that can be had
    without the cache (asking Immich again), such as those that follow a change."""
    try:
        return cache.get_many(*keys)
    except RedisError:
        return [None] * len(keys)


def set_many_if_up(mapping: dict[str, Any], timeout: int) -> None:
    try:
        cache.set_many(mapping, timeout=timeout)
    except RedisError:
        pass  # not remembered: asked again next time


def bump_data_version(cache_url: str) -> int:
    """Invalidate every cached Twinlens answer (workers call core.dataversion.bump)."""
    return dataversion.bump(cache_url)


def changed() -> None:
    """A route changed groups or duplicates: bump the data version. The change is already
    made, so a Redis that fails here owes the bump (paid by the next ``data_version``)
    rather than failing the caller's request."""
    try:
        guarded(dataversion.bump, current_app.config["SETTINGS"].cache_url)
    except RedisError:
        current_app.extensions[_BUMP_OWED] = True


def data_version(cache_url: str | None = None) -> int:
    """Current data version (0 before the first bump)."""
    if not has_app_context():  # a worker's or a test's read, by URL
        return dataversion.current(cache_url or "")
    if cache_url is None:
        cache_url = current_app.config["SETTINGS"].cache_url
    if current_app.extensions.pop(_BUMP_OWED, None):  # taken first: a debt made meanwhile stays
        try:
            guarded(dataversion.bump, cache_url)
        except RedisError:
            current_app.extensions[_BUMP_OWED] = True
            raise
    return guarded(dataversion.current, cache_url)


def version_or_none() -> int | None:
    """The data version, or None when Redis is not answering (then nothing is cached)."""
    try:
        return data_version()
    except RedisError:
        return None


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode("utf-8", "surrogateescape"))
        h.update(b"\x00")
    return h.hexdigest()


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    for key, value in cache_config(settings.cache_url).items():
        app.config.setdefault(key, value)
    cache.init_app(app)
