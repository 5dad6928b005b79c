"""`twinlens`: the composition root that starts any Twinlens process.

Only this module imports across api/, workers/ and gateway/; each command imports
what it needs when it runs, so `twinlens api` never loads image decoders.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.config import VARIABLES, ConfigError, Settings, load_settings
from core.db import SchemaError
from core.paths import display, is_inside, relative_posix, root_of

log = logging.getLogger("twinlens")


def _settings(args: argparse.Namespace) -> Settings:
    cfg = load_settings()
    if cfg.embedded and args.command != "config":
        _check_data_dir(cfg.data_dir)
    return cfg


def _check_data_dir(data_dir: Path) -> None:
    """The embedded database lives in the data folder: one that cannot be made or written
    (a NAS account without a home folder) is said here, not as a traceback from SQLite."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"TWINLENS_DATA_DIR: cannot create {data_dir} ({exc.strerror}); set it to a "
            "folder this user can write"
        ) from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise ConfigError(
            f"TWINLENS_DATA_DIR: cannot write in {data_dir}; set it to a folder this user can write"
        )


# --- config / migrate ----------------------------------------------------------


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _settings(args)
    masked = cfg.masked()
    if args.json:
        print(json.dumps(masked, indent=2))
    else:
        width = max(len(k) for k in masked)
        for key, value in masked.items():
            print(f"{key.ljust(width)}  {value}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from core.db import migrate

    cfg = _settings(args)
    migrate(cfg.database_url)
    print("database is at the latest schema")
    return 0


# --- scan -------------------------------------------------------------------------


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


class Progress:
    """A one-line progress bar on a terminal (files, MB/s, ETA); silent otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr  # the one at the time, not at import
        self.enabled = self.stream.isatty()
        self.last = ""

    def show(self, view: dict[str, Any]) -> None:
        if not self.enabled:
            return
        total, done = view["total"], view["done"]
        frac = done / total if total else 0.0
        bar = "#" * int(frac * 30)
        mbps = view["bytes_per_second"] / 1e6
        line = (
            f"\r{view['kind']:<5} {view['phase']:<8} [{bar:<30}] {done}/{total} files"
            f"  {mbps:6.1f} MB/s  ETA {_fmt_eta(view['eta_seconds'])}  errors {view['failed']}"
        )
        if line != self.last:
            self.stream.write(line)
            self.stream.flush()
            self.last = line

    def close(self) -> None:
        if self.enabled and self.last:
            self.stream.write("\n")


def run_scan(
    cfg: Settings,
    path: str,
    *,
    full: bool = False,
    trigger: str = "cli",
    progress: Progress | None = None,
    worker_threads: int | None = None,
    full_report: bool = True,
) -> dict[str, Any]:
    """Scan ``path`` to completion (catalog, grouping, dedup) and return its summary and,
    with ``full_report``, its report (``scan_with``)."""
    from core.db import migrate
    from workers import runtime

    migrate(cfg.database_url)
    broker = runtime.install_broker(cfg)
    worker = runtime.start_worker(broker, worker_threads or cfg.worker_threads)
    try:
        return scan_with(
            cfg,
            broker,
            path,
            full=full,
            trigger=trigger,
            progress=progress,
            full_report=full_report,
        )
    finally:
        worker.stop(timeout=runtime.STOP_WAIT_MS)


def scan_with(
    cfg: Settings,
    broker: Any,
    path: str,
    *,
    full: bool = False,
    trigger: str = "cli",
    progress: Progress | None = None,
    full_report: bool = True,
) -> dict[str, Any]:
    """``run_scan`` on a broker whose workers already run (``twinlens up`` serves the UI
    during its first scan); the database is migrated.

    Returns ``core.report.summary`` (what ``_summary_text`` prints) and, with
    ``full_report``, the report's keys too (``core.report.build``: every file, group and
    duplicate; ~1.7 GB at a million files, so only for ``--json`` and tests)."""
    from core import jobs, report
    from core.db import session_scope
    from workers import runtime

    job_id: str | None = None
    created = False
    try:
        if cfg.embedded:
            runtime.fail_orphans()  # else a scan a killed process left would be followed
        with session_scope(runtime.engine()) as s:
            # A folder of a root scanned before (given on the command line, not
            # configured) is scanned in that root, as a folder of a configured one
            known = [str(r) for r in cfg.library_roots] + jobs.known_roots(s)
        root_path, folder = scan_target(path, known)
        with session_scope(runtime.engine()) as s:
            root = jobs.get_or_create_root(s, root_path)
            job, created = jobs.start_job(
                s,
                "scan",
                root=root,
                path=folder,
                trigger=trigger,
                full=full,
                stale_seconds=cfg.job_stale_seconds,
            )
            job_id, root_id = job.id, root.id
            if not created and full and not job.full:
                print(
                    "twinlens: a scan of this library is already running; following it "
                    "(it is not a full rescan)",
                    file=sys.stderr,
                )
        if created:
            jobs.enqueue(broker, "scan_plan", job_id)
        _wait(runtime.engine(), root_id, job_id, progress, cfg.job_stale_seconds)
        with session_scope(runtime.engine()) as s:
            out = report.summary(s, root_id, job_id, folder)
            if full_report:
                out.update(folder_report(report.build(s, root_id, job_id), folder))
            return out
    finally:
        # A scan this process only followed is another live process's to finish
        if cfg.embedded and job_id is not None:
            with runtime.session() as s:
                followed_a_live_one = not created and runtime.other_embedded_alive(s)
            if not followed_a_live_one:
                _abandon(runtime.engine(), job_id)


def folder_report(rep: dict[str, Any], folder: str | None) -> dict[str, Any]:
    """The report of a scan of ``folder`` (None: the whole library): the folder's files,
    and the groups and duplicates with a member in it (all their members listed), not the
    whole library's. ``folder`` is the folder relative to the library (None for the whole
    of it) and ``library_files`` how many files the library holds."""
    rep = {**rep, "folder": None, "library_files": len(rep["files"])}
    if folder is None:
        return rep
    rel = relative_posix(folder, rep["library"])
    if rel == ".":
        return rep

    def inside(path: str) -> bool:
        return path == rel or path.startswith(rel + "/")

    rep["folder"] = rel
    rep["files"] = [f for f in rep["files"] if inside(f["path"])]
    rep["groups"] = [g for g in rep["groups"] if any(inside(m) for m in g["members"])]
    rep["duplicates"] = [
        d for d in rep["duplicates"] if any(inside(m["path"]) for m in d["members"])
    ]
    return rep


def scan_target(path: str, roots: list[str]) -> tuple[str, str | None]:
    """(root, folder or None) of a path given on the command line.

    A folder inside a configured root (however spelled: through a symlink, or past one)
    is a scan of that folder in that root, spelled as the root is, as the API and the
    watcher start them: a root of its own would run beside the root's scans and move the
    folder's rows from one root to the other and back. Outside every root, the path is
    a root of its own.
    """
    real = os.path.realpath(path)
    spelled = {os.path.realpath(root): root for root in roots}
    r = root_of(real, spelled)
    if r is None:
        return os.path.abspath(path), None
    root = spelled[r]
    return (root, None) if real == r else (root, os.path.join(root, os.path.relpath(real, r)))


def configured_roots_inside(path: str, roots: list[str]) -> list[str]:
    """The configured roots that lie strictly inside ``path`` (which is in none of them)."""
    real = os.path.realpath(path)
    reals = {r: os.path.realpath(r) for r in roots}
    if root_of(real, reals.values()) is not None:
        return []
    return [r for r, rr in reals.items() if rr != real and is_inside(rr, real)]


def holds_a_configured_root(path: str, roots: list[str]) -> str | None:
    """Why ``path`` cannot be scanned as a root of its own, if it holds a configured one:
    it would take that root's files over, and the configured root's next scan (API,
    watcher, nightly) would take them back."""
    inner = configured_roots_inside(path, roots)
    if not inner:
        return None
    return (
        f"{path} holds the configured library root {inner[0]}: use that root (or a folder "
        "of it), or configure this folder as the root"
    )


def _abandon(engine: Any, job_id: str) -> None:
    """Fail what this process's in-memory broker leaves unfinished (Ctrl-C): no other
    process can run it, and the next run would otherwise wait an hour for it to go stale."""
    from core import jobs
    from core.db import session_scope
    from core.models import Job

    with session_scope(engine) as s:
        scan = s.get(Job, job_id)
        if scan is None:
            return
        jobs.finish_job(s, job_id, "failed", error=jobs.INTERRUPTED)  # only if still active
        s.refresh(scan)
        for f in jobs.followers(s, scan):
            jobs.finish_job(s, f.id, "failed", error=jobs.INTERRUPTED)


def _wait(
    engine: Any, root_id: int, job_id: str, progress: Progress | None, stale_seconds: float = 3600.0
) -> None:
    """Until the scan and the grouping/dedup passes it started have finished (or the
    scan stops moving for ``stale_seconds``: its messages were lost; it is failed)."""
    from sqlalchemy import select

    from core import jobs
    from core.db import session_scope
    from core.models import Job, utcnow

    while True:
        with session_scope(engine) as s:
            job = s.get(Job, job_id)
            assert job is not None
            view = jobs.job_view(job)
            if jobs.is_stale(job, stale_seconds):
                jobs.finish_job(s, job_id, "failed", error=f"no progress for {stale_seconds:.0f} s")
            active = s.scalar(
                select(Job.id)
                .where(
                    Job.root_id == root_id,
                    Job.state.in_(jobs.ACTIVE_STATES),
                    Job.updated_at > utcnow() - timedelta(seconds=stale_seconds),
                )
                .limit(1)
            )
        if progress:
            progress.show(view)
        if job.state in jobs.FINAL_STATES and active is None:
            break
        time.sleep(0.2)
    if progress:
        progress.close()


def _summary_text(rep: dict[str, Any]) -> str:
    """What a scan's summary (``core.report.summary``) says on the terminal."""
    job = rep["job"]
    totals = rep["totals"]
    folder = rep.get("folder")
    scanned = (
        f"folder {display(folder)} of the library {display(rep['library'])}"
        if folder is not None
        else display(rep["library"])
    )
    held = f" (the library holds {rep['library_files']} files)" if folder is not None else ""
    # The grouping and dedup passes run side by side once the scan is over: the longer
    # of them is the time the whole took beyond the scan's
    after = max((p.get("elapsed_seconds") or 0.0 for p in rep.get("passes", [])), default=0.0)
    then = f" (+ {after:.1f} s grouping and finding duplicates)" if after >= 0.05 else ""
    kinds = ", ".join(f"{n} {k}" for k, n in totals["kinds"].items())
    lines = [
        f"Scanned {scanned}: {totals['files']} files ({kinds}) in "
        f"{job['elapsed_seconds']:.1f} s{then}, {job['bytes_read'] / 1e6:.1f} MB read{held}",
        f"  groups: {totals['groups']}   duplicate groups: {totals['duplicates']}   "
        f"files with errors: {totals['files_with_errors']}",
    ]
    for f in rep["file_errors"]:
        lines.append(f"  ! {display(f['path'])}: {display(f['error'])}")
    if (more := totals["files_with_errors"] - len({f["path"] for f in rep["file_errors"]})) > 0:
        lines.append(f"  ... and {more} more (see --json)")
    for p in rep.get("passes", []):
        if p["state"] != "done":
            name = "grouping" if p["kind"] == "group" else "dedup"
            why = display(p["error"] or "no reason given")
            lines.append(f"  ! the {name} pass {p['state']}: {why}")
    if job["state"] != "done":
        lines.append(
            f"  ! the scan {job['state']}: {display(job.get('error') or 'no reason given')}"
        )
    return "\n".join(lines)


def cmd_scan(args: argparse.Namespace) -> int:
    cfg = _settings(args)
    if not os.path.isdir(args.path):
        print(f"twinlens: {args.path} is not a folder", file=sys.stderr)
        return 2
    problem = holds_a_configured_root(args.path, [str(r) for r in cfg.library_roots])
    if problem:
        print(f"twinlens: {problem}", file=sys.stderr)
        return 2
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        # Said now, not after a scan of hours.
        print(f"twinlens: cannot write {args.json}: no such folder", file=sys.stderr)
        return 2
    _terminate_as_interrupt()
    try:
        rep = run_scan(
            cfg,
            args.path,
            full=args.full,
            progress=None if args.quiet else Progress(),
            full_report=bool(args.json),
        )
    except KeyboardInterrupt:
        if cfg.embedded:  # its jobs died with this process's in-memory broker
            said = "scan interrupted; what it read is kept, and the same command goes on from there"
        else:
            said = "stopped following the scan; the workers go on with it (GET /jobs)"
        print(f"\ntwinlens: {said}", file=sys.stderr)
        return 130
    if args.json:  # (the summary's first errors are in "files" already)
        whole = {k: v for k, v in rep.items() if k != "file_errors"}
        Path(args.json).write_text(json.dumps(whole, indent=1) + "\n")
    if not args.quiet:
        print(_summary_text(rep))
    return 0 if scan_ok(rep) else 1


def scan_ok(rep: dict[str, Any]) -> bool:
    """The scan and the grouping and dedup passes it started all finished."""
    return rep["job"]["state"] == "done" and all(
        p["state"] == "done" for p in rep.get("passes", [])
    )


# --- stack ------------------------------------------------------------------------


def cmd_stack(args: argparse.Namespace) -> int:
    from gateway.stackrun import StackRunError, problems, stack_library, summary

    cfg = load_settings()
    key = cfg.immich_api_key
    if not key:
        print(
            "twinlens: set TWINLENS_IMMICH_API_KEY to an Immich API key (stack.create, "
            "stack.read, asset.read, asset.upload, user.read): its owner's groups are stacked",
            file=sys.stderr,
        )
        return 2
    if not all("\x21" <= ch <= "\x7e" for ch in key):  # said without the key itself
        print("twinlens: TWINLENS_IMMICH_API_KEY holds spaces or control characters "
              "(a line end from a Windows .env?)", file=sys.stderr)  # fmt: skip
        return 2
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        print(f"twinlens: cannot write {args.json}: no such folder", file=sys.stderr)
        return 2
    try:
        run = stack_library(
            cfg.gateway_url, key, folder=args.folder, kind=args.type, dry_run=args.dry_run
        )
    except StackRunError as exc:
        print(f"twinlens: {exc}", file=sys.stderr)
        return 2
    if args.json:
        report = {"dryRun": run.dry_run, "listed": run.listed, "results": run.results,
                  "stopped": run.stopped}  # fmt: skip
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if not args.quiet:
        print(summary(run))
    elif not run.ok:  # a cron run mails what went wrong, and nothing else
        print("\n".join(problems(run)), file=sys.stderr)
    return 0 if run.ok else 1


# --- long-running processes ---------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    from core.db import migrate
    from workers import runtime

    cfg = _settings(args)
    if cfg.embedded:
        print(
            "twinlens worker needs TWINLENS_BROKER_URL=redis://...; the embedded default "
            "runs its workers inside `twinlens up` and `twinlens scan`",
            file=sys.stderr,
        )
        return 2
    migrate(cfg.database_url)
    broker = runtime.install_broker(cfg)
    worker = runtime.start_worker(broker, args.threads or cfg.worker_threads)
    log.info("worker started with %d threads", args.threads or cfg.worker_threads)
    _block_until_signal()
    worker.stop()
    return 0


def _block_until_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        stop.wait(1)


def cmd_schedule(args: argparse.Namespace) -> int:
    from workers import scheduler

    cfg = _settings(args)
    return scheduler.main(cfg)


def cmd_watch(args: argparse.Namespace) -> int:
    from workers import watcher

    cfg = _settings(args)
    return watcher.main(cfg)


def cmd_api(args: argparse.Namespace) -> int:
    from api import serve

    cfg = _settings(args)
    return serve(args.which, cfg, port=args.port)


def cmd_gateway(args: argparse.Namespace) -> int:
    from gateway import serve

    cfg = _settings(args)
    serve(cfg, port=args.port or 3000)
    return 0


def _terminate_as_interrupt() -> None:
    """SIGTERM (systemctl stop, kill, timeout) ends a foreground command as Ctrl-C does,
    so its clean-up runs: in the embedded default, jobs its in-memory broker held."""

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def cmd_up(args: argparse.Namespace) -> int:
    """The embedded default: everything in this process, on a library or a demo."""
    from workers import embedded

    cfg = _settings(args)
    _terminate_as_interrupt()
    ports = embedded.Ports(args.port, args.grouping_port, args.dedup_port)
    return embedded.main(cfg, args.path, serve=not args.no_serve, ports=ports)


# --- entry point -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinlens", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("config", help="print the effective settings (secrets masked)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_config)

    sub.add_parser("migrate", help="bring the database to the latest schema").set_defaults(
        func=cmd_migrate
    )

    s = sub.add_parser("scan", help="scan a folder to completion and print a summary")
    s.add_argument("path")
    s.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    s.add_argument("--full", action="store_true", help="re-read every file, changed or not")
    s.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    s.set_defaults(func=cmd_scan)

    k = sub.add_parser(
        "stack",
        help="stack the library's file groups in Immich (through the gateway; "
        "TWINLENS_IMMICH_API_KEY)",
    )
    k.add_argument("--folder", help="only the groups with a file in this folder")
    k.add_argument("--type", help="only groups of this type (raw_jpeg, edited, ...)")
    k.add_argument("--dry-run", action="store_true", help="say what would be stacked")
    k.add_argument("--json", metavar="FILE", help="write every group's result as JSON")
    k.add_argument("--quiet", action="store_true", help="print nothing but errors")
    k.set_defaults(func=cmd_stack)

    w = sub.add_parser("worker", help="run Dramatiq workers against Redis")
    w.add_argument("--threads", type=int, default=None)
    w.set_defaults(func=cmd_worker)

    sub.add_parser("schedule", help="run the nightly-scan scheduler").set_defaults(
        func=cmd_schedule
    )
    sub.add_parser("watch", help="watch the library roots and enqueue changes").set_defaults(
        func=cmd_watch
    )

    a = sub.add_parser("api", help="serve the grouping (8000) or dedup (8001) API")
    a.add_argument("which", choices=["grouping", "dedup"])
    a.add_argument("--port", type=int, default=None)
    a.set_defaults(func=cmd_api)

    g = sub.add_parser("gateway", help="serve the gateway (3000)")
    g.add_argument("--port", type=int, default=None)
    g.set_defaults(func=cmd_gateway)

    u = sub.add_parser(
        "up", help="embedded default: scan a library (or a generated demo) and serve it"
    )
    u.add_argument("path", nargs="?", default=None)
    u.add_argument("--no-serve", action="store_true", help="scan and print, then exit")
    u.add_argument("--port", type=int, default=3000, help="web UI and gateway (3000)")
    u.add_argument("--grouping-port", type=int, default=8000, help="grouping API (8000)")
    u.add_argument("--dedup-port", type=int, default=8001, help="dedup API (8001)")
    u.set_defaults(func=cmd_up)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        level = load_settings().log_level
    except ConfigError as exc:
        print(f"twinlens: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if level != "DEBUG":
        # Migrations and worker start/stop are routine; say only what needs attention.
        for noisy in ("alembic", "dramatiq"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"twinlens: configuration error: {exc}", file=sys.stderr)
        return 2
    except SchemaError as exc:
        print(f"twinlens: database schema: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["main", "run_scan", "VARIABLES"]
