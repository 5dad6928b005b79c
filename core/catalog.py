"""The catalog scan: walk, compare with the catalog, read only what must be read.

A scan is a job in phases, each a set of batches (one message each):

- plan: walk the root with ``os.scandir``, compare every entry with the catalog by
  inode, size and mtime; unchanged files cost nothing, moved files (same inode, and the
  same first and last 4 KiB) keep their hashes, vanished files are marked missing; new
  and changed files, and those whose last read failed, go into ``catalog`` batches.
- catalog: inspect each file (kind, pHash, EXIF, the 4 KiB head+tail quick digest, and
  content hashes where the bytes are read in full anyway).
- quick: files already cataloged whose size is now shared get their quick digest.
- full: files whose size and quick digest both collide get the full SHA-256/SHA-1.
- finish: the job is done; grouping and dedup are started for what changed.

Every batch is idempotent: its rows are upserts keyed by the path, and the batch
row's state makes a redelivered message count once in the job's progress.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import logging
import os
import re
import stat
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Row,
    String,
    Table,
    and_,
    case,
    column,
    func,
    insert,
    or_,
    select,
    update,
    values,
)
from sqlalchemy.exc import DataError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from core import jobs, suspects
from core.config import Settings
from core.db import FsPath, begin_write
from core.filequeries import chunks, under
from core.media.hashing import hash_stream, quick_digest_fh
from core.media.inspect import FileFacts, inspect_file
from core.media.kinds import extension, kind_of_extension
from core.models import File, Job, JobBatch, Root, utcnow
from core.paths import (
    FileChanged,
    ancestors,
    dir_key,
    file_type,
    is_inside,
    open_regular,
    os_error_reason,
    path_key,
)

log = logging.getLogger(__name__)

PHASES = ("plan", "catalog", "quick", "full", "finish")

# NAS housekeeping that is never a photo (Synology, QNAP, macOS, Windows, trash).
DEFAULT_IGNORE = (
    "@eaDir",
    "#recycle",
    "#snapshot",
    ".@__thumb",
    ".DS_Store",
    "._*",
    "Thumbs.db",
    ".Trash-*",
    "$RECYCLE.BIN",
    ".stfolder",
    ".stversions",
)


def int64(value: int) -> int:
    """``value`` as the signed 64-bit integer the database columns hold, wrapped rather than
    refused. Inode and device numbers are unsigned (an SMB, NFS or FUSE mount may use the
    top bit), and a wrong camera clock or an odd archive can date a file past 2262, where
    its time in nanoseconds no longer fits: one such file made the batch's insert fail,
    every retry, and every later scan. In range, the value is unchanged."""
    return (value + (1 << 63)) % (1 << 64) - (1 << 63)


def stat_key(st: os.stat_result) -> tuple[int, int, int]:
    """(mtime_ns, device, inode) of a stat as the catalog stores and compares them."""
    return int64(st.st_mtime_ns), int64(st.st_dev), int64(st.st_ino)


@dataclass(frozen=True, slots=True)
class Entry:
    """One regular file seen by the walk."""

    path: str
    size: int
    mtime_ns: int
    device: int
    inode: int
    ctime_ns: int = 0  # last change of the inode itself (a rename); 0: unknown


@dataclass
class WalkResult:
    entries: list[Entry] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    # Folders and files the walk could not look at (EACCES, EIO, ENAMETOOLONG...):
    # what the catalog knows there is unknown now, not gone.
    unseen: set[str] = field(default_factory=set)


class WalkStopped(Exception):
    """The scan stopped being active (cancelled, failed) while it walked."""


# How often a walk tells its job row it is alive, and looks for a cancel. A walk of a
# share of millions of files over SMB can outlast the stale limit (an hour by default),
# and any starter (twinlens scan, Scan now, the watcher, the nightly scan) would then fail
# it as lost and its claim would throw the whole walk away; and a cancelled walk would
# hold a worker for hours.
HEARTBEAT_SECONDS = 30.0


class Heartbeat:
    """Called for every entry the walk sees; every ``interval`` seconds, refreshes the
    job's ``updated_at`` and raises ``WalkStopped`` once the job is no longer active."""

    def __init__(self, engine: Engine, job_id: str, interval: float) -> None:
        self.engine, self.job_id, self.interval = engine, job_id, interval
        self.due = time.monotonic() + interval

    def __call__(self) -> None:
        now = time.monotonic()
        if now < self.due:
            return
        self.due = now + self.interval
        if not self._beat():
            raise WalkStopped(self.job_id)

    def _beat(self) -> bool:
        try:
            return jobs.touch(self.engine, self.job_id)
        except OperationalError as exc:
            # SQLite busy past its timeout, the server away for a moment: the walk is
            # worth more than one missed beat, and the next one comes soon.
            log.warning("scan %s: could not refresh its job row: %s", self.job_id, exc)
            return True


def _heartbeat(session: Session, job_id: str, settings: Settings) -> Callable[[], None] | None:
    """The walk's heartbeat, beating well within the stale limit. None when the session
    is bound to a connection (a test's transaction): another would not see the job."""
    bind = session.get_bind()
    if not isinstance(bind, Engine):
        return None
    return Heartbeat(bind, job_id, min(HEARTBEAT_SECONDS, settings.job_stale_seconds / 4))


def ignore_matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """One compiled regex for all patterns: the walk tests every name against it."""
    if not patterns:
        return lambda name: False
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda name: regex.match(name) is not None


def walk(
    top: str,
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    skip_dirs: frozenset[tuple[int, int]] = frozenset(),
    tick: Callable[[], None] | None = None,
) -> WalkResult:
    """Every regular file under ``top`` with its stat, in one list (``walk_folders``
    gives them folder by folder, as a scan uses them)."""
    result = WalkResult()
    for _folder, entries in walk_folders(top, ignore, skip_dirs, tick, result):
        result.entries.extend(entries)
    return result


def walk_folders(
    top: str,
    ignore: tuple[str, ...],
    skip_dirs: frozenset[tuple[int, int]],
    tick: Callable[[], None] | None,
    result: WalkResult,
) -> Iterator[tuple[str, list[Entry]]]:
    """Every folder under ``top`` (``top`` first) with its regular files and their stat,
    iteratively (no recursion limit), one folder at a time; its errors, skips and what it
    could not look at go to ``result`` (whose ``entries`` it leaves alone).

    Symlinks are not followed: a link to a folder could loop or leave the library,
    and a link to a file would count its target twice. Folders that cannot be
    listed and links that are broken or loop are reported, and the walk goes on
    (a folder whose listing failed is given too, with what it listed before).
    Folders whose (device, inode) is in ``skip_dirs`` (Twinlens's own data) are passed by.
    ``tick`` is called for every folder and entry (a heartbeat; it may stop the walk).
    """
    ignored = ignore_matcher(ignore)
    stack = [top]
    while stack:
        folder = stack.pop()
        if tick is not None:
            tick()
        files: list[Entry] = []
        for entry in _listing(folder, result):
            if tick is not None:
                tick()  # per entry too: one folder of a share may hold 10^5 files
            if ignored(entry.name):
                result.skipped["ignored"] += 1
                continue
            try:
                if entry.is_symlink():
                    _note_symlink(entry.path, result)
                    continue
                if entry.is_dir(follow_symlinks=False):
                    # A stat per folder, not the listing's inode(): for a mount point
                    # (a volume mounted inside the library) that is the covered folder's
                    if skip_dirs and _same_dir(entry, skip_dirs):
                        result.skipped["twinlens_data"] += 1
                        continue
                    stack.append(entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                result.skipped["vanished"] += 1
                continue
            except OSError as exc:
                result.errors.append((entry.path, os_error_reason(exc, "stat")))
                result.unseen.add(entry.path)
                continue
            if not stat.S_ISREG(st.st_mode):
                result.skipped["special"] += 1
                continue
            files.append(Entry(entry.path, st.st_size, *stat_key(st), st.st_ctime_ns))
        yield folder, files


def _same_dir(entry: os.DirEntry[str], dirs: frozenset[tuple[int, int]]) -> bool:
    st = entry.stat(follow_symlinks=False)
    return (st.st_dev, st.st_ino) in dirs


def private_dirs(settings: Settings) -> frozenset[tuple[int, int]]:
    """Twinlens's own data folder as (device, inode), when it exists: a library root that
    holds it (a home folder given to `twinlens up`) must not catalog the database and the
    thumbnail cache, whose JPEGs would turn up as duplicates of the library's pictures."""
    try:
        st = os.stat(settings.data_dir)
    except OSError:
        return frozenset()
    return frozenset({(st.st_dev, st.st_ino)})


def _listing(folder: str, result: WalkResult) -> Iterator[os.DirEntry[str]]:
    """The entries of ``folder``. One that cannot be listed, or whose listing breaks off
    part way (EIO or ESTALE from a NAS share, the folder removed meanwhile), is reported
    and marked unseen, so that the files the walk did not get to keep their rows."""
    try:
        with os.scandir(folder) as it:
            yield from it
    except OSError as exc:
        result.errors.append((folder, f"cannot list folder: {exc.strerror or exc}"))
        result.unseen.add(folder)


def _note_symlink(path: str, result: WalkResult) -> None:
    try:
        os.stat(path)
    except OSError as exc:
        reason = "symlink loop" if exc.errno == 40 else "broken symlink"
        result.errors.append((path, f"{reason}: {exc.strerror or exc}; not followed"))
        return
    result.skipped["symlink"] += 1


# --- planning -------------------------------------------------------------------


# What the catalog holds about a path, enough to decide without reading:
# (id, size, mtime_ns, device, inode, status, updated_at). Plain tuples: a rescan builds
# 10^5 of them.
# (id, size, mtime_ns, device, inode, status, updated_at, read_failures)
Known = tuple[int, int, int, int, int, str, datetime, int]


def _same_stat(k: Known, e: Entry) -> bool:
    """The row's file is the entry's, by size, mtime and inode. Not by device: an NFS or
    SMB share, or a USB disk, gets a new device number each time it is mounted, and a
    whole library would be read again after every reboot of the NAS."""
    return (k[1], k[2], k[4]) == (e.size, e.mtime_ns, e.inode)


def _quick_of(session: Session, ids: list[int]) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    for i in range(0, len(ids), 1000):
        rows = session.execute(select(File.id, File.quick).where(File.id.in_(ids[i : i + 1000])))
        out.update((fid, quick) for fid, quick in rows)
    return out


# A file whose inode has not changed (its ctime) since this long before its row was
# written is the file that was read, whatever it is called now: a renamed folder moves
# its files without touching them. Room for a NAS clock behind this host's.
CTIME_SLACK_S = 3600.0


def _confirmed(e: Entry, hit: Known, quick: str | None, real_root: str) -> tuple[bool, int]:
    """Whether the new entry ``e`` is the vanished row ``hit``'s file, moved; and the bytes
    read to tell. An inode freed by a deletion is soon given to a new file, and one of the
    same size and mtime (a burst frame copied with its card's 2 s mtime) must not take the
    deleted file's hashes and show as an exact copy of a photo it is not. Untouched since
    its row was written: the same file. Renamed or moved since: its first and last 4 KiB
    must be the row's (8 KiB read). A row with no digest (cataloged by an older version,
    or read with an error) falls back to the device and inode alone, as before."""
    written = hit[6].replace(tzinfo=UTC).timestamp()
    if e.ctime_ns and e.ctime_ns / 1e9 < written - CTIME_SLACK_S:
        return True, 0
    if quick is None:
        return hit[3] == e.device, 0
    try:
        fd, st = open_regular(e.path, real_root)
        with open(fd, "rb", buffering=0) as fh:
            if (st.st_size, int64(st.st_mtime_ns)) != (e.size, e.mtime_ns):
                return False, 0
            digest, n = quick_digest_fh(fh, e.size)
    except OSError:
        return False, 0  # read by its catalog batch, which says what failed
    return digest == quick, n


# Days after a failed read before another scan tries again, by failures in a row: the
# next scan at first (a share's hiccup), then less often (a failing disk's bad sectors
# must not be hit, and time out, every night), at least once a month.
def retry_due(k: Known, now: datetime) -> bool:
    failures = k[7]
    if failures <= 1:
        return failures == 1
    wait_days = min(2 ** (failures - 2), 30)
    return (now - k[6]).total_seconds() >= wait_days * 86400


def _take_move(vanished: dict[int, list[Known]], e: Entry, paths: dict[int, str]) -> Known | None:
    """The vanished row that ``e`` may be, moved: same inode, size and mtime; by
    preference on the same device (inode numbers repeat across the filesystems of one
    root) and of the same name (hard links of one inode each keep their own row)."""
    rows = [k for k in vanished.get(e.inode, ()) if _same_stat(k, e)]
    if not rows:
        return None
    name = os.path.basename(e.path)
    hit = max(rows, key=lambda k: (k[3] == e.device, os.path.basename(paths[k[0]]) == name))
    vanished[e.inode].remove(hit)
    return hit


@dataclass
class _ToRead:
    """The files a scan reads, in order, as three columns: their paths, their sizes and
    whether a size is another file's (its quick digest is worth taking). Taken from the
    end as ``(path, size, quick)``, as ``_batches`` takes a list: ~17 bytes a file beside
    its path, where a tuple of three and its size's int took ~100."""

    paths: list[str] = field(default_factory=list)
    sizes: array[int] = field(default_factory=lambda: array("q"))
    quick: bytearray = field(default_factory=bytearray)

    def __len__(self) -> int:
        return len(self.paths)

    def reverse(self) -> None:
        self.paths.reverse()
        self.sizes.reverse()
        self.quick.reverse()

    def pop(self) -> tuple[str, int, bool]:
        return self.paths.pop(), self.sizes.pop(), bool(self.quick.pop())


@dataclass
class _Diff:
    """What a walk changes in the catalog, worked out before anything is written."""

    # To read, made into dicts only a batch at a time (~200 bytes a dict: a first scan of
    # a million files held a million)
    todo: _ToRead = field(default_factory=_ToRead)
    revived: list[int] = field(default_factory=list)
    remounted: dict[int, list[int]] = field(default_factory=dict)  # new device: row ids
    moves: list[tuple[str, Entry, int]] = field(default_factory=list)  # key, entry, row
    missing: list[int] = field(default_factory=list)
    unchanged: int = 0
    newer: int = 0
    kept: int = 0
    bytes_read: int = 0
    walked: int = 0


# A scan compares its walk with the catalog a batch of folders at a time: the catalog's
# rows of those folders (files.dir_key) against the files the walk listed there, then
# both are dropped. Holding the whole walk and every row of the root at once took
# ~0.9 KB a file (a million-file library: +0.9 GB, on a NAS of 2-4 GB). A batch ends
# after this many files (a folder is never split) or this many folders.
DIFF_BATCH_FILES = 20_000
DIFF_BATCH_FOLDERS = 500


def _key32(key: str) -> int:
    """The first 32 bits of a path key: enough to tell one path from the few others a
    row may have had during one walk."""
    return int(key[:8], 16)


def _folder_key(folder: str) -> str:
    """The ``dir_key`` of the files the walk lists in ``folder`` (their paths are joined
    to it as ``os.path.join`` does, a trailing separator and all)."""
    return dir_key(os.path.join(folder, "x"))


class _Rescan:
    """A walk compared with the catalog's rows of its root, folder batch by folder batch.

    Beyond the batch at hand it keeps only what a batch cannot settle: the files to read
    (changed, due a retry), the files with no row at their path (new, or moved here from
    another folder), the rows the walk did not see (gone, moved away, under something it
    could not list), the rows to revive or give a new device, and seven int64-or-smaller
    columns a walked file (52 bytes): its size, device and inode (the shared sizes), its
    mtime and ctime, its path key's first 32 bits and the id of the row it was compared
    with, by which ``sweep`` takes back a comparison with a row that another scan rewrote
    since. ``finish`` then tells moves across all folders, as a single pass did.

    A file to read or with no row is kept as its path and place in the walk, its other
    fields read back from the columns (``_entry_at``), not as an ``Entry`` with its path
    key: a first scan holds every file of the library so until the walk ends, and a full
    rescan every file to read (~265 bytes a file at the plan's peak, against ~700 as Entries)."""

    def __init__(self, session: Session, job: Job, root: Root, top: str, since: datetime):
        self.session, self.root, self.top = session, root, top
        self.full = job.full  # (an attribute of the ORM's costs more, a file)
        self.walk_started = since
        self.now = utcnow()
        self.d = _Diff()
        # To read, in the walk's order: their paths and places in the walk; and those
        # compared again after the walk (by sweep, with no place) as they are
        self.changed_paths: list[str] = []
        self.changed_at = array("q")
        self.changed_late: list[Entry] = []
        # The walked files with no row at their path (new, or moved here), by index: their
        # paths and places in the walk; those a row written since claimed (sweep). Their
        # path keys are made again only if such a row needs them (_new_by_key)
        self.new_paths: list[str] = []
        self.new_at = array("q")
        self.taken: set[int] = set()
        self.by_key: dict[str, int] | None = None
        self.left: dict[int, Known] = {}  # id: row of the root the walk did not see
        self.visited: set[str] = set()  # dir_keys of the folders settled
        # By place in the walk: the comparisons with a row written since the walk began
        # (its updated_at then; whether it counted as newer)
        self.late: dict[int, tuple[datetime, bool]] = {}
        self.sizes, self.devices, self.inodes = array("q"), array("q"), array("q")
        self.mtimes, self.ctimes = array("q"), array("q")
        self.rows, self.keys = array("q"), array("I")

    def settle(self, folders: list[tuple[str, list[Entry]]]) -> None:
        """Compare the files the walk listed in ``folders`` with the catalog's rows there."""
        keys = [_folder_key(folder) for folder, _ in folders]
        known = _known_rows(self.session, self.root.id, keys)
        self.visited.update(keys)
        for _, entries in folders:
            for e in entries:
                at = self.d.walked
                self.d.walked += 1
                self.sizes.append(e.size)
                self.devices.append(e.device)
                self.inodes.append(e.inode)
                self.mtimes.append(e.mtime_ns)
                self.ctimes.append(e.ctime_ns)
                key = path_key(e.path)
                self.keys.append(_key32(key))
                k = known.pop(key, None)
                self.rows.append(0 if k is None else k[0])
                if k is None:
                    self._add_new(e, at)
                    continue
                newer = self._compare(e, k, at)
                if k[6] >= self.walk_started:
                    self.late[at] = (k[6], newer)
        for k in known.values():  # not seen where the catalog has them
            self.left[k[0]] = k
        # No transaction held open across the walk (hours on a big share): nothing is
        # written before the plan's claim
        self.session.commit()

    def _add_new(self, e: Entry, at: int) -> None:
        """Keep ``e``, at place ``at`` in the walk, as a file with no row at its path."""
        if self.by_key is not None:
            self.by_key[path_key(e.path)] = len(self.new_paths)
        self.new_paths.append(e.path)
        self.new_at.append(at)

    def _new_by_key(self) -> dict[str, int]:
        """Path key: index of the files with no row, not taken. Made when first asked."""
        if self.by_key is None:
            self.by_key = {
                path_key(p): i for i, p in enumerate(self.new_paths) if i not in self.taken
            }
        return self.by_key

    def _entry_at(self, path: str, at: int) -> Entry:
        """The entry of the file walked at place ``at``, ``path``."""
        return Entry(
            path, self.sizes[at], self.mtimes[at], self.devices[at], self.inodes[at],
            self.ctimes[at],
        )  # fmt: skip

    def _fresh(self, i: int) -> Entry:
        """The entry of the file with no row kept at index ``i``."""
        return self._entry_at(self.new_paths[i], self.new_at[i])

    def _compare(self, e: Entry, k: Known, at: int) -> bool:
        """The walked file ``e`` (at place ``at`` in the walk) against the row ``k`` at its
        path; whether it counted as newer elsewhere."""
        d = self.d
        if not self.full and _same_stat(k, e) and not retry_due(k, self.now):
            if k[3] != e.device:
                d.remounted.setdefault(e.device, []).append(k[0])
            if k[5] != "present" and k[6] >= self.walk_started:
                d.newer += 1  # marked missing since the walk saw it: the file went
                return True
            if k[5] != "present":
                d.revived.append(k[0])
            else:
                d.unchanged += 1
        elif at >= 0:
            self.changed_paths.append(e.path)
            self.changed_at.append(at)
        else:
            self.changed_late.append(e)
        return False

    def sweep(self) -> None:
        """The rows no batch settled: those of folders the walk did not list (deleted,
        moved away, under a folder it could not list), and those written since the walk
        began (a watcher's folder scan meanwhile): news this walk may not have seen.
        Found by one count of the root's rows per folder. A row written since its folder's
        batch compared it is compared again as it is now, as a single pass after the walk
        did: what the batch decided about it is taken back."""
        since = self.walk_started
        # A folder scan: the rest of the root is not its business
        inside = [under(File.path, self.top)] if self.top != self.root.path else []
        unlisted: list[str] = []
        written: list[str] = []
        for folder, last in self.session.connection().execute(
            select(File.dir_key, func.max(File.updated_at))
            .where(File.root_id == self.root.id, *inside)
            .group_by(File.dir_key)
        ):
            if folder not in self.visited:
                unlisted.append(folder)
            elif last >= since:
                written.append(folder)
        news: dict[str, Known] = {}  # path key: row written since the walk began
        for key, k in _known_rows(self.session, self.root.id, unlisted, *inside).items():
            self.left[k[0]] = k
            if k[6] >= since:
                news[key] = k
        news.update(
            _known_rows(self.session, self.root.id, written, File.updated_at >= since, *inside)
        )
        if not news:
            return
        matched = self._compare_again(news)
        for key, k in news.items():
            self.left.pop(k[0], None)  # as a batch saw it (at another path, maybe): stale
            if k[0] in matched:
                continue
            i = self._new_by_key().pop(key, None)
            if i is not None:
                self.taken.add(i)
                # as if the row had been there when its folder was
                self._compare(self._fresh(i), k, -1)
            else:
                self.left[k[0]] = k  # left as it is: not revived, nor marked missing, nor moved

    def _compare_again(self, news: dict[str, Known]) -> set[int]:
        """Take back what the batches decided about the rows in ``news`` (by path key) from
        an older state of theirs, and compare each walked file again with the row at its
        path now. Returns the ids of the rows compared with a walked file at their path."""
        by_id = {k[0]: (key, k) for key, k in news.items()}
        rows = np.frombuffer(self.rows, dtype=np.int64)
        places = np.flatnonzero(np.isin(rows, np.fromiter(by_id, np.int64, len(by_id))))
        matched: set[int] = set()
        stale: list[tuple[int, int]] = []
        for at in places.tolist():
            fid = self.rows[at]
            key, k = by_id[fid]
            late = self.late.get(at)
            if late is not None and late[0] == k[6] and self.keys[at] == _key32(key):
                matched.add(fid)  # compared with the row as it is now
            else:
                stale.append((at, fid))
        if not stale:
            return matched
        d = self.d
        changed_at = np.frombuffer(self.changed_at, dtype=np.int64)
        wanted = np.fromiter((at for at, _ in stale), np.int64, len(stale))
        held = {int(changed_at[i]): int(i) for i in np.flatnonzero(np.isin(changed_at, wanted))}
        dropped: set[int] = set()
        paths = _paths_of(self.session, list({fid for _, fid in stale}))
        for at, fid in stale:
            key, k = by_id[fid]
            # What the batch decided, taken back
            e: Entry | None = None
            if at in held:
                e = self._entry_at(self.changed_paths[held[at]], at)
                dropped.add(held[at])
            else:
                if at in self.late and self.late[at][1]:
                    d.newer -= 1
                elif at not in self.late and fid in d.revived:
                    d.revived.remove(fid)
                else:
                    d.unchanged -= 1
                rows_of_device = d.remounted.get(self.devices[at])
                if rows_of_device and fid in rows_of_device:
                    rows_of_device.remove(fid)
            if self.keys[at] == _key32(key):
                # The file at the row's path: compared with the row as it is now
                if e is None:
                    e = Entry(
                        paths[fid],
                        self.sizes[at],
                        self.mtimes[at],
                        self.devices[at],
                        self.inodes[at],
                    )
                self._compare(e, k, -1)
                matched.add(fid)
            elif e is not None:
                self._add_new(e, at)  # its row went elsewhere: a file with none now
            else:
                # Its row went elsewhere meanwhile, and this walk did not keep its name
                d.newer += 1
        if dropped:
            kept = [i for i in range(len(self.changed_paths)) if i not in dropped]
            self.changed_paths = [self.changed_paths[i] for i in kept]
            self.changed_at = array("q", (self.changed_at[i] for i in kept))
        return matched

    def finish(self, walked: WalkResult, beat: Callable[[], None] | None) -> _Diff:
        """Tell moves, missing and kept rows across every folder; list what to read."""
        session, root, top, d = self.session, self.root, self.top, self.d
        # Files the walk did not see under this subtree: moved (same inode) or missing.
        # A folder that could not be listed (a NAS hiccup, a permission change) hides its
        # files; it does not delete them: they keep their rows and their state.
        unseen: list[Known] = []
        written: list[Known] = []  # since the walk began: left as they are
        for k in sorted(self.left.values()):  # by id, as one query of the root gave them
            if k[6] >= self.walk_started:
                written.append(k)
            elif k[5] == "present":
                unseen.append(k)
        self.left.clear()
        paths = _paths_of(session, [k[0] for k in unseen + written]) if unseen or written else {}
        d.newer += sum(1 for k in written if is_inside(paths[k[0]], top))
        kept = {k[0] for k in unseen if _in_unseen(paths[k[0]], walked.unseen, top)}
        gone = [k for k in unseen if is_inside(paths[k[0]], top) and k[0] not in kept]
        if gone and top == root.path and not d.walked and _empty_dir(top):
            # An empty root where the catalog holds files is a NAS share that is not mounted
            # (the bare mount point), not a library deleted overnight: keep every row, and
            # say so, rather than drop the groups, duplicates and decisions built on them.
            walked.errors.append(
                (
                    top,
                    f"the library root is empty but the catalog holds {len(gone)} files "
                    "there: is the share mounted? Nothing was marked missing",
                )
            )
            kept |= {k[0] for k in gone}
            gone = []
        d.kept = len(kept)
        vanished: dict[int, list[Known]] = defaultdict(list)
        for k in gone:
            vanished[k[4]].append(k)
        candidates: list[tuple[str, Entry, Known]] = []
        fresh = array("q")  # the files with no row to read (indices in self.new_*)
        for i in range(len(self.new_paths)):
            if i in self.taken:
                continue
            # An entry is made only for a file whose inode went missing (a first scan: none)
            if self.full or self.inodes[self.new_at[i]] not in vanished:
                fresh.append(i)
                continue
            e = self._fresh(i)
            hit = _take_move(vanished, e, paths)
            if hit is None:
                fresh.append(i)
            else:
                candidates.append((path_key(e.path), e, hit))
        self.by_key = None
        later: list[Entry] = []  # to read after the fresh files
        quick_of = _quick_of(session, [hit[0] for _, _, hit in candidates])
        real_root = os.path.realpath(root.path)
        for key, e, hit in candidates:
            if beat is not None:
                beat()  # many renamed files on a slow share: still alive, not cancelled
            same, n = _confirmed(e, hit, quick_of.get(hit[0]), real_root)
            d.bytes_read += n
            if same:
                d.moves.append((key, e, hit[0]))
                if extension(e.path) != extension(paths[hit[0]]):
                    # Renamed to another kind of name (scan.png to scan.jpg): its kind and
                    # whether it is what its name says go by the name, so its row, moved
                    # first, is read again as at a change. Rare: a folder's rename keeps
                    # every extension.
                    later.append(e)
            else:
                vanished[hit[4]].append(hit)  # the file went; this one is new
                later.append(e)
        d.missing = [k[0] for rows in vanished.values() for k in rows]
        if self.changed_paths or self.changed_late or fresh or later:
            # (an unchanged library needs no count of sizes)
            walked_files = (self.sizes, self.devices, self.inodes)
            # The sizes to read as an int64 column, not a set: 8 bytes a file, not ~70
            asked = np.fromiter((size for _, size in self._to_read(fresh, later)), np.int64)
            shared = _shared_sizes(
                session, *walked_files, root.id, top == root.path, np.unique(asked)
            )
            d.todo = _ToRead(
                [path for path, _ in self._to_read(fresh, later)],
                array("q", asked.tobytes()),
                bytearray(np.isin(asked, shared).tobytes()),  # bools: one byte each, 0 or 1
            )
        return d

    def _to_read(self, fresh: array[int], later: list[Entry]) -> Iterator[tuple[str, int]]:
        """(path, size) of the files to read, in this order: the changed ones (in the
        walk's order, then those compared again after it), the ``fresh`` ones with no row
        (indices in ``new_*``), and the ``later`` ones (new ones that were no move)."""
        for path, at in zip(self.changed_paths, self.changed_at, strict=True):
            yield path, self.sizes[at]
        for e in self.changed_late:
            yield e.path, e.size
        for i in fresh:
            yield self.new_paths[i], self.sizes[self.new_at[i]]
        for e in later:
            yield e.path, e.size


def _diff(
    session: Session,
    job: Job,
    root: Root,
    top: str,
    walked: WalkResult,
    walk_started: datetime,
    beat: Callable[[], None] | None,
    settings: Settings,
) -> _Diff:
    """Walk ``top`` and work out what the walk changes in the catalog, a batch of folders
    at a time (``DIFF_BATCH_FILES``), then across them (moves, missing, kept)."""
    scan = _Rescan(session, job, root, top, walk_started)
    batch: list[tuple[str, list[Entry]]] = []
    files = 0
    for folder, entries in walk_folders(top, settings.ignore, private_dirs(settings), beat, walked):
        batch.append((folder, entries))
        files += len(entries)
        if files >= DIFF_BATCH_FILES or len(batch) >= DIFF_BATCH_FOLDERS:
            scan.settle(batch)
            batch, files = [], 0
    if batch:
        scan.settle(batch)
    scan.sweep()
    return scan.finish(walked, beat)


def _apply(session: Session, d: _Diff) -> None:
    """Write what ``_diff`` worked out (after the plan's claim)."""
    now = utcnow()
    for ids in chunks(d.revived):
        session.execute(
            update(File).where(File.id.in_(ids)).values(status="present", updated_at=now)
        )
    _move_rows(session, d.moves, now)
    # The same files on a share mounted again: a new device number, one statement per
    # thousand rows (not one per row: a million-file share after a reboot)
    for device, ids in d.remounted.items():
        for chunk in chunks(ids):
            session.execute(update(File).where(File.id.in_(chunk)).values(device=device))
    for ids in chunks(d.missing):
        session.execute(
            update(File).where(File.id.in_(ids)).values(status="missing", updated_at=now)
        )


def _move_rows(session: Session, moves: list[tuple[str, Entry, int]], now: datetime) -> None:
    """Give moved rows their new paths: a renamed folder moves every file under it. On
    PostgreSQL one UPDATE ... FROM (VALUES ...) per thousand rows: row by row, each a
    round trip, 100,000 moves took a minute. SQLite (in process) takes them row by row."""
    rows = [
        {"fid": fid, "p": e.path, "pk": key, "dk": dir_key(e.path), "dev": e.device}
        for key, e, fid in moves
    ]
    if session.get_bind().dialect.name != "postgresql":
        for r in rows:
            session.execute(
                update(File)
                .where(File.id == r["fid"])
                .values(
                    path=r["p"],
                    path_key=r["pk"],
                    dir_key=r["dk"],
                    device=r["dev"],
                    status="present",
                    updated_at=now,
                )
            )
        return
    for i in range(0, len(rows), 1000):
        v = values(
            column("fid", BigInteger), column("p", FsPath()), column("pk", String),
            column("dk", String), column("dev", BigInteger), name="moved",
        ).data([tuple(r.values()) for r in rows[i : i + 1000]])  # fmt: skip
        session.execute(
            update(File)
            .where(File.id == v.c.fid)
            .values(
                path=v.c.p,
                path_key=v.c.pk,
                dir_key=v.c.dk,
                device=v.c.dev,
                status="present",
                updated_at=now,
            )
        )


_KNOWN_COLUMNS = (
    File.id,
    File.size,
    File.mtime_ns,
    File.device,
    File.inode,
    File.status,
    File.updated_at,
    File.read_failures,
)


def _known_rows(
    session: Session, root_id: int, dir_keys: list[str], *where: ColumnElement[bool]
) -> dict[str, Known]:
    """The root's rows in these folders (and matching ``where``), by path key."""
    # One string object per status, not one per row
    status: dict[str, str] = {}
    out: dict[str, Known] = {}
    conn = session.connection()
    for keys in chunks(dir_keys):
        # The root is told here, not in the query: SQLite (with no statistics) would
        # read every row of the root by its (root_id, status) index, for each batch
        rows = conn.execute(
            select(File.path_key, File.root_id, *_KNOWN_COLUMNS).where(
                File.dir_key.in_(keys), *where
            )
        )
        for key, root, fid, size, mtime, dev, ino, st, updated, failures in rows:
            if root == root_id:
                out[key] = (
                    fid,
                    size,
                    mtime,
                    dev,
                    ino,
                    status.setdefault(st, st),
                    updated,
                    failures,
                )
    return out


def _paths_of(session: Session, ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for i in range(0, len(ids), 1000):
        rows = session.execute(select(File.id, File.path).where(File.id.in_(ids[i : i + 1000])))
        out.update((fid, path) for fid, path in rows)
    return out


def _in_unseen(path: str, unseen: set[str], top: str) -> bool:
    """``path`` is, or lies under, something the walk could not look at."""
    return any(p in unseen for p in ancestors(path) if is_inside(p, top))


def _shared_sizes(
    session: Session,
    sizes: array[int],
    devices: array[int],
    inodes: array[int],
    root_id: int,
    whole_root: bool,
    wanted: np.ndarray,
) -> np.ndarray:
    """Those of the ``wanted`` sizes held by two or more distinct present files across
    the whole catalog, given the walk's files as three int64 columns (which this extends
    with the catalog's). ``wanted`` and the answer are sorted int64 arrays of distinct
    sizes: as sets of ints they cost ~70 bytes a size at a first scan's peak.

    The walk stands for its own root when it covered all of it. A folder scan walks only
    its folder, so the root's other rows count too: a copy arriving there must meet its
    twin elsewhere in the root. (A row of the folder that vanished then counts once: at
    worst a new file of its size gets a quick digest it did not need.)

    Few sizes wanted (a rescan or a watcher's folder scan that found a few new files): only
    the catalog's rows of those sizes, by ``ix_files_size``. The same sizes come out: the
    rows of one inode are hard links of one size, and a walk's row (the file as it is now)
    comes before the catalog's. Only an inode that the walk did not see and whose catalog
    rows disagree on its size (one of them stale) may count with a wanted size here where
    reading whole counted it with whichever row came first: at worst a quick digest more,
    never a copy missed."""
    # Three int64 columns, not a set of (device, inode) tuples: 24 bytes a file against ~150
    for size, device, inode in _catalog_sizes(session, root_id, whole_root, wanted):
        sizes.append(size)
        devices.append(device)
        inodes.append(inode)
    s, d, i = (np.frombuffer(a, dtype=np.int64) for a in (sizes, devices, inodes))
    # Narrowed to the wanted sizes' files only when that leaves few: a first scan wants
    # nearly every size, and narrowing would sort its columns twice more for nothing
    narrow = len(wanted) * 4 < len(s)
    held = _sizes_held_twice(*(_files_of_sizes(s, d, i, wanted) if narrow else (s, d, i)))
    return np.intersect1d(held, wanted, assume_unique=True)


# Up to this many sizes wanted, the catalog is asked for those sizes (by an index, a
# thousand a query) rather than read whole: 2.2 s at a million rows for each folder scan
# of the watcher that finds a new file, against milliseconds
SIZES_BY_INDEX = 5_000


def _catalog_sizes(
    session: Session, root_id: int, whole_root: bool, wanted: np.ndarray
) -> Iterator[Row[int, int, int]]:
    """(size, device, inode) of the catalog's present non-empty files that count beside
    the walk's: of other roots, or of this root too when the walk covered part of it."""
    where = [
        File.status == "present",
        File.size > 0,
        *([File.root_id != root_id] if whole_root else []),
    ]
    query = select(File.size, File.device, File.inode)
    conn = session.connection()
    if len(wanted) <= SIZES_BY_INDEX:
        for chunk in chunks(wanted.tolist()):  # (sorted; Python ints for the driver)
            yield from conn.execute(query.where(*where, File.size.in_(chunk)))
        return
    # Streamed (Core, and a server-side cursor on PostgreSQL): the ORM's execute would
    # fetch every row first, and a folder scan reads the whole root's
    yield from conn.execute(query.where(*where).execution_options(stream_results=True))


def _files_of_sizes(
    sizes: np.ndarray, devices: np.ndarray, inodes: np.ndarray, wanted: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows (in their order) of every inode that has a row of a ``wanted`` size: all
    that ``_sizes_held_twice`` needs to count those sizes (each of their files' rows, so
    its first). A rescan that reads ten new files sorts their few rows, not a million."""
    keep = np.isin(inodes, np.unique(inodes[np.isin(sizes, wanted)]))
    return sizes[keep], devices[keep], inodes[keep]


def _sizes_held_twice(sizes: np.ndarray, devices: np.ndarray, inodes: np.ndarray) -> np.ndarray:
    """Positive sizes of two or more distinct (device, inode) files, sorted; a hard link
    counts once, with the size of its first row."""
    if not len(sizes):
        return np.empty(0, dtype=np.int64)
    order = np.lexsort((np.arange(len(sizes)), inodes, devices))  # by file, then position
    dev, ino = devices[order], inodes[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (dev[1:] != dev[:-1]) | (ino[1:] != ino[:-1])
    values, counts = np.unique(sizes[order[first]], return_counts=True)
    return values[(counts > 1) & (values > 0)]


def _batches(
    items: list[Any] | _ToRead,
    max_files: int,
    max_bytes: int,
    as_dict: Callable[[Any], dict[str, Any]],
) -> Iterator[list[dict[str, Any]]]:
    """``items`` (each as ``as_dict`` makes it), in order, in batches of at most
    ``max_files`` files and ``max_bytes`` bytes (a larger file alone). Takes the list: it is
    emptied as the batches are made."""
    items.reverse()  # taken from the end
    batch: list[dict[str, Any]] = []
    size = 0
    while items:
        item = as_dict(items.pop())
        if batch and (len(batch) >= max_files or size + item["size"] > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item["size"]
    if batch:
        yield batch


# Batches written to the session between two flushes: a flushed batch's payload is let go
# (the session keeps no strong reference to a clean row), where a first scan of a million
# files held ~7,800 of them, ~150 MB of JSON, until its commit.
FLUSH_BATCHES = 64


def _add_batches(
    session: Session,
    job: Job,
    phase: str,
    items: list[Any] | _ToRead,
    settings: Settings,
    as_dict: Callable[[Any], dict[str, Any]] = lambda item: item,
) -> int:
    """Queue ``items`` (each a dict with ``path`` or ``id``, and ``size``, as ``as_dict``
    makes it) as the job's batches of ``phase``; returns how many. Takes the list: it is
    emptied as its batches are made, so that a first scan does not hold every item and
    every batch's payload at once."""
    seq = job.batches_total
    n = files = size = 0
    for chunk in _batches(items, settings.batch_files, settings.batch_bytes, as_dict):
        session.add(
            JobBatch(
                job_id=job.id,
                seq=seq,
                phase=phase,
                state="queued",
                payload=json.dumps(chunk),
                files=len(chunk),
            )
        )
        # A file read again in a later phase (hashed after it was cataloged) counts once
        files += sum(1 for i in chunk if not i.get("again"))
        size += sum(i["size"] for i in chunk)
        seq += 1
        n += 1
        if n % FLUSH_BATCHES == 0:
            session.flush()
    job.batches_total = seq
    job.total += files
    job.bytes_total += size
    return n


def plan_scan(session: Session, job_id: str, settings: Settings) -> bool:
    """Walk and diff; create the catalog batches. Returns False if already planned."""
    job = session.get(Job, job_id)
    if job is None or job.state not in jobs.ACTIVE_STATES or job.phase != "plan":
        return False
    jobs.mark_running(session, job_id)
    # Seen at once, not after the walk (minutes on a big share): the watcher must not
    # hand a change to a scan already walking past it, dedup's watermark must see a scan
    # running, and a cancel must not wait on this row's lock for the whole walk.
    session.commit()
    root = session.get(Root, job.root_id)
    assert root is not None
    top = job.path or root.path
    # A row written after this moment (by a watcher's folder scan during a long walk of
    # the whole root) holds news this walk may not have seen: it is left as it is, not
    # marked missing nor revived from what the walk saw before.
    walk_started = utcnow()
    beat = _heartbeat(session, job_id, settings)
    walked = WalkResult()  # its errors, skips and what it could not look at
    try:
        # All before the claim (the write lock on SQLite): telling moves from new files
        # may read 8 KiB of each of many files, and other writers must not wait on that
        diff = _diff(session, job, root, top, walked, walk_started, beat, settings)
    except WalkStopped:
        session.rollback()  # cancelled or failed meanwhile: nothing of the walk is kept
        log.info("scan %s stopped during its walk of %r", job_id, top)
        return False
    # Claimed before the first write: a second plan message for this scan (the watcher or
    # the scheduler re-sending one that looked lost) may have walked too, and it must
    # not record the walk's errors, revive, move or add batches a second time; nor may a
    # scan cancelled during its walk mark anything missing. On PostgreSQL the loser's
    # update waits for the winner's commit, then matches nothing.
    claim = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.phase == "plan", Job.state.in_(jobs.ACTIVE_STATES))
        .values(phase="catalog")
    )
    if not claim.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        return False
    _apply(session, diff)
    job.bytes_read += diff.bytes_read
    job.failed += jobs.record_errors(session, job_id, walked.errors)
    summary = {
        "walked": diff.walked,
        "unchanged": diff.unchanged,
        "moved": len(diff.moves),
        "revived": len(diff.revived),
        "missing": len(diff.missing),
        "newer_elsewhere": diff.newer,
        "to_read": len(diff.todo),
        "walk_errors": len(walked.errors),
        "kept_unlisted": diff.kept,
        **{f"skipped_{k}": v for k, v in walked.skipped.items()},
    }
    job.summary = json.dumps(summary)
    job.phase = "catalog"
    _add_batches(session, job, "catalog", diff.todo, settings, _catalog_item)
    job.updated_at = utcnow()
    return True


def _empty_dir(path: str) -> bool:
    """``path`` lists without error and holds nothing at all (not even ignored names)."""
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except OSError:
        return False


def _catalog_item(item: tuple[str, int, bool]) -> dict[str, Any]:
    """A ``_Diff.todo`` item as its catalog batch's payload lists it."""
    path, size, quick = item
    return {"path": path, "size": size, "quick": quick}


# --- batches ---------------------------------------------------------------------


@dataclass
class BatchOutcome:
    done: int = 0  # files this job had not counted yet (see _mark_counted)
    bytes_read: int = 0
    # The files that failed, with why; the job's ``failed`` counts each path once
    # (jobs.record_errors), however many phases or steps of a batch it failed in.
    errors: list[tuple[str, str]] = field(default_factory=list)
    stopped: bool = False  # the job ended while the batch read: the rest was not read


# How often a batch, between two files, looks whether its job is still active (one read
# of the job's row): a cancelled scan stops reading within about this long, rather than
# after the up to 2 x TWINLENS_BATCH_FILES files its worker threads had started on.
STOP_CHECK_SECONDS = 1.0


class StopCheck:
    """Called before each file a batch reads; True once the job is no longer active
    (cancelled, failed as stale). Looks at most every ``STOP_CHECK_SECONDS``, on a
    connection of its own: the batch's session may hold a transaction whose snapshot
    would not see the cancel."""

    def __init__(self, session: Session, job_id: str) -> None:
        self.session, self.job_id = session, job_id
        bind = session.get_bind()
        self.engine = bind if isinstance(bind, Engine) else None
        self.interval = STOP_CHECK_SECONDS
        self.due = time.monotonic() + self.interval

    def __call__(self) -> bool:
        now = time.monotonic()
        if now < self.due:
            return False
        self.due = now + self.interval
        query = select(Job.state).where(Job.id == self.job_id)
        try:
            if self.engine is None:  # bound to a connection (a test's transaction)
                state = self.session.scalar(query)
            else:
                with self.engine.connect() as conn:
                    state = conn.scalar(query)
        except SQLAlchemyError as exc:  # the database busy or away, a pool timeout
            log.warning("scan %s: could not look at its job row: %s", self.job_id, exc)
            return False
        return state not in jobs.ACTIVE_STATES


def process_batch(session: Session, job_id: str, seq: int, settings: Settings) -> tuple[bool, bool]:
    """Run one batch. Returns (counted, phase_complete).

    ``counted`` is False when the batch had been done already (a redelivery), another
    delivery is reading it (``jobs.delivery``) or the job is no longer active; then
    nothing is added to the progress. ``phase_complete`` is True whenever every batch
    is done, a redelivery included.
    """
    job = session.get(Job, job_id)
    batch = session.get(JobBatch, (job_id, seq))
    if job is None or batch is None or job.state not in jobs.ACTIVE_STATES:
        return False, False
    if batch.state == "done":
        # A redelivery counts nothing. But the first delivery of the phase's last batch
        # may have died between its commit and sending the advance: say the phase is
        # complete again (advance checks the phase and the counts, so a second is a no-op).
        return False, job.batches_done >= job.batches_total
    with jobs.delivery(session, job_id, seq) as crashed:
        if crashed is None:
            # Its message was sent twice (a scan's plan or advance that ran again kicks the
            # phase's batches again): the delivery reading it counts it and moves the scan
            # on, or is retried if it fails. Reading it here too would read every file
            # twice and fail on the rows the other writes.
            log.info("scan %s: batch %s is being read by another delivery", job_id, seq)
            return False, False
        return _read_batch(session, job, batch, crashed, settings)


def _read_batch(
    session: Session, job: Job, batch: JobBatch, crashed: int, settings: Settings
) -> tuple[bool, bool]:
    job_id, seq = job.id, batch.seq
    root = session.get(Root, job.root_id)
    assert root is not None
    items = json.loads(batch.payload)
    outcome = BatchOutcome()
    stop = StopCheck(session, job_id)
    if crashed >= CRASHES_BEFORE_SKIPPING:
        _skip_items(session, batch.phase, items, crashed, outcome)
    elif batch.phase == "catalog":
        _catalog_items(session, root, items, settings, outcome, stop)
    else:
        _hash_items(session, root, batch.phase, items, outcome, stop)
    if outcome.stopped:
        # The job was cancelled (or failed) while this batch read. What it read is
        # written, each file's row whole; the files it did not reach are as the catalog
        # had them, so the next scan reads them. Nothing counts in the ended job.
        log.info("scan %s stopped during its batch %s", job_id, seq)
        return False, False
    if not jobs.claim_batch(session, job_id, seq):
        session.rollback()
        return False, False
    progress = jobs.add_progress(
        session, job_id, done=outcome.done, bytes_read=outcome.bytes_read, batches=1
    )
    if progress is None:  # ended after the batch's last look: written, not counted
        return False, False
    # The job's row is locked now (the update above): it cannot end in between
    jobs.add_progress(session, job_id, failed=jobs.record_errors(session, job_id, outcome.errors))
    done, total = progress
    return True, done >= total


# Deliveries of one batch that died without an answer (a worker killed: out of memory on
# a huge picture) before its files are skipped, named, so that the scan finishes
CRASHES_BEFORE_SKIPPING = 3


def _skip_items(
    session: Session, phase: str, items: list[dict[str, Any]], crashed: int, outcome: BatchOutcome
) -> None:
    again = "the next scan" if phase == "catalog" else "the next scan of the whole library"
    why = (
        f"skipped: reading the batch of files it was in stopped the worker {crashed} times "
        f"(out of memory on a very large picture?); {again} tries it again"
    )
    for item in items:
        row = session.get(File, item["id"]) if "id" in item else None
        path = item.get("path") or (row.path if row is not None else None)
        outcome.done += not item.get("again")
        if path is not None:
            outcome.errors.append((path, why))


def _catalog_items(
    session: Session,
    root: Root,
    items: list[dict[str, Any]],
    settings: Settings,
    outcome: BatchOutcome,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    keys = [path_key(i["path"]) for i in items]
    existing = {
        k: (i, stat)
        for k, i, *stat in session.execute(
            select(File.path_key, File.id, File.size, File.mtime_ns, File.inode).where(
                File.path_key.in_(keys)
            )
        )
    }
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    real_root = os.path.realpath(root.path)
    suspected = suspects.of(session, keys)
    engine = session.get_bind().engine
    for key, item in zip(keys, items, strict=True):
        if stop():
            # The rows of the files read so far are written below, each whole; the rest
            # keep theirs (or have none yet), and the next scan reads them
            outcome.stopped = True
            break
        path = item["path"]
        st, reason = _still_a_file(path)
        if st is None:
            outcome.errors.append((path, reason))
            outcome.done += 1
            if key in existing:  # gone from the library as a file: the walk agrees next time
                updates.append(
                    {"id": existing[key][0], "status": "missing", "updated_at": utcnow()}
                )
            continue
        suspect = suspected.get(key)
        mtime_ns = int64(st.st_mtime_ns)
        skipped = suspect is not None and suspects.to_skip(suspect, st.st_size, mtime_ns)
        if skipped and suspect is not None:
            facts = FileFacts(
                kind=kind_of_extension(extension(path)),
                format=None,
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                error=suspects.skip_reason(suspect),
            )
        else:
            with suspects.reading(engine, key, st.st_size, mtime_ns) if suspect else nullcontext():
                facts = inspect_file(
                    path,
                    full_hash=False,
                    quick_hash=True,  # 8 KiB at most: it tells a later move from a new file
                    max_pixels=settings.max_image_pixels,
                    root=real_root,
                )
        outcome.bytes_read += facts.bytes_read
        outcome.done += 1
        if facts.error:
            outcome.errors.append((path, facts.error))
        values = _row_values(root, key, path, st, facts)
        if key not in existing:
            inserts.append(values)
        elif (facts.read_failed or skipped) and existing[key][1] == [
            st.st_size, mtime_ns, int64(st.st_ino)
        ]:  # fmt: skip
            # The file is the one the catalog read before, and this read failed (a share
            # that timed out, a permission) or was skipped: what was known stays known,
            # and a failed read is tried again later. (A file changed since then keeps
            # none of its old facts.)
            kept = {"id": existing[key][0], "error": facts.error, "device": values["device"],
                    "status": "present", "updated_at": values["updated_at"]}  # fmt: skip
            if facts.read_failed or skipped:  # its facts stand for a file not read now
                kept["read_failures"] = File.read_failures + 1
            updates.append(kept)
        else:
            updates.append({"id": existing[key][0], **values})
    # Bulk statements: one INSERT and one UPDATE (executemany) per batch, no ORM objects.
    table = cast(Table, File.__table__)
    if inserts or updates:
        begin_write(session)  # the savepoints below nest in the batch's own transaction
    conn = session.connection()
    if inserts:
        _insert_rows(conn, table, inserts, outcome)
    for row in updates:  # rare: changed files; each may set a different set of columns
        fid = row.pop("id")
        row.pop("first_seen", None)
        try:
            with conn.begin_nested():
                conn.execute(update(table).where(table.c.id == fid).values(**row))
        except _ROW_REFUSED as exc:
            _refused(row.get("path") or f"file #{fid}", exc, outcome)


# What a database refuses in one row's values (a number out of range, a text it cannot
# hold): no retry would change it. A lost connection, a lock or a unique key that another
# scan took meanwhile are not among them: those fail the batch, which is retried.
_ROW_REFUSED = (DataError, OverflowError, ValueError)


def _insert_rows(
    conn: Connection, table: Table, rows: list[dict[str, Any]], outcome: BatchOutcome
) -> None:
    """Insert the batch's new rows in one statement; if the database refuses a value,
    insert them one by one and name each file it refuses, rather than fail the batch on
    every retry and lose its other files with it."""
    try:
        with conn.begin_nested():
            conn.execute(insert(table), rows)
        return
    except _ROW_REFUSED:
        pass
    for row in rows:
        try:
            with conn.begin_nested():
                conn.execute(insert(table), [row])
        except _ROW_REFUSED as exc:
            _refused(row["path"], exc, outcome)


def _refused(path: str, exc: Exception, outcome: BatchOutcome) -> None:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
    log.warning("catalog refused %r: %s", path, reason)
    outcome.errors.append((path, f"could not be cataloged: {reason}"))


def _still_a_file(path: str) -> tuple[os.stat_result | None, str]:
    """The lstat of a listed path if it is still a regular file, else (None, why).

    Batches run long after the walk: the file may have been deleted, or replaced by
    a symlink (which the walk would not have followed) or a FIFO (which would block).
    """
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError as exc:
        return None, os_error_reason(exc, "stat")
    if not stat.S_ISREG(st.st_mode):
        return None, f"no longer a regular file ({file_type(st.st_mode)}); not read"
    return st, ""


def _row_values(
    root: Root, key: str, path: str, st: os.stat_result, facts: FileFacts
) -> dict[str, Any]:
    now = utcnow()
    mtime_ns, device, inode = stat_key(st)
    return dict(
        first_seen=now,
        root_id=root.id,
        path=path,
        path_key=key,
        dir_key=dir_key(path),
        size=st.st_size,
        mtime_ns=mtime_ns,
        device=device,
        inode=inode,
        kind=facts.kind,
        format=facts.format,
        sha256=facts.sha256,
        sha1=facts.sha1,
        quick=facts.quick,
        phash=facts.phash,
        colour=facts.colour,
        taken_at=facts.taken_at,
        taken_offset=facts.taken_offset,
        make=_clip(facts.make),
        model=_clip(facts.model),
        serial=_clip(facts.serial),
        width=facts.width,
        height=facts.height,
        orientation=facts.orientation,
        content_id=_clip(facts.content_id),
        jpeg_quality=facts.jpeg_quality,
        error=facts.error,
        read_failures=int(facts.read_failed),
        warning=facts.warning,
        status="present",
        updated_at=now,
    )


def _clip(text: str | None, n: int = 128) -> str | None:
    if text is None:
        return None
    # EXIF strings from fuzzed files can hold NULs, which PostgreSQL refuses.
    text = text.replace("\x00", "").strip()
    return text[:n] or None


def _hash_items(
    session: Session,
    root: Root,
    phase: str,
    items: list[dict[str, Any]],
    outcome: BatchOutcome,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    # The rows' new digests are flushed with the batch's commit, not by the next row's
    # SELECT: on SQLite that flush would take the write lock, and hold it (and hold a
    # cancel up) while the rest of the batch is read.
    with session.no_autoflush:
        _hash_rows(session, root, phase, items, outcome, stop)


def _hash_rows(
    session: Session,
    root: Root,
    phase: str,
    items: list[dict[str, Any]],
    outcome: BatchOutcome,
    stop: Callable[[], bool],
) -> None:
    # A size shared with a file of another root brings that file here too: it is opened
    # confined to its own root (confined to this one, it was refused as out of it).
    real_roots = {root.id: os.path.realpath(root.path)}
    for item in items:
        if stop():
            outcome.stopped = True  # the rows hashed so far keep their digests
            return
        row = session.get(File, item["id"])
        outcome.done += not item.get("again")  # each file counts once in the job
        if row is None or row.status != "present":
            continue
        if row.root_id not in real_roots:
            other = session.get(Root, row.root_id)
            assert other is not None  # files.root_id is a foreign key
            real_roots[row.root_id] = os.path.realpath(other.path)
        try:
            outcome.bytes_read += _digest_row(row, phase, real_roots[row.root_id])
        except OSError as exc:
            reason = os_error_reason(exc)
            outcome.errors.append((row.path, reason))
            if isinstance(exc, FileNotFoundError):
                # As the catalog phase does (the walk agrees next time); updated_at
                # lets grouping and dedup of this scan see the change.
                row.status, row.updated_at = "missing", utcnow()
            else:
                # Said on the file too, and read again by the next scan: a copy whose
                # digest was never taken would otherwise never be found as one
                row.error, row.updated_at = reason, utcnow()
                row.read_failures = (row.read_failures or 0) + 1


def _digest_row(row: File, phase: str, real_root: str) -> int:
    """Quick digest or full hashes of a cataloged file; returns the bytes read.

    Opened as the catalog phase opens files (no symlink, no FIFO, inside the root).
    A file changed since it was cataloged is left for the next scan; one changed
    while it was being read raises, so no digest of a half-old file is stored.
    """
    fd, st = open_regular(row.path, real_root)
    with open(fd, "rb", buffering=0) as fh:
        if (st.st_size, int64(st.st_mtime_ns)) != (row.size, row.mtime_ns):
            return 0  # changed since it was cataloged: the next scan re-reads it
        if phase == "quick":
            quick, n = quick_digest_fh(fh, row.size)
        else:
            sha256, sha1, n = hash_stream(fh)
        after = os.fstat(fh.fileno())
    if (after.st_size, int64(after.st_mtime_ns)) != (row.size, row.mtime_ns):
        raise FileChanged(
            errno.EAGAIN,
            f"file changed while it was being read (size {row.size}, now {after.st_size})",
        )
    if phase == "quick":
        row.quick = quick
    else:
        # updated_at: the dedup pass that follows must look at a file hashed long after it
        # was cataloged (one a cancelled scan left unhashed)
        row.sha256, row.sha1, row.updated_at = sha256, sha1, utcnow()
    return n


# --- phase transitions --------------------------------------------------------


def _candidate_sizes(session: Session, job_id: str) -> set[int]:
    """Sizes of the files this job cataloged that another file shares: only these
    can have gained a byte-identical twin, so only these need more hashing."""
    sizes: set[int] = set()
    for payload in session.scalars(
        select(JobBatch.payload).where(JobBatch.job_id == job_id, JobBatch.phase == "catalog")
    ):
        sizes.update(i["size"] for i in json.loads(payload) if i.get("quick"))
    return sizes


def _left_over_sizes(session: Session, root_id: int) -> set[int]:
    """Sizes where a file of this root has no full hash though another file of its size
    may equal it: a scan cancelled (or whose worker died) between cataloging and hashing
    left it so, and an unchanged file is not cataloged again to bring it back.

    Asked of the database per size: two of its quick digests alike, or one unknown.
    A size may come back that needs nothing (the alike pair is hashed already): it costs
    its rows' reading, and ``_plan_quick``/``_plan_full`` find nothing to do."""
    # A file whose read failed waits for its retry (``retry_due``), not for every scan;
    # one read fine with an error about its content (a truncated video) is swept
    unhashed_here = case(
        (
            and_(
                File.sha256.is_(None),
                func.coalesce(File.read_failures, 0) == 0,
                File.root_id == root_id,
            ),
            1,
        ),
        else_=0,
    )
    quicks = func.count(File.quick)
    return set(
        session.scalars(
            select(File.size)
            .where(File.status == "present", File.size > 0)
            .group_by(File.size)
            .having(
                func.count() > 1,
                func.sum(unhashed_here) > 0,
                or_(func.count(File.quick.distinct()) < quicks, quicks < func.count()),
            )
        )
    )


def _mark_counted(session: Session, job_id: str, items: list[dict[str, Any]]) -> None:
    """Mark (``again``) the items of a hashing phase whose file this job has counted
    already: it cataloged the file, or gave it its quick digest. A job's ``total`` and
    ``done`` count files, each once, however many phases read it."""
    sizes = {i["size"] for i in items}
    cataloged: set[str] = set()
    earlier: set[int] = set()
    for phase, payload in session.execute(
        select(JobBatch.phase, JobBatch.payload).where(JobBatch.job_id == job_id)
    ):
        for i in json.loads(payload):
            if i["size"] not in sizes:
                continue
            if phase == "catalog":
                cataloged.add(path_key(i["path"]))
            else:
                earlier.add(i["id"])
    by_id = {i["id"]: i for i in items}
    for ids in chunks(list(by_id)):
        for fid, key in session.execute(select(File.id, File.path_key).where(File.id.in_(ids))):
            if fid in earlier or key in cataloged:
                by_id[fid]["again"] = True


def _rows_of_sizes(session: Session, sizes: set[int]) -> Iterator[Any]:
    ordered = sorted(sizes)
    for i in range(0, len(ordered), 1000):
        yield from session.execute(
            select(File.id, File.size, File.sha256, File.quick, File.device, File.inode).where(
                File.status == "present", File.size.in_(ordered[i : i + 1000])
            )
        )


def _plan_quick(session: Session, sizes: set[int]) -> list[dict[str, Any]]:
    """Files cataloged earlier that now share a size and have neither digest."""
    return [
        {"id": fid, "size": size}
        for fid, size, sha, quick, _d, _i in _rows_of_sizes(session, sizes)
        if sha is None and quick is None
    ]


def _plan_full(session: Session, sizes: set[int]) -> list[dict[str, Any]]:
    """Files without a full hash that another file of their size may equal: one whose
    quick digest is the same, or unknown (a file hashed before quick digests were kept).
    Two files whose first and last 4 KiB differ cannot be byte copies."""
    by_size: dict[int, dict[tuple[int, int], tuple[int, str | None, str | None]]] = defaultdict(
        dict
    )
    for fid, size, sha, quick, device, inode in _rows_of_sizes(session, sizes):
        by_size[size][(device, inode)] = (fid, sha, quick)  # hard links are one file
    todo: list[dict[str, Any]] = []
    for size, uniq in by_size.items():
        members = list(uniq.values())
        if len(members) < 2:
            continue
        counts = Counter(m[2] for m in members)
        for fid, sha, quick in members:
            if sha is None and (quick is None or counts[quick] > 1 or counts[None] > 0):
                todo.append({"id": fid, "size": size})
    return todo


def advance(session: Session, job_id: str, from_phase: str, settings: Settings) -> str | None:
    """Move a job past ``from_phase`` once all its batches are done.

    Plans the next phase's batches (skipping empty phases). Returns the phase the
    job is now in, or None when nothing changed (a duplicate or early message).
    """
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.state not in jobs.ACTIVE_STATES or job.phase != from_phase:
        return None
    if from_phase == "finish":
        return None  # nothing past it: the caller's _kick finishes the job
    if job.batches_done < job.batches_total:
        return None
    # A scan of the whole root also takes up what an earlier one left unhashed (nightly,
    # "Scan now"); a folder scan does not (the watcher's, often and small; one of the
    # root's top folder is a scan of the root)
    root = session.get(Root, job.root_id) if job.root_id is not None else None
    sweep = root.id if root is not None and job.path in (None, root.path) else None
    left_over: set[int] | None = None
    phase = from_phase
    while True:
        phase = PHASES[PHASES.index(phase) + 1]
        sizes = _candidate_sizes(session, job_id) if phase in ("quick", "full") else set()
        if phase in ("quick", "full") and sweep is not None:
            if left_over is None:  # once a call: a quick phase with nothing to do adds none
                left_over = _left_over_sizes(session, sweep)
            sizes |= left_over
        if phase == "quick":
            items = _plan_quick(session, sizes)
        elif phase == "full":
            items = _plan_full(session, sizes)
        else:
            items = []
        job.phase = phase
        if phase == "finish":
            job.updated_at = utcnow()
            return phase
        if items:
            _mark_counted(session, job_id, items)
            _add_batches(session, job, phase, items, settings)
            job.updated_at = utcnow()
            return phase


def queued_batches(session: Session, job_id: str) -> list[int]:
    return list(
        session.scalars(
            select(JobBatch.seq)
            .where(JobBatch.job_id == job_id, JobBatch.state == "queued")
            .order_by(JobBatch.seq)
        )
    )
