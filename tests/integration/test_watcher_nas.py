"""The watcher when the library misbehaves: a NAS share that goes away and comes back,
and inotify's limits exhausted by a big library."""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import replace

from sqlalchemy import select

from core import jobs
from core.db import engine_for, session_scope
from core.models import Job
from tests.factories import write_jpeg
from tests.integration.test_grouping_api import RecordingBroker
from tests.integration.test_watcher import wait_for
from workers.watcher import Watcher


def _paths(cfg, broker) -> list[str]:
    with session_scope(engine_for(cfg.database_url)) as s:
        return [s.get(Job, args[0]).path for _, args in broker.messages]


def _finish_all(cfg) -> None:
    """Stand in for the workers: every job enqueued so far has run."""
    with session_scope(engine_for(cfg.database_url)) as s:
        for job_id in s.scalars(select(Job.id).where(Job.state.in_(jobs.ACTIVE_STATES))):
            jobs.finish_job(s, job_id, "done")


def _logged(caplog, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


def test_share_that_vanishes_and_comes_back_is_watched_again(pg_settings, library, caplog):
    # Given a polling watcher on a NAS share that has caught up
    caplog.set_level(logging.INFO, logger="twinlens.watcher")
    cfg = replace(pg_settings, watch_polling=True, watch_interval=0.1, watch_settle=0.2)
    broker = RecordingBroker()
    w = Watcher(cfg, broker, holder="test-watcher", lease_ttl=0.6)
    w.start()
    away = library.parent / "library-away"
    try:
        wait_for(lambda: broker.messages)
        _finish_all(cfg)
        # When the share goes away (watchdog's poller stops for good when its root vanishes)
        os.rename(library, away)
        # Then the watcher says so, once, however many rounds pass
        wait_for(lambda: _logged(caplog, "is not a folder"))
        rounds = {w.next_renew}
        wait_for(lambda: rounds.add(w.next_renew) or len(rounds) >= 3)  # two more rounds
        assert _paths(cfg, broker) == [str(library)]  # no scan of a share that is not there
        # When it comes back
        os.rename(away, library)
        # Then it is watched again, with a catch-up scan for what changed meanwhile
        wait_for(lambda: len(broker.messages) > 1)
        assert _paths(cfg, broker)[1] == str(library)
        assert _logged(caplog, "is not a folder") == 1 and _logged(caplog, "is back")
        # And new files are seen again
        _finish_all(cfg)
        write_jpeg(library / "after" / "IMG_1.JPG", 1)
        wait_for(lambda: str(library / "after") in _paths(cfg, broker))
    finally:
        if away.exists():
            os.rename(away, library)
        w.stop()


def test_inotify_watch_limit_is_reported_with_what_to_set(pg_settings, tmp_path, caplog):
    # Given two roots and inotify's watch limit exhausted by the first (a big library)
    big, small = tmp_path / "big", tmp_path / "small"
    big.mkdir()
    small.mkdir()
    cfg = replace(pg_settings, watch_polling=False, library_roots=(big, small))
    a, b = RecordingBroker(), RecordingBroker()
    w = Watcher(cfg, a, holder="host-a:1", lease_ttl=30)
    standby = Watcher(cfg, b, holder="host-b:1", lease_ttl=30)
    real_schedule = w.observer.schedule

    def schedule(handler, path, **kw):
        if path == str(big):  # what watchdog raises when inotify_add_watch fails so
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return real_schedule(handler, path, **kw)

    w.observer.schedule = schedule
    try:
        # When the watcher starts
        assert w.renew() == [str(small)]  # Then the other root is still watched
        # And the error names the setting to raise, and the alternative
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert "fs.inotify.max_user_watches" in errors[0] and str(big) in errors[0]
        assert "TWINLENS_WATCH_POLLING=1" in errors[0]
        # And it is not repeated every round
        w.renew()
        assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
        # And the lease it cannot use is left to a standby watcher that can watch
        assert standby.renew() == [str(big)]
    finally:
        for watcher in (w, standby):
            watcher.observer.unschedule_all()


def test_without_a_start_up_catch_up_a_returning_share_still_gets_one(pg_settings, library, caplog):
    # Given the embedded default's watcher (no catch-up at start: it scanned just before)
    cfg = replace(pg_settings, watch_polling=True, watch_interval=0.1, watch_settle=0.2)
    broker = RecordingBroker()
    w = Watcher(cfg, broker, holder="test-watcher", lease_ttl=0.6, catch_up=False)
    w.start()
    away = library.parent / "library-away"
    try:
        rounds = {w.next_renew}
        wait_for(lambda: rounds.add(w.next_renew) or len(rounds) >= 3)
        assert broker.messages == []
        # When the share goes away and comes back with a file added meanwhile
        os.rename(library, away)
        wait_for(lambda: str(library) not in w.watches)
        write_jpeg(away / "meanwhile" / "IMG_1.JPG", 1)
        os.rename(away, library)
        # Then it is caught up: what changed while it was away is scanned
        wait_for(lambda: _paths(cfg, broker) == [str(library)])
    finally:
        if away.exists():
            os.rename(away, library)
        w.stop()


def test_a_share_mounted_again_is_watched_again(pg_settings, library, monkeypatch):
    import workers.watcher as watcher

    # Given a native (inotify) watcher on a share that has caught up
    cfg = replace(pg_settings, watch_settle=0.2)
    broker = RecordingBroker()
    w = Watcher(cfg, broker, holder="test-watcher", lease_ttl=0.6)
    w.start()
    try:
        wait_for(lambda: broker.messages)
        _finish_all(cfg)
        # When the share is unmounted and mounted again between two rounds (the folder is
        # there, on another device: inotify's watches went with the old mount)
        device = watcher._device(str(library))
        monkeypatch.setattr(watcher, "_device", lambda root: device + 1)
        # Then it is watched again, with a catch-up scan for what changed meanwhile
        wait_for(lambda: len(broker.messages) > 1)
        assert _paths(cfg, broker) == [str(library), str(library)]
    finally:
        w.stop()
