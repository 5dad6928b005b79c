"""files being read when an embedded process died: read alone, then skipped

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.db import FsPath

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suspect_files",
        sa.Column("path_key", sa.String(length=32), nullable=False),
        sa.Column("path", FsPath(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("crashes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reading", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("path_key", name=op.f("pk_suspect_files")),
    )


def downgrade() -> None:
    op.drop_table("suspect_files")
