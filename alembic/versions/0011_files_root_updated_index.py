"""an index on files (root_id, updated_at): what changed since grouping's watermark

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # core.grouping.watermark asks, at every scan's finish, for the files of a root
    # updated since the last grouping pass: without it, a read of the whole table. A plain
    # CREATE INDEX (in the migration's transaction: all of it or nothing) holds off writes
    # to files while it builds, a few seconds at a million files.
    op.create_index("ix_files_root_id_updated_at", "files", ["root_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_files_root_id_updated_at", table_name="files")
