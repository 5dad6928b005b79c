"""PHash value type and bit-for-bit compatibility with imagehash.phash."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from core.media.phash import PHash, hamming, phash_of


def photo(width: int = 480, height: int = 320, seed: int = 0) -> Image.Image:
    """Photo-like RGB picture: gradients, shapes and sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 255 * (x / width) * (0.5 + 0.5 * np.sin(y / (17 + seed)))
    g = 255 * (y / height)
    b = 128 + 100 * np.cos((x + y) / (29 + 3 * seed))
    arr = np.stack([r, g, b], axis=-1) + rng.normal(0, 8, (height, width, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        x1 = x0 + int(rng.integers(10, width // 3))
        y1 = y0 + int(rng.integers(10, height // 3))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    return img


def jpeg_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue()))


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "CMYK"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_imagehash(mode: str, seed: int) -> None:
    img = photo(300 + 37 * seed, 200 + 11 * seed, seed).convert(mode)
    assert phash_of(img).hex() == str(imagehash.phash(img))


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_orientation_matches_exif_transpose(orientation: int) -> None:
    img = photo(320, 200, 3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    img.save(out, "PNG", exif=exif)
    tagged = Image.open(io.BytesIO(out.getvalue()))
    want = imagehash.phash(ImageOps.exif_transpose(tagged))
    assert phash_of(tagged).hex() == str(want)  # orientation read from the image
    assert phash_of(img, orientation).hex() == str(want)  # or given explicitly


def test_reencoded_close_different_far() -> None:
    a = photo(640, 480, 5)
    b = photo(640, 480, 6)
    ha = phash_of(a)
    assert ha - phash_of(jpeg_roundtrip(a, 70)) <= 6
    assert ha - phash_of(b) > 20


def test_hex_int_roundtrip_and_value_semantics() -> None:
    h = phash_of(photo(200, 200, 7))
    assert PHash.from_hex(h.hex()) == h
    assert PHash(int(h)) == h
    assert PHash.from_signed(h.to_signed()) == h
    assert -(1 << 63) <= h.to_signed() < 1 << 63
    assert len(h.hex()) == 16 and int(h) < 1 << 64
    assert hash(PHash.from_hex(h.hex())) == hash(h)
    assert {h, PHash.from_hex(h.hex())} == {h}
    assert h - h == 0
    flipped = PHash(int(h) ^ 0b1011)
    assert h - flipped == 3 == hamming(h.hex(), flipped.hex())
    # Same bits as imagehash's own representation.
    ih = imagehash.hex_to_hash(h.hex())
    assert PHash.from_bits(ih.hash) == h
    assert (h.bits() == ih.hash).all()
    assert PHash.from_hex("8000000000000000").bits()[0, 0]


@pytest.mark.parametrize("bad", ["", "123", "zz00000000000000", "0" * 17])
def test_from_hex_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        PHash.from_hex(bad)


def test_out_of_range_rejected() -> None:
    with pytest.raises(ValueError):
        PHash(1 << 64)
    with pytest.raises(ValueError):
        PHash(-1)
