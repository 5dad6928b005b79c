"""Named locks in the database, so that only one of several processes acts.

Works the same on PostgreSQL and SQLite: a row per lease, taken by inserting it
or by taking over an expired one in a conditional UPDATE.
"""

from __future__ import annotations

import os
import socket
import uuid
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


# This process's incarnation. A worker container restarted after a SIGKILL often comes
# back with the hostname and the pid of the process that died: without this, that dead
# holder would look alive (its pid is in use, by the new process itself).
INCARNATION = uuid.uuid4().hex[:8]


def process_holder(tag: str) -> str:
    """A holder that names this process: ``tag@host:pid/incarnation``, so that another
    process can tell when its holder died (``holder_dead``). ``tag`` holds no "@"."""
    return f"{tag}@{holder_id()}/{INCARNATION}"


def holder_dead(holder: str) -> bool:
    """Whether the process of a ``process_holder`` is known to be gone: on this machine,
    its pid is not running, or it is this process's pid under another incarnation (a
    restart). False when that cannot be known (another machine's process, a holder of
    another form): then only the lease's expiry tells."""
    _tag, at, proc = holder.partition("@")
    process, slash, incarnation = proc.rpartition("/")
    if not at or not slash:
        return False
    if process == holder_id():
        return incarnation != INCARNATION
    return _alive_here(process) is False


def gone(holder: str) -> bool:
    """Whether ``holder`` (a ``process_holder`` or a plain ``host:pid``) is a process of
    this machine known to be gone; False when that cannot be known (another machine's)."""
    return holder_dead(holder) or _alive_here(holder) is False


def take_over(session: Session, name: str, dead: str, holder: str, ttl_seconds: float) -> bool:
    """Take the lease ``name`` from ``dead`` (a holder known gone) before it expires. A
    conditional UPDATE: of two takers at once, one gets it (PostgreSQL re-checks the
    holder once the first commits; SQLite has one writer)."""
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == dead)
        .values(holder=holder, expires_at=utcnow() + timedelta(seconds=ttl_seconds))
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def current_holder(session: Session, name: str) -> str | None:
    return session.scalar(select(Lease.holder).where(Lease.name == name))


def release(session: Session, name: str, holder: str) -> None:
    session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


# Held by every process running the in-process broker's worker threads (the embedded
# default): jobs only such a process can run are orphans once none is alive.
EMBEDDED_WORKERS = "embedded-worker:"


# How late a renewal may be before its holder is presumed gone though its pid is in use:
# a renewal can wait a minute for a long SQLite write, while a pid is eventually reused.
LATE_RENEWAL = timedelta(minutes=5)


def others_alive(session: Session, prefix: str, me: str) -> bool:
    """Whether a process other than ``me`` holds a lease named ``prefix``*. A holder on
    this machine is alive while its process is and its lease is not long overdue (a
    renewal held up by a long SQLite write does not make it dead, nor an unexpired lease a
    killed one alive); another machine's while its lease has not expired."""
    now = utcnow()
    for holder, expires in session.execute(
        select(Lease.holder, Lease.expires_at).where(Lease.name.startswith(prefix))
    ):
        if holder == me:
            continue
        here = _alive_here(holder)
        alive = expires >= now if here is None else here and expires >= now - LATE_RENEWAL
        if alive:
            return True
    return False


def _alive_here(holder: str) -> bool | None:
    """Whether the process ``holder`` (host:pid) is alive, if it is on this machine."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None  # another machine's process: only its lease's expiry tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
