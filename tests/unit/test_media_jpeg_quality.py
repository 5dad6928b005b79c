"""A JPEG's quality estimated from its quantisation tables (core.media.decode.jpeg_quality),
as the catalog stores it for the keeper's "jpeg_quality" rule."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from core.media.decode import jpeg_quality, open_image
from core.media.inspect import inspect_file
from tests.factories import picture

SAMSUNG = "metadata-extractor/jpg/Samsung SM-J327T1.jpg"


def jpeg(quality: int | str = 90, **kw: object) -> bytes:
    out = io.BytesIO()
    picture(3, (256, 192)).save(out, "JPEG", quality=quality, **kw)
    return out.getvalue()


def quality_of(data: bytes) -> int | None:
    with Image.open(io.BytesIO(data)) as im:
        return jpeg_quality(im)


@pytest.mark.parametrize("quality", [1, 10, 25, 49, 50, 51, 60, 75, 82, 85, 90, 95, 99, 100])
def test_a_table_libjpeg_made_gives_its_quality_exactly(quality):
    assert quality_of(jpeg(quality)) == quality


def test_other_tables_are_estimated_by_their_scaling_against_libjpegs():
    # Given a JPEG whose luminance table is flat (no quality setting of libjpeg makes it;
    # written at quality 50, which leaves a given table as it is): 8 everywhere is 8/16 ..
    # 8/121 of the IJG base table, on average 24 %, libjpeg's scaling at quality 88
    data = jpeg(50, qtables=[[8] * 64, [8] * 64])
    with Image.open(io.BytesIO(data)) as im:
        assert im.quantization[0] == [8] * 64
    # When its quality is estimated, then it is that of its average scaling
    assert quality_of(data) == 88
    # and a table coarser than libjpeg's at quality 50 (296 % of it) estimates below 50
    assert quality_of(jpeg(50, qtables=[[99] * 64, [99] * 64])) == 17


def test_a_table_kept_through_a_re_save_keeps_its_quality():
    original = jpeg(83)
    with Image.open(io.BytesIO(original)) as im:
        out = io.BytesIO()
        im.save(out, "JPEG", quality="keep")
    assert quality_of(out.getvalue()) == quality_of(original) == 83


def test_pictures_other_than_jpeg_have_none():
    out = io.BytesIO()
    picture(3, (64, 48)).save(out, "PNG")
    assert quality_of(out.getvalue()) is None
    assert open_image(out.getvalue(), "png").jpeg_quality is None


def test_the_catalog_facts_carry_it(tmp_path: Path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg(77))
    facts = inspect_file(str(path), full_hash=False)
    assert (facts.error, facts.jpeg_quality) == (None, 77)


def test_a_phones_own_tables_and_pillow_re_saves_of_it(samples: Path):
    # Given the Samsung phone's JPEG (945 KB, 4:2:0), whose tables are the phone's own
    with Image.open(samples / SAMSUNG) as im:
        # Then its estimate is 85: flat tables (8 at low frequencies, 23-36 at high ones)
        # as coarse on average as libjpeg's at quality 85
        assert jpeg_quality(im) == 85
        # And Pillow's re-saves of it (EXIF kept) are estimated at the quality they were
        # written with
        for q in (82, 90):
            out = io.BytesIO()
            im.save(out, "JPEG", quality=q, exif=im.info["exif"])
            assert quality_of(out.getvalue()) == q
