"""Open pictures decoding as little as the perceptual hash needs.

- JPEG: libjpeg DCT scaling through ``Image.draft('L', (256, 256))``: the decoder
  produces at most 1/8 of each side and only the luma channel, which is what
  imagehash converts to anyway. PRIOR-ART measured Hamming 0 against a full decode
  on 5 of 6 photos (2 on the sixth).
- HEIC/HEIF (and AVIF when Pillow lacks it) through pillow-heif. libheif has no
  reduced-scale decode (a 12 MP iPhone picture: ~300 ms), so the picture's embedded
  thumbnail is decoded instead when one is large enough (``heif_box``; iPhones store
  320x240: ~3 ms) and pillow-heif finds it a scaled copy of the picture (same aspect
  ratio, crop, rotation and colour profile); otherwise the whole picture.
  bench/bench_heif.py measures the cost to the hash: on real photos, 0-6 bits (0 on
  a real iPhone file) against the whole picture's pHash.
- PNG/TIFF/WebP/GIF through Pillow.
- RAW through LibRaw (rawpy): the embedded preview (``extract_thumb``, which returns
  the largest one), and a half-size demosaic only when there is no usable preview.

Every image is checked against the pixel limit *before* pixels are decoded: the
header's declared size is compared with ``max_pixels`` and Pillow's own bomb check
is turned from a warning into an error.

rawpy accepts file objects (``imread`` calls ``read()`` once and hands the bytes to
LibRaw's ``open_buffer``), so a RAW whose bytes are already in memory for hashing is
decoded from that buffer without being read again; ``_Whole`` returns the buffer
itself so not even a copy is made.
"""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
from dataclasses import dataclass

import pillow_heif
import rawpy
from PIL import Image, ImageFile, features

from core.media.exif import ExifFacts, facts_from_image
from core.media.phash import apply_orientation
from core.paths import open_regular

DEFAULT_MAX_PIXELS = 250_000_000
HASH_DRAFT = (256, 256)
# The shorter side an embedded HEIF thumbnail needs to stand in for the picture: twice the
# 32x32 grid the pHash samples (a thumbnail of a 5:1 panorama, 320x64, still serves).
HEIF_THUMB_MIN_SIDE = 64
MIN_PREVIEW_SIDE = 32  # a preview smaller than the 32x32 the hash samples is not usable

pillow_heif.register_heif_opener()
if not features.check("avif") and hasattr(pillow_heif, "register_avif_opener"):
    pillow_heif.register_avif_opener()

# A truncated file must fail, not be hashed from a half-decoded picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow warns between 1x and 2x its limit and raises above 2x; make both an error.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
# Fuzzed or pruned files make Pillow's TIFF reader warn for every odd tag; the scan
# reports what matters (an error) and would otherwise flood the worker log.
warnings.filterwarnings("ignore", category=UserWarning, module="PIL.TiffImagePlugin")

_limit_lock = threading.Lock()


class MediaError(Exception):
    """A file that cannot be decoded; the message is shown to users as is."""


class RawReadError(MediaError):
    """LibRaw's "Input/output error": a read that failed, or (as often) a RAW that ends
    before what its directories point to."""


class BombError(MediaError):
    """Declared pixel count above the configured limit."""


def bomb_message(pixels: int, limit: int) -> str:
    return f"decompression bomb refused: {pixels} pixels > limit {limit}"


def set_pixel_limit(max_pixels: int) -> None:
    """Align Pillow's global limit with ours (the stricter check is ours, per call)."""
    if Image.MAX_IMAGE_PIXELS != max_pixels:
        with _limit_lock:
            Image.MAX_IMAGE_PIXELS = max_pixels


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise BombError(bomb_message(width * height, max_pixels))


@dataclass
class Decoded:
    """A picture made small for hashing, plus what was learnt on the way."""

    image: Image.Image  # stored orientation (not yet turned upright)
    orientation: int  # EXIF orientation still to apply (1 = already upright)
    width: int  # stored dimensions of the real picture (not of the preview)
    height: int
    facts: ExifFacts
    source: str  # "draft", "full", "thumbnail", "preview", "half-size"
    jpeg_quality: int | None = None  # a JPEG's estimated quality (``jpeg_quality``)


class _Whole:
    """File-like object whose read() returns the whole buffer without copying."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, *_args: object) -> bytes:
        return self._data


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc.args[0] if exc.args else None, bytes):
        text = exc.args[0].decode("utf-8", "replace")
    return text


def _format_error(fmt: str | None, exc: BaseException, max_pixels: int) -> MediaError:
    name = (fmt or "image").upper() if fmt != "heic" else "HEIF"
    text = _describe(exc)
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        m = re.search(r"\((\d+) pixels\)", text)
        if m:
            return BombError(bomb_message(int(m.group(1)), max_pixels))
        return BombError(f"decompression bomb refused: {text}")
    if "truncated" in text.lower():
        return MediaError(f"truncated {name}: {text}")
    if isinstance(exc, Image.UnidentifiedImageError):
        return MediaError(f"unreadable {name}: not a picture Pillow or pillow-heif can identify")
    return MediaError(f"corrupt {name}: {text}")


def _to_hashable(img: Image.Image) -> Image.Image:
    """16-bit and float greyscale would be clipped by convert('L'): scale to 8 bits."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        img = img.convert("I")
    if img.mode in ("I", "F"):
        lo, hi = img.getextrema()  # type: ignore[misc]
        scale = 255.0 / 65535.0 if (hi or 0) > 255 else 1.0  # type: ignore[operator]
        img = img.point(lambda v: v * scale).convert("L")
    return img


def open_image(
    data: bytes,
    fmt: str | None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    mode: str = "L",
    target: tuple[int, int] = HASH_DRAFT,
) -> Decoded:
    """Decode a non-RAW picture from bytes already in memory.

    JPEG is drafted to the smallest DCT scale that keeps both sides >= ``target``; a
    HEIF decodes its embedded thumbnail instead when that covers ``heif_box``; other
    formats decode in full. The result keeps the stored orientation.
    Raises MediaError (BombError above ``max_pixels``) with a readable reason.
    """
    set_pixel_limit(max_pixels)
    try:
        img = Image.open(io.BytesIO(data))
        width, height = img.size
        check_pixels(width, height, max_pixels)
        facts = facts_from_image(img)
        quality = jpeg_quality(img)
        source = "full"
        if img.format == "JPEG":
            img.draft(mode, target)
            source = "draft"
        elif _is_heif(img) and img.draft(mode, heif_box(width, height, target)) is not None:
            source = "thumbnail"
        img.load()
    except MediaError:
        raise
    except Exception as exc:
        raise _format_error(fmt, exc, max_pixels) from None
    orientation = facts.orientation or 1
    if _is_heif(img):
        # libheif already applied the container's rotation/mirroring. Pillow's own AVIF
        # reader (Pillow 11.3+, used when it has AVIF) does not: it states them as the
        # EXIF orientation, to be applied like a JPEG's.
        orientation = 1
    return Decoded(_to_hashable(img), orientation, width, height, facts, source, quality)


def _is_heif(img: Image.Image) -> bool:
    return type(img).__module__.startswith("pillow_heif")


def heif_box(width: int, height: int, target: tuple[int, int]) -> tuple[int, int]:
    """The least size an embedded thumbnail of a ``width`` x ``height`` HEIF must have to be
    decoded instead of it: the picture scaled down until its longer side is
    ``max(target)``, and a shorter side of at least ``HEIF_THUMB_MIN_SIDE``.

    The longer side, not both (JPEG's rule): the thumbnail endpoint fits the picture in a
    ``target`` square, and iPhones store a 320x240 thumbnail, enough for the hash's 32x32
    grid and 4x4 colour grid (bench/bench_heif.py). A picture smaller than that box has no
    thumbnail worth taking (pillow-heif never takes one as large as the picture)."""
    longest = max(width, height, 1)
    long_side = min(max(target), longest)

    def side(n: int) -> int:
        return max(-(-n * long_side // longest), min(n, HEIF_THUMB_MIN_SIDE))  # ceil

    return side(width), side(height)


# --- JPEG quality ----------------------------------------------------------------------

# The IJG's example luminance quantisation table (natural order): what libjpeg's quality
# setting scales (jpeg_set_quality), and so what Pillow, ImageMagick, GIMP and most other
# software write.
_IJG_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


def _ijg_scale(quality: int) -> int:
    """libjpeg's jpeg_quality_scaling: the percentage the base table is scaled by."""
    return 5000 // quality if quality < 50 else 200 - 2 * quality


# Every table libjpeg makes at qualities 1-100 (baseline: entries 1..255) -> the quality.
_IJG_TABLES = {
    tuple(min(max((b * _ijg_scale(q) + 50) // 100, 1), 255) for b in _IJG_LUMINANCE): q
    for q in range(1, 101)
}


def jpeg_quality(img: Image.Image) -> int | None:
    """Estimated quality (1-100, libjpeg's scale) of an opened JPEG, from the quantisation
    table of its first (luminance) component; None for anything else.

    A table libjpeg made at some quality gives exactly that quality. Any other (a
    camera's, Photoshop's) is compared with the IJG base table as libjpeg scales it: the
    mean of its 64 coefficients' ratios to the base ones is the scaling percentage S, and
    the quality that scales by S is 100 - S/2 (S <= 100) or 5000/S. A camera that
    quantises coarser at low frequencies and finer at high ones than libjpeg would gets
    the quality of its average coarseness."""
    tables = getattr(img, "quantization", None)
    if not tables or not isinstance(tables, dict):
        return None
    try:
        layer = getattr(img, "layer", None)
        table = tables.get(layer[0][3]) if layer else None
        values = tuple(int(v) for v in (table if table is not None else tables.get(0) or ()))
    except (TypeError, ValueError, IndexError):
        return None
    if len(values) != 64 or min(values) < 1:
        return None
    exact = _IJG_TABLES.get(values)
    if exact is not None:
        return exact
    scale = sum(100 * v / b for v, b in zip(values, _IJG_LUMINANCE, strict=True)) / 64
    estimate = 5000 / scale if scale > 100 else 100 - scale / 2
    return min(100, max(1, round(estimate)))


# --- RAW ---------------------------------------------------------------------------

_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


@dataclass
class RawDecoded:
    decoded: Decoded | None
    width: int | None
    height: int | None
    orientation: int | None
    facts: ExifFacts  # from the preview JPEG's own EXIF, when it has some
    problem: str | None  # why there is no picture (raw opened, pixels unusable)


def raw_open(source: str | bytes) -> rawpy.RawPy:
    """LibRaw handle on a path or on bytes already in memory; MediaError if it can't."""
    try:
        return rawpy.imread(source if isinstance(source, str) else _Whole(source))  # type: ignore[arg-type]
    except rawpy.LibRawIOError as exc:
        # What LibRaw says of a RAW that ends before its data does, as of a failed read
        # (which the caller tells apart by reading the file through): not a failing disk
        raise RawReadError(
            f"RAW file LibRaw cannot open: cut short or damaged ({_describe(exc)})"
        ) from None
    except Exception as exc:
        raise MediaError(f"RAW file LibRaw cannot open: {_describe(exc)}") from None


def _preview(
    raw: rawpy.RawPy, max_pixels: int, mode: str, target: tuple[int, int]
) -> tuple[Image.Image | None, ExifFacts, str | None]:
    try:
        thumb = raw.extract_thumb()
    except Exception as exc:
        return None, ExifFacts(), f"no usable preview ({_describe(exc)})"
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            img: Image.Image = Image.open(io.BytesIO(thumb.data))  # type: ignore[arg-type]
            check_pixels(img.size[0], img.size[1], max_pixels)
            facts = facts_from_image(img)
            img.draft(mode, target)  # type: ignore[attr-defined]
            img.load()
        else:
            img = Image.fromarray(thumb.data)  # type: ignore[arg-type]
            facts = ExifFacts()
    except BombError:
        raise
    except Exception as exc:
        if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
            raise _format_error("jpeg", exc, max_pixels) from None
        return None, ExifFacts(), f"preview cannot be decoded ({_describe(exc)})"
    if min(img.size) < MIN_PREVIEW_SIDE:
        return None, facts, f"preview too small ({img.size[0]}x{img.size[1]})"
    return img, facts, None


def raw_decode(
    raw: rawpy.RawPy,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    mode: str = "L",
    target: tuple[int, int] = HASH_DRAFT,
    allow_half_size: bool = True,
) -> RawDecoded:
    """Preview of an opened RAW (largest embedded preview; half-size demosaic fallback)."""
    set_pixel_limit(max_pixels)
    try:
        sizes = raw.sizes
        width, height = int(sizes.width), int(sizes.height)
        orientation = _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1)
    except Exception as exc:
        return RawDecoded(None, None, None, None, ExifFacts(), f"RAW sizes unreadable: {exc}")
    img, facts, problem = _preview(raw, max_pixels, mode, target)
    if img is not None:
        decoded = Decoded(_to_hashable(img), orientation, width, height, facts, "preview")
        return RawDecoded(decoded, width, height, orientation, facts, None)
    if not allow_half_size:
        return RawDecoded(None, width, height, orientation, facts, problem)
    try:
        # A linear (already demosaiced) RAW, e.g. ProRAW DNG, ignores half_size: it is
        # decoded at full size, so it is checked at full size.
        linear = getattr(raw, "raw_type", None) == rawpy.RawType.Stack
        check_pixels(*((width, height) if linear else (width // 2, height // 2)), max_pixels)
        rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    except BombError:
        raise
    except Exception as exc:
        return RawDecoded(
            None,
            width,
            height,
            orientation,
            facts,
            f"RAW has {problem} and LibRaw cannot decode it: {_describe(exc)}",
        )
    half = Image.fromarray(rgb)
    if mode == "L":
        half = half.convert("L")
    # LibRaw's output is already turned upright.
    decoded = Decoded(half, 1, width, height, facts, "half-size")
    return RawDecoded(decoded, width, height, orientation, facts, None)


# --- thumbnails --------------------------------------------------------------------


def render_thumbnail(
    path: str,
    max_side: int = 320,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    quality: int = 80,
    real_root: str | None = None,
) -> bytes:
    """Small upright JPEG of a picture (RAW through its preview) for local-mode UIs.

    With ``real_root`` (the resolved library root) the file is opened as the scan opens
    it (``core.paths.open_regular``): what is read must be a regular file inside the root,
    even if a symlink or a FIFO was swapped in after the caller checked the path.
    Raises MediaError with a readable reason when the file cannot be shown.
    """
    from core.media.kinds import NOT_A_PICTURE, classify, too_big_to_try

    try:
        fd, _st = open_regular(os.path.realpath(path) if real_root else path, real_root)
        with open(fd, "rb") as fh:
            head = fh.read(4096)
            kind, fmt, _warning = classify(path, head)
            if kind not in ("raw", "image"):
                # Before reading the rest: a 20 GB video must not be read to say no.
                raise MediaError(f"no thumbnail for a {kind} file")
            if too_big_to_try(kind, fmt, os.fstat(fh.fileno()).st_size):
                raise MediaError(NOT_A_PICTURE)
            fh.seek(0)
            data = fh.read()  # one copy of the file in memory, not two
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    target = (max_side, max_side)
    if kind == "raw":
        raw = raw_open(data)
        try:
            result = raw_decode(raw, max_pixels=max_pixels, mode="RGB", target=target)
        finally:
            raw.close()
        if result.decoded is None:
            raise MediaError(result.problem or "RAW has no picture")
        decoded = result.decoded
    else:
        decoded = open_image(data, fmt, max_pixels=max_pixels, mode="RGB", target=target)
    img = decoded.image
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    img.thumbnail(target, Image.Resampling.LANCZOS)  # the box is square: turn it after
    img = apply_orientation(img, decoded.orientation)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()
