"""inspect_file over the shared sample library, checked against its MANIFEST.tsv.

Notes on the comparisons (what the manifest measured and what we do differently):

- The manifest's ``phash`` is ``imagehash.phash(Image.open(p))``: full decode and *no*
  EXIF orientation. Ours turns the picture upright first and decodes JPEG at 1/8
  scale (luma only). So for rows whose orientation is 1 we compare directly (draft
  decoding may move a couple of bits; allowed <= 4); for rotated rows we check that
  our decoder, with orientation ignored, lands on the manifest's hash, and that the
  upright hash really differs.
- The manifest's ``datetime_original`` falls back to ModifyDate (IFD0 DateTime /
  xmp:ModifyDate) when a file has no capture date. We follow Immich's ranking
  (DateTimeOriginal, CreateDate, DateTimeCreated; EXIF then XMP) and never use a
  modification time, so the date must match exactly wherever the file carries an
  EXIF DateTimeOriginal (and for RAW and video rows); elsewhere differences are
  reported, not failed.
- ``broken`` means "has a reported problem": every such row must get ``error`` or
  (for the mis-named ``heic_hdlr_box.jpg``, which decodes fine) a ``warning`` plus a
  pHash.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from core.media.decode import open_image
from core.media.exif import parse_datetime
from core.media.inspect import FileFacts, inspect_file
from core.media.phash import hamming, phash_of
from tests.samples import CATALOG_KIND

pytestmark = pytest.mark.samples

DRAFT_TOLERANCE = 4


@pytest.fixture(scope="module")
def results(samples: Path, manifest: list[dict[str, str]]) -> dict[str, FileFacts]:
    return {
        row["path"]: inspect_file(str(samples / row["path"]), full_hash=False) for row in manifest
    }


def test_every_row_inspected_without_raising(
    results: dict[str, FileFacts], manifest: list[dict[str, str]]
) -> None:
    assert len(results) == len(manifest) > 100
    for row in manifest:
        facts = results[row["path"]]
        assert facts.size > 0
        assert facts.bytes_read > 0


def test_kinds_map(results: dict[str, FileFacts], manifest: list[dict[str, str]]) -> None:
    for row in manifest:
        if row["kind"] in CATALOG_KIND:
            assert results[row["path"]].kind == CATALOG_KIND[row["kind"]], row["path"]


def test_broken_rows_report_a_problem(
    results: dict[str, FileFacts], manifest: list[dict[str, str]]
) -> None:
    broken = [row for row in manifest if row["kind"] == "broken"]
    assert broken
    for row in broken:
        facts = results[row["path"]]
        assert facts.error or facts.warning, row["path"]
        problem = facts.error or facts.warning or ""
        assert len(problem) > 10 and "Traceback" not in problem
    misnamed = results["exif-py/heic/heic_hdlr_box.jpg"]
    assert misnamed.error is None
    assert misnamed.warning == "extension .jpg but content is HEIF"
    assert misnamed.format == "heic" and misnamed.phash is not None
    # Every other broken row is an error, with the reason spelled out.
    for row in broken:
        if row["path"] != "exif-py/heic/heic_hdlr_box.jpg":
            assert results[row["path"]].error, row["path"]
    assert results["skimage/truncated.jpg"].error.startswith("truncated JPEG")
    assert results["exif-py/sony_alpha_a7iii_raw_image.ARW"].error.startswith(
        "RAW file LibRaw cannot open"
    )


def _stored_phash(samples: Path, row: dict[str, str]) -> str:
    """Our decoder's hash with the orientation tag ignored (what the manifest measured)."""
    data = (samples / row["path"]).read_bytes()
    decoded = open_image(data, None)
    return phash_of(decoded.image, 1).hex()


def test_picture_phashes_match_manifest(
    samples: Path, results: dict[str, FileFacts], manifest: list[dict[str, str]]
) -> None:
    exact = close = rotated = 0
    rows = [r for r in manifest if r["kind"] in ("jpeg", "heic", "png", "tiff")]
    for row in rows:
        facts = results[row["path"]]
        assert facts.error is None, (row["path"], facts.error)
        assert facts.phash is not None, row["path"]
        if not row["phash"]:
            continue
        if (facts.orientation or 1) == 1:
            d = hamming(facts.phash, row["phash"])
            assert d <= DRAFT_TOLERANCE, (row["path"], facts.phash, row["phash"])
            exact += d == 0
            close += 0 < d
        else:
            rotated += 1
            assert hamming(_stored_phash(samples, row), row["phash"]) <= DRAFT_TOLERANCE
            assert hamming(facts.phash, row["phash"]) > DRAFT_TOLERANCE, row["path"]
    print(
        f"\npHash vs manifest: {exact} exact, {close} within {DRAFT_TOLERANCE} bits, "
        f"{rotated} rotated rows checked against the stored orientation, of {len(rows)}"
    )
    assert exact >= 0.8 * (exact + close)


def test_raw_previews(results: dict[str, FileFacts], manifest: list[dict[str, str]]) -> None:
    for row in manifest:
        if row["kind"] != "raw":
            continue
        facts = results[row["path"]]
        usable_half = row["rawpy_postprocess"].startswith("yes")
        if row["rawpy_thumb"] == "yes":
            assert facts.phash is not None, row["path"]
            if row["thumb_phash"]:
                assert hamming(facts.phash, row["thumb_phash"]) <= DRAFT_TOLERANCE, row["path"]
        elif usable_half:
            assert facts.phash is not None, row["path"]
        else:
            # Metadata-only or pruned samples: no picture to hash, and the reason is given.
            assert facts.phash is None and facts.error and "LibRaw cannot decode" in facts.error
        # Preview-only reads stay well below the file size for files bigger than 1 MiB.
        if facts.size > 1 << 20:
            assert facts.sha256 is None and facts.bytes_read < facts.size / 2


def test_dimensions_match(results: dict[str, FileFacts], manifest: list[dict[str, str]]) -> None:
    checked = 0
    for row in manifest:
        if row["kind"] == "broken" or not row["width"]:
            continue
        facts = results[row["path"]]
        assert (facts.width, facts.height) == (int(row["width"]), int(row["height"])), row["path"]
        checked += 1
    assert checked > 100


def _has_exif_original(path: Path) -> bool:
    try:
        sub = Image.open(path).getexif().get_ifd(0x8769)
        return parse_datetime(sub.get(0x9003))[0] is not None
    except Exception:
        return False


def test_capture_times(
    samples: Path, results: dict[str, FileFacts], manifest: list[dict[str, str]]
) -> None:
    strict = matched = reported = 0
    for row in manifest:
        want, _offset = parse_datetime(row["datetime_original"])
        if want is None or row["kind"] == "broken":
            continue
        facts = results[row["path"]]
        got = facts.taken_at.replace(microsecond=0) if facts.taken_at else None
        must = row["kind"] in ("raw", "video") or _has_exif_original(samples / row["path"])
        if must:
            strict += 1
            assert got == want, (row["path"], got, want)
        if got == want:
            matched += 1
        else:
            reported += 1
            print(
                f"\n  date differs (no EXIF DateTimeOriginal): {row['path']}: ours {got}, "
                f"manifest {row['datetime_original']}"
            )
    print(
        f"\ncapture time: {matched} match the manifest ({strict} strictly required), "
        f"{reported} differ where the file has no EXIF capture date"
    )
    assert strict > 80


def test_zero_dates_are_none(results: dict[str, FileFacts]) -> None:
    # "0000:00:00 00:00:00" in the file is no date at all.
    assert results["metadata-extractor/jpg/Nikon E885.jpg"].taken_at is None


def test_full_hash_reads_raw_once(samples: Path) -> None:
    path = samples / "imagemeta" / "CRW.CRW"
    facts = inspect_file(str(path), full_hash=True)
    assert facts.bytes_read == facts.size == os.path.getsize(path)
    assert facts.sha256 is not None and facts.phash is not None
    light = inspect_file(str(path), full_hash=False)
    assert light.phash == facts.phash  # same preview whether decoded from memory or the path
    assert light.taken_at == facts.taken_at == datetime(2018, 1, 1, 13, 3, 32)


def test_raw_with_non_utf8_name(samples: Path, tmp_path: Path) -> None:
    # rawpy can only open UTF-8 paths; a surrogate-escaped name must still work.
    link = os.path.join(str(tmp_path), os.fsdecode(b"caf\xe9.crw"))
    os.symlink(samples / "imagemeta" / "CRW.CRW", link)
    facts = inspect_file(link, full_hash=False)
    assert facts.error is None
    assert (
        facts.phash == inspect_file(str(samples / "imagemeta" / "CRW.CRW"), full_hash=False).phash
    )


def test_raw_thumbnail(samples: Path) -> None:
    import io

    from core.media.decode import render_thumbnail

    thumb = Image.open(io.BytesIO(render_thumbnail(str(samples / "imagemeta" / "CRW.CRW"))))
    assert thumb.format == "JPEG" and max(thumb.size) == 320


def test_a_linear_dng_is_held_to_the_pixel_limit_at_the_size_it_decodes() -> None:
    from core.media.decode import BombError, raw_decode, raw_open
    from tests.samples import require_samples

    # A linear DNG (RawType.Stack, as iPhone ProRAW) without a usable preview: LibRaw
    # ignores half_size for it and decodes all 4032 x 3024 pixels
    data = (require_samples() / "exiv2" / "IMG_1361.dng").read_bytes()
    quarter = 4032 * 3024 // 4 + 10  # what a half-size decode would be under
    with pytest.raises(BombError):
        raw_decode(raw_open(data), max_pixels=quarter)
    got = raw_decode(raw_open(data), max_pixels=4032 * 3024 + 10)
    assert got.decoded is not None and got.decoded.source == "half-size"


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_rotated_raw_is_hashed_upright(orientation: int, tmp_path: Path) -> None:
    from core.media.colour import colour_signature
    from core.media.decode import raw_decode, raw_open
    from tests.samples import require_samples

    # Given a DNG whose IFD0 Orientation (offset 130, a SHORT, now 1) says it was shot
    # turned: the camera stores the picture as the sensor saw it
    data = bytearray((require_samples() / "skia" / "sample_1mp.dng").read_bytes())
    assert data[:2] == b"II" and data[138:140] == b"\x01\x00"
    upright = inspect_file(str(require_samples() / "skia" / "sample_1mp.dng"), full_hash=False)
    stored = raw_decode(raw_open(bytes(data)), mode="RGB").decoded
    data[138:140] = orientation.to_bytes(2, "little")
    turned = tmp_path / f"turned{orientation}.dng"
    turned.write_bytes(bytes(data))
    # When it is inspected
    facts = inspect_file(str(turned), full_hash=False)
    # Then the hash is that of the picture turned upright, as for a JPEG
    assert facts.orientation == orientation
    assert facts.phash == str(phash_of(stored.image, orientation)) != upright.phash
    assert facts.colour == colour_signature(stored.image, orientation) != upright.colour
