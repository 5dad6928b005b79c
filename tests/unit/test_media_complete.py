"""A RAW, video or HEIF file cut short is reported by inspect_file (core.media.complete),
and keeps the facts read from what is there (so it still pairs with its intact copy).

Every test goes through inspect_file and asserts a truncation it reports: each one fails
when the check is taken out of core.media.inspect.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import pytest

from core.media.complete import overrun_slack, truncation
from core.media.inspect import FileFacts, inspect_file
from tests.unit.test_media_phash import photo

CUTS = (0.1, 0.3, 0.5, 0.9)


def inspect(path: Path, *, full_hash: bool = False, quick_hash: bool = False) -> FileFacts:
    return inspect_file(str(path), full_hash=full_hash, quick_hash=quick_hash)


def cut(src: Path | bytes, fraction: float, dest: Path) -> Path:
    """The first ``fraction`` of a file (or of bytes), written to ``dest``."""
    data = src if isinstance(src, bytes) else src.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


_REASON = re.compile(
    r"truncated: the file ends at ([\d,]+) bytes but its (RAW|video|picture) data runs to ([\d,]+)"
)


def reason(size: int, end: int, what: str = "RAW data") -> str:
    return f"truncated: the file ends at {size:,} bytes but its {what} runs to {end:,}"


def truncated(facts: FileFacts, size: int, end: int, what: str = "RAW data") -> bool:
    """``error`` says the file ends at ``size`` and its data runs to exactly ``end``."""
    return facts.error is not None and reason(size, end, what) in facts.error


def cut_short(facts: FileFacts, size: int, whole: int, what: str = "RAW data") -> bool:
    """``error`` says the file ends at ``size`` and its data runs past that, no further
    than ``whole`` (where a cut file stops naming data depends on where it was cut)."""
    found = _REASON.search(facts.error or "")
    if found is None:
        return False
    ends, kind, runs_to = found.groups()
    return (
        int(ends.replace(",", "")) == size
        and f"{kind} data" == what
        and size < int(runs_to.replace(",", "")) <= whole
    )


def not_truncated(facts: FileFacts) -> bool:
    return "truncated" not in (facts.error or "")


# --- TIFF-based RAW, generated ----------------------------------------------------------


class Tiff:
    """A TIFF-like file put together entry by entry: header, IFDs, arrays, data."""

    def __init__(self, order: str = "<", magic: bytes | None = None) -> None:
        self.order = order
        sig = magic or (b"II*\x00" if order == "<" else b"MM\x00*")
        self.buf = bytearray(sig + struct.pack(order + "I", 0))

    def blob(self, data: bytes) -> int:
        offset = len(self.buf)
        self.buf += data + b"\x00" * (len(data) % 2)
        return offset

    def ifd(self, entries: dict[int, tuple[int, list[int]]], count: int | None = None) -> int:
        """An IFD of (type, values) per tag (SHORT 3 / LONG 4 / UNDEFINED 7 as an
        offset+count pair); returns its offset. ``count`` overrides the entry count."""
        o, body = self.order, b""
        for tag in sorted(entries):
            typ, values = entries[tag]
            if typ == 7:  # (offset, byte count) of an out-of-line blob
                body += struct.pack(o + "HHII", tag, 7, values[1], values[0])
                continue
            code, width = {3: ("H", 2), 4: ("I", 4)}[typ]
            packed = struct.pack(f"{o}{len(values)}{code}", *values)
            field = packed.ljust(4, b"\x00")
            if len(packed) > 4:
                field = struct.pack(o + "I", self.blob(packed))
            body += struct.pack(o + "HHI", tag, typ, len(values)) + field
        offset = self.blob(struct.pack(o + "H", len(entries) if count is None else count))
        self.blob(body + struct.pack(o + "I", 0))
        return offset

    def link(self, ifd: int, next_ifd: int) -> None:
        """Point ``ifd``'s next-IFD field at ``next_ifd``."""
        (n,) = struct.unpack_from(self.order + "H", self.buf, ifd)
        struct.pack_into(self.order + "I", self.buf, ifd + 2 + 12 * n, next_ifd)

    def first(self, ifd: int) -> None:
        struct.pack_into(self.order + "I", self.buf, 4, ifd)

    def bytes(self) -> bytes:
        return bytes(self.buf)


def _jpeg() -> bytes:
    out = io.BytesIO()
    photo(64, 48).save(out, "JPEG", quality=80)
    return out.getvalue()


def _raw_data(n: int = 6000) -> bytes:
    return (bytes(range(7, 256, 3)) * (n // 83 + 1))[:n]


def dng_like(layout: str) -> bytes:
    """A small TIFF RAW laid out as cameras do (directories first, then a JPEG preview,
    then the sensor data where ``layout`` says); the file ends where that data does."""
    magic = {"orf": b"IIRO", "rw2": b"IIU\x00"}.get(layout)
    t = Tiff(">" if layout == "big-endian" else "<", magic)
    thumb = _jpeg()
    thumb_at = 2048  # after the directories written below
    data = _raw_data()
    # The sensor data goes last, in strips of 1,000 bytes (or tiles)
    where = (324, 325) if layout == "tiles" else (273, 279)
    strips_at = thumb_at + len(thumb) + len(thumb) % 2
    pieces = [strips_at + k for k in range(0, len(data), 1000)]
    sizes = [min(1000, len(data) - k) for k in range(0, len(data), 1000)]
    raw_ifd = {where[0]: (4, pieces), where[1]: (4, sizes), 254: (4, [0])}
    preview = {513: (4, [thumb_at]), 514: (4, [len(thumb)]), 254: (4, [1])}
    if layout in ("plain", "big-endian", "orf", "tiles"):
        ifd0 = t.ifd({**raw_ifd, 0x10F: (3, [1])})
        ifd1 = t.ifd(preview)
        t.link(ifd0, ifd1)
    elif layout == "chain":  # CR2-like: the raw data in the last IFD of the chain
        ifd0 = t.ifd(preview)
        ifd1 = t.ifd({254: (4, [1]), 0x10F: (3, [1])})
        ifd2 = t.ifd(raw_ifd)
        t.link(ifd0, ifd1)
        t.link(ifd1, ifd2)
    elif layout == "subifd":  # DNG/NEF/ARW-like: the raw data in a SubIFD
        sub = t.ifd(raw_ifd)
        ifd0 = t.ifd({**preview, 330: (4, [sub])})
    elif layout == "exif":  # a JPEG named only in the EXIF IFD, after the raw data
        sub = t.ifd(raw_ifd)
        exif = t.ifd({0x9000: (3, [0])})
        ifd0 = t.ifd({330: (4, [sub]), 34665: (4, [exif])})
    elif layout == "rw2":  # Panasonic: the embedded JPEG as an UNDEFINED blob in IFD0
        ifd0 = t.ifd({**raw_ifd, 0x2E: (7, [thumb_at, len(thumb)])})
    else:
        raise AssertionError(layout)
    t.first(ifd0)
    assert len(t.buf) <= thumb_at
    t.buf += b"\x00" * (thumb_at - len(t.buf))
    assert t.blob(thumb) == thumb_at and len(t.buf) == strips_at
    t.buf += data
    if layout == "exif":  # an EXIF IFD after the raw data names a JPEG after that
        new_exif = t.ifd({513: (4, [0]), 514: (4, [len(thumb)])})
        struct.pack_into("<I", t.buf, _entry_value_at(t, ifd0, 34665), new_exif)
        jpeg = t.blob(thumb)
        struct.pack_into("<I", t.buf, _entry_value_at(t, new_exif, 513), jpeg)
        t.buf = t.buf[: jpeg + len(thumb)]
    return t.bytes()


def _entry_value_at(t: Tiff, ifd: int, tag: int) -> int:
    (n,) = struct.unpack_from(t.order + "H", t.buf, ifd)
    for i in range(n):
        pos = ifd + 2 + 12 * i
        if struct.unpack_from(t.order + "H", t.buf, pos)[0] == tag:
            return pos + 8
    raise KeyError(tag)


LAYOUTS = ["plain", "big-endian", "tiles", "chain", "subifd", "exif", "orf", "rw2"]
RAW_NAME = {"orf": "X.ORF", "rw2": "X.RW2", "chain": "X.CR2", "subifd": "X.NEF"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_tiff_raw_cut_anywhere_is_reported_and_an_intact_one_is_not(
    layout: str, tmp_path: Path
) -> None:
    # Given a TIFF-based RAW whose directories name its sensor data, up to its last byte
    data = dng_like(layout)
    name = RAW_NAME.get(layout, "X.DNG")
    intact = tmp_path / name
    intact.write_bytes(data)
    # When the intact file is inspected, Then nothing is said about its completeness
    facts = inspect(intact)
    assert facts.kind == "raw" and not_truncated(facts), facts.error
    # and when copies cut short anywhere are (by more than the slack a camera's last
    # strip may have), Then each says where it ends and where its data would
    just_past = (len(data) - overrun_slack(len(data)) - 1) / len(data)
    for fraction in (*CUTS, just_past):
        copy = cut(data, fraction, tmp_path / f"cut-{fraction}-{name}")
        got = inspect(copy)
        assert got.kind == "raw"
        assert cut_short(got, copy.stat().st_size, len(data)), (fraction, got.error)


def test_a_last_strip_a_little_past_the_end_is_no_cut_but_one_starting_past_it_is(
    tmp_path: Path,
) -> None:
    # Given a 3 MiB RAW whose last strip's byte count runs 1 KiB past the file's end, as
    # some cameras write it (rawspeed trims Sony's to the file)
    data = _raw_data(3 << 20)
    t = Tiff()
    t.first(t.ifd({273: (4, [4096]), 279: (4, [len(data) + 1024])}))
    t.buf += b"\x00" * (4096 - len(t.buf)) + data
    path = tmp_path / "DSC00001.ARW"
    path.write_bytes(t.bytes())
    # Then it is not called truncated: it would lose to its own JPEG as the copy to keep
    assert truncation(io.BytesIO(path.read_bytes()), path.stat().st_size, "RAW data") is None
    # But a strip that starts past the end is a cut, however little is missing
    t2 = Tiff()
    t2.first(t2.ifd({273: (4, [4096, 4096 + len(data)]), 279: (4, [len(data), 10])}))
    t2.buf += b"\x00" * (4096 - len(t2.buf)) + data
    whole = t2.bytes()
    reason = truncation(io.BytesIO(whole), len(whole), "RAW data")
    assert reason is not None and reason.startswith("truncated"), reason


def test_a_big_raw_is_checked_through_the_file_reading_only_its_directories(
    tmp_path: Path,
) -> None:
    # Given a RAW over 1 MiB (read through the file, not into memory) cut to 60%
    t = Tiff()
    data = _raw_data(3 << 20)
    sub = t.ifd({273: (4, [64 * 1024]), 279: (4, [len(data)])})
    t.first(t.ifd({330: (4, [sub]), 0x10F: (3, [1])}))
    t.buf += b"\x00" * (64 * 1024 - len(t.buf)) + data
    path = cut(t.bytes(), 0.6, tmp_path / "big.nef")
    size = path.stat().st_size
    # When it is inspected, Then it is reported with a few small reads
    facts = inspect(path)
    assert truncated(facts, size, 64 * 1024 + len(data)), facts.error
    assert facts.sha256 is None and 0 < facts.bytes_read < 64 * 1024


def test_malformed_directories_neither_raise_nor_hide_a_cut(tmp_path: Path) -> None:
    # Given a RAW whose IFD0 names data past its end, among directories that make no
    # sense: an absurd entry count, a loop, pointers out of the file and into data,
    # arrays out of the file, offsets and counts that do not pair, wrong types
    t = Tiff()
    absurd = t.ifd({0x10F: (3, [1])}, count=0xFFFF)
    odd = t.blob(b"\xff" * 64)
    bad = t.ifd(
        {
            273: (4, [100, 200, 300]),
            279: (4, [10, 20]),  # not as many counts as offsets
            324: (3, [5]),
            325: (4, [1 << 31]),  # fine on its own: tile data out of the file
            513: (4, [7]),
        }
    )
    struct.pack_into("<HI", t.buf, _entry_value_at(t, bad, 324) - 6, 5, 1)  # RATIONAL type
    arrays_out = t.ifd({273: (4, [0, 0]), 279: (4, [0, 0])})
    struct.pack_into("<I", t.buf, _entry_value_at(t, arrays_out, 273), 0xFFFFFF00)
    ifd0 = t.ifd(
        {
            273: (4, [4000]),
            279: (4, [6000]),
            330: (4, [absurd, odd, 0xFFFFFFF0, 3, bad, arrays_out, 8]),
        }
    )
    t.link(ifd0, ifd0)  # the chain loops back on itself
    t.link(bad, absurd)
    t.first(ifd0)
    t.buf += b"\x00" * (5000 - len(t.buf))
    path = tmp_path / "odd.dng"
    path.write_bytes(t.bytes())
    # When it is inspected, Then it returns, with the one sound claim among them
    facts = inspect(path)
    assert truncated(facts, 5000, 10000), facts.error


# --- ISO BMFF, generated ----------------------------------------------------------------


def box(typ: bytes, payload: bytes, *, large: bool = False, to_end: bool = False) -> bytes:
    if to_end:
        return struct.pack(">I4s", 0, typ) + payload
    if large:
        return struct.pack(">I4sQ", 1, typ, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), typ) + payload


def mp4(*, large: bool = False, moov_last: bool = False, brand: bytes = b"isom") -> bytes:
    ftyp = box(b"ftyp", brand + b"\x00\x00\x02\x00" + brand + b"mp41")
    mvhd = box(b"mvhd", b"\x00" * 100)
    moov = box(b"moov", mvhd)
    mdat = box(b"mdat", _raw_data(50_000), large=large)
    free = box(b"free", b"\x00" * 32)
    return ftyp + free + (mdat + moov if moov_last else moov + mdat)


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("clip.mp4", {}),
        ("clip.mov", {"moov_last": True, "brand": b"qt  "}),
        ("clip.MP4", {"large": True}),
        ("clip.mp4", {"large": True, "moov_last": True}),
    ],
)
def test_a_video_cut_anywhere_is_reported_and_an_intact_one_is_not(
    name: str, kw: dict[str, object], tmp_path: Path
) -> None:
    # Given a MOV/MP4 box stream (32-bit and 64-bit box sizes, moov first or last)
    data = mp4(**kw)  # type: ignore[arg-type]
    intact = tmp_path / name
    intact.write_bytes(data)
    facts = inspect(intact, quick_hash=True)
    assert facts.kind == "video" and facts.error is None
    # When copies cut short anywhere are inspected, Then each is reported, with its
    # quick digest kept
    for fraction in (0.01, *CUTS, (len(data) - 1) / len(data)):
        copy = cut(data, fraction, tmp_path / f"cut-{fraction}-{name}")
        got = inspect(copy, quick_hash=True)
        assert cut_short(got, copy.stat().st_size, len(data), "video data"), (fraction, got)
        assert got.quick is not None


def test_a_box_running_to_the_end_is_complete_and_bytes_past_it_are_no_cut(
    tmp_path: Path,
) -> None:
    # Given a video whose mdat runs "to the end of the file" (size 0), one with a few
    # bytes of padding after its last box, and one whose boxes are followed by a box
    # header that is no box (no type): none of them is reported
    base = mp4()
    to_end = base[: base.index(b"mdat") - 4] + box(b"mdat", _raw_data(1000), to_end=True)
    for name, data in [
        ("to_end.mp4", to_end),
        ("padded.mp4", base + b"\x00" * 7),
        ("junk.mp4", base + struct.pack(">I", 1 << 30) + b"\x01\x02\x03\x04" + bytes(100)),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        assert inspect(path).error is None, name
    # while the same stream with a box header claiming more than is there is reported
    path = tmp_path / "short.mp4"
    path.write_bytes(base + struct.pack(">I4s", 65536, b"udta") + bytes(10))
    assert truncated(inspect(path), len(base) + 18, len(base) + 65536, "video data")


def test_a_heic_cut_short_is_reported_as_truncated(tmp_path: Path) -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    # Given a HEIC (one image: libheif refuses a cut copy, but says nothing of a cut)
    intact = tmp_path / "IMG_0001.HEIC"
    photo(512, 384).save(intact, "HEIF", quality=90)
    data = intact.read_bytes()
    assert inspect(intact).error is None
    # When a copy cut short is inspected, Then it is reported
    copy = cut(data, 0.7, tmp_path / "IMG_0001 copy.HEIC")
    got = inspect(copy)
    assert got.kind == "image" and got.format == "heic"
    assert cut_short(got, copy.stat().st_size, len(data), "picture data"), got.error


# --- the sample library ------------------------------------------------------------------


def _decodes(row: dict[str, str]) -> bool:
    """What the manifest says can be read: a RAW with a preview or a usable half-size
    decode (tests/integration/test_scan_samples.py's rule), any video."""
    if row["kind"] == "raw":
        return row["rawpy_thumb"] == "yes" or row["rawpy_postprocess"].startswith("yes")
    return row["kind"] == "video"


# exiv2 keeps its test files small by cutting the image data out: this DNG's own
# directories put its RAW data 29 MB in (LibRaw warns "Unexpected end of file" while it
# decodes the 64 KB that are there). It is a cut file, and reported as one.
PRUNED = {"exiv2/IMG_1361.dng": 29_195_592}


# Knowingly not checked (core.media.complete): a CIFF heap runs to the end of the file.
NOT_CHECKED = {".crw"}


@pytest.mark.samples
def test_every_readable_raw_and_video_sample_is_complete_and_reported_once_cut(
    samples: Path, manifest: list[dict[str, str]], tmp_path: Path
) -> None:
    rows = [r for r in manifest if _decodes(r) and r["path"] not in PRUNED]
    checked = [r for r in rows if Path(r["path"]).suffix.lower() not in NOT_CHECKED]
    assert {r["kind"] for r in checked} == {"raw", "video"} and len(checked) >= 5, rows
    for row in rows:
        src = samples / row["path"]
        # Given an intact sample, Then it has no error
        facts = inspect(src)
        assert facts.error is None, (row["path"], facts.error)
        if row not in checked:
            continue
        # and copies of it cut short anywhere are each reported as truncated: the data
        # its directories name runs past the cut and no further than the intact file
        for fraction in (*CUTS, 0.99):
            copy = cut(src, fraction, tmp_path / f"{fraction}-{src.name}")
            got = inspect(copy)
            what = "RAW data" if row["kind"] == "raw" else "video data"
            assert cut_short(got, copy.stat().st_size, facts.size, what), (
                row["path"],
                fraction,
                got.error,
            )


@pytest.mark.samples
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.9])
def test_a_cut_dng_whose_preview_survives_keeps_its_phash_exif_and_hashes(
    samples: Path, fraction: float, tmp_path: Path
) -> None:
    # Given the DNG of the review's repro and a copy cut short after its preview
    src = samples / "skia" / "sample_1mp.dng"
    whole = inspect(src, full_hash=True)
    copy = cut(src, fraction, tmp_path / "sample_1mp.dng")
    # When the copy is inspected
    facts = inspect(copy, full_hash=True)
    # Then it is reported, with the size its directories give (87,116 bytes)
    assert truncated(facts, copy.stat().st_size, 87_116), facts.error
    assert facts.error is not None and facts.error.startswith("truncated: ")
    # and keeps everything read from what is there: the same pHash as the intact file
    # (so it still shows as its duplicate), its EXIF, the hashes of its own bytes
    assert facts.phash == whole.phash is not None
    assert facts.colour is not None
    assert (facts.taken_at, facts.make, facts.model) == (whole.taken_at, whole.make, whole.model)
    assert (facts.width, facts.height) == (whole.width, whole.height)
    assert facts.sha256 is not None and facts.sha256 != whole.sha256


@pytest.mark.samples
def test_a_pruned_sample_is_reported_and_keeps_what_libraw_made_of_it(samples: Path) -> None:
    for rel, end in PRUNED.items():
        facts = inspect(samples / rel)
        assert truncated(facts, facts.size, end), facts.error
        assert facts.phash is not None and facts.taken_at is not None


@pytest.mark.samples
def test_a_reason_given_before_comes_first_and_the_cut_after_it(
    samples: Path, tmp_path: Path
) -> None:
    # Given RAW files LibRaw already has something to say about: a sample too short to
    # open, and cut copies of a CR3 and a NEF without a usable preview
    arw = inspect(samples / "exif-py" / "sony_alpha_a7iii_raw_image.ARW")
    assert arw.error is not None and arw.error.startswith("RAW file LibRaw cannot open: ")
    assert arw.error.endswith("; " + reason(8255, 527_447))
    for rel in ("exiv2/Canon-R6-pruned.CR3", "exiftool/Nikon.nef"):
        src = samples / rel
        whole = inspect(src)
        assert whole.error is not None and not_truncated(whole)
        copy = cut(src, 0.9, tmp_path / src.name)
        got = inspect(copy)
        assert got.error is not None and got.error.startswith(whole.error + "; truncated: "), (
            got.error
        )


@pytest.mark.samples
def test_a_cut_heic_that_libheif_decodes_without_a_word_is_reported(
    samples: Path, tmp_path: Path
) -> None:
    # Given a HEIC made of tiles (as phones write them): libheif decodes a cut copy and
    # leaves the missing tiles out, without an error
    src = samples / "lychee" / "classic-car.heic"
    assert inspect(src).error is None
    for fraction in CUTS:
        copy = cut(src, fraction, tmp_path / f"{fraction}.heic")
        # When it is inspected, Then it is reported, and keeps what was decoded
        got = inspect(copy)
        assert cut_short(got, copy.stat().st_size, src.stat().st_size, "picture data"), got
        assert got.error is not None and got.error.startswith("truncated: ")
        assert got.phash is not None
