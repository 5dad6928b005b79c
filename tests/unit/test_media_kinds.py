"""Extension tables, magic-number sniffing and the kind/format/warning decision."""

from __future__ import annotations

import io
import struct

import pillow_heif
import pytest
from PIL import Image

from core.media.kinds import (
    IMAGE_EXTENSIONS,
    RAW_EXTENSIONS,
    classify,
    kind_of_extension,
    sniff_format,
)

IMMICH_RAW = (
    "3fr ari arw cap cin cr2 cr3 crw dcr dng erf fff iiq k25 kdc mrw nef nrw orf ori pef raf "
    "raw rw2 rwl sr2 srf srw x3f gpr"
).split()


@pytest.mark.parametrize(
    ("ext", "kind"),
    [(e, "raw") for e in IMMICH_RAW]
    + [(e, "image") for e in "jpg jpeg jpe heic heif hif avif png tif tiff webp".split()]
    + [(e, "video") for e in "mov mp4 m4v 3gp avi mkv mts m2ts webm".split()]
    + [(e, "sidecar") for e in ("xmp", "aae", "json")]
    + [("txt", "other"), ("", "other"), ("pdf", "other")],
)
def test_extension_kinds(ext: str, kind: str) -> None:
    assert kind_of_extension(ext) == kind


def test_tables_do_not_overlap() -> None:
    assert not RAW_EXTENSIONS & IMAGE_EXTENSIONS


def _pillow_bytes(fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 40, 10)).save(out, fmt, **kw)
    return out.getvalue()


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00" * 64


def _heic_bytes() -> bytes:
    out = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (64, 64), "blue")).save(out, format="HEIF")
    return out.getvalue()


def _tiff_with_ifd0_tag(tag: int) -> bytes:
    # II*\0, IFD at 8 with one SHORT entry, no next IFD.
    return (
        b"II*\x00" + struct.pack("<I", 8) + struct.pack("<HHHIHH", 1, tag, 3, 1, 1, 0) + b"\0" * 8
    )


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (_pillow_bytes("JPEG"), "jpeg"),
        (_pillow_bytes("PNG"), "png"),
        (_pillow_bytes("GIF"), "gif"),
        (_pillow_bytes("WEBP"), "webp"),
        (_pillow_bytes("TIFF"), "tiff"),
        (_pillow_bytes("AVIF"), "avif"),
        (_heic_bytes(), "heic"),
        (_ftyp(b"mif1", b"mif1", b"heic"), "heic"),
        (_ftyp(b"heix", b"mif1"), "heic"),
        (_ftyp(b"crx ", b"crx ", b"isom"), "cr3"),
        (_ftyp(b"qt  ", b"qt  "), "mov"),
        (_ftyp(b"isom", b"isom", b"mp41"), "mp4"),
        (_ftyp(b"mp42", b"mp42", b"isom"), "mp4"),
        (_ftyp(b"3gp4", b"3gp4"), "3gp"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x10mdat" + b"\0" * 32, "mov"),
        (b"II\x1a\x00\x00\x00HEAPCCDR" + b"\0" * 32, "crw"),
        (b"FUJIFILMCCD-RAW 0201FF383501" + b"\0" * 32, "raf"),
        (b"IIRO\x08\x00\x00\x00" + b"\0" * 32, "orf"),
        (b"IIU\x00\x08\x00\x00\x00" + b"\0" * 32, "rw2"),
        (b"II*\x00\x10\x00\x00\x00CR\x02\x00" + b"\0" * 32, "cr2"),
        (_tiff_with_ifd0_tag(0xC612), "dng"),
        (_tiff_with_ifd0_tag(0x0100), "tiff"),
        (b"FOVb" + b"\0" * 32, "x3f"),
        (b"RIFF\x00\x00\x00\x00AVI LIST" + b"\0" * 32, "avi"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\0" * 32, "webm"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska" + b"\0" * 32, "mkv"),
        ((b"\x47" + b"\xff" * 187) * 3, "mts"),
        (
            b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">',
            "xmp",
        ),
        (b'<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict/></plist>', "xml"),
        (b'{"title": "IMG_0001.jpg", "photoTakenTime": {}}', "json"),
        (b"hello world, not a picture", None),
        (b"", None),
    ],
)
def test_sniff_format(head: bytes, expected: str | None) -> None:
    assert sniff_format(head[:4096]) == expected


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("a/IMG_1.jpg", _pillow_bytes("JPEG"), ("image", "jpeg", None)),
        ("a/IMG_1.JPG", _pillow_bytes("JPEG"), ("image", "jpeg", None)),
        ("a/IMG_1.jpg", _heic_bytes(), ("image", "heic", "extension .jpg but content is HEIF")),
        ("a/IMG_1.HIF", _heic_bytes(), ("image", "heic", None)),
        (
            "a/IMG_1.png",
            _pillow_bytes("JPEG"),
            ("image", "jpeg", "extension .png but content is JPEG"),
        ),
        ("a/DSC_1.NEF", _tiff_with_ifd0_tag(0x0100), ("raw", "raw", None)),
        ("a/DSC_1.dng", _tiff_with_ifd0_tag(0xC612), ("raw", "raw", None)),
        ("a/X.CR3", _ftyp(b"crx ", b"crx "), ("raw", "raw", None)),
        ("a/X.RAF", b"FUJIFILMCCD-RAW 0201" + b"\0" * 20, ("raw", "raw", None)),
        ("a/broken.ARW", b"\0" * 64, ("raw", "raw", None)),
        (
            "a/odd.NEF",
            _pillow_bytes("JPEG"),
            ("image", "jpeg", "extension .nef but content is JPEG"),
        ),
        ("a/X.tif", _tiff_with_ifd0_tag(0x0100), ("image", "tiff", None)),
        # RAW content under a picture's name (PhotoRec's recovered files, a rename): still
        # RAW, read through LibRaw, with the mismatch said
        (
            "a/X.jpg",
            _tiff_with_ifd0_tag(0xC612),
            ("raw", "raw", "extension .jpg but content is DNG"),
        ),
        (
            "a/X.tif",
            _tiff_with_ifd0_tag(0xC612),
            ("raw", "raw", "extension .tif but content is DNG"),
        ),
        (
            "a/X.jpg",
            _ftyp(b"crx ", b"crx "),
            ("raw", "raw", "extension .jpg but content is Canon CR3"),
        ),
        ("a/clip.mp4", _ftyp(b"qt  ", b"qt  "), ("video", "mov", None)),
        ("a/clip.MOV", _ftyp(b"qt  ", b"qt  "), ("video", "mov", None)),
        # Takeout's Pixel motion-photo videos: no mismatch warning for every one of them
        ("a/PXL_20230101_1.MP", _ftyp(b"isom", b"mp41"), ("video", "mp4", None)),
        ("a/PXL_20230101_1.MP~2", _ftyp(b"isom", b"mp41"), ("video", "mp4", None)),
        ("a/track.mp3", b"ID3\x04" + b"\0" * 60, ("other", None, None)),
        ("a/clip.mov", _heic_bytes(), ("image", "heic", "extension .mov but content is HEIF")),
        ("a/noext", _pillow_bytes("JPEG"), ("image", "jpeg", "no extension but content is JPEG")),
        ("a/x.xmp", b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>", ("sidecar", "xmp", None)),
        ("a/IMG_1.jpg.json", b'{"title": "IMG_1.jpg"}', ("sidecar", "json", None)),
        ("a/IMG_1.AAE", b'<?xml version="1.0"?><plist/>', ("sidecar", "xml", None)),
        ("a/readme.txt", b"just text", ("other", None, None)),
        ("a/broken.jpg", b"garbage bytes", ("image", None, None)),
    ],
)
def test_classify(name: str, head: bytes, expected: tuple[str, str | None, str | None]) -> None:
    assert classify(name, head[:4096]) == expected
