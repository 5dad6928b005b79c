"""Is a RAW, video or HEIF file all there? Its own directories, checked against its size.

A RAW file cut short (an interrupted copy, a card pulled too soon, a partial sync) often
still opens: its embedded preview sits near the start and decodes, so its pHash and
EXIF look healthy. What is missing is the sensor data (or the video frames) further on.
The file's own directories say where that data ends; when that is past the end of the
file, the file is truncated.

Checked, by reading directories only (a few small reads, seek + read):

- TIFF-based RAW (DNG, NEF, NRW, ARW, SR2, CR2, PEF, SRW, 3FR, ERF, ...; ORF and RW2
  with their own magic numbers): IFD0 and its chain, SubIFDs (330) and the EXIF IFD;
  the data each one points at (StripOffsets/StripByteCounts, TileOffsets/TileByteCounts,
  JPEGInterchangeFormat/Length, RW2's JpgFromRaw) must end inside the file, give or
  take ``overrun_slack`` for the last of it. Maker notes are not entered. BigTIFF is not
  walked.
- ISO BMFF (MOV, MP4, 3GP, CR3, HEIF, AVIF): every top-level box (32-bit size, 64-bit
  largesize, size 0 = to the end of the file) must end inside the file.

Not checked, knowingly (nothing is said): CRW (CIFF's root heap runs to the end of the
file by definition, so there is no length to compare), RAF (documented header offsets,
but no intact RAF at hand to check the reading against), X3F, MRW, AVI, Matroska,
MPEG-TS; an ISO BMFF file of more than MAX_BOXES top-level boxes (a fragmented MP4: one
read per box would add up on a NAS). A directory that cannot be read or makes no sense
says nothing either, nor does a pointer to a directory past the end (a cut before the
directories themselves goes unseen here; the decoders fail on it): the check never
raises, and never calls a malformed file truncated on a guess.
"""

from __future__ import annotations

import struct
from typing import Protocol

# Bounds that keep a malformed file from costing more than a few small reads.
MAX_IFDS = 64  # directories visited per file (chain + SubIFDs + EXIF)
MAX_ENTRIES = 1024  # entries in one IFD (real ones hold < 100)
MAX_VALUES = 1 << 16  # strips or tiles in one array (a 100 MP tiled DNG holds ~2,000)
MAX_BOXES = 1024  # top-level boxes walked (real files hold < 10; a fragmented MP4, more)
READ_BUDGET = 1 << 20  # bytes one check may read in all

_TIFF_MAGIC = {42, 0x55, 0x4F52, 0x5352}  # TIFF, RW2 ("IIU"), ORF ("IIRO"/"MMOR", "IIRS")
_RW2_MAGIC = 0x55
# (offsets tag, byte counts tag): strips, tiles, JPEG (thumbnail or preview)
_DATA_PAIRS = ((273, 279), (324, 325), (513, 514))
_SUB_IFDS, _EXIF_IFD = 330, 34665
_RW2_JPG_FROM_RAW = 0x2E  # an UNDEFINED blob: its value's offset and count are its extent
_INTEGER = {3: ("H", 2), 4: ("I", 4), 13: ("I", 4)}  # SHORT, LONG, IFD
# What an ISO BMFF / QuickTime file starts with (old QuickTime files have no ftyp).
_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


class Seekable(Protocol):
    """What the check reads through: an open binary file, ``io.BytesIO``, a wrapper."""

    def read(self, n: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


def truncation(fh: Seekable, size: int, what: str) -> str | None:
    """A photographer-readable reason when the file ends before the data its own
    directories point at (``what`` names that data: "RAW data", "video data"), else
    None: complete, or not a format (or not a file) this module can tell about."""
    end = data_end(fh, size)
    if end is None or end <= size:
        return None
    return f"truncated: the file ends at {size:,} bytes but its {what} runs to {end:,}"


def data_end(fh: Seekable, size: int) -> int | None:
    """Where the data named by the file's directories ends (possibly past ``size``), or
    None: a container not checked here, no data named, or directories that make no
    sense. Never raises for what the file holds."""
    reader = _Reader(fh)
    try:
        head = reader.at(0, 8)
        if head[:2] in (b"II", b"MM"):
            return _tiff_end(reader, size, head)
        if head[4:8] in _FIRST_BOXES:
            return _bmff_end(reader, size)
    except (OSError, ValueError, OverflowError, struct.error):
        return None  # unreadable, absurd, or over the read budget: no claim either way
    return None


class _Reader:
    """Seek + read with a budget: past READ_BUDGET bytes the check gives up."""

    def __init__(self, fh: Seekable) -> None:
        self._fh = fh
        self.left = READ_BUDGET

    def at(self, offset: int, n: int) -> bytes:
        if n > self.left:
            raise ValueError("read budget spent")
        self._fh.seek(offset)
        data = self._fh.read(n)
        self.left -= len(data)
        return data


def _tiff_end(reader: _Reader, size: int, head: bytes) -> int | None:
    """End of the furthest image data named by IFD0, its chain, SubIFDs and the EXIF
    IFD; None when none is named or the header is no TIFF flavour walked here."""
    order = "<" if head[:2] == b"II" else ">"
    magic, first = struct.unpack(order + "HI", head[2:8])
    if magic not in _TIFF_MAGIC:
        return None  # BigTIFF (43), CRW's "II" + header length, anything else
    end: int | None = None
    starts_past = False  # some data begins at or past the end: cut, whatever the slack
    queue: list[int] = [first]
    seen: set[int] = set()
    while queue and len(seen) < MAX_IFDS:
        offset = queue.pop(0)
        if offset in seen or offset < 8 or offset + 2 > size:
            continue  # a loop, or a pointer out of the file: not evidence either way
        seen.add(offset)
        ifd = _read_ifd(reader, order, offset)
        if ifd is None:
            continue
        entries, next_ifd = ifd
        for offsets_tag, counts_tag in _DATA_PAIRS:
            offsets = _integers(reader, order, entries.get(offsets_tag))
            counts = _integers(reader, order, entries.get(counts_tag))
            if offsets and counts and len(offsets) == len(counts):
                pairs = [(o, c) for o, c in zip(offsets, counts, strict=True) if o and c]
                if pairs:
                    end = max(end or 0, *(o + c for o, c in pairs))
                    starts_past = starts_past or any(o >= size for o, _ in pairs)
        blob = entries.get(_RW2_JPG_FROM_RAW)
        if magic == _RW2_MAGIC and blob is not None and blob[0] in (1, 7) and blob[1] > 4:
            end = max(end or 0, struct.unpack(order + "I", blob[2])[0] + blob[1])
        for tag in (_SUB_IFDS, _EXIF_IFD):
            queue.extend((_integers(reader, order, entries.get(tag)) or [])[:MAX_IFDS])
        if next_ifd:
            queue.append(next_ifd)
    if end is not None and end > size and not starts_past and end - size <= overrun_slack(end):
        return size  # the last strip or tile a little longer than the file: not a cut
    return end


def overrun_slack(end: int) -> int:
    """How far the last strip or tile may run past the end of an intact TIFF-based RAW.
    Some cameras write a last strip's byte count a little past the file (rawspeed trims
    Sony's to the file); a healthy RAW called truncated would lose to its own JPEG
    export as the copy to keep. A cut that leaves the last strip's start inside the file
    must miss more than this (0.4%, at most 64 KiB) to be called one."""
    return min(1 << 16, end // 256)


def _bmff_end(reader: _Reader, size: int) -> int | None:
    """End of the last top-level box; None when a box header makes no sense (the walk
    lost track: no claim either way)."""
    pos = 0
    for _ in range(MAX_BOXES):
        if pos + 8 > size:
            return pos  # fewer bytes left than a box header: padding or a cut, unknown
        header = reader.at(pos, 16)
        box_size, typ = struct.unpack(">I4s", header[:8])
        if not all(0x20 <= b < 0x7F for b in typ):
            return None  # no box type: not a box
        header_len = 8
        if box_size == 1:
            if len(header) < 16:
                return pos + 16  # its 64-bit size is cut off
            box_size = struct.unpack(">Q", header[8:16])[0]
            header_len = 16
        elif box_size == 0:
            return size  # "runs to the end of the file"
        if box_size < header_len:
            return None
        pos += box_size
        if pos >= size:
            return pos
    return None  # more boxes than walked (a fragmented MP4): say nothing


Entry = tuple[int, int, bytes]  # (type, count, the 4-byte value or offset field)


def _read_ifd(reader: _Reader, order: str, offset: int) -> tuple[dict[int, Entry], int] | None:
    """(tag -> entry, offset of the next IFD or 0), or None for an unreadable IFD."""
    raw = reader.at(offset, 2)
    if len(raw) < 2:
        return None
    (n,) = struct.unpack(order + "H", raw)
    if n == 0 or n > MAX_ENTRIES:
        return None
    body = reader.at(offset + 2, 12 * n + 4)
    if len(body) < 12 * n:
        return None
    entries: dict[int, Entry] = {}
    for i in range(n):
        tag, typ, count = struct.unpack_from(order + "HHI", body, 12 * i)
        entries.setdefault(tag, (typ, count, body[12 * i + 8 : 12 * i + 12]))
    next_ifd = struct.unpack(order + "I", body[12 * n :])[0] if len(body) == 12 * n + 4 else 0
    return entries, next_ifd


def _integers(reader: _Reader, order: str, entry: Entry | None) -> list[int] | None:
    """The SHORT/LONG values of an entry (inline or out of line), or None."""
    if entry is None:
        return None
    typ, count, raw = entry
    if typ not in _INTEGER or not 0 < count <= MAX_VALUES:
        return None
    code, width = _INTEGER[typ]
    nbytes = width * count
    if nbytes <= 4:
        data = raw[:nbytes]
    else:
        data = reader.at(struct.unpack(order + "I", raw)[0], nbytes)
        if len(data) < nbytes:
            return None  # the array itself lies past the end: unreadable, not a measure
    return list(struct.unpack(f"{order}{count}{code}", data))
