"""Process-wide wiring for workers: settings, database engine, broker.

Actors are thin: they take ids from the message, open a session here, call a
function in ``core`` and commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

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


def install_broker(cfg: Settings) -> dramatiq.Broker:
    """Make a broker for ``cfg`` the global one and bind every actor to it."""
    configure(cfg)
    broker = make_broker(cfg)
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


def start_worker(broker: dramatiq.Broker, threads: int) -> dramatiq.Worker:
    """Worker threads inside this process (embedded default, and `twinlens scan`)."""
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker
