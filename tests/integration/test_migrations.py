"""Migrations on the embedded database (SQLite): down and up again lose nothing.

SQLite alters a table by copying it and dropping the old one, which the foreign keys
Twinlens turns on would turn into deleted rows (ON DELETE CASCADE) or a refused DROP."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from alembic import command
from core.db import alembic_config, migrate

COUNTED = ("roots", "files", "file_groups", "group_members", "jobs", "job_batches")


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as c:
        out = {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED}
    engine.dispose()
    return out


def test_down_and_up_again_keeps_every_row(tmp_path: Path) -> None:
    from core import jobs
    from core.db import engine_for, session_scope
    from core.models import FileGroup, GroupMember, Job, JobBatch
    from tests.factories import file_row

    url = f"sqlite:///{tmp_path / 'db' / 'twinlens.db'}"
    migrate(url)
    # Given a catalog with a file in a group and a job with a batch
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
    engine_for(url).dispose()
    before = _counts(url)
    assert all(before.values()), before
    # When the schema goes down a revision and up again
    command.downgrade(alembic_config(url), "0001")
    assert _counts(url) == before
    migrate(url)
    # Then every row is still there, and references are still checked afterwards
    assert _counts(url) == before
