"""A scan always says what failed: the report file lists every failed file; the HTTP
answer lists the first 1,000 and counts them all."""

from __future__ import annotations

from pathlib import Path

import api
from core.config import Settings
from tests.integration.test_grouping_api import AUTH, RecordingBroker
from twinlens import run_scan

BROKEN = 1005  # more than an HTTP answer lists


def test_report_lists_every_failed_file_and_the_api_the_first_thousand(
    embedded_settings: Settings, library: Path
) -> None:
    # Given a folder of empty "photos" (a copy that died half-way) and one good file
    for i in range(BROKEN):
        (library / f"IMG_{i:04d}.JPG").write_bytes(b"")
    (library / "fine.txt").write_text("not a photo, not an error")
    # When it is scanned
    report = run_scan(embedded_settings, str(library))
    # Then the report names every one of them, with a reason
    job = report["job"]
    assert job["state"] == "done" and job["failed"] == BROKEN
    assert sorted(e["path"] for e in job["errors"]) == [f"IMG_{i:04d}.JPG" for i in range(BROKEN)]
    assert all(e["error"] for e in job["errors"])
    # And the job's HTTP answer lists the first 1,000 and still counts them all
    app = api.create_app("grouping", {"settings": embedded_settings, "broker": RecordingBroker()})
    answer = app.test_client().get(f"/jobs/{job['id']}", headers=AUTH).get_json()
    assert answer["failed"] == BROKEN and len(answer["errors"]) == 1000
