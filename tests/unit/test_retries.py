"""Which failures a job's message is retried for, how often, and how long it may run."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy.exc import IntegrityError, OperationalError

from workers import actors


def _db_away() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("server closed the connection"))


@pytest.mark.parametrize(
    "exc",
    [_db_away(), redis.ConnectionError("Connection refused"), redis.TimeoutError("timed out")],
    ids=["database", "redis-down", "redis-timeout"],
)
def test_a_server_away_for_a_while_is_waited_for(exc: BaseException) -> None:
    # A restart or failover takes longer than the ~30 s that five retries last
    assert actors.retry_when(actors.MAX_RETRIES, exc)
    assert actors.retry_when(actors.TRANSIENT_RETRIES - 1, exc)
    assert not actors.retry_when(actors.TRANSIENT_RETRIES, exc)


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("disk on fire"), IntegrityError("INSERT", {}, Exception("duplicate key"))],
    ids=["bug", "constraint"],
)
def test_other_failures_get_a_few_retries(exc: BaseException) -> None:
    assert actors.retry_when(actors.MAX_RETRIES - 1, exc)
    assert not actors.retry_when(actors.MAX_RETRIES, exc)


def test_every_job_actor_retries_by_that_rule() -> None:
    for actor in (actors.scan_plan, actors.scan_batch, actors.scan_advance):
        assert actor.options["retry_when"] is actors.retry_when
    for actor in (actors.group_run, actors.dedup_run):
        assert actor.options["retry_when"] is actors.retry_when
        assert actor.options["on_retry_exhausted"] == "job_failed"


def test_a_pass_over_a_whole_library_may_outlast_dramatiqs_default_limit() -> None:
    from dramatiq.middleware import TimeLimit

    default = TimeLimit().time_limit  # 10 minutes: a walk of a big SMB share can take more
    for actor in (actors.scan_plan, actors.scan_advance, actors.group_run, actors.dedup_run):
        assert actor.options["time_limit"] >= 4 * 3600 * 1000 > default
    # A batch is bounded in files and bytes: an hour without an end is a stuck read
    assert default < actors.scan_batch.options["time_limit"] <= 3600 * 1000
