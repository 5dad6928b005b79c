"""Migrations on the embedded database (SQLite): down and up again lose nothing.

SQLite alters a table by copying it and dropping the old one, which the foreign keys
Twinlens turns on would turn into deleted rows (ON DELETE CASCADE) or a refused DROP."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from alembic import command
from core.db import ALEMBIC_DIR, SchemaError, alembic_config, migrate

PROJECT = Path(__file__).resolve().parents[2]

COUNTED = (
    "roots", "files", "file_groups", "group_members", "jobs", "job_batches", "job_errors",
    "duplicate_groups", "duplicate_members", "duplicate_resolutions",
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
        DuplicateResolution,
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
        s.add(DuplicateResolution(group_key="sha", group_id="d1", action="trash", keep="[]"))
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


def _revision(url: str) -> str | None:
    from core.db import schema_revision

    return schema_revision(url)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    with engine.connect() as c:
        names = c.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'").scalars()
        out = set(names)
    engine.dispose()
    return out


def test_references_broken_before_a_migration_do_not_stop_it(tmp_path: Path, caplog) -> None:
    # Given an old schema holding a duplicate member whose file row is gone (deleted by
    # hand with the sqlite3 tool, whose foreign keys are off by default)
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
    # When it is migrated
    migrate(url)
    # Then the migration is applied, keeps the row, and names it in the log
    assert _revision(url) == alembic_head()
    assert _counts(url)["duplicate_members"] == 1
    assert "references broken before the migration" in caplog.text


def alembic_head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


BAD_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("extra", sa.Integer(), nullable=True))
    {failure}


def downgrade():
    pass
"""


@pytest.mark.parametrize(
    "failure",
    [
        'op.execute("DELETE FROM files")',  # leaves members pointing nowhere
        'raise KeyboardInterrupt("stopped half-way")',  # Ctrl-C, SIGTERM in `twinlens up`
    ],
    ids=["breaks-references", "interrupted"],
)
def test_a_migration_that_fails_half_way_applies_nothing(tmp_path: Path, failure: str) -> None:
    # Given a catalog at the latest schema, and a new revision that rebuilds the files
    # table (SQLite's batch mode) and then breaks references or is interrupted
    url = f"sqlite:///{tmp_path / 'db' / 'twinlens.db'}"
    _catalog_with_references(url)
    before = _counts(url)
    scripts = tmp_path / "alembic"
    shutil.copytree(ALEMBIC_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    bad = BAD_REVISION.format(head=alembic_head(), failure=failure)
    (scripts / "versions" / "0099_bad.py").write_text(bad)
    cfg = alembic_config(url)
    cfg.set_main_option("script_location", str(scripts))
    # When it is run
    with pytest.raises((SchemaError, KeyboardInterrupt)):
        command.upgrade(cfg, "head")
    # Then none of it was applied: the schema, the rows and no half-built table are left
    assert _revision(url) == alembic_head()
    assert _counts(url) == before
    assert not [t for t in _tables(url) if t.startswith("_alembic_tmp")]
    engine = create_engine(url)
    with engine.connect() as c:
        columns = {row[1] for row in c.exec_driver_sql("PRAGMA table_info(files)")}
    engine.dispose()
    assert "extra" not in columns
    # And the database still migrates and works
    migrate(url)
    assert _counts(url) == before


def test_a_database_newer_than_this_twinlens_is_refused_clearly(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import twinlens

    # Given a database written by a later Twinlens (a schema revision this code lacks)
    url = f"sqlite:///{tmp_path / 'db' / 'twinlens.db'}"
    migrate(url)
    engine = create_engine(url)
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    # When this Twinlens starts on it, Then it says what is wrong and changes nothing
    with pytest.raises(SchemaError, match="revision 0099, newer than this Twinlens"):
        migrate(url)
    monkeypatch.setenv("TWINLENS_DATABASE_URL", url)
    monkeypatch.setenv("TWINLENS_DATA_DIR", str(tmp_path / "data"))
    assert twinlens.main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "newer than this Twinlens" in err and "Traceback" not in err
    assert _revision(url) == "0099"


def _migrate_at_once(url: str, processes: int, hold_sql: str) -> list[tuple[int, str]]:
    """Start ``processes`` processes migrating ``url`` while another connection holds the
    table that the migration rebuilds (``hold_sql``), so that all of them are under way
    when it lets go, as when compose starts every service at once."""
    holder = create_engine(url)
    with holder.connect() as c:
        c.exec_driver_sql(hold_sql)
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from core.db import migrate; migrate(sys.argv[1])",
                    url,
                ],
                cwd=PROJECT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        time.sleep(4)  # each has started and is waiting for the table
        c.commit()
    holder.dispose()
    return [(p.wait(timeout=120), p.communicate()[1]) for p in procs]


def test_processes_starting_together_migrate_one_after_the_other_sqlite(tmp_path: Path) -> None:
    # Given a catalog one revision behind (a rebuild of the jobs table to come)
    url = f"sqlite:///{tmp_path / 'db' / 'twinlens.db'}"
    _catalog_with_references(url)
    before = _counts(url)
    command.downgrade(alembic_config(url), "0002")
    # When three processes start on it at the same moment (worker, watcher, scheduler)
    runs = _migrate_at_once(url, 3, "BEGIN IMMEDIATE")
    # Then each of them starts, and the schema was migrated once, losing nothing
    assert [code for code, _ in runs] == [0, 0, 0], [err[-2000:] for _, err in runs]
    assert _revision(url) == alembic_head()
    assert _counts(url) == before
    assert not [t for t in _tables(url) if t.startswith("_alembic_tmp")]


def test_processes_starting_together_migrate_one_after_the_other_postgres() -> None:
    from tests.conftest import throwaway_pg_database

    # Given a PostgreSQL database one revision behind
    with throwaway_pg_database() as url:
        command.upgrade(alembic_config(url), "0002")
        # When three processes start on it at the same moment
        runs = _migrate_at_once(url, 3, "LOCK TABLE jobs IN SHARE MODE")
        # Then each of them starts and the schema is the latest
        assert [code for code, _ in runs] == [0, 0, 0], [err[-2000:] for _, err in runs]
        assert _revision(url) == alembic_head()


def _schema_drift(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from core import models  # noqa: F401  (registers the tables)
    from core.db import metadata

    engine = create_engine(url)
    with engine.connect() as c:
        context = MigrationContext.configure(c, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    return diff


def test_a_withdrawn_decisions_id_is_never_given_to_the_next_on_sqlite(tmp_path: Path) -> None:
    # Given a database migrated from before decisions were named by id, holding one
    url = f"sqlite:///{tmp_path / 'db' / 'twinlens.db'}"
    (tmp_path / "db").mkdir()
    command.upgrade(alembic_config(url), "0004")
    engine = create_engine(url)
    add = text(
        "INSERT INTO duplicate_resolutions (group_key, action, keep, members, created_at) "
        "VALUES ('k', 'trash', '[]', '[]', '2026-01-01')"
    )
    with engine.begin() as c:
        first = c.execute(add).lastrowid
    migrate(url)
    # When that decision is withdrawn and another recorded
    with engine.begin() as c:
        assert c.execute(text("SELECT id FROM duplicate_resolutions")).scalars().all() == [first]
        c.execute(text("DELETE FROM duplicate_resolutions"))
        second = c.execute(add).lastrowid
    engine.dispose()
    # Then the new one has an id of its own: an undo naming the first cannot reach it
    assert second > first


def test_the_migrations_build_the_models_schema_on_sqlite(tmp_path: Path) -> None:
    # A column, index or constraint added to core/models.py without a revision (or the
    # reverse) would show here before it shows on a user's database
    url = f"sqlite:///{tmp_path / 'db' / 'twinlens.db'}"
    migrate(url)
    assert _schema_drift(url) == []


def test_the_migrations_build_the_models_schema_on_postgres(pg_url: str) -> None:
    assert _schema_drift(pg_url) == []


def test_a_migration_waiting_for_a_table_lets_its_readers_through_postgres(monkeypatch) -> None:
    import threading

    import core.db
    from tests.conftest import throwaway_pg_database

    monkeypatch.setattr(core.db, "MIGRATION_LOCK_TIMEOUT_MS", 200)
    monkeypatch.setattr(core.db, "MIGRATION_RETRY_SECONDS", 0.2)
    # Given a database one revision behind (a column to add to duplicate_resolutions),
    # and an old worker whose transaction has read that table and is still open
    with throwaway_pg_database() as url:
        command.upgrade(alembic_config(url), "0003")
        holder, reader = create_engine(url), create_engine(url)
        outcome: list[object] = []

        def start() -> None:
            try:
                migrate(url)
                outcome.append("done")
            except Exception as exc:  # noqa: BLE001 - the test reports it
                outcome.append(exc)

        with holder.connect() as old_worker:
            old_worker.exec_driver_sql("SELECT count(*) FROM duplicate_resolutions")
            # When a new process starts and migrates, waiting for that table
            migration = threading.Thread(target=start)
            migration.start()
            time.sleep(1.0)
            # Then other readers of the table are not queued behind it meanwhile
            with reader.connect() as r:
                r.exec_driver_sql("SET statement_timeout = 3000")
                for _ in range(3):
                    assert (
                        r.exec_driver_sql("SELECT count(*) FROM duplicate_resolutions").scalar()
                        == 0
                    )
                    time.sleep(0.2)
            assert migration.is_alive() and _revision(url) == "0003"
            old_worker.commit()
        # And once the old transaction ends, the migration completes
        migration.join(timeout=60)
        assert outcome == ["done"] and _revision(url) == alembic_head()

        # A table never let go of: a clear refusal after the tries, nothing changed
        command.downgrade(alembic_config(url), "0003")
        monkeypatch.setattr(core.db, "MIGRATION_ATTEMPTS", 2)
        with holder.connect() as old_worker:
            old_worker.exec_driver_sql("SELECT count(*) FROM duplicate_resolutions")
            with pytest.raises(SchemaError, match="could not lock its tables"):
                migrate(url)
        assert _revision(url) == "0003"
        holder.dispose()
        reader.dispose()
