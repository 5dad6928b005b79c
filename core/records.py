"""Plain data that the business rules (grouping, dedup, keeper choice) work on.

Rules never see ORM objects or JSON: queries turn rows into these records, rules
return plain results, and the services write them back. Paths are ``str`` made with
``os.fsdecode`` (surrogateescape), so a name that is not valid UTF-8 round-trips
losslessly through ``os.fsencode``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

# File kinds in the catalog.
KINDS = ("raw", "image", "video", "sidecar", "other")


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: int
    path: str  # absolute, os.fsdecode'd
    kind: str  # one of KINDS
    size: int
    format: str | None = (
        None  # detected content format: jpeg, heic, png, tiff, webp, avif, raw, mov, mp4, xmp, ...
    )
    sha256: str | None = None  # hex
    phash: str | None = None  # 16 hex digits (64-bit imagehash pHash)
    colour: str | None = None  # 96 hex digits: mean RGB of a 4x4 grid (core.media.colour)
    taken_at: datetime | None = (
        None  # naive wall-clock capture time (EXIF DateTimeOriginal + subsec)
    )
    taken_offset: str | None = None  # "+02:00" when EXIF has OffsetTimeOriginal
    make: str | None = None
    model: str | None = None
    serial: str | None = None
    width: int | None = None
    height: int | None = None
    content_id: str | None = None  # Apple ContentIdentifier (Live Photos)
    device: int | None = None
    inode: int | None = None
    # Why the catalog could not read the file whole (zero-byte, truncated, unreadable, a
    # RAW whose image data is cut short), or why its last read failed; None for an intact
    # file read without trouble. A broken file may still carry a pHash (from an intact
    # embedded preview) and so match its intact copy.
    error: str | None = None
    # Reads of the file that failed in a row (an I/O error, a permission, a share that
    # timed out, a file skipped after it crashed the reader): ``error`` then says why the
    # last read failed, not what is wrong with the file, and the other facts are those of
    # the last read that succeeded (core.catalog keeps them).
    read_failures: int = 0
    # A JPEG's quality (1-100, libjpeg's scale) estimated from its quantisation tables;
    # None for other formats and for rows cataloged before it was stored.
    jpeg_quality: int | None = None

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)

    @property
    def broken(self) -> bool:
        """The file is empty, or the catalog read it and found its content at fault
        (truncated, corrupt, cut short): never the copy to keep nor the cover to show
        while an intact one exists. A file whose last read failed (``read_failures``:
        the disk, the share or a permission, not the file) is not broken: it is what
        its last good read found."""
        return self.size == 0 or (self.error is not None and not self.read_failures)
