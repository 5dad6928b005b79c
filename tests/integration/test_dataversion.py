"""The data version as the gateway reads it: kept in the process, and still never stale.

core.dataversion.current() asks Redis once and then relies on Redis's invalidation
push (CLIENT TRACKING); these tests change the key in every way a deployment can
(a worker's bump from another process, a plain SET or DEL, FLUSHDB, a dropped
connection) and check the very next read sees it.
"""

from __future__ import annotations

import multiprocessing

import pytest
import redis

from core import dataversion


def _bump_in_child(url: str, n: int, conn) -> None:  # type: ignore[no-untyped-def]
    values = [dataversion.bump(url) for _ in range(n)]
    conn.send(values[-1])


def test_every_bump_is_seen_by_the_next_read(redis_cache_url):
    url = redis_cache_url
    assert dataversion.current(url) == 0
    for _ in range(300):
        value = dataversion.bump(url)
        assert dataversion.current(url) == value


def test_a_bump_from_another_process_is_seen(redis_cache_url):
    url = redis_cache_url
    start = dataversion.current(url)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_bump_in_child, args=(url, 5, child))
    proc.start()
    last = parent.recv()
    proc.join(30)
    assert last == start + 5
    assert dataversion.current(url) == last


def test_set_delete_flush_and_a_killed_connection_are_seen(redis_cache_url):
    url = redis_cache_url
    other = redis.Redis.from_url(url)

    def written(reply: object) -> None:
        # Redis writes the invalidation push in the same event-loop turn as the writer's
        # reply, but to another socket, a moment apart: one more round trip (as bump()
        # makes) is the point after which the next read must see the change.
        other.ping()

    dataversion.bump(url)
    assert dataversion.current(url) == 1
    written(other.set(dataversion.KEY, 41))
    assert dataversion.current(url) == 41
    written(other.delete(dataversion.KEY))
    assert dataversion.current(url) == 0
    written(other.set(dataversion.KEY, 7))
    assert dataversion.current(url) == 7
    written(other.flushdb())
    assert dataversion.current(url) == 0
    # The tracking connection dies (Redis restarted, idle timeout): read afresh.
    dataversion.current(url)
    db = str(other.connection_pool.connection_kwargs["db"])
    ours = [c for c in other.client_list() if "t" in c["flags"] and c["db"] == db]
    assert ours, "no tracking connection"
    for client in ours:
        other.client_kill_filter(_id=client["id"])
    other.set(dataversion.KEY, 9)
    assert dataversion.current(url) == 9


def test_reads_without_a_change_do_not_ask_redis(redis_cache_url, monkeypatch):
    url = redis_cache_url
    dataversion.bump(url)
    dataversion.current(url)
    conn = dataversion._tracked(url, dataversion.KEY)._conn
    sent = []
    monkeypatch.setattr(conn, "send_command", lambda *a, **k: sent.append(a))
    for _ in range(200):
        assert dataversion.current(url) == 1
    assert sent == []  # not one GET per read
    dataversion.bump(url)
    monkeypatch.undo()
    assert dataversion.current(url) == 2


def test_every_redis_url_the_cache_takes_keeps_the_version_in_redis(tmp_path):
    from gateway.cache import cache_config

    # Given a Redis reached over a unix socket (a NAS's Redis container often is)
    url = f"unix://{tmp_path / 'redis.sock'}"
    assert cache_config(url)["CACHE_TYPE"] == "RedisCache"
    # Then the version is Redis's too, not a counter of this process that scans in other
    # processes would never move (here: that Redis is not there, and it says so)
    for call in (dataversion.bump, dataversion.current):
        try:
            call(url)
        except redis.exceptions.ConnectionError:
            continue
        raise AssertionError(f"{call.__name__} did not go to Redis")


# --- a pass's bump, owed by a delivery that failed after its commit ---------------------


@pytest.mark.parametrize("kind", ["group", "dedup"])
def test_a_pass_whose_bump_failed_is_bumped_by_its_retry(pg_settings, worker, monkeypatch, kind):
    import time

    from core import jobs
    from core.db import engine_for, migrate, session_scope
    from core.models import Job
    from tests.factories import file_row

    cfg = pg_settings
    migrate(cfg.database_url)
    engine = engine_for(cfg.database_url)
    # Given a RAW+JPEG pair and a byte copy of the JPEG cataloged, and a grouping or
    # dedup pass for their root
    with session_scope(engine) as s:
        root = jobs.get_or_create_root(s, "/lib")
        for path, k, sha in (
            ("/lib/a/IMG_1.CR3", "raw", "cd" * 32),
            ("/lib/a/IMG_1.JPG", "image", "ab" * 32),
            ("/lib/b/IMG_1.JPG", "image", "ab" * 32),
        ):
            s.add(file_row(root.id, path, kind=k, status="present", sha256=sha))
        s.flush()
        job = Job(kind=kind, root_id=root.id, path="/lib", trigger="test")
        s.add(job)
        s.flush()
        job_id = job.id
    before = dataversion.current(cfg.cache_url)
    # When the pass commits, then its bump fails (Redis away a moment): the message retries
    real, failed = dataversion.bump, []

    def away_once(url: str, key: str = dataversion.KEY) -> int:
        if not failed:
            failed.append(url)
            raise redis.ConnectionError("Redis is away (the test)")
        return real(url, key)

    monkeypatch.setattr(dataversion, "bump", away_once)
    jobs.enqueue(worker, f"{kind}_run", job_id)
    # Then the retry finds the pass done and bumps the version the first one owed
    end = time.monotonic() + 60
    while dataversion.current(cfg.cache_url) == before and time.monotonic() < end:
        time.sleep(0.05)
    assert failed, "the pass's first bump was never tried"
    with session_scope(engine) as s:
        assert s.get(Job, job_id).state == "done"
    assert dataversion.current(cfg.cache_url) > before
