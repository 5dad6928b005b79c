"""Gateway cache: flask-caching (RedisCache or SimpleCache) plus a data-version counter.

Every cached Twinlens answer carries the data version in its key. Workers bump the
counter (``bump_data_version``) when groups or duplicates change, so the next request
misses and nobody sees a stale group after a scan. Workers must not import gateway:
the Redis key is the constant ``DATA_VERSION_KEY`` (to move into core).

Keys never contain credentials: identity keys are SHA-256 digests of the credential,
everything user-dependent is keyed by the Immich user id.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Flask, current_app
from flask_caching import Cache

from core import dataversion

REDIS_TIMEOUTS = dataversion.REDIS_TIMEOUTS
DATA_VERSION_KEY = dataversion.KEY  # plain Redis key (not under flask-caching's prefix)
KEY_PREFIX = "twinlens:gw:"

cache = Cache()


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


def bump_data_version(cache_url: str) -> int:
    """Invalidate every cached Twinlens answer (workers call core.dataversion.bump)."""
    return dataversion.bump(cache_url)


def data_version(cache_url: str | None = None) -> int:
    """Current data version (0 before the first bump)."""
    if cache_url is None:
        cache_url = current_app.config["SETTINGS"].cache_url
    return dataversion.current(cache_url)


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
