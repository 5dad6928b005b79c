"""The jobs API (on the grouping service, :8000) against PostgreSQL: starting, listing,
filtering and cancelling scans, and the job rows' own rules."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import func, select

import api
from core import jobs, leases
from core.db import engine_for, session_scope
from core.models import Job, utcnow
from tests.integration.test_grouping_api import AUTH, RecordingBroker


@pytest.fixture
def client(pg_settings, library):
    app = api.create_app("grouping", {"settings": pg_settings, "broker": RecordingBroker()})
    return app.test_client()


def _jobs(pg_settings) -> list[Job]:
    with session_scope(engine_for(pg_settings.database_url)) as s:
        return list(s.scalars(select(Job)))


def test_a_plain_scan_is_quick_and_a_full_one_is_asked_for(client):
    r = client.post("/scans", json={}, headers=AUTH)
    assert r.status_code == 202 and r.get_json()["full"] is False
    assert client.delete(f"/jobs/{r.get_json()['id']}", headers=AUTH).status_code == 200
    r = client.post("/scans", json={"full": True}, headers=AUTH)
    assert r.status_code == 202 and r.get_json()["full"] is True


def test_a_cancel_is_saved(client):
    # Given a queued scan
    job = client.post("/scans", json={}, headers=AUTH).get_json()
    # When it is cancelled
    r = client.delete(f"/jobs/{job['id']}", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["state"] == "cancelled"
    # Then it stays cancelled, and the next scan of that root is a new job
    again = client.get(f"/jobs/{job['id']}", headers=AUTH).get_json()
    assert again["state"] == "cancelled" and again["finished_at"]
    r = client.post("/scans", json={}, headers=AUTH)
    assert r.status_code == 202 and r.get_json()["id"] != job["id"]


def test_a_misspelt_field_is_refused_not_taken_as_the_whole_root(client, pg_settings):
    r = client.post("/scans", json={"pth": "2024", "ful": True}, headers=AUTH)
    assert r.status_code == 400 and r.get_json()["error"] == "unknown fields: ful, pth"
    assert _jobs(pg_settings) == []


def test_with_two_roots_a_scan_must_name_its_path(pg_settings, tmp_path):
    second = tmp_path / "second"
    second.mkdir()
    cfg = dataclasses.replace(pg_settings, library_roots=(*pg_settings.library_roots, second))
    client = api.create_app(
        "grouping", {"settings": cfg, "broker": RecordingBroker()}
    ).test_client()
    r = client.post("/scans", json={}, headers=AUTH)
    assert r.status_code == 400 and "path is required" in r.get_json()["error"]
    assert _jobs(pg_settings) == []


def test_with_no_root_a_scan_says_what_to_configure(pg_settings):
    cfg = dataclasses.replace(pg_settings, library_roots=())
    client = api.create_app(
        "grouping", {"settings": cfg, "broker": RecordingBroker()}
    ).test_client()
    r = client.post("/scans", json={}, headers=AUTH)
    assert r.status_code == 400
    assert r.get_json()["error"] == "no library roots are configured (TWINLENS_LIBRARY_ROOTS)"
    assert _jobs(pg_settings) == []


def test_an_unknown_job_is_404(client):
    for method in (client.get, client.delete):
        r = method("/jobs/0123456789abcdef0123456789abcdef", headers=AUTH)
        assert r.status_code == 404 and "no job" in r.get_json()["error"]


def test_jobs_are_listed_newest_first_and_filtered(client, pg_settings):
    # Given jobs created a minute apart, of several kinds and states
    t0 = utcnow() - timedelta(hours=1)
    made = [("scan", "done"), ("group", "done"), ("dedup", "queued"), ("scan", "queued")]
    with session_scope(engine_for(pg_settings.database_url)) as s:
        rows = [
            Job(kind=k, state=st, trigger="test", created_at=t0 + timedelta(minutes=i))
            for i, (k, st) in enumerate(made)
        ]
        s.add_all(rows)
        s.flush()
        ids = [j.id for j in rows]

    def listed(query: str) -> tuple[list[str], int]:
        body = client.get("/jobs" + query, headers=AUTH).get_json()
        return [j["id"] for j in body["items"]], body["total"]

    # Then pages run from the newest back
    assert listed("?size=3") == ([ids[3], ids[2], ids[1]], 4)
    assert listed("?size=3&page=2") == ([ids[0]], 4)
    # And each filter holds
    assert listed("?state=queued") == ([ids[3], ids[2]], 2)
    assert listed("?kind=dedup") == ([ids[2]], 1)
    assert listed("?kind=scan&state=done") == ([ids[0]], 1)


def test_a_cancelled_job_is_not_started_and_a_start_is_not_restarted(db_session):
    s = db_session
    cancelled = Job(kind="scan", trigger="test", state="cancelled")
    running = Job(kind="scan", trigger="test", state="queued")
    s.add_all([cancelled, running])
    s.flush()
    # A worker that checked the state just before the cancel must not revive the job
    jobs.mark_running(s, cancelled.id)
    # A redelivered message must not move the start of a running job
    jobs.mark_running(s, running.id)
    s.flush()
    s.refresh(running)
    started = running.started_at
    jobs.mark_running(s, running.id)
    s.expire_all()
    assert s.get(Job, cancelled.id).state == "cancelled"
    assert s.get(Job, running.id).started_at == started is not None


def test_a_lease_is_released_only_by_its_holder(db_session):
    s = db_session
    assert leases.acquire(s, "watcher", "A", 60)
    leases.release(s, "watcher", "B")  # a standby stopping
    assert not leases.acquire(s, "watcher", "C", 60)
    leases.release(s, "watcher", "A")
    assert leases.acquire(s, "watcher", "C", 60)
    assert s.scalar(select(func.count()).select_from(leases.Lease)) == 1
