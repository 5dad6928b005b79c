"""`twinlens schedule`: APScheduler runs the nightly scan (incremental, with a full dedup pass); it only enqueues.

Two schedulers may run (a second host, a restart overlap): each nightly run takes
a database lease named after its scheduled time, so exactly one of them acts.
Missed runs are coalesced into one; a run missed while no scheduler was up (a NAS
powered off at night, a reboot across 03:00) is caught up at start, within the same
grace of six hours. Every five minutes the scheduler also sends on jobs whose messages
were lost (``workers.reconcile``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from core import jobs, leases
from core.config import Settings
from core.db import engine_for, migrate, session_scope

log = logging.getLogger("twinlens.scheduler")


DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _repeated(t: datetime) -> bool:
    """True for the second occurrence of a wall-clock time that happens twice (DST ends)."""
    return t.fold == 1 and t.replace(fold=0).utcoffset() != t.utcoffset()


def _after_repeat(t: datetime) -> datetime:
    """The first whole minute after the repeated hour that ``t`` lies in."""
    cur = t.astimezone(UTC).replace(second=0, microsecond=0)
    while True:
        cur += timedelta(minutes=1)
        local = cur.astimezone(t.tzinfo)
        if not _repeated(local):
            return local


def _cron_class() -> Any:
    from apscheduler.triggers.cron import CronTrigger

    class OncePerWallClockCron(CronTrigger):  # type: ignore[misc]
        """Cron that fires a wall-clock time once even when DST ends and it happens twice.

        APScheduler's CronTrigger hands back the second 02:30 (fold=1) as the next fire
        time of itself, forever: its scheduler loop then never returns (nor does
        ``scheduled_time``) and no nightly scan ever runs again. Like cron, skip the
        repeated hour's second pass instead.
        """

        def get_next_fire_time(self, previous: Any, now: datetime) -> Any:
            t = super().get_next_fire_time(previous, now)
            if t is not None and _repeated(t):
                t = super().get_next_fire_time(None, _after_repeat(t))
            return t

    return OncePerWallClockCron


def weekdays(field: str) -> str:
    """A cron day-of-week field as APScheduler day names.

    Cron numbers weekdays from Sunday = 0 (7 is Sunday too), APScheduler from Monday = 0,
    and a name-for-number rewrite breaks ranges that wrap in APScheduler's numbering
    (``0-4`` is Sunday to Thursday: ``sun-thu`` is refused) and steps (``*/2``). So the
    field is expanded to its days and handed over as a list of names.
    """
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        spec, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if spec == "*":
            lo, hi = 0, 6
        elif "-" in spec:
            lo, hi = (_weekday(x) for x in spec.split("-", 1))
        else:
            lo = _weekday(spec)
            hi = 6 if step_text else lo
        if step < 1 or lo > hi:
            raise ValueError(f"day-of-week {part!r} is not a cron range")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(DAYS[d] for d in sorted(days))


def _weekday(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text[:3] in DAYS:
        return DAYS.index(text[:3])
    raise ValueError(f"{text!r} is not a day of the week (0-7 or sun..sat)")


def trigger(cfg: Settings) -> Any:
    """A cron trigger with standard cron semantics.

    Weekdays as cron numbers them (``weekdays``). When both the day of the month and the
    day of the week are restricted, cron runs on either (``0 3 1 * mon``: the 1st and
    every Monday); APScheduler would need both, so the two are combined with OR.
    """
    fields = cfg.schedule_cron.split()
    if len(fields) != 5:
        raise ValueError(f"TWINLENS_SCHEDULE_CRON needs 5 fields, got {cfg.schedule_cron!r}")
    minute, hour, day, month, dow = fields
    dow = weekdays(dow)
    cron = _cron_class()
    tz = cfg.timezone or None
    if day not in ("*", "?") and dow != "*":
        from apscheduler.triggers.combining import OrTrigger

        class Either(OrTrigger):  # type: ignore[misc]
            @property
            def timezone(self) -> Any:  # as a CronTrigger has (build() reads it)
                return self.triggers[0].timezone

        return Either(
            [
                cron(minute=minute, hour=hour, day=day, month=month, timezone=tz),
                cron(minute=minute, hour=hour, month=month, day_of_week=dow, timezone=tz),
            ]
        )
    return cron(minute=minute, hour=hour, day=day, month=month, day_of_week=dow, timezone=tz)


def scheduled_time(trig: Any, now: datetime) -> datetime:
    """The fire time this run belongs to (the latest one not after ``now``), so that
    twin schedulers agree on the lease name even if one starts a little late."""
    last = None
    t = trig.get_next_fire_time(None, now - timedelta(days=8))
    while t is not None and t <= now:
        last = t
        nxt = trig.get_next_fire_time(t, t + timedelta(seconds=1))
        t = nxt if nxt is None or nxt > t else None  # a trigger that stalls must not hang us
    return last or now


def nightly(
    cfg: Settings, fire_time: datetime, broker: Any, holder: str | None = None
) -> list[str]:
    """Start a full scan of every library root, unless another scheduler already
    did for this fire time. Returns the ids of the jobs started or found running."""
    holder = holder or leases.holder_id()
    name = f"nightly:{fire_time.isoformat()}"
    started: list[tuple[str, bool]] = []
    with session_scope(engine_for(cfg.database_url)) as s:
        # The lease outlives the run by a day, so a late twin cannot take it over.
        if not leases.acquire(s, name, holder, ttl_seconds=86_400):
            log.info("nightly scan for %s is another scheduler's", fire_time)
            return []
        for root_path in cfg.library_roots:
            root = jobs.get_or_create_root(s, str(root_path))
            job, created = jobs.start_job(
                s, "scan", root=root, trigger="schedule", stale_seconds=cfg.job_stale_seconds
            )
            started.append((job.id, created or jobs.unplanned(job)))
    for job_id, send in started:
        if send:
            jobs.enqueue(broker, "scan_plan", job_id)
    log.info("nightly scan: %s", started)
    return [j for j, _ in started]


NIGHTLY_ATTEMPTS = 6
NIGHTLY_RETRY_SECONDS = 300.0
MISFIRE_GRACE_SECONDS = 6 * 3600


def already_run(cfg: Settings, fire_time: datetime) -> bool:
    """Whether a scheduler took this fire time's nightly run (its lease lasts a day)."""
    from core.models import Lease

    with session_scope(engine_for(cfg.database_url)) as s:
        return s.get(Lease, f"nightly:{fire_time.isoformat()}") is not None


def build(cfg: Settings, broker: Any, *, background: bool = False, catch_up: bool = True) -> Any:
    """The nightly scan's scheduler: blocking for `twinlens schedule`, or a background
    thread beside the servers of `twinlens up` (which scans at start: no ``catch_up``)."""
    if background:
        from apscheduler.schedulers.background import BackgroundScheduler as Scheduler
    else:
        from apscheduler.schedulers.blocking import BlockingScheduler as Scheduler

    sched = Scheduler(timezone=cfg.timezone or None)

    trig = trigger(cfg)

    def attempt(fire_time: datetime, n: int) -> None:
        try:
            nightly(cfg, fire_time, broker)
        except Exception:
            # The database or Redis away at 3 a.m.: try again later rather than lose the
            # night's scan (the lease and start_job make a second try safe).
            if n >= NIGHTLY_ATTEMPTS:
                log.exception("nightly scan for %s could not be started", fire_time)
                return
            log.exception("nightly scan for %s: attempt %d failed, trying again", fire_time, n)
            sched.add_job(
                attempt,
                "date",
                run_date=datetime.now(trig.timezone) + timedelta(seconds=NIGHTLY_RETRY_SECONDS),
                args=[fire_time, n + 1],
                misfire_grace_time=3600,
            )

    def run() -> None:
        attempt(scheduled_time(trig, datetime.now(trig.timezone)), 1)

    sched.add_job(
        run,
        trig,
        id="nightly-scan",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
        replace_existing=True,
    )

    def missed() -> None:
        now = datetime.now(trig.timezone)
        last = scheduled_time(trig, now)
        recent = last < now and (now - last).total_seconds() <= MISFIRE_GRACE_SECONDS
        if recent and not already_run(cfg, last):
            log.info("the nightly scan of %s was missed (no scheduler was up): running it", last)
            attempt(last, 1)

    if catch_up:
        sched.add_job(missed, "date", id="nightly-catch-up", misfire_grace_time=None)
    from workers import reconcile

    sched.add_job(
        reconcile.attempt,
        "interval",
        seconds=reconcile.EVERY_SECONDS,
        args=[cfg, broker],
        id="reconcile",
        coalesce=True,
        max_instances=1,
    )
    return sched


def problem(cfg: Settings) -> str | None:
    """What is wrong with the nightly scan's settings, if anything."""
    try:
        build(cfg, None, background=True)
    except ValueError as exc:
        return f"TWINLENS_SCHEDULE_CRON: {exc}"
    except KeyError as exc:  # zoneinfo's and pytz's unknown-zone errors are KeyErrors
        return f"TWINLENS_TIMEZONE: unknown time zone {exc}"
    return None


def main(cfg: Settings) -> int:
    if not cfg.library_roots:
        log.error("no library roots configured (TWINLENS_LIBRARY_ROOTS)")
        return 2
    migrate(cfg.database_url)
    wrong = problem(cfg)
    if wrong:
        log.error("%s", wrong)
        return 2
    from workers import runtime

    broker, worker = runtime.sending_broker(cfg)
    sched = build(cfg, broker)
    job = sched.get_job("nightly-scan")
    log.info(
        "nightly scan scheduled by %r; next run %s",
        cfg.schedule_cron,
        getattr(job, "next_run_time", None),
    )
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if worker is not None:
            worker.stop()
    return 0
