"""decision ids are never reused on SQLite (AUTOINCREMENT)

Undo names the decision it read (``DELETE .../resolution?decision=<id>``). SQLite
hands a deleted row's id to the next row unless the table says AUTOINCREMENT, so an
undo that read a withdrawn decision could withdraw the one recorded after it.
PostgreSQL's sequences never reuse a value: nothing to do there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""
from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "duplicate_resolutions",
        recreate="always",
        table_kwargs={"sqlite_autoincrement": autoincrement},
    ):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
