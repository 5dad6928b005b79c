"""a JPEG's estimated quality, from its quantisation tables: the keeper compares it

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: rows cataloged before stay NULL ("not known") until their file
    # is read again, and the keeper then lets the size decide, as it did before.
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("jpeg_quality", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("jpeg_quality")
