"""Small JPEG thumbnails of library files, cached on disk under ``data_dir/thumbs``.

Uses ``core.media.decode.render_thumbnail(path, max_side)`` when it exists (it knows
RAW previews and HEIC); until then a Pillow fallback: JPEG DCT draft decoding, and the
embedded preview of RAW files through rawpy. The cache name carries the file's size and
mtime, so an edited file gets a new thumbnail.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from core.paths import path_key

RAW_EXTS = frozenset(
    {
        ".cr2",
        ".cr3",
        ".nef",
        ".nrw",
        ".arw",
        ".srf",
        ".sr2",
        ".dng",
        ".raf",
        ".orf",
        ".rw2",
        ".pef",
        ".srw",
        ".x3f",
        ".3fr",
        ".iiq",
        ".rwl",
        ".erf",
    }
)


class ThumbnailError(Exception):
    """The file cannot be turned into a thumbnail (not an image, corrupt, too large)."""


def cache_path(real: str, size: int, data_dir: Path) -> Path:
    st = os.stat(real)
    name = f"{path_key(real)}-{size}-{st.st_size}-{st.st_mtime_ns}.jpg"
    return Path(data_dir) / "thumbs" / name[:2] / name


def thumbnail(real: str, size: int, data_dir: Path, max_pixels: int = 250_000_000) -> Path:
    out = cache_path(real, size, data_dir)
    if out.is_file():
        return out
    data = render(real, size, max_pixels)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, out)  # atomic: concurrent workers never serve half a file
    return out


def render(real: str, size: int, max_pixels: int = 250_000_000) -> bytes:
    try:
        from core.media.decode import render_thumbnail  # type: ignore[attr-defined]
    except ImportError:
        render_thumbnail = None
    if render_thumbnail is not None:
        try:
            result = render_thumbnail(real, size)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file here
            raise ThumbnailError(f"cannot render a thumbnail: {exc}") from None
        return _to_jpeg(result, size)
    return _pillow(real, size, max_pixels)


def _to_jpeg(result: object, size: int) -> bytes:
    from PIL import Image

    if isinstance(result, bytes | bytearray):
        return bytes(result)
    if isinstance(result, Image.Image):
        return _encode(result, size)
    raise ThumbnailError("thumbnail renderer returned nothing usable")


def _encode(img, size: int) -> bytes:
    img.thumbnail((size, size))
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80, optimize=True)
    return buf.getvalue()


def _pillow(real: str, size: int, max_pixels: int) -> bytes:
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        if os.path.splitext(real)[1].lower() in RAW_EXTS:
            import rawpy

            with rawpy.imread(real) as raw:
                thumb = raw.extract_thumb()
            if thumb.format == rawpy.ThumbFormat.JPEG:
                img = Image.open(io.BytesIO(thumb.data))
            else:
                img = Image.fromarray(thumb.data)
        else:
            try:
                import pillow_heif

                pillow_heif.register_heif_opener()
            except ImportError:
                pass
            img = Image.open(real)
        img.draft("RGB", (size, size))
        img = ImageOps.exif_transpose(img)
        return _encode(img, size)
    except Exception as exc:  # noqa: BLE001 - Pillow/rawpy raise many types for bad files
        raise ThumbnailError(f"cannot render a thumbnail: {type(exc).__name__}") from None
