"""Small JPEG thumbnails of library files, cached on disk under ``data_dir/thumbs``.

Rendered by ``core.media.decode.render_thumbnail`` (RAW through its embedded preview,
HEIC, JPEG DCT draft decoding, the pixel limit of TWINLENS_MAX_IMAGE_PIXELS). The cache
name carries the file's size and mtime, so an edited file gets a new thumbnail.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from core.media.decode import render_thumbnail
from core.paths import path_key


class ThumbnailError(Exception):
    """The file cannot be turned into a thumbnail (not an image, corrupt, too large)."""


def cache_path(real: str, size: int, data_dir: Path) -> Path:
    st = os.stat(real)
    name = f"{path_key(real)}-{size}-{st.st_size}-{st.st_mtime_ns}.jpg"
    return Path(data_dir) / "thumbs" / name[:2] / name


def thumbnail(
    real: str,
    size: int,
    data_dir: Path,
    max_pixels: int = 250_000_000,
    real_root: str | None = None,
) -> Path:
    """The cached thumbnail of ``real``, rendered first if need be. ``real_root``: the
    resolved library root the file must still lie in when it is opened."""
    out = cache_path(real, size, data_dir)
    if out.is_file():
        return out
    data = render(real, size, max_pixels, real_root)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, out)  # atomic: concurrent workers never serve half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # a full disk leaves no litter
        raise
    _drop_older(out)
    return out


def _drop_older(out: Path) -> None:
    """Thumbnails of earlier versions of the same file at the same size: an edited or
    replaced file would otherwise leave one behind each time."""
    key_size = out.name.rsplit("-", 2)[0]  # "<path key>-<size>"
    for old in out.parent.glob(f"{key_size}-*.jpg"):
        if old != out:
            old.unlink(missing_ok=True)


# Decoding a big picture takes hundreds of MB: a page of panoramas asked for at once
# must not take the memory of a small NAS (and the scan sharing the process) with it
_RENDERING = threading.BoundedSemaphore(2)


def render(
    real: str, size: int, max_pixels: int = 250_000_000, real_root: str | None = None
) -> bytes:
    try:
        with _RENDERING:
            return render_thumbnail(real, size, max_pixels=max_pixels, real_root=real_root)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file here
        raise ThumbnailError(f"cannot render a thumbnail: {exc}") from None
