"""Shared fixtures. Sample-library access lives in tests/samples.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import unprivileged
from tests.require import missing
from tests.samples import read_manifest, require_samples


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """As root, a test marked ``unprivileged`` runs in a child that file modes bind
    (tests/unprivileged.py); its own fixtures here were set up for nothing."""
    if pyfuncitem.get_closest_marker("unprivileged") and unprivileged.needs_child():
        unprivileged.run_in_child(pyfuncitem.nodeid, pyfuncitem.config.rootpath)
        return True
    return None


@pytest.fixture(scope="session")
def samples() -> Path:
    """The shared sample library (skips, or fails in CI, when it is absent)."""
    return require_samples()


@pytest.fixture(scope="session")
def manifest(samples: Path) -> list[dict[str, str]]:
    """Rows of MANIFEST.tsv: path, kind, format, camera, datetime_original, width, height, phash, notes, ..."""
    return read_manifest(samples)


# --- real services: PostgreSQL, Redis, Dramatiq workers ------------------------------

import os  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from sqlalchemy import create_engine, text  # noqa: E402

from core.config import Settings, load_settings  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "TWINLENS_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TWINLENS_TEST_REDIS", "redis://127.0.0.1:6379")


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            c.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # pragma: no cover - reported as a skip reason
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"


@contextmanager
def throwaway_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards; the test skips
    (or fails, with TWINLENS_REQUIRE_SERVICES=1) when PostgreSQL cannot be reached."""
    reason = _pg_available()
    if reason:
        missing(reason)
    name = f"twinlens_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database, migrated to head, dropped at the end."""
    from core.db import engine_for, migrate

    with throwaway_pg_database() as url:
        migrate(url)
        yield url
        engine_for(url).dispose()
        engine_for.cache_clear()


TABLES = (
    "duplicate_resolutions",
    "duplicate_members",
    "duplicate_groups",
    "group_overrides",
    "group_members",
    "file_groups",
    "job_errors",
    "job_batches",
    "jobs",
    "leases",
    "files",
    "roots",
)


def truncate_all(url: str) -> None:
    from core.db import engine_for

    with engine_for(url).begin() as c:
        if url.startswith("postgresql"):
            c.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for t in TABLES:
                c.execute(text(f"DELETE FROM {t}"))


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    """The PostgreSQL URL, emptied after the test (workers in other threads and
    processes must see committed rows, so this one truncates rather than rolls back)."""
    yield pg_url
    truncate_all(pg_url)


@pytest.fixture
def db_session(pg_url: str) -> Iterator[object]:
    """A session inside a transaction that is rolled back after the test."""
    from sqlalchemy.orm import Session

    from core.db import engine_for

    conn = engine_for(pg_url).connect()
    trans = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield session
    session.close()
    trans.rollback()
    conn.close()


LEASE_KEY = "twinlens:test-session"


def _require_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except Exception as exc:
        missing(f"Redis not reachable at {url}: {exc}")


@pytest.fixture(scope="session")
def redis_dbs() -> Iterator[list[int]]:
    """Two Redis logical databases (broker, cache) leased by this test session.

    Test sessions can run side by side on one machine (a developer's and CI's); each
    flushes its databases, so each takes its own with an atomic SET NX lease.
    """
    import redis

    _require_redis(f"{REDIS_URL}/0")
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    taken: list[int] = []
    for db in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_URL}/{db}")
        if client.set(LEASE_KEY, token, nx=True, ex=6 * 3600):
            taken.append(db)
            if len(taken) == 2:
                break
    if len(taken) < 2:
        pytest.fail("no free Redis databases for this test session (another session holds them)")
    yield taken
    for db in taken:
        client = redis.Redis.from_url(f"{REDIS_URL}/{db}")
        client.flushdb()


def flush_redis(url: str) -> None:
    """Empty a leased database but keep its lease."""
    import redis

    client = redis.Redis.from_url(url)
    token = client.get(LEASE_KEY)
    client.flushdb()
    if token:
        client.set(LEASE_KEY, token, ex=6 * 3600)
    client.close()


@pytest.fixture
def redis_url(redis_dbs: list[int]) -> Iterator[str]:
    """This session's broker database, emptied before and after the test."""
    url = f"{REDIS_URL}/{redis_dbs[0]}"
    flush_redis(url)
    yield url
    flush_redis(url)


@pytest.fixture
def redis_cache_url(redis_dbs: list[int]) -> Iterator[str]:
    """This session's cache database, emptied before and after the test."""
    url = f"{REDIS_URL}/{redis_dbs[1]}"
    flush_redis(url)
    yield url
    flush_redis(url)


@pytest.fixture
def pg_settings(pg_db: str, redis_url: str, redis_cache_url: str, tmp_path: Path) -> Settings:
    """Production-shaped settings: PostgreSQL + Redis broker + Redis cache."""
    return load_settings(
        {},
        data_dir=tmp_path / "data",
        database_url=pg_db,
        broker_url=redis_url,
        cache_url=redis_cache_url,
        library_roots=(tmp_path / "library",),
        batch_files=8,
        broker_heartbeat_ms=2000,
        broker_maintenance_chance=1_000_000,
        service_token="test-service-token",
    )


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    """The embedded default: SQLite file + in-process broker."""
    return load_settings(
        {},
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'data' / 'twinlens.db'}",
        library_roots=(tmp_path / "library",),
        batch_files=8,
    )


@pytest.fixture
def worker(pg_settings: Settings) -> Iterator[object]:
    """Real Dramatiq worker threads on the Redis broker, for this test."""
    from workers import runtime

    broker = runtime.install_broker(pg_settings)
    broker.flush_all()
    w = runtime.start_worker(broker, 2)
    yield broker
    w.stop()
    broker.flush_all()
    broker.close()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    path = tmp_path / "library"
    path.mkdir()
    return path
