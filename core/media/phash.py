"""64-bit perceptual hash, bit-for-bit the same as ``imagehash.phash``.

Hashes are stored as 16 hex digits (imagehash's ``str(hash)``), so they can be
compared with hashes made by any other imagehash user. The value type is a plain
unsigned 64-bit int underneath: Hamming distance is one popcount.
"""

from __future__ import annotations

import numpy as np
import scipy.fftpack
from PIL import Image

_ORIENTATION_OPS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_MASK = (1 << 64) - 1
# Bit i of the flattened 8x8 boolean array is bit (63 - i) of the int: imagehash's
# hex is the bit string read left to right, row by row.
_WEIGHTS = np.array([1 << (63 - i) for i in range(64)], dtype=np.uint64)


class PHash:
    """An imagehash-compatible 64-bit pHash value."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        if not 0 <= value <= _MASK:
            raise ValueError(f"pHash must be an unsigned 64-bit value, got {value}")
        self.value = int(value)

    @classmethod
    def from_hex(cls, text: str) -> PHash:
        text = text.strip()
        if len(text) != 16:
            raise ValueError(f"pHash hex must have 16 digits, got {text!r}")
        return cls(int(text, 16))

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> PHash:
        """From an 8x8 boolean array (imagehash's ImageHash.hash)."""
        flat = np.asarray(bits, dtype=bool).reshape(-1)
        if flat.size != 64:
            raise ValueError("pHash needs 64 bits")
        return cls(int(np.bitwise_or.reduce(_WEIGHTS[flat])) if flat.any() else 0)

    @classmethod
    def from_signed(cls, value: int) -> PHash:
        """From a signed 64-bit int (how a BIGINT column holds it)."""
        return cls(value & _MASK)

    def to_signed(self) -> int:
        return self.value - (1 << 64) if self.value >= 1 << 63 else self.value

    def hex(self) -> str:
        return f"{self.value:016x}"

    def bits(self) -> np.ndarray:
        return (
            ((self.value >> (63 - np.arange(64, dtype=np.uint64))) & 1).astype(bool).reshape(8, 8)
        )

    def __str__(self) -> str:
        return self.hex()

    def __repr__(self) -> str:
        return f"PHash({self.hex()!r})"

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __sub__(self, other: PHash) -> int:
        if not isinstance(other, PHash):
            return NotImplemented
        return (self.value ^ other.value).bit_count()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PHash) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __len__(self) -> int:
        return 64


def hamming(a: str | PHash, b: str | PHash) -> int:
    """Bits that differ between two hashes (hex strings or PHash values)."""
    pa = a if isinstance(a, PHash) else PHash.from_hex(a)
    pb = b if isinstance(b, PHash) else PHash.from_hex(b)
    return pa - pb


def orientation_of(img: Image.Image) -> int:
    """EXIF orientation (1..8) of an opened image; 1 when absent or garbage."""
    try:
        value = int(img.getexif().get(0x0112, 1))
    except Exception:  # garbage EXIF must not stop hashing
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(img: Image.Image, orientation: int | None) -> Image.Image:
    """Turn stored pixels upright (ImageOps.exif_transpose's mapping, pixels only)."""
    op = _ORIENTATION_OPS.get(orientation or 1)
    return img.transpose(op) if op is not None else img


def phash_pixels(img: Image.Image) -> PHash:
    """imagehash.phash(img) with the same operations, returned as a PHash."""
    small = img.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    pixels = np.asarray(small)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    low = dct[:8, :8]
    return PHash.from_bits(low > np.median(low))


def phash_of(img: Image.Image, orientation: int | None = None) -> PHash:
    """pHash of the picture as displayed: EXIF orientation applied first.

    ``orientation`` defaults to the image's own EXIF tag. The transpose runs on the
    image as given, which the decoder has already made small (JPEG draft, RAW
    preview), so honouring orientation costs little. Equal to
    ``imagehash.phash(ImageOps.exif_transpose(img))`` on the same pixels.
    """
    if orientation is None:
        orientation = orientation_of(img)
    if orientation in _ORIENTATION_OPS:
        # Greyscale is a per-pixel conversion, so converting before transposing gives
        # the same pixels as imagehash does after, and moves a third of the bytes.
        img = img.convert("L")
    return phash_pixels(apply_orientation(img, orientation))
