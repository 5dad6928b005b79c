"""HEIF pictures are hashed from their embedded thumbnail when it can stand in for them
(libheif has no reduced-scale decode), and from the whole picture otherwise."""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import pillow_heif
import pytest
from PIL import Image

from core.media.colour import colour_signature
from core.media.decode import HEIF_THUMB_MIN_SIDE, heif_box, open_image, render_thumbnail
from core.media.inspect import inspect_file
from tests.unit.test_media_phash import photo


def heif(img: Image.Image, thumbnails: list[int], **kw: object) -> bytes:
    out = io.BytesIO()
    img.save(out, "HEIF", quality=80, thumbnails=thumbnails, **kw)
    return out.getvalue()


def whole(data: bytes) -> Image.Image:
    """The picture decoded in full, as before thumbnails were used."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def colour_gap(a: Image.Image, b: Image.Image) -> int:
    ca, cb = bytes.fromhex(colour_signature(a)), bytes.fromhex(colour_signature(b))
    return max(abs(x - y) for x, y in zip(ca, cb, strict=True))


@pytest.mark.parametrize("size", [(1024, 768), (768, 1024)])
def test_a_heif_with_an_iphone_sized_thumbnail_is_hashed_from_it(size):
    # Given a picture stored with a 320-pixel thumbnail, as iPhones store theirs
    img = photo(*size, 3)
    data = heif(img, [320])
    # When it is opened for hashing
    decoded = open_image(data, "heic", mode="RGB")
    # Then the thumbnail is decoded, not the picture, and the facts are the picture's
    assert decoded.source == "thumbnail"
    assert max(decoded.image.size) == 320
    assert (decoded.width, decoded.height) == size
    # And its hashes are the whole picture's, within what bench/bench_heif.py measures
    full = whole(data)
    assert imagehash.phash(decoded.image) - imagehash.phash(full) <= 6
    assert colour_gap(decoded.image, full) <= 3


def test_inspect_file_reports_the_pictures_size_and_a_close_phash(tmp_path: Path) -> None:
    img = photo(1024, 768, 4)
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(heif(img, [320]))
    facts = inspect_file(str(path), full_hash=False)
    assert facts.error is None and (facts.kind, facts.format) == ("image", "heic")
    assert (facts.width, facts.height) == (1024, 768)
    assert imagehash.hex_to_hash(facts.phash) - imagehash.phash(img) <= 6


def test_without_a_thumbnail_the_whole_picture_is_decoded():
    decoded = open_image(heif(photo(800, 600, 5), []), "heic", mode="RGB")
    assert decoded.source == "full" and decoded.image.size == (800, 600)


def test_a_thumbnail_smaller_than_the_box_is_not_taken():
    # 128 pixels on its longer side: less than the 256 the hash asks for
    decoded = open_image(heif(photo(800, 600, 6), [128]), "heic", mode="RGB")
    assert decoded.source == "full" and decoded.image.size == (800, 600)


def test_the_smallest_thumbnail_that_covers_the_box_is_taken():
    decoded = open_image(heif(photo(1024, 768, 7), [128, 320, 640]), "heic", mode="RGB")
    assert decoded.source == "thumbnail" and decoded.image.size == (320, 240)


def test_the_thumbnail_endpoint_takes_a_thumbnail_only_if_it_covers_its_size(tmp_path):
    path = tmp_path / "a.heic"
    path.write_bytes(heif(photo(1024, 768, 8), [320]))
    small = Image.open(io.BytesIO(render_thumbnail(str(path), max_side=256)))
    large = Image.open(io.BytesIO(render_thumbnail(str(path), max_side=512)))
    # Both fit their box whole: the larger one came from the picture, not a 320 thumbnail
    assert small.size == (256, 192) and large.size == (512, 384)


def test_heif_box_scales_the_longer_side_and_keeps_a_usable_shorter_one():
    assert heif_box(4032, 3024, (256, 256)) == (256, 192)
    assert heif_box(3024, 4032, (256, 256)) == (192, 256)
    # The shorter side rounded up (960 * 256 / 1440 = 170.7): never below the scaled picture
    assert heif_box(1440, 960, (256, 256)) == (256, 171)
    # A panorama's thumbnail must keep its shorter side usable for the 32x32 grid
    assert heif_box(8000, 1000, (256, 256)) == (256, HEIF_THUMB_MIN_SIDE)
    # A picture no larger than the box: a thumbnail would be the picture or smaller
    assert heif_box(100, 50, (256, 256)) == (100, 50)


def test_a_real_iphone_pictures_thumbnail_gives_its_manifest_phash(samples, manifest):
    """lychee/classic-car.heic: an iPhone's 3024x4032 picture with its 240x320 thumbnail;
    the manifest's pHash is from a full decode."""
    (entry,) = [row for row in manifest if row["path"] == "lychee/classic-car.heic"]
    path = samples / entry["path"]
    data = path.read_bytes()
    assert pillow_heif.open_heif(io.BytesIO(data)).info["thumbnails"] == [320]
    decoded = open_image(data, "heic")
    assert decoded.source == "thumbnail" and decoded.image.size == (240, 320)
    assert (decoded.width, decoded.height) == (3024, 4032)
    facts = inspect_file(str(path), full_hash=False)
    assert imagehash.hex_to_hash(facts.phash) - imagehash.hex_to_hash(entry["phash"]) <= 2
