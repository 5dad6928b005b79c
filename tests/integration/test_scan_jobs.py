"""Which running scan a scan request is handed: only one that covers what was asked."""

from __future__ import annotations

from pathlib import Path

from core import jobs
from core.config import Settings
from core.db import engine_for, migrate, session_scope


def test_a_folder_scan_does_not_stand_in_for_a_scan_of_the_root(
    embedded_settings: Settings, library: Path
) -> None:
    migrate(embedded_settings.database_url)
    with session_scope(engine_for(embedded_settings.database_url)) as s:
        root = jobs.get_or_create_root(s, str(library))
        # Given the watcher's scan of one folder, still queued
        folder, _ = jobs.start_job(
            s, "scan", root=root, path=str(library / "2024"), trigger="watch", exclusive=False
        )
        # When the nightly full scan of the root is asked for
        nightly, created = jobs.start_job(s, "scan", root=root, trigger="schedule")
        # Then it is a new scan of the whole root, not the folder scan handed back
        assert created and nightly.id != folder.id and nightly.path == str(library)
        # And a request for that folder, or one inside it, is handed a scan covering it
        again, created = jobs.start_job(s, "scan", root=root, path=str(library / "2024" / "x"))
        assert not created and again.id == folder.id
        # While a sibling folder is not covered by the folder scan, it is by the root's
        other, created = jobs.start_job(s, "scan", root=root, path=str(library / "2025"))
        assert not created and other.id == nightly.id
        # A folder whose name merely starts like another's is not inside it
        assert not jobs._covers(str(library / "2024"), str(library / "2024-old"))
