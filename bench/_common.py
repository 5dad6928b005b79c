"""Helpers shared by the benchmarks: throwaway PostgreSQL databases, page-cache drops, timing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

PG_ADMIN = os.environ.get("TWINLENS_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TWINLENS_TEST_REDIS", "redis://127.0.0.1:6379")


@contextmanager
def throwaway_pg():
    """A fresh, migrated PostgreSQL database for one benchmark run."""
    from sqlalchemy import create_engine, text

    from core.db import engine_for, migrate

    name = f"twinlens_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    try:
        yield url
    finally:
        engine_for(url).dispose()
        engine_for.cache_clear()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def drop_caches() -> bool:
    """Drop the page cache (needs root and a writable /proc/sys); False if impossible."""
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def insert_batched(engine, table, rows, size: int = 5000) -> None:
    """Insert ``rows`` (dicts, any iterable) into ``table``, ``size`` a transaction: a
    synthetic catalog of a million rows is never held whole."""
    from sqlalchemy import insert

    from core.db import session_scope

    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            with session_scope(engine) as s:
                s.execute(insert(table), batch)
            batch = []
    if batch:
        with session_scope(engine) as s:
            s.execute(insert(table), batch)


@contextmanager
def timed(results: dict, key: str):
    t0 = time.perf_counter()
    yield
    results[key] = time.perf_counter() - t0
