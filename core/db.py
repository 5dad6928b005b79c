"""Database plumbing: metadata with named constraints, engines, sessions, migrations.

The same code runs on PostgreSQL (production, tests) and SQLite (embedded default).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

# Alembic and every database name constraints the same way, so migrations can
# drop or alter them by name on both engines.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# 64-bit ids on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


class Base(DeclarativeBase):
    metadata = metadata


class FsPath(TypeDecorator[str]):
    """A filesystem path: ``str`` (surrogateescape) in Python, raw bytes in the database.

    Storing bytes keeps names that are not valid UTF-8 and paths of any length
    without loss; lookups go through a fixed-size digest column, never this one.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, bytes):
            return value
        return os.fsencode(value)

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return os.fsdecode(bytes(value))


class Message(TypeDecorator[str]):
    """Text for people (errors, warnings) that may quote a file name.

    A name that is not UTF-8 reaches Python as lone surrogates (surrogateescape), which
    no database text column accepts: one such name in one message failed a whole batch,
    and with it the scan. Those bytes are stored as ``\\xNN``, as ``core.paths.display``
    shows them; the path itself is kept exactly in its FsPath column.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return value


# How long an SQLite writer waits for the lock before "database is locked"
SQLITE_BUSY_SECONDS = 60.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # WAL lets the embedded worker threads read while one writes; busy_timeout
    # makes a writer wait for the lock instead of failing at once.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
    cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and pragmas set."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault(
            "connect_args", {"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS}
        )
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return create_engine(url, **kwargs)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine (and pool) per URL per process."""
    return make_engine(url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def begin_write(session: Session) -> None:
    """Open the session's write transaction now (SQLite; elsewhere a no-op).

    pysqlite begins a transaction only at the first INSERT, UPDATE or DELETE. Until then
    each read sees the database as it is at that statement, and a SAVEPOINT starts a
    transaction of its own, which its RELEASE then commits. A write that changes nothing
    takes the write lock (waiting out busy_timeout) and holds it until the commit."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE jobs SET id = id WHERE 0"))


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = Session(bind=engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class SchemaError(RuntimeError):
    """The database's schema cannot be brought to this code's: it is newer than this
    Twinlens, or a migration would break it. Nothing was changed."""


# pg_advisory_xact_lock key: processes starting together migrate one after the other (on
# SQLite, BEGIN IMMEDIATE does the same).
MIGRATION_LOCK = 7_419_244_613

# On PostgreSQL each try waits this long for a table's lock, then gives up and tries
# again. An ALTER queued behind an old worker's long transaction (an upgrade while the
# previous containers still run) would otherwise stop every query on that table, the
# gateway's reads included, for as long as that transaction lasts: PostgreSQL queues
# them behind the ALTER. Between tries they go through.
MIGRATION_LOCK_TIMEOUT_MS = 3000
MIGRATION_ATTEMPTS = 40
MIGRATION_RETRY_SECONDS = 2.0
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout runs out


def schema_revision(url: str) -> str | None:
    """The database's Alembic revision (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (alembic upgrade).

    A database already at the latest schema is left alone without starting Alembic (every
    process calls this at start). One at a newer schema, written by a later Twinlens,
    raises SchemaError instead of Alembic's "Can't locate revision".
    """
    from alembic.script import ScriptDirectory

    from alembic import command

    cfg = alembic_config(url)
    script = ScriptDirectory.from_config(cfg)
    current = schema_revision(url)  # also creates the folder of a SQLite file
    known = {r.revision for r in script.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaError(
            f"the database is at schema revision {current}, newer than this Twinlens "
            f"(latest {script.get_current_head()}): run the Twinlens that wrote it, or "
            f"downgrade the database with that version (alembic downgrade "
            f"{script.get_current_head()})"
        )
    if revision == "head" and current == script.get_current_head():
        return
    for attempt in range(1, MIGRATION_ATTEMPTS + 1):
        try:
            command.upgrade(cfg, revision)
            return
        except OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != LOCK_NOT_AVAILABLE:
                raise
            # All of it was rolled back (one transaction): nothing half-applied
            log.warning(
                "migration attempt %d/%d: a table is held by another transaction (%s); "
                "trying again",
                attempt,
                MIGRATION_ATTEMPTS,
                str(exc.orig).strip().splitlines()[0],
            )
            time.sleep(MIGRATION_RETRY_SECONDS)
    raise SchemaError(
        f"the migration could not lock its tables in {MIGRATION_ATTEMPTS} tries: another "
        "process keeps a transaction open on them (a Twinlens of the previous version "
        "still running?). Stop it and start again; nothing was changed"
    )
