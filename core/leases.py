"""Named locks in the database, so that only one of several processes acts.

Works the same on PostgreSQL and SQLite: a row per lease, taken by inserting it
or by taking over an expired one in a conditional UPDATE.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.models import Lease, utcnow


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire(session: Session, name: str, holder: str, ttl_seconds: float) -> bool:
    """Take or renew the lease ``name`` for ``ttl_seconds``. True if ``holder`` has it.

    Commits on its own (a savepoint) so a lost race never poisons the caller's work.
    """
    now = utcnow()
    expires = now + timedelta(seconds=ttl_seconds)
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name)
        .where((Lease.holder == holder) | (Lease.expires_at < now))
        .values(holder=holder, expires_at=expires)
    )
    if taken.rowcount:  # type: ignore[attr-defined]
        return True
    try:
        with session.begin_nested():
            session.add(Lease(name=name, holder=holder, expires_at=expires))
        return True
    except IntegrityError:
        return False


def release(session: Session, name: str, holder: str) -> None:
    session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


# Held by every process running the in-process broker's worker threads (the embedded
# default): jobs only such a process can run are orphans once none is alive.
EMBEDDED_WORKERS = "embedded-worker:"


def others_alive(session: Session, prefix: str, me: str) -> bool:
    """Whether a process other than ``me`` holds an unexpired lease named ``prefix``*.
    A holder on this machine whose process is gone (killed, the power cut) is not alive,
    even before its lease expires."""
    now = utcnow()
    for (holder,) in session.execute(
        select(Lease.holder).where(Lease.name.startswith(prefix), Lease.expires_at >= now)
    ):
        if holder != me and not _gone_here(holder):
            return True
    return False


def _gone_here(holder: str) -> bool:
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: only its lease's expiry tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
