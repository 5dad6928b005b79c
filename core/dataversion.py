"""A counter that changes whenever groups or duplicates change.

Workers bump it after grouping or dedup; the gateway puts it in every cache key
that depends on Twinlens data, so a scan makes old cached answers unreachable.
With ``memory://`` (embedded default: one process) it is a process-wide counter.
A second counter (``AUTH_KEY``) is kept the same way for the gateway's identity epoch.

Reading it is on the gateway's hot path (every enriched answer), so a process does not
ask Redis each time: it reads the key once on a connection with ``CLIENT TRACKING ON``
(RESP3), and Redis pushes an invalidation on that same connection when the key changes
(bump, delete, flush). Until something arrives there, the value read is current; when
anything arrives (or the connection breaks) the value is read afresh. Redis queues the
invalidation while it executes the bump, and ``bump`` returns only after Redis has
written it out (one more round trip), so once a bump returns no reader sees the old
value.
"""

from __future__ import annotations

import itertools
import os
import select
import threading
from functools import lru_cache
from typing import Any

KEY = "twinlens:data_version"
# A second counter kept the same way: the gateway's identity epoch, advanced by a logout
# so that every gateway process forgets the identities it remembers (gateway.auth)
AUTH_KEY = "twinlens:auth_epoch"
# A Redis that stops answering fails the caller in seconds, not never (no lock held
# forever in _Tracked, no gateway thread stuck)
REDIS_TIMEOUTS = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0}

_local = {KEY: itertools.count(1), AUTH_KEY: itertools.count(1)}
_local_value = {KEY: 0, AUTH_KEY: 0}
_lock = threading.Lock()


@lru_cache(maxsize=4)
def _redis(url: str):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(url, **REDIS_TIMEOUTS)


class _Tracked:
    """The Redis counter ``key`` at ``url``, kept in the process while Redis says it is
    unchanged."""

    def __init__(self, url: str, key: str = KEY) -> None:
        self._url = url
        self._key = key
        self._lock = threading.Lock()
        self._conn: Any = None
        self._sock: Any = None
        self._pid = 0
        self._value = 0

    def get(self) -> int:
        with self._lock:
            conn = self._conn
            if conn is not None and self._pid == os.getpid():
                try:
                    # Nothing on the socket: nothing changed. One poll, where redis-py's
                    # can_read costs three system calls; its buffer is known to be empty
                    # (checked in _read, and nothing reads this connection since).
                    if not select.select([self._sock], (), (), 0)[0]:
                        return self._value
                except Exception:  # noqa: BLE001 - a broken connection: read afresh below
                    pass
            self._drop()
            return self._read()

    def _read(self) -> int:
        import redis

        # A pool per read, used only to make one connection from the URL (TLS, auth, db):
        # a kept pool counts every connection it ever made against its limit. Reads
        # happen only when the value changed.
        pool = redis.ConnectionPool.from_url(self._url, protocol=3, **REDIS_TIMEOUTS)
        conn = pool.make_connection()
        try:
            conn.send_command("CLIENT", "TRACKING", "ON")
            conn.read_response()
            while True:
                conn.send_command("GET", self._key)
                raw = conn.read_response()
                # An invalidation already here (a bump between the two commands): the
                # value may be old; drain it and read again.
                if not conn.can_read(timeout=0):
                    break
                conn.read_response(push_request=True)
        except Exception:
            conn.disconnect()
            raise
        self._conn, self._pid = conn, os.getpid()
        self._sock = conn._sock  # type: ignore[attr-defined]  # redis-py keeps it there
        self._value = int(raw) if raw else 0
        return self._value

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.disconnect()


@lru_cache(maxsize=8)
def _tracked(url: str, key: str) -> _Tracked:
    return _Tracked(url, key)


def in_redis(cache_url: str) -> bool:
    """Whether the cache (and so the version) lives in Redis: any URL but ``memory://``
    (``redis://``, ``rediss://``, ``unix://``), as the gateway's cache decides too."""
    return bool(cache_url) and not cache_url.startswith("memory:")


def bump(cache_url: str, key: str = KEY) -> int:
    """Advance the version (or the counter ``key``); returns the new value."""
    if in_redis(cache_url):
        client = _redis(cache_url)
        value = int(client.incr(key))
        # One more round trip: Redis wrote its invalidation pushes out in the same event
        # loop turn as the INCR reply, so once PING answers they are on every tracking
        # connection (see current()) and no reader can still see the old value.
        client.ping()
        return value
    with _lock:
        _local_value[key] = next(_local[key])
        return _local_value[key]


def current(cache_url: str, key: str = KEY) -> int:
    if in_redis(cache_url):
        return _tracked(cache_url, key).get()
    return _local_value[key]
