"""EXIF essentials without exiftool: capture time, camera, serial, orientation, and
Apple's ContentIdentifier (the key that ties a Live Photo's still to its video).

Sources: Pillow's ``getexif`` for JPEG/PNG/WebP/TIFF and (through pillow-heif) HEIC;
Pillow's TIFF directory reader on the open file for TIFF-based RAW (NEF, ARW, DNG,
CR2, ORF, RW2 ...), reading only the directories; the CMT1/CMT2 boxes of CR3; and the
QuickTime ``keys``/``ilst`` metadata of MOV/MP4 for Live Photo videos.

Sample libraries contain fuzzed files: every public function here swallows parsing
errors and returns what it could read, never raising for bad input.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from PIL import Image

TAG_ORIENTATION = 0x0112
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_EXIF_IFD = 0x8769
TAG_DATETIME_ORIGINAL = 0x9003
TAG_DATETIME_DIGITIZED = 0x9004
TAG_OFFSET_ORIGINAL = 0x9011
TAG_OFFSET_DIGITIZED = 0x9012
TAG_SUBSEC_ORIGINAL = 0x9291
TAG_SUBSEC_DIGITIZED = 0x9292
TAG_MAKERNOTE = 0x927C
TAG_BODY_SERIAL = 0xA431
TAG_CAMERA_SERIAL = 0xC62F  # DNG CameraSerialNumber
APPLE_CONTENT_ID = 0x0011  # Apple MakerNote ContentIdentifier (formerly MediaGroupUUID)

_QT_EPOCH = datetime(1904, 1, 1)
_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_ISO_RE = re.compile(
    r"^(\d{4})[-:](\d{2})[-:](\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:\.(\d+))?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)


# The metadata fields both ExifFacts and the catalog's FileFacts carry.
FACT_FIELDS = (
    "taken_at",
    "taken_offset",
    "make",
    "model",
    "serial",
    "orientation",
    "content_id",
    "width",
    "height",
)


def fill_missing(target: Any, source: Any) -> None:
    """Copy each of FACT_FIELDS from ``source`` where ``target`` has none yet."""
    for name in FACT_FIELDS:
        if getattr(target, name) is None and getattr(source, name) is not None:
            setattr(target, name, getattr(source, name))


@dataclass
class ExifFacts:
    taken_at: datetime | None = None
    taken_offset: str | None = None
    make: str | None = None
    model: str | None = None
    serial: str | None = None
    orientation: int | None = None
    content_id: str | None = None
    width: int | None = None  # only where the metadata is the only source (RAW, video)
    height: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: ExifFacts) -> None:
        """Fill fields that are still empty from ``other``."""
        fill_missing(self, other)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.split(b"\x00", 1)[0].decode("utf-8", "replace")
    if isinstance(value, tuple | list):
        value = value[0] if value else None
        return _text(value)
    text = str(value).replace("\x00", "").strip()
    return text or None


def normalize_offset(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    if text == "Z":
        return "+00:00"
    m = _OFFSET_RE.match(text)
    if not m:
        return None
    hours, minutes = int(m.group(2)), int(m.group(3))
    if hours > 14 or minutes > 59:
        return None
    return f"{m.group(1)}{m.group(2)}:{m.group(3)}"


def parse_datetime(
    value: Any, subsec: Any = None, offset: Any = None
) -> tuple[datetime | None, str | None]:
    """EXIF 'YYYY:MM:DD HH:MM:SS' (or ISO 8601) + sub-seconds + offset ->
    (naive wall-clock datetime with microseconds, '+HH:MM' or None). Zeros and
    garbage give (None, None)."""
    text = _text(value)
    if not text:
        return None, None
    m = _ISO_RE.match(text)
    if not m:
        return None, None
    try:
        year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
        second = int(m.group(6) or 0)
        if year == 0:
            return None, None
        dt = datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return None, None
    digits = m.group(7) or ""
    sub = _text(subsec)
    if sub and sub.strip().isdigit():
        digits = sub.strip()
    if digits:
        dt = dt.replace(microsecond=int((digits + "000000")[:6]))
    return dt, normalize_offset(offset) or normalize_offset(m.group(8))


def apple_content_id(makernote: Any) -> str | None:
    """ContentIdentifier from an Apple MakerNote ("Apple iOS\\0", version, "MM", IFD)."""
    if not isinstance(makernote, bytes | bytearray) or not makernote.startswith(b"Apple iOS\x00"):
        return None
    try:
        endian = ">" if makernote[12:14] == b"MM" else "<"
        count = struct.unpack_from(endian + "H", makernote, 14)[0]
        for i in range(min(count, 512)):
            tag, typ, n, raw = struct.unpack_from(endian + "HHI4s", makernote, 16 + 12 * i)
            if tag != APPLE_CONTENT_ID or typ != 2:
                continue
            if n <= 4:
                data = raw[:n]
            else:
                off = struct.unpack(endian + "I", raw)[0]  # relative to the MakerNote start
                data = bytes(makernote[off : off + n])
            return _text(data)
    except struct.error:
        return None
    return None


def facts_from_exif(exif: Image.Exif | None) -> ExifFacts:
    """ExifFacts from a Pillow Exif mapping (IFD0 + Exif IFD)."""
    facts = ExifFacts()
    if exif is None:
        return facts
    try:
        ifd0 = dict(exif)
    except Exception:
        return facts
    try:
        sub = exif.get_ifd(TAG_EXIF_IFD) or {}
    except Exception:
        sub = {}
    facts.make = _safe(lambda: _text(ifd0.get(TAG_MAKE)))
    facts.model = _safe(lambda: _text(ifd0.get(TAG_MODEL)))
    orientation = _safe(lambda: int(ifd0.get(TAG_ORIENTATION)))  # type: ignore[arg-type]
    facts.orientation = orientation if orientation and 1 <= orientation <= 8 else None
    taken = _safe(
        lambda: parse_datetime(
            sub.get(TAG_DATETIME_ORIGINAL),
            sub.get(TAG_SUBSEC_ORIGINAL),
            sub.get(TAG_OFFSET_ORIGINAL),
        )
    )
    if not taken or taken[0] is None:
        taken = _safe(
            lambda: parse_datetime(
                sub.get(TAG_DATETIME_DIGITIZED),
                sub.get(TAG_SUBSEC_DIGITIZED),
                sub.get(TAG_OFFSET_DIGITIZED),
            )
        )
    if taken:
        facts.taken_at, facts.taken_offset = taken
    facts.serial = _safe(lambda: _text(sub.get(TAG_BODY_SERIAL))) or _safe(
        lambda: _text(ifd0.get(TAG_CAMERA_SERIAL)) or _text(ifd0.get(TAG_BODY_SERIAL))
    )
    facts.content_id = _safe(lambda: apple_content_id(sub.get(TAG_MAKERNOTE)))
    return facts


def facts_from_image(img: Image.Image) -> ExifFacts:
    """ExifFacts of an opened Pillow image (JPEG, HEIC via pillow-heif, PNG, TIFF, WebP)."""
    facts = ExifFacts()
    try:
        exif = img.getexif()
    except Exception:
        exif = None
    facts = facts_from_exif(exif)
    if facts.taken_at is None:
        facts.merge(_facts_from_xmp(img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")))
    return facts


# Immich (through exiftool) ranks DateTimeOriginal, then CreateDate, then IPTC's
# DateTimeCreated; XMP carries the same three when EXIF lacks them. ModifyDate is never
# a capture time, so it is not used (the catalog keeps mtime separately).
_XMP_DATE_TAGS = (
    b"exif:DateTimeOriginal",
    b"xmp:CreateDate",
    b"xap:CreateDate",
    b"photoshop:DateCreated",
)


def _facts_from_xmp(xmp: Any) -> ExifFacts:
    """Capture date from an XMP packet (attribute or element form)."""
    facts = ExifFacts()
    if not isinstance(xmp, bytes | bytearray | str):
        return facts
    data = xmp.encode("utf-8", "replace") if isinstance(xmp, str) else bytes(xmp)
    for tag in _XMP_DATE_TAGS:
        m = re.search(re.escape(tag) + rb"""\s*(?:=\s*["']([^"']+)["']|>([^<]+)<)""", data)
        if not m:
            continue
        value = (m.group(1) or m.group(2) or b"").decode("utf-8", "replace").strip()
        taken = _safe(lambda v=value: parse_datetime(v))
        if taken and taken[0] is not None:
            facts.taken_at, facts.taken_offset = taken
            break
    return facts


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None


# --- TIFF-based RAW ---------------------------------------------------------------


def facts_from_tiff_fp(fp: BinaryIO) -> ExifFacts:
    """Read IFD0 and the Exif IFD of a TIFF-structured file through ``fp`` (seeks and
    reads only the directories and their values, not the image data)."""
    try:
        fp.seek(0)
        exif = Image.Exif()
        exif.load_from_fp(fp)
        facts = facts_from_exif(exif)
    except Exception:
        return ExifFacts()
    return facts


# --- ISO BMFF (CR3, MOV, MP4) -----------------------------------------------------

_CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts", b"dinf"}


def iter_boxes(fp: BinaryIO, start: int, end: int, limit: int = 4096):
    """Yield (type, payload offset, payload size, box offset) of boxes in [start, end)."""
    pos = start
    for _ in range(limit):
        if pos + 8 > end:
            return
        fp.seek(pos)
        header = fp.read(8)
        if len(header) < 8:
            return
        size, typ = struct.unpack(">I4s", header)
        header_len = 8
        if size == 1:
            ext = fp.read(8)
            if len(ext) < 8:
                return
            size = struct.unpack(">Q", ext)[0]
            header_len = 16
        elif size == 0:
            size = end - pos
        if size < header_len or pos + size > end + 8:  # tolerate a slightly short last box
            return
        yield typ, pos + header_len, min(size, end - pos) - header_len, pos
        pos += size


def _read(fp: BinaryIO, offset: int, size: int, cap: int = 16 << 20) -> bytes:
    if size < 0 or size > cap:
        return b""
    fp.seek(offset)
    return fp.read(size)


def facts_from_cr3(fp: BinaryIO, file_size: int) -> ExifFacts:
    """Canon CR3: TIFF directories in moov/uuid(Canon)/CMT1 (IFD0) and CMT2 (Exif IFD)."""
    facts = ExifFacts()
    try:
        for typ, off, size, _ in iter_boxes(fp, 0, file_size):
            if typ != b"moov":
                continue
            for t2, o2, s2, _ in iter_boxes(fp, off, off + size):
                if t2 != b"uuid" or _read(fp, o2, 16) != _CANON_UUID:
                    continue
                for t3, o3, s3, _ in iter_boxes(fp, o2 + 16, o2 + s2):
                    if t3 == b"CMT1":
                        exif = Image.Exif()
                        exif.load(_read(fp, o3, s3))
                        facts.merge(facts_from_exif(exif))
                    elif t3 == b"CMT2":
                        exif = Image.Exif()
                        exif.load(_read(fp, o3, s3))
                        # CMT2's first directory *is* the Exif IFD.
                        sub = dict(exif)
                        taken = parse_datetime(
                            sub.get(TAG_DATETIME_ORIGINAL),
                            sub.get(TAG_SUBSEC_ORIGINAL),
                            sub.get(TAG_OFFSET_ORIGINAL),
                        )
                        if facts.taken_at is None:
                            facts.taken_at, facts.taken_offset = taken
                        facts.serial = facts.serial or _text(sub.get(TAG_BODY_SERIAL))
            break
    except OSError:
        raise  # the file could not be read: not a parse problem to hide
    except Exception:
        pass
    return facts


def _parse_keys_ilst(fp: BinaryIO, meta_off: int, meta_size: int) -> dict[str, str]:
    """QuickTime metadata: 'keys' names the items that 'ilst' holds by 1-based index."""
    # QuickTime's meta is a plain box, ISO's a full box with 4 bytes of version/flags.
    probe = _read(fp, meta_off, 12)
    if len(probe) >= 12 and probe[4:8] not in (b"hdlr", b"keys", b"ilst"):
        meta_off, meta_size = meta_off + 4, meta_size - 4
    keys: list[str] = []
    values: dict[str, str] = {}
    ilst: tuple[int, int] | None = None
    for typ, off, size, _ in iter_boxes(fp, meta_off, meta_off + meta_size):
        if typ == b"keys":
            data = _read(fp, off, size, cap=1 << 20)
            if len(data) < 8:
                continue
            count = struct.unpack_from(">I", data, 4)[0]
            pos = 8
            for _ in range(min(count, 4096)):
                if pos + 8 > len(data):
                    break
                ksize = struct.unpack_from(">I", data, pos)[0]
                if ksize < 8:
                    break
                keys.append(data[pos + 8 : pos + ksize].decode("utf-8", "replace"))
                pos += ksize
        elif typ == b"ilst":
            ilst = (off, size)
    if ilst is None:
        return values
    for typ, off, size, _ in iter_boxes(fp, ilst[0], ilst[0] + ilst[1]):
        index = struct.unpack(">I", typ)[0]
        if not 1 <= index <= len(keys):
            continue
        for dtyp, doff, dsize, _ in iter_boxes(fp, off, off + size):
            if dtyp != b"data" or dsize < 8:
                continue
            payload = _read(fp, doff, dsize, cap=1 << 20)
            type_code = struct.unpack_from(">I", payload, 0)[0] & 0xFFFFFF
            if type_code in (1, 4):  # UTF-8 / UTF-16 text
                enc = "utf-8" if type_code == 1 else "utf-16-be"
                values[keys[index - 1]] = payload[8:].decode(enc, "replace").strip("\x00 ")
            break
    return values


def facts_from_quicktime(fp: BinaryIO, file_size: int) -> ExifFacts:
    """MOV/MP4: creation time (Apple's local creationdate, else mvhd UTC), make, model and
    Live Photo ContentIdentifier from moov/meta keys."""
    facts = ExifFacts()
    try:
        for typ, off, size, _ in iter_boxes(fp, 0, file_size):
            if typ != b"moov":
                continue
            meta: dict[str, str] = {}
            mvhd_time: datetime | None = None
            for t2, o2, s2, _ in iter_boxes(fp, off, off + size):
                if t2 == b"meta":
                    meta.update(_parse_keys_ilst(fp, o2, s2))
                elif t2 == b"udta":
                    for t3, o3, s3, _ in iter_boxes(fp, o2, o2 + s2):
                        if t3 == b"meta":
                            meta.update(_parse_keys_ilst(fp, o3, s3))
                elif t2 == b"mvhd":
                    data = _read(fp, o2, min(s2, 32))
                    if data[:1] == b"\x01" and len(data) >= 12:
                        secs = struct.unpack_from(">Q", data, 4)[0]
                    elif len(data) >= 8:
                        secs = struct.unpack_from(">I", data, 4)[0]
                    else:
                        secs = 0
                    if secs:
                        mvhd_time = _QT_EPOCH + timedelta(seconds=secs)
            facts.content_id = meta.get("com.apple.quicktime.content.identifier") or None
            facts.make = meta.get("com.apple.quicktime.make") or None
            facts.model = meta.get("com.apple.quicktime.model") or None
            created = meta.get("com.apple.quicktime.creationdate")
            if created:
                facts.taken_at, facts.taken_offset = parse_datetime(created)
            if facts.taken_at is None and mvhd_time is not None:
                # mvhd holds UTC by specification (many cameras write local time anyway).
                facts.taken_at, facts.taken_offset = mvhd_time, "+00:00"
            break
    except OSError:
        raise  # the file could not be read: not a parse problem to hide
    except Exception:
        pass
    return facts


# --- Canon CRW (CIFF) -------------------------------------------------------------


def facts_from_ciff(fp: BinaryIO, file_size: int) -> ExifFacts:
    """Canon CRW: capture time (0x180e) and make/model (0x080a) from the CIFF heaps.

    LibRaw knows these too, but rawpy only exposes them after unpacking the whole
    sensor image, which costs a full RAW decode.
    """
    facts = ExifFacts()
    try:
        fp.seek(0)
        header = fp.read(14)
        if header[:2] != b"II" or header[6:14] != b"HEAPCCDR":
            return facts
        start = struct.unpack_from("<I", header, 2)[0]
        _ciff_heap(fp, start, file_size, facts, depth=0, seen=set())
    except OSError:
        raise  # the file could not be read: not a parse problem to hide
    except Exception:
        pass
    return facts


def _ciff_heap(
    fp: BinaryIO, start: int, end: int, facts: ExifFacts, depth: int, seen: set[tuple[int, int]]
) -> None:
    # Each heap is read once: a crafted file whose sub-heaps point back at their own
    # heap would otherwise be walked 256^5 times (days), and the scan never finish.
    if depth > 4 or end - start < 4 or (start, end) in seen or len(seen) >= 256:
        return
    seen.add((start, end))
    table = start + struct.unpack("<I", _read(fp, end - 4, 4))[0]
    count = struct.unpack("<H", _read(fp, table, 2))[0]
    entries = _read(fp, table + 2, 10 * min(count, 256))
    for i in range(len(entries) // 10):
        tag, size, offset = struct.unpack_from("<HII", entries, 10 * i)
        location, kind = tag & 0xC000, tag & 0x3800
        if location == 0 and kind in (0x2800, 0x3000):
            _ciff_heap(fp, start + offset, start + offset + size, facts, depth + 1, seen)
            continue
        tag_id = tag & 0x3FFF
        if location != 0 or size > 4096:
            continue
        if tag_id == 0x180E and size >= 4:
            stamp = struct.unpack("<I", _read(fp, start + offset, 4))[0]
            if stamp:
                # Seconds since 1970 in the camera's local time: read as UTC to keep it naive.
                facts.taken_at = datetime(1970, 1, 1) + timedelta(seconds=stamp)
        elif tag_id == 0x080A:
            parts = _read(fp, start + offset, size).split(b"\x00")
            facts.make = facts.make or _text(parts[0])
            facts.model = facts.model or (_text(parts[1]) if len(parts) > 1 else None)
