"""A colour signature: the mean R, G, B of a 4x4 grid of the picture as displayed.

pHash sees only the luminance structure of a 32x32 grey image, so a strong colour
edit (sepia, posterize, heavy saturation) keeps most of its bits. Dedup compares
these 48 bytes as well (core.dedup.perceptual's colour check) to keep such edits
apart from true re-encodes, whose grids differ by a couple of levels at most.
"""

from __future__ import annotations

from PIL import Image

from core.media.phash import apply_orientation


def colour_signature(img: Image.Image, orientation: int | None = None) -> str:
    """96 hex digits: 4x4 cells x (R, G, B), after EXIF orientation."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    grid = apply_orientation(rgb.resize((4, 4), Image.Resampling.BOX), orientation)
    return grid.tobytes().hex()
