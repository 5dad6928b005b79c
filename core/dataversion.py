"""A counter that changes whenever groups or duplicates change.

Workers bump it after grouping or dedup; the gateway puts it in every cache key
that depends on Twinlens data, so a scan makes old cached answers unreachable.
With ``memory://`` (embedded default: one process) it is a process-wide counter.
"""

from __future__ import annotations

import itertools
import threading
from functools import lru_cache

KEY = "twinlens:data_version"

_local = itertools.count(1)
_local_value = 0
_lock = threading.Lock()


@lru_cache(maxsize=4)
def _redis(url: str):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(url)


def bump(cache_url: str) -> int:
    """Advance the version; returns the new value."""
    global _local_value
    if cache_url.startswith("redis"):
        return int(_redis(cache_url).incr(KEY))
    with _lock:
        _local_value = next(_local)
        return _local_value


def current(cache_url: str) -> int:
    if cache_url.startswith("redis"):
        value = _redis(cache_url).get(KEY)
        return int(value) if value else 0
    return _local_value
