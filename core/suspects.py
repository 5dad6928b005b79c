"""Files that kill the process reading them are found, and then skipped.

A decoder that crashes on one corrupt file, or a picture so large that the kernel's
out-of-memory killer stops the process, ends an embedded Twinlens process in the middle
of a batch, with nothing logged. Its job is failed at the next start
(``workers.runtime.fail_orphans``) and the next scan reads the same file again: without
this module, every scan (and ``twinlens up`` at every start) died on it, and the file was
never named.

So when orphaned jobs are failed, the files of their catalog batches that were being
read (delivered, not done) become suspects. A batch reads a suspect alone: marked
``reading`` in a transaction of its own before, unmarked after. A suspect still marked
when a dead process's jobs are failed is the one that stopped it: it has one more crash.
After ``LIMIT`` crashes it is skipped, named with the reason, until it changes (another
size or mtime: ``touch`` tries it again). The others of its batch are read alone once,
one at a time, and forgiven. Redis workers have their own, per-batch, rule
(``core.catalog.CRASHES_BEFORE_SKIPPING``): a dead worker's message goes to another
worker, not to a new job.
"""

from __future__ import annotations

import atexit
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from core.models import JobBatch, SuspectFile, utcnow
from core.paths import path_key

# Crashes while the file was being read alone before it is skipped. The first crash of
# a batch only tells which files were in flight; the next, which one it was; one more
# makes sure (a power cut, or a crash of another thread's read, during a healthy file's
# read alone must not have it skipped for good).
LIMIT = 2

# One suspect read at a time in a process: a crash then blames one file, not two
_ALONE = threading.Lock()
# The suspect this process is reading, if any: an orderly exit (Ctrl-C, SIGTERM) that
# does not wait for the read to end unmarks it, since it did not stop the process
_current: dict[str, Engine] = {}


def note_crashes(session: Session, job_ids: Iterable[str]) -> int:
    """After the process running ``job_ids`` died: its suspect being read gains a crash,
    and the files of its catalog batches in flight become suspects. Returns how many
    files became suspects."""
    ids = list(job_ids)
    session.execute(
        update(SuspectFile)
        .where(SuspectFile.reading.is_(True))
        .values(crashes=SuspectFile.crashes + 1, reading=False, updated_at=utcnow())
    )
    if not ids:
        return 0
    in_flight = session.scalars(
        select(JobBatch.payload).where(
            JobBatch.job_id.in_(ids),
            JobBatch.phase == "catalog",
            JobBatch.state != "done",
            JobBatch.delivered_to.is_not(None),
        )
    )
    items = {path_key(i["path"]): i for payload in in_flight for i in json.loads(payload)}
    known = set(
        session.scalars(select(SuspectFile.path_key).where(SuspectFile.path_key.in_(items)))
    )
    new = [SuspectFile(path_key=k, path=i["path"], size=i.get("size")) for k, i in items.items()
           if k not in known]  # fmt: skip
    session.add_all(new)
    return len(new)


def of(session: Session, keys: list[str]) -> dict[str, SuspectFile]:
    """The suspects among ``keys`` (one query per batch; usually none)."""
    if not keys:
        return {}
    rows = session.scalars(select(SuspectFile).where(SuspectFile.path_key.in_(keys)))
    return {r.path_key: r for r in rows}


def to_skip(suspect: SuspectFile, size: int, mtime_ns: int) -> bool:
    """Whether the file, as it is now, has stopped the process often enough to be
    skipped. A changed file (re-exported, repaired) is tried again."""
    unchanged = suspect.size in (None, size) and suspect.mtime_ns in (None, mtime_ns)
    return unchanged and suspect.crashes >= LIMIT


def skip_reason(suspect: SuspectFile) -> str:
    times = "once" if suspect.crashes == 1 else f"{suspect.crashes} times"
    return (
        f"skipped: reading this file stopped Twinlens {times} (a decoder crash, or out of "
        "memory on a very large picture?); it is tried again once the file changes "
        "(touch it to try now)"
    )


@contextmanager
def reading(engine: Engine, key: str, size: int, mtime_ns: int) -> Iterator[None]:
    """Around the read of a suspect: marked before, each in a transaction of its own,
    so that the mark outlives a process that dies in the read; a read that ends (well
    or with an error: either way the process lives) clears the file of suspicion."""
    with _ALONE:
        with engine.begin() as conn:
            conn.execute(
                update(SuspectFile)
                .where(SuspectFile.path_key == key)
                .values(reading=True, size=size, mtime_ns=mtime_ns, updated_at=utcnow())
            )
        _current[key] = engine
        try:
            yield
        finally:
            _current.pop(key, None)
            with engine.begin() as conn:
                conn.execute(delete(SuspectFile).where(SuspectFile.path_key == key))


@atexit.register
def _unmark_at_exit() -> None:
    for key, engine in list(_current.items()):
        try:
            with engine.begin() as conn:
                conn.execute(
                    update(SuspectFile).where(SuspectFile.path_key == key).values(reading=False)
                )
        except Exception:  # noqa: BLE001 - exiting: the database may be gone too
            pass
