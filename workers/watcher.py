"""`twinlens watch`: watchdog on the library roots; it only enqueues folder scans.

What happens to an event:

1. Debounce and settle. Every created, modified, moved or deleted path is noted; it is
   due once nothing has happened to it for ``watch_settle`` seconds *and* its size and
   mtime (for a folder: file count, total size, newest mtime) have not changed during
   that time. A copy in progress keeps changing size, so it is not a file yet; a burst
   of events on one path collapses into one. A settled path waits while anything else in
   its folder is still changing (at most ``max(30 s, 10 x settle)``), so a card import is
   scanned once per burst, not once per file. Editors' and sync tools' working files
   (``TRANSIENT``) and TWINLENS_IGNORE names are no change at all.
2. Scan targets. A due file stands for its folder, a due folder for itself, a deleted
   folder for its nearest existing parent. A move stands for the common ancestor of
   its source's and destination's folders, so that one scan sees both ends and the
   catalog recognises the file by its inode (it keeps its id, hashes and group).
   Targets below another target are dropped.
3. Enqueue. Each target becomes a scan job of that folder (``job.path``) started with
   ``exclusive=False``: a running full scan of the root may have walked past the folder
   already, so the change must not be swallowed by it. A folder scan still waiting to be
   planned for the same path is reused instead (it will see the latest state). The scan
   reuses the whole pipeline: moved-file detection, missing marking inside the folder,
   then grouping of the changed folders and dedup.

One watcher per library acts at a time: each root has a database lease
(``watch:<root key>``) that the acting watcher renews every third of its TTL; a
second watcher stands by and takes over when the lease expires. Whoever takes a root
over (also at start) enqueues one catch-up scan of it, since changes made while
nobody watched produced no events. A root that vanishes (a NAS share gone: watchdog
stops watching it for good) or cannot be watched (inotify's limits) is logged once and
its lease left to a standby; it is watched again, with a catch-up scan, once it can be.
On shutdown, changes still settling are enqueued rather than dropped (in the embedded
default they would die with the in-process broker: the next start's scan sees them).
A permission change (chmod, chown, an ACL: watchdog's ``attrib``) is no change: a folder
or file made readable is seen by the next scan (the nightly one, or "Scan now").

Observers: inotify by default; ``TWINLENS_WATCH_POLLING=1`` uses watchdog's polling
observer every ``TWINLENS_WATCH_INTERVAL`` seconds (NFS and SMB mounts deliver no
inotify events).
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core import jobs, leases
from core.config import Settings
from core.db import engine_for, session_scope
from core.models import Job, utcnow
from core.paths import ancestors, is_inside, path_key, root_of

log = logging.getLogger("twinlens.watcher")

# Names that editors, browsers and sync tools write while they work and then rename or
# delete: on their own they are no change worth a scan (the rename to the final name
# is). The scan's own TWINLENS_IGNORE patterns apply as well.
TRANSIENT = (
    "*.tmp",
    "*.temp",
    "~$*",
    ".~lock.*",
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.download",
    "*.!sync",
    ".sync",
    ".syncthing.*",
    "*.swp",
)

Signature = tuple[int, int, int] | None

# Job ids whose plan message this process sent, remembered at most.
PLANNED_MAX = 10_000


def signature(path: str) -> Signature:
    """What must stop changing before a path is due: (count, size, mtime), None if gone."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not os.path.isdir(path) or os.path.islink(path):
        return (1, st.st_size, st.st_mtime_ns)
    count = size = newest = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                s = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            count += 1
            size += s.st_size
            newest = max(newest, s.st_mtime_ns)
    return (count, size, newest)


@dataclass
class _Pending:
    first_event: float
    last_event: float
    sig: Signature
    sig_since: float
    moved_from: set[str] = field(default_factory=set)


class Settler:
    """Debounces events per path and hands out paths whose signature has settled.

    A settled path is held back while anything else in its folder (or below it) is still
    changing, for at most ``max_hold`` seconds: a memory card copied in file by file would
    otherwise hand out a few settled files per round, each one another scan of the folder.
    """

    def __init__(
        self,
        settle: float,
        sig: Callable[[str], Signature] = signature,
        max_hold: float | None = None,
    ) -> None:
        self.settle = settle
        self.sig = sig
        # A folder that never goes quiet (a tethered camera) is still scanned this often.
        self.max_hold = max(30.0, 10 * settle) if max_hold is None else max_hold
        self.pending: dict[str, _Pending] = {}
        self.lock = threading.Lock()

    def note(self, path: str, now: float, moved_from: str | None = None) -> None:
        with self.lock:
            p = self.pending.get(path)
            if p is None:
                p = self.pending[path] = _Pending(now, now, self.sig(path), now)
            p.last_event = now
            if moved_from:
                p.moved_from.add(moved_from)

    def _settled(self, path: str, p: _Pending, now: float) -> bool:
        if now - p.last_event < self.settle:
            return False
        sig = self.sig(path)
        if sig != p.sig:
            p.sig, p.sig_since = sig, now
            return False
        return now - p.sig_since >= self.settle

    def due(self, now: float) -> list[tuple[str, set[str]]]:
        """(path, moved-from paths) of every path that has settled; they are forgotten."""
        with self.lock:
            busy: set[str] = set()  # every folder with a change still in progress inside
            settled: dict[str, list[str]] = {}  # scope -> settled paths
            for path, p in self.pending.items():
                if self._settled(path, p, now):
                    settled.setdefault(_scope(path), []).append(path)
                else:
                    busy.update(ancestors(path))
            out = []
            for scope, paths in settled.items():
                oldest = min(self.pending[p].first_event for p in paths)
                if scope in busy and now - oldest < self.max_hold:
                    continue  # one scan once the whole folder is quiet, not one per file
                for path in paths:
                    out.append((path, self.pending.pop(path).moved_from))
            return out

    def restore(self, items: list[tuple[str, set[str]]], now: float) -> None:
        """Put paths handed out by ``due`` back, settled: enqueueing them failed (the
        database or the broker away for a moment) and the next round tries again."""
        with self.lock:
            for path, moved_from in items:
                p = self.pending.get(path)
                if p is None:
                    then = now - self.settle
                    p = self.pending[path] = _Pending(then, then, self.sig(path), then)
                p.moved_from |= moved_from

    def drain(self) -> list[tuple[str, set[str]]]:
        """Every pending path, settled or not (shutdown: better scanned early than lost)."""
        with self.lock:
            out = [(path, p.moved_from) for path, p in self.pending.items()]
            self.pending.clear()
            return out

    def drop_under(self, root: str) -> None:
        with self.lock:
            for path in [p for p in self.pending if is_inside(p, root)]:
                del self.pending[path]


def _scope(path: str) -> str:
    """The folder a scan for ``path`` covers: itself if a folder, else its parent."""
    return path if os.path.isdir(path) and not os.path.islink(path) else os.path.dirname(path)


def _existing_folder(path: str, root: str) -> str:
    """``path`` if it is a folder, else the nearest existing folder above it (within root)."""
    cur = path if os.path.isdir(path) and not os.path.islink(path) else os.path.dirname(path)
    while cur != root and is_inside(cur, root) and not os.path.isdir(cur):
        cur = os.path.dirname(cur)
    return cur if is_inside(cur, root) else root


def scan_targets(due: list[tuple[str, set[str]]], roots: list[str]) -> dict[str, list[str]]:
    """Folders to scan, by root: no target lies below another of the same root."""
    out: dict[str, set[str]] = {}
    for path, moved_from in due:
        root = root_of(path, roots)
        if root is None:
            continue
        target = _existing_folder(path, root)
        for src in moved_from:
            if root_of(src, roots) == root:
                target = os.path.commonpath([target, _existing_folder(src, root)])
        out.setdefault(root, set()).add(target)
    result: dict[str, list[str]] = {}
    for root, targets in out.items():
        kept: list[str] = []
        for t in sorted(targets, key=lambda p: (p.count(os.sep), p)):
            if not any(is_inside(t, k) for k in kept):
                kept.append(t)
        result[root] = sorted(kept)
    return result


def _limit_hint(exc: OSError) -> str:
    """What to do about inotify's limits, which a big library exhausts."""
    if exc.errno == errno.ENOSPC:
        return (
            f" (fs.inotify.max_user_watches is {_sysctl('max_user_watches')}; a watch is "
            "needed per folder: raise it, e.g. sysctl fs.inotify.max_user_watches=1048576 "
            "in /etc/sysctl.d/, or set TWINLENS_WATCH_POLLING=1)"
        )
    if exc.errno == errno.EMFILE:
        return (
            f" (fs.inotify.max_user_instances is {_sysctl('max_user_instances')}: raise it, "
            "e.g. sysctl fs.inotify.max_user_instances=1024, or set TWINLENS_WATCH_POLLING=1)"
        )
    return ""


def _sysctl(name: str) -> str:
    try:
        with open(f"/proc/sys/fs/inotify/{name}") as fh:
            return fh.read().strip()
    except OSError:
        return "unknown"


def enqueue_folder_scan(
    session: Any,
    broker: Any,
    root_path: str,
    folder: str,
    trigger: str = "watch",
    stale_seconds: float = 3600.0,
) -> tuple[str, bool]:
    """A scan job of ``folder`` that a running scan of the root cannot swallow.

    Returns (job id, created); a queued, unplanned scan of the same folder is reused.
    The caller commits, then the message is sent (see ``Watcher._enqueue``).
    """
    root = jobs.get_or_create_root(session, root_path)
    waiting = session.scalar(
        select(Job.id)
        .where(
            Job.kind == "scan",
            Job.root_id == root.id,
            Job.state == "queued",
            Job.phase == "plan",
            Job.path == folder,
            # a queued job older than this lost its message: don't reuse it
            Job.updated_at > utcnow() - timedelta(seconds=stale_seconds),
        )
        .limit(1)
    )
    if waiting is not None:
        return waiting, False
    job, created = jobs.start_job(
        session, "scan", root=root, path=folder, trigger=trigger, exclusive=False
    )
    return job.id, created


def _device(root: str) -> int | None:
    """The file system ``root`` is on (None when it cannot be read)."""
    try:
        return os.stat(root).st_dev
    except OSError:
        return None


class Watcher:
    """Watches the roots whose lease it holds and enqueues scans of settled changes."""

    def __init__(
        self,
        cfg: Settings,
        broker: Any,
        *,
        holder: str | None = None,
        lease_ttl: float = 30.0,
        catch_up: bool = True,
    ) -> None:
        self.cfg = cfg
        self.broker = broker
        self.holder = holder or leases.holder_id()
        self.ttl = lease_ttl
        self.catch_up = catch_up
        self.roots = [os.path.abspath(str(r)) for r in cfg.library_roots]
        self.engine = engine_for(cfg.database_url)
        self.settler = Settler(cfg.watch_settle)
        self.ignore = tuple(cfg.ignore) + TRANSIENT
        # Twinlens's own data folder, as spelled under each root that holds it: every write
        # to the database would otherwise start a scan, whose writes start the next one
        data = os.path.realpath(cfg.data_dir)
        self.private = [
            os.path.normpath(os.path.join(root, os.path.relpath(data, os.path.realpath(root))))
            for root in self.roots
            if is_inside(data, os.path.realpath(root))
        ]
        self.watches: dict[str, Any] = {}  # root -> watchdog ObservedWatch
        self.devices: dict[str, int] = {}  # root -> st_dev when it was watched
        self.renewed = False  # after the first renew, every root gained gets a catch-up
        self.trouble: dict[str, str] = {}  # root -> why it cannot be watched (logged once)
        self.observer = self._observer()
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.next_renew = 0.0
        self.enqueued: list[str] = []  # job ids, newest last (for logs and tests)
        # Job ids whose scan_plan message this process sent (an ordered set, oldest first)
        self.planned: dict[str, None] = {}

    def _observer(self) -> Any:
        if self.cfg.watch_polling:
            from watchdog.observers.polling import PollingObserver

            return PollingObserver(timeout=self.cfg.watch_interval)
        from watchdog.observers import Observer

        return Observer()

    # --- events -------------------------------------------------------------------

    def _ignored(self, path: str, root: str) -> bool:
        if any(is_inside(path, p) for p in self.private):
            return True
        rel = os.path.relpath(path, root)
        return any(
            fnmatch.fnmatchcase(part, pat) for part in rel.split(os.sep) for pat in self.ignore
        )

    def on_event(self, event: Any) -> None:
        kind = event.event_type
        if kind not in ("created", "modified", "moved", "deleted", "closed"):
            return
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if kind == "moved" and event.dest_path else None
        now = time.monotonic()
        if dest is not None:
            root = root_of(dest, self.roots)
            if root is not None and not self._ignored(dest, root):
                # A working file's name (ignored) was never catalogued: nothing to find
                # where it came from. Polling also invents such moves when a deleted temp
                # file's inode is reused elsewhere, and the scan would cover both folders.
                from_ = root_of(src, self.roots)
                real_src = None if from_ is None or self._ignored(src, from_) else src
                self.settler.note(dest, now, moved_from=real_src)
                if from_ in (root, None):
                    return
                # moved from another root: that root's scan must see the file leave
        root = root_of(src, self.roots)
        if root is None or self._ignored(src, root):
            return
        if kind == "modified" and event.is_directory:
            return  # a folder's mtime changes with each entry; the entries report themselves
        self.settler.note(src, now)

    # --- leases -------------------------------------------------------------------

    def renew(self) -> list[str]:
        """Take or renew each root's lease; start or stop watching accordingly.
        Returns the roots this watcher acts for."""
        from watchdog.events import FileSystemEventHandler

        handler = FileSystemEventHandler()
        handler.on_any_event = self.on_event  # type: ignore[method-assign]
        gained: list[str] = []
        with session_scope(self.engine) as s:
            for root in self.roots:
                name = f"watch:{path_key(root)}"
                held = leases.acquire(s, name, self.holder, self.ttl) or self._take_over(s, name)
                if root in self.watches and not self._alive(root):
                    self._unwatch(root)  # watched again below, with a catch-up scan
                if held and root not in self.watches:
                    if self._watch(root, handler):
                        gained.append(root)
                    else:  # a standby watcher (another host) may fare better
                        leases.release(s, name, self.holder)
                elif not held and root in self.watches:
                    self._unwatch(root)
                    log.warning("lost the watch lease of %s; standing by", root)
        # catch_up=False skips only the start-up catch-up (the embedded default scans just
        # before): a root watched again after it went away missed what changed meanwhile
        if self.catch_up or self.renewed:
            for root in gained:
                self._enqueue(root, root, trigger="watch-start", exclusive=True)
        self.renewed = True
        return sorted(self.watches)

    def _take_over(self, session: Any, name: str) -> bool:
        """The lease of a watcher on this machine whose process is gone (killed, the
        power cut) is taken at once, not once it expires: the embedded default started
        again after a kill would say another process watches the library, and miss
        what changes for the lease's lifetime."""
        dead = leases.current_holder(session, name)
        if dead is None or dead == self.holder or not leases.gone(dead):
            return False
        if not leases.take_over(session, name, dead, self.holder, self.ttl):
            return False
        log.info("took over the watch of a Twinlens process that is gone (%s)", dead)
        return True

    def _alive(self, root: str) -> bool:
        """The root is still there and its observer thread still runs. Watchdog stops a
        root's emitter for good when the root vanishes (a NAS share gone away)."""
        watch = self.watches[root]
        emitter = next((e for e in self.observer.emitters if e.watch == watch), None)
        running = emitter is not None and (emitter.is_alive() or not self.observer.is_alive())
        # A share unmounted and mounted again: the folder is back, but inotify dropped its
        # watches with the old mount (IN_UNMOUNT) and no event would ever come
        return running and os.path.isdir(root) and _device(root) == self.devices.get(root)

    def _watch(self, root: str, handler: Any) -> bool:
        if not os.path.isdir(root):
            self._trouble(root, "is not a folder (a NAS share not mounted?); not watching it")
            return False
        try:
            self.devices[root] = _device(root)
            self.watches[root] = self.observer.schedule(handler, root, recursive=True)
        except OSError as exc:
            self._trouble(root, f"cannot be watched: {exc}{_limit_hint(exc)}")
            return False
        if self.trouble.pop(root, None) is not None:
            log.warning("library root %s is back; watching it again", root)
        log.info("watching %s", root)
        return True

    def _unwatch(self, root: str) -> None:
        try:
            self.observer.unschedule(self.watches.pop(root))
        except KeyError:  # its emitter was gone already
            pass
        self.settler.drop_under(root)

    def _trouble(self, root: str, why: str) -> None:
        """Log a root that cannot be watched once, not at every renewal."""
        if self.trouble.get(root) != why:
            self.trouble[root] = why
            log.error("library root %s %s", root, why)

    def release(self) -> None:
        with session_scope(self.engine) as s:
            for root in self.roots:
                leases.release(s, f"watch:{path_key(root)}", self.holder)

    # --- enqueue -------------------------------------------------------------------

    def _enqueue(
        self, root: str, folder: str, trigger: str = "watch", exclusive: bool = False
    ) -> None:
        with session_scope(self.engine) as s:
            if exclusive:
                job, created = jobs.start_job(
                    s,
                    "scan",
                    root=jobs.get_or_create_root(s, root),
                    trigger=trigger,
                    stale_seconds=self.cfg.job_stale_seconds,
                )
                job_id = job.id
                unplanned = jobs.unplanned(job)
            else:
                # Only a new scan or a queued one not planned yet comes back from here.
                job_id, created = enqueue_folder_scan(
                    s, self.broker, root, folder, trigger, self.cfg.job_stale_seconds
                )
                unplanned = True
        # A queued scan not planned yet is sent again: its first message may have been
        # lost (a send that failed after the commit, a Redis broker's); planning twice is
        # a no-op. The embedded default's in-process broker loses no message it took: a
        # plan this process sent is not sent again each round its scan waits (for hours
        # behind the start-up scan), each one kicking the scan's queued batches again.
        if (created or unplanned) and not (self.cfg.embedded and job_id in self.planned):
            jobs.enqueue(self.broker, "scan_plan", job_id)
            self.planned[job_id] = None
            if len(self.planned) > PLANNED_MAX:  # the oldest, long planned or stale
                del self.planned[next(iter(self.planned))]
        if created:
            self.enqueued.append(job_id)
            log.info("enqueued scan %s of %s", job_id, folder)

    def tick(self, now: float | None = None) -> list[str]:
        """One round: renew leases when due, enqueue scans of settled changes.
        Returns the folders enqueued."""
        now = time.monotonic() if now is None else now
        if now >= self.next_renew:
            self.renew()
            self.next_renew = now + self.ttl / 3
        due = self.settler.due(now)
        try:
            return self._enqueue_due(due)
        except Exception:
            # Handed out but maybe not enqueued: back in line, not lost. Those already
            # enqueued are found again as their queued scan (enqueue_folder_scan).
            self.settler.restore(due, now)
            raise

    def _enqueue_due(self, due: list[tuple[str, set[str]]]) -> list[str]:
        folders = []
        for root, targets in scan_targets(due, sorted(self.watches)).items():
            if not os.path.isdir(root):
                continue  # a vanished share: it gets a catch-up scan when it is back
            for folder in targets:
                self._enqueue(root, folder)
                folders.append(folder)
        return folders

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start watching. The leases are taken and the roots watched before this returns
        (inotify's watches are added as a root is scheduled): a scan started next misses
        no change made after it."""
        self.observer.start()
        try:
            self.renew()
            self.next_renew = time.monotonic() + self.ttl / 3
        except Exception:  # the database away for a moment: the first round tries again
            log.exception("could not take the watch leases")
        self.thread = threading.Thread(target=self._loop, name="twinlens-watch", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        step = max(0.05, min(0.5, self.cfg.watch_settle / 4))
        while not self.stop_event.is_set():
            try:
                self.tick()
            except Exception:  # the database may be away for a moment; try again
                log.exception("watcher round failed")
            self.stop_event.wait(step)

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.observer.stop()
        self.observer.join(timeout=10)
        self._dispatch_left()
        if self.cfg.embedded:
            # The in-process broker's messages die with this process: such a scan would
            # only be failed as interrupted. The next start scans them (`twinlens up`
            # scans the library, `twinlens watch` catches up).
            if left := len(self.settler.drain()):
                log.info("%d changes still settling: left to the next start's scan", left)
        else:
            try:
                # Changes still settling are scanned now: else only the next watcher's
                # catch-up scan (or the nightly one) would see them
                self._enqueue_due(self.settler.drain())
            except Exception:
                log.exception("could not enqueue the changes still settling")
        try:
            self.release()
        except Exception:
            log.exception("could not release the watch leases")

    def _dispatch_left(self) -> None:
        """Note the events the observer took but had not handed on when it stopped (the
        last moment's changes)."""
        from watchdog.observers.api import EventDispatcher

        q = self.observer.event_queue
        while True:
            try:
                item = q.get_nowait()
            except queue.Empty:
                return
            if item is EventDispatcher.stop_event:
                continue
            try:
                self.on_event(item[0])
            except Exception:
                log.exception("could not note %r", item[0])


def main(cfg: Settings) -> int:
    """Run the watcher until SIGINT/SIGTERM. In the embedded default (in-process broker)
    it runs worker threads too, since no other process could take its messages."""
    from core.db import migrate
    from workers import runtime

    if not cfg.library_roots:
        log.error("no library roots configured (TWINLENS_LIBRARY_ROOTS)")
        return 2
    migrate(cfg.database_url)
    broker, worker = runtime.sending_broker(cfg)
    watcher = Watcher(cfg, broker)
    watcher.start()
    log.info(
        "watching %s (%s)",
        ", ".join(watcher.roots),
        f"polling every {cfg.watch_interval:g} s" if cfg.watch_polling else "inotify",
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        stop.wait(1)
    watcher.stop()
    if worker is not None:
        worker.stop()
    return 0
