"""Small generated test files (Pillow): photo-like pictures with EXIF, fast to make; and
catalog rows for files that need not exist."""

from __future__ import annotations

import itertools
import random
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw


def picture(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A picture with structure (gradient, shapes) so pHashes of different seeds differ."""
    rng = random.Random(seed)
    w, h = size
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(10, w // 2), y0 + rng.randrange(10, h // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
    return img


def exif_for(
    taken: datetime | None = None,
    make: str | None = None,
    model: str | None = None,
    orientation: int | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if orientation:
        exif[0x0112] = orientation
    if taken:
        ifd = exif.get_ifd(0x8769)
        ifd[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    return exif


def write_jpeg(
    path: Path,
    seed: int,
    *,
    size: tuple[int, int] = (320, 240),
    quality: int = 90,
    taken: datetime | None = None,
    make: str | None = None,
    model: str | None = None,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(seed, size).save(path, "JPEG", quality=quality, exif=exif_for(taken, make, model))
    return path


def write_png(path: Path, seed: int, size: tuple[int, int] = (320, 240)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(seed, size).save(path, "PNG")
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


_inode = itertools.count(1000)


def file_row(root_id: int, path: str, **fields: Any) -> Any:
    """A catalog row (``core.models.File``) for ``path``: its keys derived from the path,
    a fresh inode, size 1000; ``fields`` set or override any column."""
    from core.models import File
    from core.paths import dir_key, path_key

    row: dict[str, Any] = {
        "path_key": path_key(path),
        "dir_key": dir_key(path),
        "size": 1000,
        "mtime_ns": 1,
        "device": 1,
        "inode": next(_inode),
    }
    return File(root_id=root_id, path=path, **{**row, **fields})


# (kind, format) of a catalog row by its extension, for grouping's tests
KIND_OF_EXT = {
    ".cr2": ("raw", "raw"),
    ".cr3": ("raw", "raw"),
    ".dng": ("raw", "raw"),
    ".jpg": ("image", "jpeg"),
    ".heic": ("image", "heic"),
    ".mov": ("video", "mov"),
    ".xmp": ("sidecar", "xmp"),
}


def media_row(root_id: int, path: str, **fields: Any) -> Any:
    """A present catalog row for ``path`` with the kind and format of its extension."""
    import os

    kind, fmt = KIND_OF_EXT[os.path.splitext(path)[1].lower()]
    return file_row(root_id, path, kind=kind, format=fmt, status="present", **fields)


def embedded_worker_lease(pid: int, seconds: float = 30) -> Any:
    """The worker lease (``core.models.Lease``) an embedded Twinlens process ``pid`` on
    this host holds while its worker threads run (core.leases), expiring in ``seconds``:
    a row to add. A live pid (``os.getppid()``) is another process alive beside this one."""
    import socket
    from datetime import timedelta

    from core import leases
    from core.models import Lease, utcnow

    holder = f"{socket.gethostname()}:{pid}"
    return Lease(
        name=leases.EMBEDDED_WORKERS + holder,
        holder=holder,
        expires_at=utcnow() + timedelta(seconds=seconds),
    )


def planned_scan(settings: Any, library: Path) -> str:
    """A scan of ``library`` started and planned (listed, batches queued) but not run:
    tests then drive its phases by hand to change the library in between."""
    from core import catalog, jobs
    from core.db import migrate, session_scope
    from workers import runtime

    migrate(settings.database_url)
    runtime.configure(settings)
    with session_scope(runtime.engine()) as s:
        root = jobs.get_or_create_root(s, str(library))
        job, _ = jobs.start_job(s, "scan", root=root)
        catalog.plan_scan(s, job.id, settings)
        return job.id


def run_phase(settings: Any, job_id: str) -> str:
    """Run every queued batch of a planned scan's current phase, then move on (as the
    scan actors would, without a broker); returns the phase the scan is in now."""
    from core import catalog
    from core.db import session_scope
    from core.models import Job
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        phase = s.get(Job, job_id).phase
        seqs = catalog.queued_batches(s, job_id)
    for seq in seqs:
        with session_scope(runtime.engine()) as s:
            catalog.process_batch(s, job_id, seq, settings)
    with session_scope(runtime.engine()) as s:
        return catalog.advance(s, job_id, phase, settings) or phase
