"""the process a batch's latest delivery went to (a crash is counted only when it is gone)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_batches") as batch:
        batch.add_column(sa.Column("delivered_to", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_batches") as batch:
        batch.drop_column("delivered_to")
