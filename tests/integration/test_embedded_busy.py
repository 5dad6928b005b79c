"""The embedded catalog (SQLite) while a scan holds its one writer: an API write that
cannot get in says so, to be retried, and the gateway waits for it longer than SQLite
does (else it would report a failure for a write that then happens)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import api
import core.db
from core.db import migrate
from tests.integration.test_grouping_api import AUTH, TOKEN, RecordingBroker


def test_a_write_while_a_scan_holds_the_catalog_is_a_503_to_retry(embedded_settings, monkeypatch):
    monkeypatch.setattr(core.db, "SQLITE_BUSY_SECONDS", 0.5)  # not a minute, in a test
    cfg = replace(embedded_settings, service_token=TOKEN)
    cfg.library_roots[0].mkdir(parents=True)
    migrate(cfg.database_url)
    client = api.create_app(
        "grouping", {"settings": cfg, "broker": RecordingBroker()}
    ).test_client()
    # Given a scan's batch holding SQLite's one writer
    holder = sqlite3.connect(cfg.database_url.split("///", 1)[1])
    holder.execute("BEGIN IMMEDIATE")
    try:
        # When a scan is asked for
        r = client.post("/scans", json={}, headers=AUTH)
    finally:
        holder.rollback()
        holder.close()
    # Then the answer says to try again, not "internal error"
    assert r.status_code == 503 and "busy" in r.get_json()["error"], r.get_json()
    assert r.headers["Retry-After"] == "10"
    # And once the writer is done, the same request goes through
    assert client.post("/scans", json={}, headers=AUTH).status_code == 202


def test_the_gateway_waits_for_sqlite_longer_than_sqlite_waits(embedded_settings) -> None:
    from gateway import create_app

    app = create_app({"SETTINGS": embedded_settings})
    assert app.config["SERVICE_TIMEOUT"] > core.db.SQLITE_BUSY_SECONDS


def test_through_the_gateway_a_busy_catalog_is_a_503_too(embedded_settings, monkeypatch) -> None:
    from gateway import create_app
    from tests.fakeimmich import ThreadedServer

    monkeypatch.setattr(core.db, "SQLITE_BUSY_SECONDS", 0.5)
    cfg = replace(embedded_settings, service_token=TOKEN)
    cfg.library_roots[0].mkdir(parents=True)
    migrate(cfg.database_url)
    grouping = ThreadedServer(
        api.create_app("grouping", {"settings": cfg, "broker": RecordingBroker()})
    ).start()
    try:
        gw = create_app({"SETTINGS": replace(cfg, grouping_url=grouping.url)}).test_client()
        holder = sqlite3.connect(cfg.database_url.split("///", 1)[1])
        holder.execute("BEGIN IMMEDIATE")
        try:
            # When the UI's "Scan now" comes while a scan batch holds the writer
            r = gw.post("/api/twinlens/jobs", json={"service": "grouping"})
        finally:
            holder.rollback()
            holder.close()
    finally:
        grouping.stop()
    # Then the answer is the service's "busy, try again", not a failure
    assert r.status_code == 503 and "busy" in r.get_json()["message"], r.get_json()
