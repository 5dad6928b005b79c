"""`twinlens up`: the embedded default in one process.

SQLite, the in-process broker with worker threads, the grouping and dedup APIs and
the gateway (local mode) on loopback, the watcher and the nightly scan. With no library
given it generates a demo.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.config import DEMO_LIBRARY, Settings

log = logging.getLogger("twinlens.embedded")


class PortTaken(Exception):
    """A port Twinlens serves on is in use by another program; ``flag`` is the option of
    `twinlens up` that moves it."""

    def __init__(self, port: int, host: str, flag: str) -> None:
        super().__init__(f"port {port} on {host} is in use by another program")
        self.flag = flag

    def hint(self) -> str:
        return (
            f"twinlens: {self}: stop it, or choose another port for it (twinlens up "
            f'{self.flag} N; make run ARGS="{self.flag} N")'
        )


def _serve_thread(app: Any, host: str, port: int, flag: str = "--port") -> Any:
    from werkzeug.serving import make_server

    try:
        server = make_server(host, port, app, threaded=True)
    except (OSError, SystemExit) as exc:  # werkzeug exits when the address is in use
        raise PortTaken(port, host, flag) from exc
    threading.Thread(target=server.serve_forever, name=f"http-{port}", daemon=True).start()
    return server


@dataclass(frozen=True)
class Ports:
    gateway: int = 3000
    grouping: int = 8000
    dedup: int = 8001


def main(cfg: Settings, path: str | None, serve: bool = True, ports: Ports = Ports()) -> int:
    import twinlens
    from core.db import migrate
    from workers.demo import make_demo_library

    if path is None:
        path = str(make_demo_library(cfg.data_dir / DEMO_LIBRARY))
        print(f"No library given: generated a demo library in {path}")
        for known in _libraries_cataloged(cfg):
            # Said, so that a run without LIBRARY= is not taken for the watch of the
            # library given last time (the demo is served and watched instead)
            print(f"  (the library cataloged before is kept: make run LIBRARY={_sh(known)})")
        cfg = _demo_settings(cfg)
    library = Path(path).resolve()
    if not library.is_dir():
        print(f"twinlens: {library} is not a folder")
        return 2
    if serve:
        from workers import scheduler

        problem = scheduler.problem(cfg)
        if problem:  # said before the scan, not after it
            print(f"twinlens: {problem}")
            return 2
    migrate(cfg.database_url)
    root = _root_for(cfg, library)
    if root is None:
        return 2
    if str(root) not in [str(r) for r in cfg.library_roots]:
        cfg = replace(cfg, library_roots=(*cfg.library_roots, root))
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"twinlens: TWINLENS_HOST={cfg.host} is not used by twinlens up, which serves "
            "this machine only (it has no login); see the README to deploy beside Immich"
        )
    cfg = replace(cfg, host="127.0.0.1")  # embedded: never listen beyond this machine
    if not serve:
        report = twinlens.run_scan(
            cfg, str(library), progress=twinlens.Progress(), full_report=False
        )
        print(twinlens._summary_text(report))
        return 0 if twinlens.scan_ok(report) else 1
    return _serve_all(cfg, ports, str(library))


def _libraries_cataloged(cfg: Settings) -> list[str]:
    """The libraries the database of ``cfg`` holds (not the demo's), read without creating
    or migrating it: none when it does not exist or cannot be read."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.exc import SQLAlchemyError

    from core.models import Root

    db = cfg.database_url.removeprefix("sqlite:///")
    if db == cfg.database_url or not os.path.isfile(db):
        return []
    engine = create_engine(f"sqlite:///file:{db}?mode=ro&uri=true")
    try:
        with engine.connect() as conn:
            return sorted(conn.scalars(select(Root.path)))
    except (SQLAlchemyError, ValueError, OSError):  # a path a SQLite URI cannot carry, say
        return []
    finally:
        engine.dispose()


def _sh(path: str) -> str:
    import shlex

    return shlex.quote(path)


def _demo_settings(cfg: Settings) -> Settings:
    """The demo catalogs into a database of its own: its groups and duplicates must not
    stay in the lists (and the statistics) once a real library is given."""
    default = f"sqlite:///{cfg.data_dir / 'twinlens.db'}"
    if cfg.database_url != default:  # a database named on purpose is used as named
        return cfg
    return replace(cfg, database_url=f"sqlite:///{cfg.data_dir / 'demo' / 'twinlens.db'}")


def _root_for(cfg: Settings, library: Path) -> Path | None:
    """The library root to watch and rescan for ``library``: the root cataloged before that
    holds it (a folder of it is scanned as such: a root of its own would take its files
    over and give them back at the next scan of the outer one), else the folder itself.
    None, said why, when it holds a configured root."""
    import twinlens
    from core import jobs
    from core.db import engine_for, session_scope

    configured = [str(r) for r in cfg.library_roots]
    problem = twinlens.holds_a_configured_root(str(library), configured)
    if problem:
        print(f"twinlens: {problem}")
        return None
    with session_scope(engine_for(cfg.database_url)) as s:
        known = configured + jobs.known_roots(s)
    root, folder = twinlens.scan_target(str(library), known)
    if folder is not None:
        print(f"{library} is inside {root}, cataloged before: scanning it as a folder of it")
    return Path(root)


def start_watcher(cfg: Settings, broker: Any) -> Any:
    """The watcher, watching when this returns. Started before the start-up scan: a photo
    copied during that scan (hours on a first run over a big NAS library) into a folder
    the scan has walked past already gets a scan of its own folder, which the running
    scan of the root does not swallow (``exclusive=False``, see workers/watcher.py) and
    whose rows that scan's walk leaves as they are (core.catalog.plan_scan). No catch-up
    scan: the start-up scan is one."""
    from workers.watcher import Watcher

    watcher = Watcher(cfg, broker, catch_up=False)
    watcher.start()
    return watcher


def start_nightly(cfg: Settings, broker: Any) -> Any:
    """What the separate `schedule` process does in production: the whole library every
    night (started after the start-up scan, which is the first)."""
    from workers import scheduler

    nightly = scheduler.build(cfg, broker, background=True, catch_up=False)
    nightly.start()
    return nightly


def _serve_all(cfg: Settings, ports: Ports, library: str) -> int:
    """Serve first, then scan: a port in use is said at once, and the web UI shows the
    first scan's progress while it runs. Watch before the scan too (start_watcher)."""
    import twinlens
    from core.models import utcnow
    from workers import runtime

    broker = runtime.install_broker(cfg)
    worker = runtime.start_worker(broker, cfg.worker_threads)
    started = utcnow()
    servers: list[Any] = []
    watcher = nightly = None
    try:
        servers = _serve_apis(cfg, ports, broker)
        print(
            f"Twinlens is up on http://127.0.0.1:{ports.gateway}/ (this machine only; from "
            f"another, ssh -L {ports.gateway}:127.0.0.1:{ports.gateway} <this host>). "
            f"Scanning {library} first.",
            flush=True,
        )
        watcher = start_watcher(cfg, broker)
        report = twinlens.scan_with(
            cfg, broker, library, progress=twinlens.Progress(), full_report=False
        )
        print(twinlens._summary_text(report))
        nightly = start_nightly(cfg, broker)
        _serving(cfg, ports, watcher)
        threading.Event().wait()
    except PortTaken as exc:
        print(exc.hint())
        return 2
    except KeyboardInterrupt:
        print("Stopping: finishing the work in hand…", flush=True)
    finally:
        if nightly is not None:
            nightly.shutdown(wait=False)
        if watcher is not None:
            watcher.stop()
        for s in servers:
            s.shutdown()
        _fail_unfinished(started)  # before the wait for the work in hand: said at once
        worker.stop(timeout=runtime.STOP_WAIT_MS)
        # and what the work in hand started meanwhile (a finished scan's grouping and
        # dedup passes): its messages are gone with the worker threads
        _fail_unfinished(started)
    return 0


def _serve_apis(cfg: Settings, ports: Ports, broker: Any) -> list[Any]:
    """The grouping and dedup APIs and the gateway, each serving in its own thread; all
    or none (PortTaken)."""
    import api
    import gateway

    gw_cfg = replace(
        cfg,
        grouping_url=f"http://{cfg.host}:{ports.grouping}",
        dedup_url=f"http://{cfg.host}:{ports.dedup}",
    )
    apps = [
        (api.create_app("grouping", {"settings": cfg, "broker": broker}), ports.grouping),
        (api.create_app("dedup", {"settings": cfg, "broker": broker}), ports.dedup),
        (gateway.create_app({"SETTINGS": gw_cfg}), ports.gateway),
    ]
    flags = ("--grouping-port", "--dedup-port", "--port")
    servers: list[Any] = []
    try:
        for (app, port), flag in zip(apps, flags, strict=True):
            servers.append(_serve_thread(app, cfg.host, port, flag))
    except PortTaken:
        for s in servers:
            s.shutdown()
        raise
    return servers


def _serving(cfg: Settings, ports: Ports, watcher: Any) -> None:
    roots = ", ".join(watcher.roots)
    if watcher.watches:
        watching = f"Watching {roots} for new files"
    elif watcher.trouble:  # logged with the reason; watched once it can be
        watching = f"{roots} cannot be watched now (see the log why)"
    else:  # another process holds the watch lease
        watching = (
            f"Not watching {roots} now: another Twinlens process watches it (this one "
            "stands by and takes over if that one stops)"
        )
    print(
        f"Twinlens is running (embedded): open http://127.0.0.1:{ports.gateway}/ (web UI; the "
        f"API is under /api/twinlens/), grouping API :{ports.grouping}, dedup API "
        f":{ports.dedup}. {watching}; the whole library is rescanned on the schedule "
        f"{cfg.schedule_cron!r}. Ctrl-C stops it.",
        flush=True,
    )


def _fail_unfinished(since: Any) -> None:
    """Fail the jobs this process created and holds (``jobs.created_here``,
    ``runtime.held_jobs``: its in-memory broker took their messages, which die with it),
    whatever other process is alive: the next run (or "Scan now" in another `twinlens up`
    on the same data folder) would wait an hour for them to go stale. A job another
    process created is left to it even when this one also took messages for it (its
    nightly run or its watcher's start joined that scan): that process may still run it.
    When no other embedded process is alive, every job started since this one began
    (one whose message was never sent)."""
    from sqlalchemy import select

    from core import jobs
    from core.db import session_scope
    from core.models import Job
    from workers import runtime

    held = runtime.held_jobs()
    with session_scope(runtime.engine()) as s:
        recent = set(
            s.scalars(
                select(Job.id).where(Job.state.in_(jobs.ACTIVE_STATES), Job.created_at >= since)
            )
        )
        ids = recent & held & jobs.created_here()
        if runtime.other_embedded_alive(s):
            # Another embedded process (a `twinlens scan` beside this one) may be running
            # the others: they are its to finish, or to fail when it stops
            log.info("another Twinlens process is running: its jobs are left to it")
        else:
            ids |= recent
        for job_id in sorted(ids):
            jobs.finish_job(s, job_id, "failed", error=jobs.INTERRUPTED)
