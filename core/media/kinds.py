"""What a file is: extension tables, magic-number sniffing and the kind/format decision.

Content wins over the extension (a ``.jpg`` that holds HEIF is decoded as HEIF), but a
mismatch is reported as a warning so the user can see it. RAW files are mostly TIFF
containers, so a TIFF signature behind a RAW extension stays ``raw``.
"""

from __future__ import annotations

import os
import re
import struct

RAW_EXTENSIONS = frozenset(
    "3fr ari arw cap cin cr2 cr3 crw dcr dng erf fff gpr iiq k25 kdc mef mos mrw nef nrw orf "
    "ori pef raf raw rw2 rwl sr2 srf srw x3f".split()
)
IMAGE_EXTENSIONS = frozenset("jpg jpeg jpe heic heif hif avif png tif tiff webp gif".split())
VIDEO_EXTENSIONS = frozenset("mov mp4 m4v 3gp avi mkv mts m2ts webm".split())
SIDECAR_EXTENSIONS = frozenset("xmp aae json".split())

# Content formats per kind (what sniff_format can return).
IMAGE_FORMATS = frozenset({"jpeg", "png", "gif", "webp", "tiff", "heic", "avif", "bmp"})
RAW_FORMATS = frozenset({"cr3", "crw", "raf", "orf", "rw2", "cr2", "dng", "x3f", "mrw"})
VIDEO_FORMATS = frozenset({"mov", "mp4", "3gp", "avi", "mkv", "webm", "mts"})
SIDECAR_FORMATS = frozenset({"xmp", "xml", "json"})

# Names used in messages ("extension .jpg but content is HEIF").
DISPLAY = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WebP",
    "tiff": "TIFF",
    "heic": "HEIF",
    "avif": "AVIF",
    "bmp": "BMP",
    "mov": "QuickTime",
    "mp4": "MP4",
    "3gp": "3GP",
    "avi": "AVI",
    "mkv": "Matroska",
    "webm": "WebM",
    "mts": "MPEG-TS",
    "xmp": "XMP",
    "xml": "XML",
    "json": "JSON",
    "cr3": "Canon CR3",
    "crw": "Canon CRW",
    "raf": "Fujifilm RAF",
    "orf": "Olympus ORF",
    "rw2": "Panasonic RW2",
    "cr2": "Canon CR2",
    "dng": "DNG",
    "x3f": "Sigma X3F",
    "mrw": "Minolta MRW",
}

# What the extension alone promises (content format family), for mismatch messages.
_EXT_FORMAT = {
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "jpe": "jpeg",
    "heic": "heic",
    "heif": "heic",
    "hif": "heic",
    "avif": "avif",
    "png": "png",
    "tif": "tiff",
    "tiff": "tiff",
    "webp": "webp",
    "gif": "gif",
}

_HEIF_BRANDS = {
    b"heic",
    b"heix",
    b"heim",
    b"heis",
    b"hevc",
    b"hevx",
    b"hevm",
    b"hevs",
    b"mif1",
    b"msf1",
    b"mif2",
}
_AVIF_BRANDS = {b"avif", b"avis"}
_QT_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}

HEAD_SIZE = 4096  # bytes read up front; also the quick digest's first block
# A file named as a picture whose first bytes are no picture format is read into memory
# for Pillow to try only up to this size. Past it, it is hashed by streaming and reported:
# a multi-GB archive or disk image renamed .jpg must not take a worker's memory.
UNKNOWN_IMAGE_READ_LIMIT = 64 << 20
NOT_A_PICTURE = "not a picture: named as one, but its content is no picture format"


def too_big_to_try(kind: str, fmt: str | None, size: int) -> bool:
    """A file ``classify`` calls an image only by its name, too big to read for Pillow to
    try (``UNKNOWN_IMAGE_READ_LIMIT``)."""
    return kind == "image" and fmt is None and size > UNKNOWN_IMAGE_READ_LIMIT


def extension(path: str) -> str:
    """Lower-case extension without the dot ('' when there is none)."""
    ext = os.path.splitext(path)[1]
    return ext[1:].lower() if ext else ""


# Google Takeout splits a Pixel motion photo into PXL_…MP.jpg and its video PXL_…MP, an
# edited one's into …MP~2 (immich-go internal/filetypes/supported.go and issue 405;
# PhotoPrism issue 2133). Grouping pairs the two through is_motion_video_ext.
_TAKEOUT_MOTION = re.compile(r"mp(~[0-9]+)?")


def is_motion_video_ext(ext: str) -> bool:
    """``mp`` or ``mp~N`` (lower-case, no dot): Takeout's name for a motion photo's video."""
    return _TAKEOUT_MOTION.fullmatch(ext) is not None


def kind_of_extension(ext: str) -> str:
    if is_motion_video_ext(ext):
        return "video"
    if ext in RAW_EXTENSIONS:
        return "raw"
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in SIDECAR_EXTENSIONS:
        return "sidecar"
    return "other"


def is_takeout_json(path: str) -> bool:
    """Google Takeout metadata: ``IMG_1234.jpg.json`` (a sidecar of the picture)."""
    name = os.path.basename(path).lower()
    return name.endswith(".json") and kind_of_extension(extension(name[:-5])) != "other"


def _ftyp_format(head: bytes) -> str | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    size = struct.unpack(">I", head[:4])[0]
    major = head[8:12]
    end = min(len(head), size if size >= 16 else 16)
    compatible = [head[i : i + 4] for i in range(16, end - 3, 4)]
    brands = [major, *compatible]
    if major == b"crx " or b"crx " in compatible:
        return "cr3"
    if major in _AVIF_BRANDS:
        return "avif"
    if major in _HEIF_BRANDS:
        # mif1 is the generic HEIF brand; AVIF files may declare it first.
        if (
            major in (b"mif1", b"msf1")
            and any(b in _AVIF_BRANDS for b in compatible)
            and not any(b in (_HEIF_BRANDS - {b"mif1", b"msf1", b"mif2"}) for b in compatible)
        ):
            return "avif"
        return "heic"
    if any(b in _AVIF_BRANDS for b in brands):
        return "avif"
    if any(b in _HEIF_BRANDS for b in compatible) and major not in (b"qt  ",):
        return "heic"
    if major == b"qt  ":
        return "mov"
    if major[:3] in (b"3gp", b"3g2"):
        return "3gp"
    return "mp4"


def _tiff_variant(head: bytes) -> str:
    """Tell RAW flavours of TIFF apart where the header says so."""
    sig = head[:4]
    if sig in (b"IIRO", b"IIRS", b"MMOR"):
        return "orf"
    if sig == b"IIU\x00":
        return "rw2"
    if head[8:10] == b"CR" and head[10:11] == b"\x02":
        return "cr2"
    if _ifd0_has_tag(head, 0xC612):  # DNGVersion
        return "dng"
    return "tiff"


def _ifd0_has_tag(head: bytes, tag: int) -> bool:
    try:
        endian = "<" if head[:2] == b"II" else ">"
        offset = struct.unpack(endian + "I", head[4:8])[0]
        if offset + 2 > len(head):
            return False
        count = struct.unpack(endian + "H", head[offset : offset + 2])[0]
        for i in range(min(count, (len(head) - offset - 2) // 12)):
            pos = offset + 2 + 12 * i
            if struct.unpack(endian + "H", head[pos : pos + 2])[0] == tag:
                return True
    except struct.error:
        return False
    return False


def sniff_format(head: bytes) -> str | None:
    """Content format from the first bytes of a file (magic numbers), or None."""
    if len(head) < 4:
        return None
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"IIRO", b"IIRS", b"MMOR", b"IIU\x00"):
        return _tiff_variant(head)
    if head[:4] in (b"II+\x00", b"MM\x00+"):
        return "tiff"  # BigTIFF
    if head[:2] == b"II" and head[6:14] == b"HEAPCCDR":
        return "crw"
    if head[:15] == b"FUJIFILMCCD-RAW":
        return "raf"
    if head[:4] == b"FOVb":
        return "x3f"
    if head[:4] == b"\x00MRM":
        return "mrw"
    if head[:2] == b"BM" and len(head) >= 26:
        return "bmp"
    ftyp = _ftyp_format(head)
    if ftyp:
        return ftyp
    if head[4:8] in _QT_ATOMS:
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in head[:64] else "mkv"
    if head[0] == 0x47 and len(head) > 188 and head[188] == 0x47:
        return "mts"
    if len(head) > 196 and head[4] == 0x47 and head[196] == 0x47:
        return "mts"  # M2TS: 4-byte timecode before each 188-byte packet
    text = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        if b"x:xmpmeta" in head or b"<?xpacket" in head:
            return "xmp"
        if text.startswith((b"<?xml", b"<!DOCTYPE plist", b"<plist")):
            return "xml"
    if text[:1] in (b"{", b"["):
        return "json"
    return None


def classify(path: str, head: bytes) -> tuple[str, str | None, str | None]:
    """(kind, format, warning) of a file from its name and first bytes.

    kind is one of raw|image|video|sidecar|other; format is the content format
    ('raw' for anything LibRaw is to handle, as in core.records); warning reports an
    extension that does not match the content.
    """
    ext = extension(path)
    ext_kind = kind_of_extension(ext)
    fmt = sniff_format(head)
    shown_ext = f".{ext}" if ext else "no extension"

    def mismatch(content: str) -> str:
        what = f"extension {shown_ext}" if ext else "no extension"
        return f"{what} but content is {DISPLAY.get(content, content)}"

    if ext_kind == "raw":
        if fmt is None or fmt in RAW_FORMATS or fmt == "tiff":
            return "raw", "raw", None
        if fmt in IMAGE_FORMATS:
            return "image", fmt, mismatch(fmt)
        if fmt in VIDEO_FORMATS:
            return "video", fmt, mismatch(fmt)
        return "raw", "raw", mismatch(fmt)

    if fmt in RAW_FORMATS:
        # A RAW signature (CR3, RAF, ORF ...) under another name is still a RAW file.
        return "raw", "raw", mismatch(fmt)

    if fmt in IMAGE_FORMATS:
        expected = _EXT_FORMAT.get(ext)
        warning = None if expected == fmt else mismatch(fmt)
        return "image", fmt, warning

    if fmt in VIDEO_FORMATS:
        # mov/mp4/m4v/3gp share one container; only a non-video extension is a mismatch.
        return "video", fmt, None if ext_kind == "video" else mismatch(fmt)

    if ext_kind == "sidecar":
        if fmt in SIDECAR_FORMATS or fmt is None:
            return "sidecar", fmt or ("json" if ext == "json" else None), None
        return "sidecar", fmt, mismatch(fmt)

    if fmt == "xmp":
        return "sidecar", "xmp", mismatch(fmt) if ext_kind != "other" else None

    if ext_kind in ("image", "video"):
        # Unknown content behind an image/video name: keep the kind, the decoder reports.
        return ext_kind, None, None
    return "other", fmt, None
