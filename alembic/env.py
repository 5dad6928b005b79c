"""Alembic environment: the URL comes from the alembic config (set by core.db.migrate)
or, when run as `alembic` from the command line, from Twinlens settings."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event

from alembic import context
from core import models  # noqa: F401  (registers the tables)
from core.config import load_settings
from core.db import MIGRATION_LOCK, MIGRATION_LOCK_TIMEOUT_MS, SchemaError, make_engine, metadata

log = logging.getLogger("alembic.env")

config = context.config
url = config.get_main_option("sqlalchemy.url") or load_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _sqlite_migration_connection(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite commits before every DDL statement, so a revision that failed half-way
    # (a batch rebuild interrupted, a refused check) stayed half-applied, its
    # _alembic_tmp_ table in the way of every later try. Transactions are ours here
    # (BEGIN IMMEDIATE below), as SQLAlchemy's pysqlite docs do it.
    dbapi_connection.isolation_level = None
    # Batch mode copies a table and drops the old one: with foreign keys on, that DROP
    # would empty the tables pointing at it (ON DELETE CASCADE) or be refused. Off for
    # the migration (only possible outside a transaction); references are checked below.
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")


def _begin_immediate(connection: Any) -> None:
    # Takes the write lock first: a second process starting at the same moment waits
    # (busy_timeout), then finds the schema up to date.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _broken_references(connection: Any) -> set[tuple[Any, ...]]:
    return {tuple(row) for row in connection.exec_driver_sql("PRAGMA foreign_key_check")}


def run_migrations_online() -> None:
    engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        event.listen(engine, "connect", _sqlite_migration_connection)
        event.listen(engine, "begin", _begin_immediate)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=sqlite,
                transactional_ddl=True,  # all revisions of a run commit together, or none
            )
            with context.begin_transaction():
                if not sqlite:
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                    # After the advisory lock, which may wait as long as another migration
                    # runs: a table lock may not (core.db.migrate tries again)
                    connection.exec_driver_sql(
                        f"SET LOCAL lock_timeout = {int(MIGRATION_LOCK_TIMEOUT_MS)}"
                    )
                # Rows that pointed nowhere before (deleted by hand with foreign keys off) are
                # not the migration's doing: named in the log, not a reason to refuse.
                before = _broken_references(connection) if sqlite else set()
                if before:
                    log.warning("references broken before the migration: %s", sorted(before)[:5])
                context.run_migrations()
                broken = _broken_references(connection) - before if sqlite else set()
                if broken:
                    raise SchemaError(
                        f"the migration would break references, so none of it was applied: "
                        f"{sorted(broken)[:5]}"
                    )
    finally:
        engine.dispose()  # each retry of core.db.migrate makes a new engine


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
