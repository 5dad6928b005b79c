"""`twinlens up`: the embedded default in one process.

SQLite, the in-process broker with worker threads, the grouping and dedup APIs and
the gateway (local mode) on loopback, the watcher and the nightly scan. With no library
given it generates a demo.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.config import Settings

log = logging.getLogger("twinlens.embedded")


def _serve_thread(app: Any, host: str, port: int) -> Any:
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name=f"http-{port}", daemon=True).start()
    return server


@dataclass(frozen=True)
class Ports:
    gateway: int = 3000
    grouping: int = 8000
    dedup: int = 8001


def main(cfg: Settings, path: str | None, serve: bool = True, ports: Ports = Ports()) -> int:
    import twinlens
    from workers.demo import make_demo_library

    if path is None:
        path = str(make_demo_library(cfg.data_dir / "demo-library"))
        print(f"No library given: generated a demo library in {path}")
    library = Path(path).resolve()
    if not library.is_dir():
        print(f"twinlens: {library} is not a folder")
        return 2
    if str(library) not in [str(r) for r in cfg.library_roots]:
        cfg = replace(cfg, library_roots=(*cfg.library_roots, library))
    cfg = replace(cfg, host="127.0.0.1")  # embedded: never listen beyond this machine
    if serve:
        from workers import scheduler

        problem = scheduler.problem(cfg)
        if problem:  # said before the scan, not after it
            print(f"twinlens: {problem}")
            return 2
    report = twinlens.run_scan(cfg, str(library), progress=twinlens.Progress())
    print(twinlens._summary_text(report))
    if not serve:
        return 0 if twinlens.scan_ok(report) else 1
    return _serve_all(cfg, ports)


def start_background(cfg: Settings, broker: Any) -> tuple[Any, Any]:
    """What the separate `watch` and `schedule` processes do in production: new files are
    scanned as they arrive, and the whole library every night. No catch-up scan: the
    library was scanned just before."""
    from workers import scheduler
    from workers.watcher import Watcher

    watcher = Watcher(cfg, broker, catch_up=False)
    watcher.start()
    nightly = scheduler.build(cfg, broker, background=True)
    nightly.start()
    return watcher, nightly


def _serve_all(cfg: Settings, ports: Ports) -> int:
    import api
    import gateway
    from core.models import utcnow
    from workers import runtime

    broker = runtime.install_broker(cfg)
    worker = runtime.start_worker(broker, cfg.worker_threads)
    started = utcnow()
    servers = [
        _serve_thread(
            api.create_app("grouping", {"settings": cfg, "broker": broker}),
            cfg.host,
            ports.grouping,
        ),
        _serve_thread(
            api.create_app("dedup", {"settings": cfg, "broker": broker}), cfg.host, ports.dedup
        ),
    ]
    gw_cfg = replace(
        cfg,
        grouping_url=f"http://{cfg.host}:{ports.grouping}",
        dedup_url=f"http://{cfg.host}:{ports.dedup}",
    )
    servers.append(_serve_thread(gateway.create_app({"SETTINGS": gw_cfg}), cfg.host, ports.gateway))
    watcher = nightly = None
    try:
        watcher, nightly = start_background(cfg, broker)
        _serving(cfg, ports, watcher)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        if nightly is not None:
            nightly.shutdown(wait=False)
        if watcher is not None:
            watcher.stop()
        for s in servers:
            s.shutdown()
        worker.stop()
        _fail_unfinished(started)
    return 0


def _serving(cfg: Settings, ports: Ports, watcher: Any) -> None:
    print(
        f"Twinlens is running (embedded): open http://127.0.0.1:{ports.gateway}/ (web UI; the "
        f"API is under /api/twinlens/), grouping API :{ports.grouping}, dedup API "
        f":{ports.dedup}. Watching {', '.join(watcher.roots)} for new files; the whole "
        f"library is rescanned on the schedule {cfg.schedule_cron!r}. Ctrl-C stops it.",
        flush=True,
    )


def _fail_unfinished(since: Any) -> None:
    """Jobs started through this process (the UI's Scan now) that its in-memory broker
    leaves unfinished: no other process can run them, and the next run would wait an hour
    for them to go stale."""
    from sqlalchemy import select

    from core import jobs
    from core.db import session_scope
    from core.models import Job
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        if runtime.other_embedded_alive(s):
            # Another embedded process (a `twinlens scan` beside this one) may be running
            # some of them, and which are whose is not recorded: the next start that finds
            # no other process alive fails what is left (runtime.fail_orphans).
            log.info("another Twinlens process is running: its jobs are left to it")
            return
        ids = s.scalars(
            select(Job.id).where(Job.state.in_(jobs.ACTIVE_STATES), Job.created_at >= since)
        ).all()
        for job_id in ids:
            jobs.finish_job(s, job_id, "failed", error=jobs.INTERRUPTED)
