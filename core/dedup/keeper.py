"""Which member of a duplicate group to suggest keeping, and which rule decided.

Rules in order, each narrowing the candidates to those best on it; the rule that leaves
one candidate is the reason recorded; if several remain after all rules, the smallest
path wins ("tie: path"). Unknown values rank last (no dimensions = 0 pixels, no capture
time = latest, a format not in the preference list after all listed ones).

1. "intact": a copy that is not broken (``FileRecord.broken``: empty, or read and found
   truncated, corrupt or cut short). A broken copy (a RAW whose image data is missing
   still matches its twin by its embedded preview's pHash) is never suggested while an
   intact copy exists, whatever the rules after this one say (a preferred folder holding
   the broken copy included): trashing the intact file would leave the photographer with
   the broken one. A copy whose last read failed (``read_failures``: an I/O error, a
   permission, a share that timed out, a file skipped after it crashed the reader) says
   nothing about its content: it is judged on the facts of its last good read, which the
   catalog keeps, and one EIO on a rescan does not hand the group to a smaller copy.
2. "resolution": most pixels. Never suggest trashing the only full-size copy.
3. "capture_time": a copy that still carries its capture time (then the earliest). An
   EXIF-stripped copy has lost what Immich sorts and places it by.
4. "folder": the first of TWINLENS_PREFERRED_FOLDERS holding a copy: the user said so,
   and says it about the whole library (a Takeout export, a backup): no file group in a
   folder the user did not prefer overrides it.
5. "file_group": a copy that belongs to a file group (``file_groups``: RAW+JPEG, Live
   Photo, edit, sidecars; core.grouping makes them), most of all one whose group holds a
   RAW, a video or a sidecar that is part of the picture (XMP, AAE: edits and ratings),
   then the one whose group has more such members. Those files belong with that copy by
   name and folder: keeping a byte copy elsewhere (a ``Backup/`` twin of a RAW+JPEG+XMP
   shoot) and trashing the grouped one breaks the pair, leaves the sidecar describing
   nothing and the video without its still; in a look-alike group it would trash the
   stack's cover for a loose copy. A JSON metadata file (``IMG_1.JPG.json``: what
   Google Takeout writes beside every photo it exports) binds nothing: it is not counted,
   so a Takeout photo with its JSON ranks as a loose copy, below the library's JPEG of a
   RAW+JPEG pair or its Live Photo, and a Takeout still+MOV+JSON no higher than the
   library's HEIC+MOV. It ranks after "capture_time" (never trash the only full-size
   copy, nor keep a copy that lost its date for a group's sake) and after "folder", before
   every rule that only breaks ties between equally good pictures.
6. "format": TWINLENS_FORMAT_PREFERENCE.
7. "jpeg_quality": the JPEG encoded at the higher quality, when both copies' qualities are
   known (``jpeg_quality``: estimated from the quantisation tables at catalog time) and
   differ by more than ``QUALITY_SLACK``: a Q100 re-export of a shot is kept over the
   Q60 export of it made years before (whatever the dates: exiftool and Takeout helpers
   set a file's mtime to its capture time), and a bigger Q82 re-save with full-resolution
   chroma (4:4:4) is not kept over the camera's Q85 original. A copy whose metadata a tool
   rewrote in place (keywords written into the JPEG) has the same tables: this rule ties
   and "size" keeps it over its untouched twin. Where a quality is unknown (rows
   cataloged before it was stored, formats other than JPEG) the rule ties too, and the
   size decides as before. What it cannot see: a re-encode at a finer quality than its
   source (a Pillow Q90 re-save of a phone's Q85 JPEG) is no better than the source but
   has the higher quality, and is kept.
8. "size": the bigger file. Bytes compare quality only within one format and one
   encoder: a PNG conversion of a JPEG is several times bigger and no better, a JPEG
   export of a HEIC is bigger and loses its HDR; ranked earlier, size left the rules
   after it nothing to decide in a perceptual group, whose members' sizes always differ.
9. "name": fewest copy marks in the path ("x copy.jpg", "x - Copy (2).jpg", "Copy of
   x.jpg", "x (1).jpg", a folder "2019 - Copy", and a folder of copies: "Backup",
   "Backups", "Takeout", "takeout-2024…"). Byte copies tie on every rule above, and
   the smallest path alone would keep "IMG_1234 copy.JPG" (a space sorts before ".") and
   trash the original, the one its RAW, its sidecar and Immich's albums point at; or keep
   "Takeout/…/IMG_1.JPG" over "iPhone/IMG_1.JPG" (capitals sort first). A library kept
   wholly under such a folder (a NAS share named "Backup") marks every copy alike.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from core.records import FileRecord

DEFAULT_FORMAT_PREFERENCE: tuple[str, ...] = ("raw", "heic", "jpeg", "png", "tiff", "webp")
# JPEG qualities this close are one quality for the "jpeg_quality" rule: the estimate of a
# table libjpeg did not make is approximate.
QUALITY_SLACK = 2

_ALIASES = {
    "jpg": "jpeg",
    "jpe": "jpeg",
    "heif": "heic",
    "hif": "heic",
    "tif": "tiff",
}
_RAW_EXTS = frozenset(
    "dng cr2 cr3 crw nef nrw arw srf sr2 orf rw2 raf pef srw x3f 3fr iiq rwl erf kdc mrw".split()
)


def format_of(f: FileRecord) -> str:
    """Normalised format name: 'raw' for any camera RAW, jpg->jpeg, heif->heic, ..."""
    if f.kind == "raw":
        return "raw"
    fmt = (f.format or "").lower()
    if not fmt:
        fmt = os.path.splitext(f.path)[1].lstrip(".").lower()
    if fmt in _RAW_EXTS:
        return "raw"
    return _ALIASES.get(fmt, fmt)


# The names file managers and browsers give a copy: "x copy", "x copy 2" (macOS), "x -
# Copy", "x - Copy (2)", "Copy of x" (Windows), "x (1)", "x(1)" (a download saved twice,
# Google Takeout). Numbered up to 999: four digits in brackets are a year ("Italy (2019)"),
# a photographer's name for a folder, not a copy.
_COPY_MARK = re.compile(r"^copy of |[ _-]+copy(?: \(?\d+\)?)?$| ?\(\d{1,3}\)$", re.IGNORECASE)
# Folders that hold copies of a library: a backup, Google's Takeout export (unpacked as
# "Takeout/", often inside "takeout-20240101T…-001/"). A folder, never a file's name.
_COPIES_FOLDER = re.compile(r"^(?:backups?|takeout)(?:$|[ _.-])", re.IGNORECASE)


def copy_marks(path: str) -> int:
    """How many of ``path``'s components are named as a copy (file stem and folders), or
    as a folder of copies (a backup, a Takeout export)."""
    parts = [p for p in path.split(os.sep) if p]
    if not parts:
        return 0
    stem = os.path.splitext(parts[-1])[0]
    folders = parts[:-1]
    return sum(1 for p in [*folders, stem] if _COPY_MARK.search(p)) + sum(
        1 for p in folders if _COPIES_FOLDER.match(p)
    )


# Members whose presence makes a file group more than a look-alike pair: trashing the copy
# they belong with leaves a RAW without its JPEG, a Live Photo video without its still, a
# sidecar (XMP, AAE) describing nothing.
_BOUND_KINDS = frozenset({"raw", "video", "sidecar"})
# The kind core.dedup.queries.file_group_kinds gives a JSON sidecar (Google Takeout's
# ``IMG_1.JPG.json``): metadata an export wrote beside every photo, which binds nothing.
METADATA = "json"


def file_group_rank(kinds: Sequence[str] | None) -> tuple[int, int]:
    """Rank (smaller is better) of a copy by the file group it belongs to, given the kinds
    of that group's members (itself included; None or empty: it belongs to none): one that
    holds a RAW, a video or a sidecar first, then any other group, then no group; within
    a tier, the bigger group first. JSON metadata (``METADATA``) is not counted: a copy
    whose group is only itself and its JSON ranks as one in no group."""
    members = [k for k in kinds or () if k != METADATA]
    if len(members) < 2:
        return (2, 0)
    return (0 if _BOUND_KINDS.intersection(members) else 1, -len(members))


def _in_folder(path: str, folder: str) -> bool:
    folder = folder.rstrip(os.sep) or os.sep
    return path == folder or path.startswith(folder if folder == os.sep else folder + os.sep)


def choose_keeper(
    members: Sequence[FileRecord],
    format_preference: Sequence[str] = DEFAULT_FORMAT_PREFERENCE,
    preferred_folders: Iterable[str | os.PathLike[str]] = (),
    file_groups: Mapping[int, Sequence[str]] | None = None,
) -> tuple[int, str]:
    """(keeper file id, deciding rule) for a group of two or more files.

    ``file_groups``: file id -> the kinds of the members of the file group it belongs to
    (itself included); a file not in it belongs to none (see "file_group")."""
    if not members:
        raise ValueError("choose_keeper needs at least one member")
    prefs = [_ALIASES.get(p.lower(), p.lower()) for p in format_preference]
    folders = [os.fspath(p) for p in preferred_folders]
    latest = (1, datetime.max)
    groups = file_groups or {}

    def fmt_rank(f: FileRecord) -> int:
        fmt = format_of(f)
        return prefs.index(fmt) if fmt in prefs else len(prefs)

    def folder_rank(f: FileRecord) -> int:
        for k, folder in enumerate(folders):
            if _in_folder(f.path, folder):
                return k
        return len(folders)

    rules: tuple[tuple[str, Callable[[list[FileRecord]], list[FileRecord]]], ...] = (
        ("intact", _best(lambda f: f.broken)),
        ("resolution", _best(lambda f: -f.pixels)),
        ("capture_time", _best(lambda f: (0, f.taken_at) if f.taken_at else latest)),
        ("folder", _best(folder_rank)),
        ("file_group", _best(lambda f: file_group_rank(groups.get(f.id)))),
        ("format", _best(fmt_rank)),
        ("jpeg_quality", best_jpeg_quality),
        ("size", _best(lambda f: -f.size)),
        ("name", _best(lambda f: copy_marks(f.path))),
    )
    cands = sorted(members, key=lambda f: (f.path, f.id))
    if len(cands) == 1:
        return cands[0].id, "only"
    for name, narrow in rules:
        cands = narrow(cands)
        if len(cands) == 1:
            return cands[0].id, name
    return cands[0].id, "tie: path"


def _best(key: Callable[[FileRecord], Any]) -> Callable[[list[FileRecord]], list[FileRecord]]:
    """A rule that keeps the candidates best (smallest) on ``key``."""

    def narrow(cands: list[FileRecord]) -> list[FileRecord]:
        values = [key(c) for c in cands]
        best = min(values)
        return [c for c, v in zip(cands, values, strict=True) if v == best]

    return narrow


def best_jpeg_quality(cands: list[FileRecord]) -> list[FileRecord]:
    """The "jpeg_quality" rule: leaves out every copy whose known quality is more than
    ``QUALITY_SLACK`` below the best known one; copies of unknown quality stay (nothing
    says they are worse), and with fewer than two qualities known it leaves them all."""
    known = [c.jpeg_quality for c in cands if c.jpeg_quality is not None]
    if len(known) < 2:
        return cands
    best = max(known)
    return [c for c in cands if c.jpeg_quality is None or best - c.jpeg_quality <= QUALITY_SLACK]
