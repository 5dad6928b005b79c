"""inspect_file and the decoders on generated files: orientation, bombs, broken input,
honest byte counts, EXIF essentials and Live Photo identifiers."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tracemalloc
from datetime import datetime
from pathlib import Path

import imagehash
import pytest
from PIL import Image, ImageFile, ImageOps

from core.media.decode import MediaError, render_thumbnail
from core.media.exif import apple_content_id, parse_datetime
from core.media.inspect import inspect_file
from tests.unit.test_media_phash import photo

# Stored pixels for an upright picture: the inverse of what the tag asks a viewer to do.
STORE_FOR = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


def save(img: Image.Image, path: Path, fmt: str = "JPEG", **kw: object) -> Path:
    img.save(path, fmt, **kw)
    return path


def exif_with(orientation: int | None = None, **sub: object) -> Image.Exif:
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    if sub:
        ifd = exif.get_ifd(0x8769)
        for key, value in sub.items():
            ifd[int(key[1:], 16)] = value
    return exif


@pytest.fixture
def pillow_limit():
    saved = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = saved


def test_jpeg_facts_and_hashes(tmp_path: Path) -> None:
    path = save(photo(640, 480, 1), tmp_path / "a.jpg", quality=90)
    data = path.read_bytes()
    facts = inspect_file(str(path), full_hash=False)
    assert facts.error is None and facts.warning is None
    assert (facts.kind, facts.format) == ("image", "jpeg")
    # Pictures are read once in full, so they always carry both content hashes.
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    assert facts.sha1 == hashlib.sha1(data).hexdigest()
    assert facts.bytes_read == len(data) == facts.size
    assert (facts.width, facts.height, facts.orientation) == (640, 480, 1)
    assert facts.mtime_ns == os.stat(path).st_mtime_ns
    full = imagehash.phash(Image.open(path))
    assert facts.phash is not None and len(facts.phash) == 16
    assert imagehash.hex_to_hash(facts.phash) - full <= 4  # draft decode vs full decode


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_orientation_png_exact(tmp_path: Path, orientation: int) -> None:
    upright = photo(320, 200, 2)
    stored = upright.transpose(STORE_FOR[orientation])
    a = inspect_file(str(save(upright, tmp_path / "up.png", "PNG")), full_hash=False)
    b = inspect_file(
        str(save(stored, tmp_path / "rot.png", "PNG", exif=exif_with(orientation))), full_hash=False
    )
    assert b.error is None
    assert b.phash == a.phash
    assert b.orientation == orientation
    assert (b.width, b.height) == stored.size  # stored dimensions, orientation reported apart


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_orientation_jpeg_close(tmp_path: Path, orientation: int) -> None:
    upright = photo(1024, 768, 4)
    stored = upright.transpose(STORE_FOR[orientation])
    a = inspect_file(str(save(upright, tmp_path / "up.jpg", quality=92)), full_hash=False)
    b = inspect_file(
        str(save(stored, tmp_path / "rot.jpg", quality=92, exif=exif_with(orientation))),
        full_hash=False,
    )
    assert imagehash.hex_to_hash(a.phash) - imagehash.hex_to_hash(b.phash) <= 4
    # Ignoring the tag would have given a far hash: the orientation did the work.
    ignored = imagehash.phash(Image.open(tmp_path / "rot.jpg"))
    assert imagehash.hex_to_hash(a.phash) - ignored > 12


def test_exif_essentials(tmp_path: Path) -> None:
    makernote = apple_makernote("6C7A0B9E-7E2B-4A0C-9D5C-3F1E2A4B5C6D")
    exif = exif_with(
        6,
        x9003="2023:10:22 09:39:48",
        x9291="045",
        x9011="+02:00",
        xA431="SN-12345",
        x927C=makernote,
    )
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 12 Pro"
    path = save(photo(300, 200, 8), tmp_path / "IMG_0001.JPG", exif=exif)
    facts = inspect_file(str(path), full_hash=False)
    assert facts.error is None
    assert facts.taken_at == datetime(2023, 10, 22, 9, 39, 48, 45000)
    assert facts.taken_offset == "+02:00"
    assert (facts.make, facts.model, facts.serial) == ("Apple", "iPhone 12 Pro", "SN-12345")
    assert facts.content_id == "6C7A0B9E-7E2B-4A0C-9D5C-3F1E2A4B5C6D"
    assert facts.orientation == 6


def apple_makernote(content_id: str) -> bytes:
    value = content_id.encode() + b"\0"
    header = b"Apple iOS\x00" + b"\x00\x01" + b"MM"
    entries = [
        (0x0001, 9, 1, struct.pack(">I", 14)),
        (0x0011, 2, len(value), struct.pack(">I", 14 + 2 + 2 * 12 + 4)),
    ]
    body = struct.pack(">H", len(entries))
    for tag, typ, count, raw in entries:
        body += struct.pack(">HHI", tag, typ, count) + raw
    return header + body + b"\0\0\0\0" + value


@pytest.mark.parametrize(
    ("text", "subsec", "offset", "want"),
    [
        ("2020:01:02 03:04:05", None, None, (datetime(2020, 1, 2, 3, 4, 5), None)),
        ("2020:01:02 03:04:05", "5", "-07:00", (datetime(2020, 1, 2, 3, 4, 5, 500000), "-07:00")),
        ("2012-09-17T15:53:45-04:00", None, None, (datetime(2012, 9, 17, 15, 53, 45), "-04:00")),
        ("2013-07-05T03:18:27Z", None, None, (datetime(2013, 7, 5, 3, 18, 27), "+00:00")),
        ("0000:00:00 00:00:00", None, None, (None, None)),
        ("2020:13:45 99:00:00", None, None, (None, None)),
        ("    ", None, None, (None, None)),
        (b"\xff\xfe garbage", None, "+99:99", (None, None)),
        (12345, None, None, (None, None)),
    ],
)
def test_parse_datetime(text: object, subsec: object, offset: object, want: tuple) -> None:
    assert parse_datetime(text, subsec, offset) == want


def test_apple_content_id_garbage_is_none() -> None:
    assert apple_content_id(b"Apple iOS\x00\x00\x01MM\xff\xff" + b"\x00" * 5) is None
    assert apple_content_id(b"Nikon\x00") is None
    assert apple_content_id(None) is None


def test_garbage_exif_never_raises(tmp_path: Path) -> None:
    good = io.BytesIO()
    photo(200, 150, 9).save(good, "JPEG")
    data = good.getvalue()
    junk = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08" + bytes(range(256)) * 3
    segment = b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk
    path = tmp_path / "junk.jpg"
    path.write_bytes(data[:2] + segment + data[2:])
    facts = inspect_file(str(path), full_hash=False)
    assert facts.error is None
    assert facts.phash is not None


@pytest.mark.parametrize(
    "pillow_filter",
    # As configured in production (Pillow's warning raised as an error), and with the
    # warning merely shown: our own declared-size check must refuse either way.
    ["error", "ignore"],
)
def test_bomb_refused_before_decoding(
    tmp_path: Path, pillow_limit: None, pillow_filter: str, recwarn: pytest.WarningsRecorder
) -> None:
    import warnings

    warnings.filterwarnings(pillow_filter, category=Image.DecompressionBombWarning)
    path = save(photo(400, 300, 1), tmp_path / "big.png", "PNG")
    for limit in (100_000, 50_000, 10_000):  # within Pillow's 2x warning band and beyond
        facts = inspect_file(str(path), full_hash=False, max_pixels=limit)
        assert facts.error == f"decompression bomb refused: 120000 pixels > limit {limit}"
        assert facts.phash is None
    assert inspect_file(str(path), full_hash=False, max_pixels=120_000).error is None


def test_zero_byte(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    facts = inspect_file(str(path), full_hash=True, quick_hash=True)
    assert facts.error == "zero-byte file"
    assert facts.kind == "image" and facts.sha256 is None and facts.bytes_read == 0


def test_truncated_jpeg_is_an_error(tmp_path: Path) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    full = io.BytesIO()
    photo(800, 600, 3).save(full, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(full.getvalue()[: len(full.getvalue()) * 6 // 10])
    facts = inspect_file(str(path), full_hash=False)
    assert facts.error is not None and facts.error.startswith("truncated JPEG")
    assert facts.phash is None


def test_vanished_and_directory(tmp_path: Path) -> None:
    gone = inspect_file(str(tmp_path / "nope.jpg"), full_hash=True)
    assert gone.error == "file vanished before it could be read"
    assert gone.kind == "image"
    folder = inspect_file(str(tmp_path), full_hash=True)
    assert folder.error == "is a directory, not a file"


@pytest.mark.unprivileged
def test_permission_denied(tmp_path: Path) -> None:
    path = save(photo(100, 100), tmp_path / "locked.jpg")
    path.chmod(0)
    assert inspect_file(str(path), full_hash=False).error == "permission denied"


def test_non_utf8_name(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.jpg")
    path = os.path.join(str(tmp_path), name)
    photo(200, 120, 5).save(path, "JPEG")
    facts = inspect_file(path, full_hash=False)
    assert facts.error is None and facts.phash is not None and facts.kind == "image"


def test_misnamed_heif_gets_phash_and_warning(tmp_path: Path) -> None:
    import pillow_heif

    img = photo(256, 192, 6)
    path = tmp_path / "really_heif.jpg"
    pillow_heif.from_pillow(img).save(str(path), format="HEIF", quality=90)
    facts = inspect_file(str(path), full_hash=False)
    assert (facts.kind, facts.format) == ("image", "heic")
    assert facts.warning == "extension .jpg but content is HEIF"
    assert facts.error is None
    assert imagehash.hex_to_hash(facts.phash) - imagehash.phash(img) <= 6


def quicktime(
    content_id: str | None,
    creation: str | None,
    mvhd_secs: int,
    *,
    mvhd_version: int = 0,
    wide_mdat: bool = False,
) -> bytes:
    """A QuickTime file: ftyp, mdat, then moov with mvhd (created ``mvhd_secs``, modified a
    day later: readers must take the right one) and Apple's metadata keys."""

    def box(typ: bytes, payload: bytes) -> bytes:
        if wide_mdat and typ == b"mdat":  # a 64-bit size, as for clips over 4 GiB
            return struct.pack(">I", 1) + typ + struct.pack(">Q", 16 + len(payload)) + payload
        return struct.pack(">I", 8 + len(payload)) + typ + payload

    items = [
        (k, v)
        for k, v in (
            ("com.apple.quicktime.content.identifier", content_id),
            ("com.apple.quicktime.creationdate", creation),
        )
        if v
    ]
    keys = struct.pack(">II", 0, len(items)) + b"".join(
        struct.pack(">I", 8 + len(k)) + b"mdta" + k.encode() for k, _ in items
    )
    ilst = b"".join(
        box(struct.pack(">I", i + 1), box(b"data", struct.pack(">II", 1, 0) + v.encode()))
        for i, (_, v) in enumerate(items)
    )
    meta = box(
        b"meta",
        box(b"hdlr", b"\0" * 8 + b"mdta" + b"\0" * 13) + box(b"keys", keys) + box(b"ilst", ilst),
    )
    modified = mvhd_secs + 86_400
    if mvhd_version == 1:
        times = struct.pack(">BxxxQQ", 1, mvhd_secs, modified)
    else:
        times = struct.pack(">BxxxII", 0, mvhd_secs, modified)
    mvhd = box(b"mvhd", times + b"\0" * 88)
    return (
        box(b"ftyp", b"qt  \0\0\0\0qt  ")
        + box(b"mdat", os.urandom(20_000))
        + box(b"moov", mvhd + meta)
    )


def test_live_photo_video_identifier(tmp_path: Path) -> None:
    data = quicktime(
        "6C7A0B9E-7E2B-4A0C-9D5C-3F1E2A4B5C6D", "2023-10-22T09:39:48+0200", 3_780_000_000
    )
    path = tmp_path / "IMG_0001.MOV"
    path.write_bytes(data)
    facts = inspect_file(str(path), full_hash=False)
    assert (facts.kind, facts.format, facts.error) == ("video", "mov", None)
    assert facts.content_id == "6C7A0B9E-7E2B-4A0C-9D5C-3F1E2A4B5C6D"
    assert facts.taken_at == datetime(2023, 10, 22, 9, 39, 48)
    assert facts.taken_offset == "+02:00"
    assert facts.sha256 is None and facts.bytes_read < len(data) // 2  # mdat never read
    hashed = inspect_file(str(path), full_hash=True, quick_hash=True)
    assert hashed.sha256 == hashlib.sha256(data).hexdigest()
    assert hashed.sha1 == hashlib.sha1(data).hexdigest()
    assert hashed.quick is not None
    assert hashed.bytes_read >= len(data)


def test_video_mvhd_time_is_utc(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    secs = int((datetime(2005, 10, 28, 17, 46, 46) - datetime(1904, 1, 1)).total_seconds())
    path.write_bytes(quicktime(None, None, secs))
    facts = inspect_file(str(path), full_hash=False)
    assert facts.taken_at == datetime(2005, 10, 28, 17, 46, 46)
    assert facts.taken_offset == "+00:00"
    assert facts.content_id is None


@pytest.mark.parametrize("version", [0, 1])
def test_video_creation_time_of_either_mvhd_version(tmp_path: Path, version: int) -> None:
    path = tmp_path / "clip.mp4"
    secs = int((datetime(2023, 10, 13) - datetime(1904, 1, 1)).total_seconds())
    path.write_bytes(quicktime(None, None, secs, mvhd_version=version))
    facts = inspect_file(str(path), full_hash=False)
    assert (facts.taken_at, facts.taken_offset) == (datetime(2023, 10, 13), "+00:00")


def test_metadata_after_a_64_bit_mdat_is_read(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0002.MOV"
    path.write_bytes(quicktime("AB-12", "2023-10-22T09:39:48+0200", 3_780_000_000, wide_mdat=True))
    facts = inspect_file(str(path), full_hash=False)
    assert facts.content_id == "AB-12"
    assert facts.taken_at == datetime(2023, 10, 22, 9, 39, 48)


def test_other_files_hash_only_on_request(tmp_path: Path) -> None:
    data = os.urandom(30_000)
    path = tmp_path / "notes.bin"
    path.write_bytes(data)
    light = inspect_file(str(path), full_hash=False)
    assert (light.kind, light.sha256, light.quick, light.bytes_read) == ("other", None, None, 4096)
    quick = inspect_file(str(path), full_hash=False, quick_hash=True)
    assert quick.quick is not None and quick.bytes_read == 8192
    full = inspect_file(str(path), full_hash=True)
    assert full.sha256 == hashlib.sha256(data).hexdigest() and full.bytes_read == len(data)


def test_render_thumbnail_upright_and_small(tmp_path: Path) -> None:
    stored = photo(800, 600, 2).transpose(STORE_FOR[6])  # 600x800 stored, shown 800x600
    path = save(stored, tmp_path / "t.jpg", exif=exif_with(6))
    thumb = Image.open(io.BytesIO(render_thumbnail(str(path), max_side=320)))
    assert thumb.format == "JPEG"
    assert thumb.size == (320, 240)
    want = ImageOps.exif_transpose(Image.open(path)).resize((320, 240))
    assert imagehash.phash(thumb) - imagehash.phash(want) <= 6


# --- hostile files: misnamed giants, FIFOs, files that change under the reader -------


def test_big_video_named_jpg_is_not_read_into_memory(tmp_path: Path) -> None:
    # Given a 64 MiB MP4 (sparse: cheap to make) named like a picture
    path = tmp_path / "clip.jpg"
    with path.open("wb") as fh:
        fh.write(struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x00\x00isommp41")
        fh.truncate(64 << 20)
    # When it is inspected as the catalog does
    facts = inspect_file(str(path), full_hash=False)
    # Then its content decides: a video, sniffed from its head, not read whole
    assert (facts.kind, facts.format) == ("video", "mp4")
    assert facts.warning == "extension .jpg but content is MP4"
    assert facts.bytes_read < 1 << 20


def test_a_big_file_of_unknown_content_named_jpg_is_streamed_not_decoded(
    tmp_path: Path,
) -> None:
    # Given a 96 MiB archive (sparse: cheap to make) renamed like a picture
    path = tmp_path / "holiday.jpg"
    with path.open("wb") as fh:
        fh.write(b"PK\x03\x04" + b"\x00" * 60)
        fh.truncate(96 << 20)
    # When it is inspected with its full hash, as for a possible byte copy
    tracemalloc.start()
    try:
        facts = inspect_file(str(path), full_hash=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Then it is hashed by streaming (copies of it are still found) and reported as no
    # picture, without being read into memory for Pillow
    assert facts.kind == "image" and facts.format is None
    assert facts.error is not None and facts.error.startswith("not a picture: named as one")
    assert facts.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert facts.phash is None and peak < 32 << 20, peak
    # And no thumbnail is attempted either
    with pytest.raises(MediaError, match="not a picture"):
        render_thumbnail(str(path))


def test_a_small_file_of_unknown_content_named_jpg_is_still_tried(tmp_path: Path) -> None:
    path = tmp_path / "odd.jpg"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    facts = inspect_file(str(path), full_hash=True)
    assert facts.error == "unreadable IMAGE: not a picture Pillow or pillow-heif can identify"


def test_fifo_swapped_in_after_the_check_does_not_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    # Given a FIFO with no writer, and a stat that still saw the regular file it replaced
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    regular = os.stat(__file__)
    real_stat = os.stat
    monkeypatch.setattr(
        os, "stat", lambda p, *a, **k: regular if str(p) == str(fifo) else real_stat(p, *a, **k)
    )
    result: list[object] = []
    # When it is inspected
    t = threading.Thread(target=lambda: result.append(inspect_file(str(fifo), full_hash=False)))
    t.daemon = True
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the stuck reader so the test run can go on
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
    # Then it returns at once with a reason instead of waiting for a writer
    assert result, "inspect_file blocked on a FIFO"
    assert result[0].error == "not a regular file: a FIFO"  # type: ignore[attr-defined]


def test_file_growing_while_it_is_hashed_keeps_no_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.media.inspect as inspect_mod

    # Given a video that grows (a copy still arriving) while its bytes are streamed
    path = tmp_path / "clip.mov"
    path.write_bytes(quicktime(None, None, 0) + os.urandom(50_000))
    real_hash_stream = inspect_mod.hash_stream

    def growing(fh, prefix=b""):
        with path.open("ab") as out:
            out.write(b"more bytes")
        return real_hash_stream(fh, prefix)

    monkeypatch.setattr(inspect_mod, "hash_stream", growing)
    # When it is fully hashed
    facts = inspect_file(str(path), full_hash=True)
    # Then the half-old digest is dropped and the reason given
    assert facts.sha256 is None and facts.sha1 is None
    assert facts.error is not None and facts.error.startswith(
        "file changed while it was being read"
    )


@pytest.mark.timeout(30)  # the old code hangs here: fail, do not hold up the suite
def test_a_crw_whose_heaps_point_back_at_themselves_is_read_at_once(tmp_path):
    import struct
    import time

    from core.media.exif import facts_from_ciff

    # Given a crafted Canon CRW: one heap of 256 sub-heap entries, each the heap itself
    n = 256
    heap_start, heap_size = 26, 2 + 10 * n + 4
    table = struct.pack("<H", n) + b"".join(
        struct.pack("<HII", 0x280A, heap_size, 0) for _ in range(n)
    )
    heap = table + struct.pack("<I", 0)  # the table sits at the heap's start
    data = b"II" + struct.pack("<I", heap_start) + b"HEAPCCDR" + b"\x00" * 12 + heap
    path = tmp_path / "loop.crw"
    path.write_bytes(data)
    # When its metadata is read, then it answers at once (before: 256^5 heap walks)
    t0 = time.monotonic()
    with open(path, "rb") as fh:
        facts = facts_from_ciff(fh, len(data))
    assert time.monotonic() - t0 < 2
    assert facts.taken_at is None


def test_a_rotated_avif_hashes_like_the_same_rotated_jpeg(tmp_path):
    from PIL import Image, features

    from core.media.phash import hamming

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec (pillow-heif reads AVIF then, upright)")
    # Given one picture stored sideways with "rotate 90 CW to view" (orientation 6), as a
    # JPEG and as an AVIF (Pillow writes the AVIF's rotation box from it)
    upright = Image.new("RGB", (300, 200), (240, 240, 240))
    upright.paste((200, 30, 30), (0, 0, 150, 100))
    upright.paste((30, 30, 200), (150, 100, 300, 200))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "r.jpg", quality=95, exif=exif)
    stored.save(tmp_path / "r.avif", quality=90, exif=exif)
    upright.save(tmp_path / "u.jpg", quality=95)
    u, j, a = (
        inspect_file(str(tmp_path / n), full_hash=False) for n in ("u.jpg", "r.jpg", "r.avif")
    )
    # Then both hash like the upright picture, and the AVIF's orientation is kept
    assert hamming(j.phash, u.phash) <= 4
    assert hamming(a.phash, u.phash) <= 6, (a.phash, u.phash)
    assert (a.width, a.height, a.orientation) == (j.width, j.height, j.orientation)


def test_a_16_bit_greyscale_scan_hashes_like_its_8_bit_self(tmp_path: Path) -> None:
    import numpy as np

    from core.media.phash import hamming

    # Given film scans saved as 16-bit greyscale PNGs (and one as 8-bit)
    def grey16(seed: int) -> Image.Image:
        grey = np.asarray(photo(320, 240, seed).convert("L"), np.uint16) * 257
        return Image.fromarray(grey)

    def facts(img: Image.Image, name: str):  # type: ignore[no-untyped-def]
        return inspect_file(str(save(img, tmp_path / name, "PNG")), full_hash=False)

    eight = facts(photo(320, 240, 1).convert("L"), "8.png")
    one, two = facts(grey16(1), "one.png"), facts(grey16(2), "two.png")
    assert Image.open(tmp_path / "one.png").mode.startswith("I")
    # Then a 16-bit scan hashes as the same picture in 8 bits, and two scans apart
    assert one.phash == eight.phash
    assert hamming(one.phash, two.phash) > 20


def test_a_date_only_in_xmp_is_read(tmp_path: Path) -> None:
    # Given a Lightroom export or scan whose capture date is only in its XMP packet
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        b'xmp:CreateDate="2019-05-04T06:14:51+02:00"/></rdf:RDF></x:xmpmeta>'
    )
    path = save(photo(300, 200, 3), tmp_path / "export.jpg", xmp=xmp)
    facts = inspect_file(str(path), full_hash=False)
    # Then its date and offset are the capture time
    assert (facts.taken_at, facts.taken_offset) == (datetime(2019, 5, 4, 6, 14, 51), "+02:00")


def test_a_date_only_digitized_is_read_with_its_own_offset(tmp_path: Path) -> None:
    # Given a scanner's EXIF: DateTimeDigitized, its subseconds and offset, no original
    exif = exif_with(x9004="2021:03:04 05:06:07", x9292="12", x9012="-03:00")
    facts = inspect_file(
        str(save(photo(300, 200, 4), tmp_path / "scan.jpg", exif=exif)), full_hash=False
    )
    assert (facts.taken_at, facts.taken_offset) == (datetime(2021, 3, 4, 5, 6, 7, 120000), "-03:00")


def test_an_olympus_raw_gives_its_exif_even_when_libraw_cannot(tmp_path: Path) -> None:
    # Given an ORF: TIFF behind its own header ("MMOR" for "MM\0*"), which Pillow refuses
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "OLYMPUS", "E-M1"
    exif.get_ifd(0x8769)[0x9003] = "2021:06:01 10:11:12"
    tiff = exif.tobytes()[6:]  # after "Exif\0\0": "MM\0*", then the IFD offset
    path = tmp_path / "X.ORF"
    path.write_bytes(b"MMOR" + tiff[4:] + bytes(5000))
    # When inspected, Then the capture time and camera come from its EXIF (pairing needs them)
    facts = inspect_file(str(path), full_hash=False)
    assert facts.kind == "raw"
    assert (facts.taken_at, facts.make, facts.model) == (
        datetime(2021, 6, 1, 10, 11, 12),
        "OLYMPUS",
        "E-M1",
    )


def test_a_big_raw_without_a_preview_is_checked_at_its_half_size_before_decoding() -> None:
    from types import SimpleNamespace

    import numpy as np
    import rawpy

    from core.media.decode import BombError, raw_decode

    # Given a 96-megapixel RAW (a Bayer sensor) with no usable preview
    decoded = []

    class Raw:
        sizes = SimpleNamespace(width=12_000, height=8_000, flip=0)
        raw_type = rawpy.RawType.Flat

        def extract_thumb(self):
            raise rawpy.LibRawNoThumbnailError("no thumbnail")

        def postprocess(self, **kw):
            decoded.append(kw)
            return np.zeros((40, 60, 3), np.uint8)

    # When the limit is below its half size (24 MP), Then it is refused without decoding
    with pytest.raises(BombError, match="24000000 pixels"):
        raw_decode(Raw(), max_pixels=20_000_000)
    assert decoded == []
    # while above it, the half-size decode goes ahead
    got = raw_decode(Raw(), max_pixels=25_000_000)
    assert got.decoded is not None and got.decoded.source == "half-size"
    assert decoded == [{"half_size": True, "use_camera_wb": True, "output_bps": 8}]


def test_thumbnail_refuses_a_symlink_out_of_the_library_swapped_in_after_the_check(
    tmp_path: Path,
) -> None:
    # Given a library file that, after the gateway confined its path, became a symlink to
    # a picture outside the library
    root = tmp_path / "library"
    root.mkdir()
    outside = tmp_path / "private.jpg"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(outside)
    (root / "a.jpg").symlink_to(outside)
    # When its thumbnail is rendered within the root, then nothing outside is read
    with pytest.raises(MediaError, match="out of the library"):
        render_thumbnail(str(root / "a.jpg"), real_root=str(root))
    # (an ordinary file in the root still renders)
    Image.new("RGB", (64, 48), (10, 200, 10)).save(root / "b.jpg")
    assert render_thumbnail(str(root / "b.jpg"), real_root=str(root))[:2] == b"\xff\xd8"


def test_thumbnail_of_a_fifo_named_jpg_fails_at_once(tmp_path: Path) -> None:
    # Given a FIFO with no writer where a picture was: opening it for reading would wait
    fifo = tmp_path / "a.jpg"
    os.mkfifo(fifo)
    # Then the thumbnail is refused with a reason instead of hanging the request
    with pytest.raises(MediaError, match="not a regular file"):
        render_thumbnail(str(fifo))


def _mp4_boxes() -> bytes:
    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    mvhd = box(b"mvhd", bytes(4) + struct.pack(">II", 3_600_000_000, 0) + bytes(88))
    return box(b"ftyp", b"isom" + bytes(4)) + box(b"moov", mvhd) + box(b"mdat", bytes(64))


class _FailsAfter(io.BytesIO):
    """A file whose reads fail with EIO past ``limit`` bytes (a bad sector on a share)."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__(data)
        self.limit = limit

    def read(self, n: int | None = -1) -> bytes:
        if self.tell() >= self.limit:
            raise OSError(5, "Input/output error")
        return super().read(n)


def test_a_video_whose_read_fails_is_a_failed_read_not_a_file_without_a_date() -> None:
    from core.media.exif import facts_from_quicktime

    data = _mp4_boxes()
    assert facts_from_quicktime(io.BytesIO(data), len(data)).taken_at is not None
    # When its reads fail part-way, the parser says so instead of a file without a date
    with pytest.raises(OSError):
        facts_from_quicktime(_FailsAfter(data, 20), len(data))
    # (while a box that makes no sense is still only a parse problem)
    garbage = data[:24] + b"\xff" * 8 + data[32:]
    facts_from_quicktime(io.BytesIO(garbage), len(garbage))


def test_a_libraw_read_error_on_a_raw_that_reads_fine_is_a_bad_file(
    samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rawpy

    # Given a large RAW (LibRaw reads it by path) that LibRaw cannot read ("Input/output
    # error", as it says of a RAW cut short), though every byte of it reads fine
    path = tmp_path / "IMG_0001.CRW"
    path.write_bytes((samples / "imagemeta" / "CRW.CRW").read_bytes())

    def ioerror(source, *args, **kwargs):
        raise rawpy.LibRawIOError(b"Input/output error")

    monkeypatch.setattr(rawpy, "imread", ioerror)
    facts = inspect_file(str(path), full_hash=False)
    # Then it is a file LibRaw cannot open, not a read to try again at every scan
    assert facts.error and facts.error.startswith("RAW file LibRaw cannot open")
    # ... said as what it is, not as a disk error
    assert "cut short or damaged (Input/output error)" in facts.error
    assert facts.read_failed is False
