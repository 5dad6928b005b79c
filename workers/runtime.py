"""Process-wide wiring for workers: settings, database engine, broker.

Actors are thin: they take ids from the message, open a session here, call a
function in ``core`` and commit.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core import jobs, leases, suspects
from core.broker import make_broker
from core.config import Settings, load_settings
from core.db import engine_for, session_scope

log = logging.getLogger("twinlens.workers")

_settings: Settings | None = None


def configure(settings: Settings) -> None:
    """Use these settings in this process (the CLI and tests call this first)."""
    global _settings
    _settings = settings


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def engine() -> Engine:
    return engine_for(settings().database_url)


@contextmanager
def session() -> Iterator[Session]:
    with session_scope(engine()) as s:
        yield s


# The actors whose first argument is the id of the job they work on
_JOB_ACTORS = frozenset({"scan_plan", "scan_batch", "scan_advance", "group_run", "dedup_run"})


class HeldJobs(dramatiq.Middleware):
    """The jobs whose messages went into this process's in-memory broker. Those messages
    die with the process, so these are the jobs it holds: it fails them when it stops,
    whatever other process is alive (``workers.embedded``), and they are never another,
    dead process's orphans (``fail_orphans``). Jobs record no owner; this process knows
    its own in-flight work."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: set[str] = set()

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: Any) -> None:
        if message.actor_name in _JOB_ACTORS and message.args:
            with self.lock:
                self.ids.add(str(message.args[0]))

    def snapshot(self) -> set[str]:
        with self.lock:
            return set(self.ids)


_held: HeldJobs | None = None


def held_jobs() -> set[str]:
    """Ids of the jobs this process's in-memory broker took messages for (see HeldJobs);
    empty without one (Redis: the messages outlive the process)."""
    return _held.snapshot() if _held is not None else set()


def install_broker(cfg: Settings) -> dramatiq.Broker:
    """Make a broker for ``cfg`` the global one and bind every actor to it."""
    global _held
    configure(cfg)
    broker = make_broker(cfg)
    if cfg.embedded:
        _held = HeldJobs()
        broker.add_middleware(_held)
    dramatiq.set_broker(broker)
    from workers import actors

    actors.bind(broker)
    return broker


def sending_broker(cfg: Settings) -> tuple[dramatiq.Broker, dramatiq.Worker | None]:
    """The broker a process that only sends (watcher, scheduler) sends on, and the worker
    threads it must run itself in the embedded default (in-process broker: no other
    process could take its messages; stop them on the way out)."""
    if cfg.embedded:
        broker = install_broker(cfg)
        return broker, start_worker(broker, cfg.worker_threads)
    return make_broker(cfg), None


class _Alive:
    """Renews this process's ``leases.EMBEDDED_WORKERS`` lease while its in-process
    broker's worker threads run, so that another embedded process can tell jobs it may
    still be running from jobs a killed process left behind."""

    TTL = 30.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.holder = leases.holder_id()
        self.name = leases.EMBEDDED_WORKERS + self.holder
        self.stopped = threading.Event()

    def start(self) -> None:
        self._renew()  # before the first job is started, not a beat later
        threading.Thread(target=self._loop, name="twinlens-alive", daemon=True).start()

    def _renew(self) -> None:
        with session_scope(self.engine) as s:
            leases.acquire(s, self.name, self.holder, self.TTL)

    def _loop(self) -> None:
        while not self.stopped.wait(self.TTL / 3):
            try:
                self._renew()
            except Exception:  # the database busy for a moment: the next beat renews
                log.exception("could not renew this process's worker lease")

    def stop(self) -> None:
        self.stopped.set()
        with session_scope(self.engine) as s:
            leases.release(s, self.name, self.holder)


class EmbeddedWorker(dramatiq.Worker):
    """The in-process broker's worker threads, and the lease that says they are alive."""

    def start(self) -> None:
        super().start()
        self.alive = _Alive(engine())
        self.alive.start()

    def stop(self, timeout: int = 600_000) -> None:
        super().stop(timeout)
        try:
            self.alive.stop()
        except Exception:
            log.exception("could not release this process's worker lease")


_booted: weakref.WeakSet[dramatiq.Broker] = weakref.WeakSet()
_boot_lock = threading.Lock()


def _boot(broker: dramatiq.Broker) -> None:
    """What the ``dramatiq`` command does before it starts its workers, once a broker.

    Without it TimeLimit's watch thread never starts: no actor's ``time_limit`` holds,
    and a read stuck on a share that stopped answering keeps its worker thread, and its
    batch, forever. (A second boot would start that thread twice, which raises.)"""
    with _boot_lock:
        if broker in _booted:
            return
        _booted.add(broker)
    broker.emit_after("process_boot")


# How long a CLI process stopping (twinlens scan, twinlens up) waits for the work in hand
# (a batch, a dedup pass) before leaving it: its job is failed already, and the next scan
# does that work again
STOP_WAIT_MS = 30_000


def start_worker(broker: dramatiq.Broker, threads: int) -> dramatiq.Worker:
    """Worker threads inside this process (`twinlens worker`, `twinlens up`, `twinlens
    scan`)."""
    _boot(broker)
    kind = EmbeddedWorker if settings().embedded else dramatiq.Worker
    worker = kind(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker


def other_embedded_alive(session: Session) -> bool:
    """Whether another process runs the in-process broker's worker threads on this
    database (see ``_Alive``): the jobs left active may be its."""
    return leases.others_alive(session, leases.EMBEDDED_WORKERS, leases.holder_id())


def fail_orphans() -> list[str]:
    """In the embedded default: fail the jobs left active by embedded processes that are
    gone (killed, the power cut), when no other is alive. Call after start_worker. The
    jobs this process holds (``held_jobs``: the watcher's, started before the first scan)
    are its own, not orphans.

    Only on SQLite, the embedded default's database: an in-process broker pointed at a
    shared PostgreSQL (a one-off `twinlens scan` against production) must not fail the
    jobs that Redis workers, which hold no such lease, are running there."""
    if engine().dialect.name != "sqlite":
        return []
    with session_scope(engine()) as s:
        if other_embedded_alive(s):
            return []
        orphans = jobs.fail_orphans(s, keep=held_jobs())
        # The files their batches were reading when the process died: a file that kills
        # its reader is found, then skipped, instead of stopping every scan
        suspected = suspects.note_crashes(s, orphans)
    if suspected:
        log.warning("%d files were being read when Twinlens stopped: read alone next", suspected)
    if orphans:
        log.warning("failed %d jobs a stopped Twinlens process left unfinished", len(orphans))
    return orphans
