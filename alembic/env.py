"""Alembic environment: the URL comes from the alembic config (set by core.db.migrate)
or, when run as `alembic` from the command line, from Twinlens settings."""

from __future__ import annotations

from alembic import context
from core import models  # noqa: F401  (registers the tables)
from core.config import load_settings
from core.db import make_engine, metadata

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


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite cannot ALTER most things in place: batch mode copies the table and
            # drops the old one. With the foreign keys the engine turns on, that DROP
            # empties the tables pointing at it (ON DELETE CASCADE) or is refused (and
            # leaves the copy behind). Off for the migration (only outside a
            # transaction), and every reference checked before it commits.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()  # end the transaction that statement began: alembic's own follows
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=sqlite,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration broke references: {broken[:5]}")
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
