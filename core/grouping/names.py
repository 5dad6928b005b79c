"""File-name rules of grouping: stems, device radicals, edit names and sidecar names.

Pure string functions; ``core.grouping.rules`` builds groups on top of them. Every
comparison goes through ``norm`` (Unicode NFC + casefold) because the same shot reaches
a NAS as ``IMG_1.CR2`` + ``img_1.jpg`` (camera vs. importer case) and as NFD names when a
Mac wrote the folder over SMB. Lone surrogates of non-UTF-8 names survive both steps.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from core.media.kinds import is_motion_video_ext

# Categories a file can have for grouping (finer than core.records.KINDS: JPEG/HEIC
# renditions are told apart from other images because only they pair with a RAW).
RAW = "raw"
RENDITION = "rendition"  # JPEG / HEIC / HIF: the camera's or phone's own rendering
IMAGE = "image"  # any other picture (PNG, TIFF, WebP, ...)
VIDEO = "video"
SIDECAR = "sidecar"
OTHER = "other"

RAW_EXTS = frozenset(
    "3fr ari arw cap cin cr2 cr3 crw dcr dng erf fff gpr iiq k25 kdc mef mos mrw nef nrw orf "
    "ori pef raf raw rw2 rwl sr2 srf srw x3f".split()
)
RENDITION_EXTS = frozenset("jpg jpeg jpe heic heif hif".split())
IMAGE_EXTS = frozenset("avif png tif tiff webp gif bmp jxl psd psb".split())
VIDEO_EXTS = frozenset("mov mp4 m4v 3gp avi mkv mts m2ts webm".split())
# Sidecar extension -> preferred target categories, best first. A bare ``name.xmp`` is
# most often a raw developer's file; ``.aae`` is Apple's edit list of the HEIC/JPEG;
# Canon's ``.thm`` is the thumbnail of a video clip.
SIDECAR_EXTS: dict[str, tuple[str, ...]] = {
    "xmp": (RAW, RENDITION, IMAGE, VIDEO),
    "aae": (RENDITION, IMAGE, VIDEO, RAW),
    "json": (RENDITION, IMAGE, VIDEO, RAW),
    "thm": (VIDEO, RENDITION, IMAGE, RAW),
    "dop": (RAW, RENDITION, IMAGE, VIDEO),  # DxO: name.ext.dop
    "pp3": (RAW, RENDITION, IMAGE, VIDEO),  # RawTherapee: name.ext.pp3
}
# Sidecars that may name their image by stem only (name.xmp); the others always carry
# the image's full name (name.ext.dop). Takeout JSON does too, but old exports and
# truncated names fall back to the stem, so it is allowed as the weakest match.
STEM_SIDECARS = frozenset({"xmp", "aae", "thm", "json"})

LIVE_STILL_EXTS = frozenset("jpg jpeg jpe heic heif".split())
LIVE_VIDEO_EXTS = frozenset("mov mp4".split())

_RENDITION_FORMATS = frozenset({"jpeg", "heic", "heif"})
_LIVE_VIDEO_FORMATS = frozenset({"mov", "mp4"})

# Device "radicals": the part of a name that identifies the shot when a device names the
# files of one shot differently (Pixel: PXL_20231006_123456789.RAW-01.COVER.jpg and
# PXL_20231006_123456789.RAW-02.ORIGINAL.dng). The timestamp to the millisecond is
# unique per shot, so equal radicals are the same shot. Extend here for other devices.
RADICAL_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^(PXL_\d{8}_\d{9})(?=$|[.~_\-])", re.I),
)

# Edited copies: iPhone IMG_E1234 beside IMG_1234; Google Takeout "-edited" (localised
# by the account's language); Lightroom "Edit in ..." "-Edit" / "-Edit-2";
# "name (edited)" from several desktop tools.
_IPHONE_EDIT = re.compile(r"^(IMG_)E(\d{4,})$", re.I)
EDIT_SUFFIXES = (
    "-edited", "-edit", " (edited)", "(edited)", "-bearbeitet", "-modifié", "-modifie",
    "-editado", "-modificato", "-bewerkt", "-redigerad", "-redigeret", "-redigert",
    "-muokattu", "-edytowane", "-upraveno",
    # Lightroom's derived DNGs: Enhance (Denoise, Super Resolution, Raw Details) and
    # Photo Merge, named after the (first) original
    "-enhanced-nr", "-enhanced-sr", "-enhanced-rd", "-enhanced", "-hdr-pano", "-hdr",
    "-pano",
)  # fmt: skip
_NUMBERED_EDIT = re.compile(r"^(?P<base>.+)-edit-\d+$", re.I)  # Lightroom: name-Edit-2
# Apple's adjustment list of the unedited original: IMG_O1234.AAE belongs to IMG_1234.
_IPHONE_ORIGINAL_AAE = re.compile(r"^(IMG_)O(\d{4,})$", re.I)

# Takeout: IMG_1.jpg.supplemental-metadata.json, cut to any prefix of that word when the
# name would exceed 51 characters, and "(1)" moved behind the extension for duplicates:
# IMG_1(1).jpg -> IMG_1.jpg(1).json or IMG_1.jpg.supplemental-metadata(1).json.
_SUPPLEMENTAL = "supplemental-metadata"
_DUP_SUFFIX = re.compile(r"^(?P<body>.*?)(?P<dup>\(\d+\))$")
# Takeout limits a JSON name to 51 characters; shorter bases were not truncated.
TAKEOUT_TRUNCATED_MIN = 46
_INDEX = re.compile(r"\(\d+\)")
# darktable writes version nn as "%02d"; camera and phone counters behind an underscore
# have four digits or more (IMG_1234, DSC_0001, IMG_20231006_123456), so two digits only.
_DARKTABLE_VERSION = re.compile(r"^(?P<stem>.+)_\d\d\.(?P<ext>[^.]+)$")


def norm(text: str) -> str:
    """Comparison form of a name: NFC + casefold."""
    if text.isascii():
        return text.lower()  # same result, several times faster
    return unicodedata.normalize("NFC", text).casefold()


def split_ext(name: str) -> tuple[str, str]:
    """(stem, lower-case extension without dot); the stem is the name without its last
    extension. A leading dot (``.hidden``) is not an extension."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot + 1 :].lower()


def stem(name: str) -> str:
    """Name without its last extension (case preserved)."""
    return split_ext(name)[0]


def pixel_radical(name: str) -> str | None:
    """The device radical of a name (``PXL_20231006_123456789``), or None."""
    if not name[:1].isalpha():
        return None
    for pattern in RADICAL_PATTERNS:
        m = pattern.match(name)
        if m:
            return m.group(1)
    return None


_HEVC_VIDEO = re.compile(r"^(?P<base>.+)_HEVC$", re.I)


def live_video_stem(stem_: str) -> str:
    """The still's stem of a Live Photo video's: icloudpd's default ("suffix" policy)
    saves it as ``IMG_1234_HEVC.MOV`` so as not to clash with a plain ``IMG_1234.MOV``."""
    m = _HEVC_VIDEO.match(stem_)
    return m.group("base") if m else stem_


def edit_base(stem_: str) -> str | None:
    """Stem of the original of an edited copy (``IMG_E1234`` -> ``IMG_1234``,
    ``name-edited`` / ``name (edited)`` -> ``name``), or None for other stems.

    Takeout puts its uniqueness index behind the edit suffix: ``name-edited(1)`` is the
    edit of ``name(1)`` (andyjohnson0/TakeoutExtractor README; ente metadata-json tests).
    """
    if stem_.endswith(")"):
        m = _DUP_SUFFIX.match(stem_)
        if m and m.group("body"):
            base = _edit_base(m.group("body"))
            return None if base is None else base + m.group("dup")
    return _edit_base(stem_)


def edit_chain(stem_: str) -> list[str]:
    """The stems an edited copy may be the edit of, nearest first: ``name-HDR-Edit`` ->
    [``name-HDR``, ``name``]. An edit of an edit belongs to the nearest one present."""
    chain: list[str] = []
    base = edit_base(stem_)
    while base is not None and base not in chain:
        chain.append(base)
        base = edit_base(base)
    return chain


def _edit_base(stem_: str) -> str | None:
    if stem_[:5].upper() == "IMG_E":
        m = _IPHONE_EDIT.match(stem_)
        if m:
            return m.group(1) + m.group(2)
    if "-" not in stem_ and "(" not in stem_:
        return None
    low = norm(stem_)
    for suffix in EDIT_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            # lengths agree: NFC/casefold of the suffixes above do not change them
            return (
                stem_[: len(stem_) - len(suffix)] if len(low) == len(stem_) else _cut(stem_, suffix)
            )
    if "-edit-" in low:
        m = _NUMBERED_EDIT.match(stem_)
        if m:
            return m.group("base")
    return None


def _cut(stem_: str, suffix: str) -> str | None:
    """Remove ``suffix`` from a stem whose normalised form differs in length: an NFD name
    (a Mac's), or a base whose casefold is longer or shorter (``Straße``, ``İstanbul``).
    The suffixes keep their length under NFC and casefold, so only the tail is compared."""
    nfc = unicodedata.normalize("NFC", stem_)
    cut = len(nfc) - len(suffix)
    if cut > 0 and norm(nfc[cut:]) == suffix:
        return nfc[:cut]
    return None


def stem_key(stem_: str) -> str:
    """Normalised shot key of a stem: the device radical when there is one."""
    return norm(pixel_radical(stem_) or stem_)


def shot_key(name: str) -> str:
    """Normalised key shared by all files of one shot (before time checks).

    Edited copies keep their own full stem: ``PXL_..._123-edited.jpg`` must not compete
    with the cover JPEG for the RAW just because the radical matches.
    """
    s = stem(name)
    if edit_base(s) is not None:
        return norm(s)
    return stem_key(s)


def category(name: str, kind: str | None = None, fmt: str | None = None) -> str:
    """Grouping category from the extension, falling back on the catalog's kind/format.

    The name wins because pairing is by name: a RAW that LibRaw cannot open (kind
    'other' in the catalog) is still the RAW of its JPEG.
    """
    return category_of_ext(split_ext(name)[1], kind, fmt)


def category_of_ext(ext: str, kind: str | None = None, fmt: str | None = None) -> str:
    """``category`` for an already split, lower-case extension."""
    if ext in RAW_EXTS:
        return RAW
    if ext in RENDITION_EXTS:
        return RENDITION
    if ext in IMAGE_EXTS:
        return IMAGE
    if ext in VIDEO_EXTS or is_motion_video_ext(ext):
        return VIDEO
    if ext in SIDECAR_EXTS:
        return SIDECAR
    if kind == "raw":
        return RAW
    if kind == "image":
        return RENDITION if (fmt or "").lower() in _RENDITION_FORMATS else IMAGE
    if kind == "video":
        return VIDEO
    if kind == "sidecar":
        return SIDECAR
    return OTHER


def is_live_still(name: str, fmt: str | None = None) -> bool:
    ext = split_ext(name)[1]
    if ext:
        return ext in LIVE_STILL_EXTS
    return (fmt or "").lower() in _RENDITION_FORMATS


def is_live_video(name: str, fmt: str | None = None) -> bool:
    ext = split_ext(name)[1]
    if ext:
        return ext in LIVE_VIDEO_EXTS or is_motion_video_ext(ext)
    return (fmt or "").lower() in _LIVE_VIDEO_FORMATS


@dataclass(frozen=True, slots=True)
class SidecarTargets:
    """What a sidecar name can point at, strongest first.

    full_names: normalised full names of the image (``name.ext.xmp`` -> ``name.ext``).
    version_of: normalised full names of the file a darktable duplicate's sidecar
        describes (``name_01.ext.xmp`` -> ``name.ext``), tried after ``full_names``.
    stem_keys: normalised shot keys (``name.xmp`` -> every file of shot ``name``).
    prefix: normalised prefix of a full name that Takeout truncated, or None.
    index: Takeout's uniqueness index ``(n)`` of a truncated JSON name, or "": a file
        found by ``prefix`` must carry the same one (see ``takeout_index_agrees``).
    preference: target categories, best first.
    """

    full_names: tuple[str, ...]
    stem_keys: tuple[str, ...]
    prefix: str | None
    preference: tuple[str, ...]
    version_of: tuple[str, ...] = ()
    index: str = ""


def sidecar_targets(name: str) -> SidecarTargets | None:
    """Targets of a sidecar file name, or None when the name is not a sidecar's."""
    base, ext = split_ext(name)
    if ext not in SIDECAR_EXTS or not base:
        return None
    full: list[str] = [base]
    if ext == "json":
        full = _takeout_names(base)
    stems: list[str] = []
    if ext in STEM_SIDECARS:
        stems.append(stem_key(base))
        if ext == "aae":
            m = _IPHONE_ORIGINAL_AAE.match(base)
            if m:
                stems.append(stem_key(m.group(1) + m.group(2)))
        # The stem of the full name covers name.ext.json for an old/odd export
        # whose image has another extension than the JSON says (IMG_1.HEIC.json + IMG_1.JPG).
        for f in full:
            s, e = split_ext(f)
            if e and s:
                stems.append(stem_key(s))
    prefix, index = _takeout_prefix(base) if ext == "json" else (None, "")
    return SidecarTargets(
        full_names=tuple(dict.fromkeys(norm(f) for f in full)),
        stem_keys=tuple(dict.fromkeys(stems)),
        prefix=prefix,
        preference=SIDECAR_EXTS[ext],
        version_of=_darktable_original(base) if ext == "xmp" else (),
        index=index,
    )


def _darktable_original(base: str) -> tuple[str, ...]:
    """darktable names the sidecar of duplicate nn of ``name.ext`` ``name_nn.ext.xmp``
    (darktable user manual, "sidecar files"); the exact name still wins over this."""
    m = _DARKTABLE_VERSION.match(base)
    if m is None or category_of_ext(m.group("ext").lower()) in (SIDECAR, OTHER):
        return ()
    return (norm(f"{m.group('stem')}.{m.group('ext')}"),)


def _takeout_split(base: str) -> tuple[str, str, str]:
    """(base without its trailing ``(n)``, that ``(n)`` or "", and the image name: the
    former without ``.supplemental-metadata`` or any cut of it, even an empty one, as in
    ``name.jpg..json`` (ente metadata-json tests))."""
    m = _DUP_SUFFIX.match(base)
    body, dup = (m.group("body"), m.group("dup")) if m else (base, "")
    head, dot, last = body.rpartition(".")
    image = head if head and dot and _SUPPLEMENTAL.startswith(last.lower()) else body
    return body, dup, image


def _takeout_prefix(base: str) -> tuple[str | None, str]:
    """(prefix, index) of a JSON name Takeout cut to 46 characters before adding the
    index: ``<46 chars>(494).json`` is the JSON of ``<46 chars>m(494).jpg`` (immich-go
    matchNormal / matchVeryLongNameWithNumber)."""
    body, dup, image = _takeout_split(base)
    if len(body) < TAKEOUT_TRUNCATED_MIN:
        return None, ""
    return norm(image), dup


def takeout_index_agrees(full: str, prefix: str, index: str) -> bool:
    """True when the rest of ``full`` after a truncated JSON's ``prefix`` carries that
    JSON's uniqueness index and no other: ``x_.json`` is not the JSON of ``x_P(1).jpg``."""
    return _INDEX.findall(full[len(prefix) :]) == ([index] if index else [])


def _takeout_names(base: str) -> list[str]:
    """Candidate image names of a Takeout JSON base (name without ``.json``)."""
    names = [base]
    _, dup, image = _takeout_split(base)
    if dup:
        s, e = split_ext(image)
        names.append(f"{s}{dup}.{e}" if e else f"{image}{dup}")
    elif image != base:
        names.append(image)
    return names
