"""Migrations on the embedded database (SQLite): down and up again lose nothing.

SQLite alters a table by copying it and dropping the old one, which the foreign keys
Twinlens turns on would turn into deleted rows (ON DELETE CASCADE) or a refused DROP."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from alembic import command
from core.db import alembic_config, migrate

COUNTED = (
    "roots", "files", "file_groups", "group_members", "jobs", "job_batches", "job_errors",
    "duplicate_groups", "duplicate_members",
)  # fmt: skip


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as c:
        out = {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED}
    engine.dispose()
    return out


def _catalog_with_references(url: str) -> None:
    from core import jobs
    from core.db import engine_for, session_scope
    from core.models import (
        DuplicateGroup,
        DuplicateMember,
        FileGroup,
        GroupMember,
        Job,
        JobBatch,
        JobError,
    )
    from tests.factories import file_row

    migrate(url)
    with session_scope(engine_for(url)) as s:
        root = jobs.get_or_create_root(s, "/lib")
        f = file_row(root.id, "/lib/a.jpg", size=10, kind="image", format="jpeg", status="present")
        s.add(f)
        s.flush()
        s.add(
            FileGroup(
                group_id="g1",
                group_key="k1",
                group_type="sidecar",
                dir_key=f.dir_key,
                source="auto",
            )
        )
        s.flush()
        s.add(
            GroupMember(
                group_id="g1",
                file_id=f.id,
                file_path=f.path,
                file_type="image",
                role="primary",
                is_primary=True,
            )
        )
        job = Job(kind="scan", root_id=root.id)
        s.add(job)
        s.flush()
        s.add(JobBatch(job_id=job.id, seq=0, payload="[]"))
        s.add(JobError(job_id=job.id, path=f.path, path_key=f.path_key, error="zero-byte file"))
        s.add(DuplicateGroup(group_id="d1", duplicate_type="exact", group_key="sha"))
        s.flush()
        s.add(DuplicateMember(group_id="d1", file_id=f.id, file_path=f.path))
    engine_for(url).dispose()


def test_down_and_up_again_keeps_every_row(tmp_path: Path) -> None:
    from core.db import engine_for, session_scope
    from core.models import DuplicateMember

    url = f"sqlite:///{tmp_path / 'db' / 'twinlens.db'}"
    # Given a catalog with a file in a group and a duplicate group, a job with a batch
    _catalog_with_references(url)
    before = _counts(url)
    assert all(before.values()), before
    # When the schema goes down a revision and up again
    command.downgrade(alembic_config(url), "0001")
    assert _counts(url) == before
    migrate(url)
    # Then every row is still there, and references are still checked afterwards
    assert _counts(url) == before
    with pytest.raises(IntegrityError):
        with session_scope(engine_for(url)) as s:
            s.add(DuplicateMember(group_id="d1", file_id=999, file_path="/lib/none.jpg"))


def test_a_migration_that_would_leave_a_broken_reference_is_refused(tmp_path: Path) -> None:
    # Given an old schema holding a duplicate member whose file row is gone (a reference
    # nothing checked while SQLite's foreign keys were off)
    url = f"sqlite:///{tmp_path / 'db' / 'twinlens.db'}"
    _catalog_with_references(url)
    command.downgrade(alembic_config(url), "0001")
    engine = create_engine(url)
    with engine.begin() as c:
        c.exec_driver_sql("PRAGMA foreign_keys=OFF")
        c.exec_driver_sql("DELETE FROM group_members")
        c.exec_driver_sql("DELETE FROM job_errors")
        c.exec_driver_sql("DELETE FROM files")
    engine.dispose()
    # When it is migrated, Then the migration says so instead of committing it
    with pytest.raises(RuntimeError, match="broke references"):
        migrate(url)
