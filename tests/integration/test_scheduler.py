"""The nightly scheduler: cron and time zone from settings, one acting scheduler."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

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
    # and sends its plan again, in case the first message was lost (planning is idempotent)
    assert broker.messages == [("scan_plan", (one[0],))] * 2


BERLIN = ZoneInfo("Europe/Berlin")
FIXED_JOBS = {"nightly-scan", "nightly-catch-up", "reconcile"}  # what build() schedules


def run_times(trig, first: datetime, now: datetime, cap: int = 10) -> list[str]:
    """The fire times APScheduler's loop (Job._get_run_times) would run up to ``now``;
    at most ``cap`` of them, so a trigger that stalls fails the test instead of hanging it."""
    out = []
    t = trig.get_next_fire_time(None, first)
    while t is not None and t <= now and len(out) < cap:
        out.append(t.isoformat())
        t = trig.get_next_fire_time(t, now)
    return out


@pytest.mark.timeout(20)  # the defect was an endless loop: fail, don't hang the run
def test_dst_end_runs_a_repeated_time_once_and_keeps_scheduling():
    # Given a 02:30 nightly scan in Berlin, where 2026-10-25 02:00-03:00 happens twice
    trig = scheduler.trigger(
        load_settings({}, schedule_cron="30 2 * * *", timezone="Europe/Berlin")
    )
    # When the scheduler runs across that night
    fired = run_times(
        trig, datetime(2026, 10, 24, 12, tzinfo=BERLIN), datetime(2026, 10, 27, 4, tzinfo=BERLIN)
    )
    # Then 02:30 runs once that night (not twice, nor forever) and the next nights follow
    assert fired == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]
    # And a run inside the repeated hour finds its fire time (APScheduler alone loops here)
    inside = datetime(2026, 10, 25, 2, 40, fold=1, tzinfo=BERLIN)
    assert scheduler.scheduled_time(trig, inside).isoformat() == "2026-10-25T02:30:00+02:00"
    later = datetime(2026, 10, 30, 3, tzinfo=BERLIN)  # its 8-day look-back crosses the night
    assert scheduler.scheduled_time(trig, later).isoformat() == "2026-10-30T02:30:00+01:00"


def test_dst_end_keeps_every_quarter_hour_outside_the_repeated_hour():
    # Given a scan every 15 minutes: the repeated hour's second pass is skipped (like cron),
    # but 03:00 right after it is not
    trig = scheduler.trigger(
        load_settings({}, schedule_cron="*/15 * * * *", timezone="Europe/Berlin")
    )
    fired = run_times(
        trig,
        datetime(2026, 10, 25, 1, 50, tzinfo=BERLIN),
        datetime(2026, 10, 25, 3, 20, tzinfo=BERLIN),
        cap=20,
    )
    assert fired == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:15:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:45:00+02:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T03:15:00+01:00",
    ]


def test_dst_start_runs_a_missing_time_once():
    # Given 02:30 on 2026-03-29, a time that does not exist in Berlin (02:00 -> 03:00)
    trig = scheduler.trigger(
        load_settings({}, schedule_cron="30 2 * * *", timezone="Europe/Berlin")
    )
    fired = run_times(
        trig, datetime(2026, 3, 28, 12, tzinfo=BERLIN), datetime(2026, 3, 30, 4, tzinfo=BERLIN)
    )
    # Then that night still gets exactly one run
    assert (
        len(fired) == 2 and fired[0].startswith("2026-03-29") and fired[1].startswith("2026-03-30")
    )


def _fires(cron: str, start: datetime, n: int) -> list[datetime]:
    trig = scheduler.trigger(load_settings({}, schedule_cron=cron, timezone="UTC"))
    out, prev, now = [], None, start
    for _ in range(n):
        prev = trig.get_next_fire_time(prev, now)
        out.append(prev)
        now = prev
    return out


@pytest.mark.parametrize(
    ("cron", "days"),
    [
        ("0 3 * * 0-4", ["Sun", "Mon", "Tue", "Wed", "Thu"]),  # APScheduler: sun-thu refused
        ("0 3 * * 0-6", ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
        ("0 3 * * */2", ["Sun", "Tue", "Thu", "Sat"]),  # was '*/tue'
        ("0 3 * * 5-7", ["Fri", "Sat", "Sun"]),
        ("0 3 * * 1-5/2", ["Mon", "Wed", "Fri"]),
        ("0 3 * * sat,sun", ["Sat", "Sun"]),
    ],
)
def test_weekdays_mean_what_they_mean_to_cron(cron, days):
    start = datetime(2026, 11, 22, 4, 0, tzinfo=ZoneInfo("UTC"))  # a Sunday, after 03:00
    fired = _fires(cron, start, 14)
    assert {t.strftime("%a") for t in fired} == set(days)
    assert all((t.hour, t.minute) == (3, 0) for t in fired)


def test_day_of_month_and_weekday_together_mean_either_as_in_cron():
    # "0 3 1 * mon": the 1st of each month and every Monday (cron's OR), not only
    # Mondays that fall on the 1st
    start = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("UTC"))  # a Tuesday
    fired = [t.date().isoformat() for t in _fires("0 3 1 * mon", start, 4)]
    assert fired == ["2026-11-30", "2026-12-01", "2026-12-07", "2026-12-14"]


def test_a_monthly_schedule_runs_monthly():
    start = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("UTC"))
    fired = [t.date().isoformat() for t in _fires("0 3 1 * *", start, 2)]
    assert fired == ["2026-12-01", "2027-01-01"]


@pytest.mark.parametrize("cron", ["0 3 * * *", "0 3 1 * mon"])
def test_the_scheduled_job_runs_the_nightly_scan_for_its_fire_time(cron, monkeypatch):
    # Given the scheduler as built for the process, with the scan itself recorded
    calls = []
    monkeypatch.setattr(
        scheduler, "nightly", lambda cfg, fire_time, broker: calls.append(fire_time)
    )
    cfg = load_settings({}, schedule_cron=cron, timezone="Europe/Berlin")
    job = scheduler.build(cfg, RecordingBroker()).get_job("nightly-scan")
    # When its job runs (as APScheduler calls it)
    job.func()
    # Then the nightly scan is started once, for a fire time in the configured zone that
    # is not in the future; a run that comes late may still catch up for hours
    [fire_time] = calls
    assert fire_time.utcoffset() is not None and fire_time <= datetime.now(ZoneInfo("UTC"))
    assert (fire_time.hour, fire_time.minute) == (3, 0)
    assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 6 * 3600)


def test_a_night_whose_scan_could_not_start_tries_again(monkeypatch):
    # Given the database away when the nightly scan fires
    calls = []

    def nightly(cfg, fire_time, broker):
        calls.append(fire_time)
        if len(calls) == 1:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(scheduler, "nightly", nightly)
    cfg = load_settings({}, timezone="UTC")
    sched = scheduler.build(cfg, RecordingBroker())
    # When it fires
    sched.get_job("nightly-scan").func()
    # Then another attempt for the same night is scheduled a few minutes later
    [retry] = [j for j in sched.get_jobs() if j.id not in FIXED_JOBS]
    assert retry.args == (calls[0], 2)
    retry.func(*retry.args)
    assert calls == [calls[0], calls[0]]
    # the success schedules no further attempt
    assert len([j for j in sched.get_jobs() if j.id not in FIXED_JOBS]) == 1


def test_a_bad_schedule_is_refused_with_a_reason(tmp_path, caplog):
    cfg = load_settings(
        {},
        schedule_cron="0 3 * * 9",
        data_dir=tmp_path / "d",
        library_roots=(tmp_path,),
    )
    assert scheduler.main(cfg) == 2
    assert "day of the week" in caplog.text


def test_a_night_missed_while_no_scheduler_was_up_is_run_at_start(pg_db, tmp_path, monkeypatch):
    from datetime import timedelta

    lib = tmp_path / "lib"
    lib.mkdir()
    # Given a NAS that was off at its scan's hour, started two hours later
    now = datetime.now(ZoneInfo("UTC")).replace(second=0, microsecond=0)
    two_hours_ago = now - timedelta(hours=2)
    cron = f"{two_hours_ago.minute} {two_hours_ago.hour} * * *"
    cfg = load_settings(
        {}, database_url=pg_db, library_roots=(lib,), data_dir=tmp_path, schedule_cron=cron,
        timezone="UTC",
    )  # fmt: skip
    broker = RecordingBroker()
    sched = scheduler.build(cfg, broker)
    # When the scheduler starts (its start-up job runs)
    sched.get_job("nightly-catch-up").func()
    # Then that night's scan runs now, once: a second start (or a twin) does not repeat it
    assert [m[0] for m in broker.messages] == ["scan_plan"]
    scheduler.build(cfg, broker).get_job("nightly-catch-up").func()
    assert len(broker.messages) == 1
    with session_scope(engine_for(pg_db)) as s:
        assert s.scalars(select(Job.trigger)).all() == ["schedule"]


def test_a_night_missed_long_ago_or_not_yet_due_is_not_caught_up(pg_db, tmp_path):
    from datetime import timedelta

    lib = tmp_path / "lib"
    lib.mkdir()
    now = datetime.now(ZoneInfo("UTC"))
    for delta in (timedelta(hours=7), timedelta(hours=-1)):  # past the grace; in an hour
        at = now - delta
        cfg = load_settings(
            {}, database_url=pg_db, library_roots=(lib,), data_dir=tmp_path,
            schedule_cron=f"{at.minute} {at.hour} * * *", timezone="UTC",
        )  # fmt: skip
        broker = RecordingBroker()
        scheduler.build(cfg, broker).get_job("nightly-catch-up").func()
        assert broker.messages == [], delta


def test_the_scheduler_sends_on_lost_jobs_every_five_minutes():
    cfg = load_settings({}, timezone="UTC")
    job = scheduler.build(cfg, RecordingBroker()).get_job("reconcile")
    assert job.trigger.interval.total_seconds() == 300 and job.max_instances == 1
    # ... and twinlens up, which has just scanned, has no start-up catch-up
    assert (
        scheduler.build(cfg, RecordingBroker(), catch_up=False).get_job("nightly-catch-up") is None
    )
