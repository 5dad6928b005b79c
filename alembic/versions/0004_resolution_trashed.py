"""what a trash decision sent to Immich's trash (undo restores exactly that)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("duplicate_resolutions") as batch:
        batch.add_column(sa.Column("trashed", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("duplicate_resolutions") as batch:
        batch.drop_column("trashed")
