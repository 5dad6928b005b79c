"""The nightly scheduler: cron and time zone from settings, one acting scheduler."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from core.config import load_settings
from core.db import engine_for, session_scope
from core.models import Job
from workers import scheduler


class RecordingBroker:
    """Counts enqueues; the scheduler only enqueues, so this is all it touches."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple]] = []

    def declare_queue(self, name: str) -> None:
        pass

    def enqueue(self, message, delay=None):
        self.messages.append((message.actor_name, message.args))
        return message


def test_default_is_three_in_the_morning_local_and_configurable():
    default = scheduler.trigger(load_settings({}, timezone="Europe/Berlin"))
    start = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    nxt = default.get_next_fire_time(None, start)
    assert (nxt.hour, nxt.minute, nxt.day) == (3, 0, 25)
    custom = scheduler.trigger(load_settings({}, schedule_cron="30 1 * * 0", timezone="UTC"))
    nxt = custom.get_next_fire_time(None, datetime(2026, 11, 24, tzinfo=ZoneInfo("UTC")))
    assert (nxt.weekday(), nxt.hour, nxt.minute) == (6, 1, 30)


def test_late_start_maps_to_the_same_fire_time():
    trig = scheduler.trigger(load_settings({}, timezone="UTC"))
    late = datetime(2026, 11, 24, 3, 0, 41, tzinfo=ZoneInfo("UTC"))
    very_late = datetime(2026, 11, 24, 5, 12, tzinfo=ZoneInfo("UTC"))
    assert scheduler.scheduled_time(trig, late) == scheduler.scheduled_time(trig, very_late)
    assert scheduler.scheduled_time(trig, late).hour == 3


def test_two_schedulers_one_acts(pg_db, tmp_path):
    # Given two schedulers on different hosts sharing the database
    lib = tmp_path / "lib"
    lib.mkdir()
    cfg = load_settings({}, database_url=pg_db, library_roots=(lib,), data_dir=tmp_path)
    fire = datetime(2026, 11, 24, 3, 0, tzinfo=ZoneInfo("UTC"))
    a, b = RecordingBroker(), RecordingBroker()
    # When both fire for the same night
    first = scheduler.nightly(cfg, fire, a, holder="host-a:1")
    second = scheduler.nightly(cfg, fire, b, holder="host-b:1")
    # Then exactly one scan job exists and only one scheduler enqueued it
    assert len(first) == 1 and second == []
    assert a.messages == [("scan_plan", (first[0],))] and b.messages == []
    with session_scope(engine_for(pg_db)) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1
        assert s.get(Job, first[0]).trigger == "schedule"
    # And the next night is a new run
    nxt = scheduler.nightly(cfg, fire.replace(day=25), b, holder="host-b:1")
    assert len(nxt) == 1


def test_nightly_returns_running_scan_instead_of_a_second(pg_db, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    cfg = load_settings({}, database_url=pg_db, library_roots=(lib,), data_dir=tmp_path)
    broker = RecordingBroker()
    one = scheduler.nightly(cfg, datetime(2026, 1, 1, 3), broker)
    two = scheduler.nightly(cfg, datetime(2026, 1, 2, 3), broker)
    assert one == two  # the first is still queued, so the second night reuses it
    assert len(broker.messages) == 1
