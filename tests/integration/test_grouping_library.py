"""End to end: a library of real RAW files (from the shared samples, copied under new
names) and generated JPEGs, scanned with `twinlens.run_scan` on PostgreSQL + Redis
workers; the report's groups are judged pair by pair against the expectation."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

from core.grouping.evaluate import pairs_of_sets, score
from core.media.inspect import inspect_file
from tests.factories import write_bytes, write_jpeg
from twinlens import run_scan

XMP = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'></x:xmpmeta>"


def build(samples: Path, lib: Path) -> tuple[list[set[str]], list[tuple[str, str]], dict[str, str]]:
    """Returns (expected groups, decoy pairs that must stay apart, expected type by primary)."""
    seed = iter(range(100, 200))

    def raw_with_jpeg(src: str, raw_rel: str, jpg_rel: str, shift: timedelta = timedelta()) -> None:
        raw = lib / raw_rel
        raw.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(samples / src, raw)
        taken = inspect_file(str(raw), full_hash=False).taken_at
        assert taken is not None, src  # the pairing below relies on the RAW's own EXIF time
        write_jpeg(lib / jpg_rel, next(seed), taken=taken + shift)

    raw_with_jpeg("skia/sample_1mp.dng", "2024/IMG_0001.DNG", "2024/IMG_0001.JPG")
    write_bytes(lib / "2024/IMG_0001.xmp", XMP)  # sidecar named after the stem
    raw_with_jpeg("exiftool/Nikon.nef", "2024/DSC_0002.NEF", "2024/DSC_0002.JPG")
    write_bytes(lib / "2024/DSC_0002.NEF.xmp", XMP)  # sidecar named after the full name
    raw_with_jpeg("exiv2/exiv2-canon-powershot-s40.crw", "2024/CRW_0003.CRW", "2024/CRW_0003.JPG")
    # Decoy: same stem, capture times hours apart (the camera's counter rolled over)
    raw_with_jpeg(
        "exif-py/nikon_z_9_high_efficiency_compressed_dx_cropped_max_overexposed.dng",
        "2024/IMG_0004.DNG",
        "2024/IMG_0004.JPG",
        shift=timedelta(hours=5),
    )
    # Decoy: the same stem and time in another folder is another file
    taken1 = inspect_file(str(lib / "2024/IMG_0001.DNG"), full_hash=False).taken_at
    write_jpeg(lib / "2023/IMG_0001.JPG", next(seed), taken=taken1)
    # Pixel: RAW-01.COVER.jpg + RAW-02.ORIGINAL.dng
    raw_with_jpeg(
        "exiv2/IMG_1361.dng",
        "pixel/PXL_20201229_142445123.RAW-02.ORIGINAL.dng",
        "pixel/PXL_20201229_142445123.RAW-01.COVER.jpg",
    )
    # Live Photos: JPEG still + MOV, and a real HEIC still + MOV
    write_jpeg(lib / "live/IMG_0100.JPG", next(seed))
    write_bytes(lib / "live/IMG_0100.MOV", os.urandom(20_000))
    shutil.copyfile(samples / "exif-py/heic/spring_1440x960.heic", lib / "live/IMG_0101.HEIC")
    write_bytes(lib / "live/IMG_0101.MOV", os.urandom(21_000))
    # Edits: Apple's IMG_E and Takeout's -edited
    write_jpeg(lib / "edits/IMG_0200.JPG", next(seed))
    write_jpeg(lib / "edits/IMG_E0200.JPG", next(seed))
    write_jpeg(lib / "edits/beach.jpg", next(seed))
    write_jpeg(lib / "edits/beach-edited.jpg", next(seed))
    # Loners
    write_jpeg(lib / "edits/other.jpg", next(seed))

    expected = [
        {"2024/IMG_0001.DNG", "2024/IMG_0001.JPG", "2024/IMG_0001.xmp"},
        {"2024/DSC_0002.NEF", "2024/DSC_0002.JPG", "2024/DSC_0002.NEF.xmp"},
        {"2024/CRW_0003.CRW", "2024/CRW_0003.JPG"},
        {
            "pixel/PXL_20201229_142445123.RAW-02.ORIGINAL.dng",
            "pixel/PXL_20201229_142445123.RAW-01.COVER.jpg",
        },
        {"live/IMG_0100.JPG", "live/IMG_0100.MOV"},
        {"live/IMG_0101.HEIC", "live/IMG_0101.MOV"},
        {"edits/IMG_0200.JPG", "edits/IMG_E0200.JPG"},
        {"edits/beach.jpg", "edits/beach-edited.jpg"},
    ]
    decoys = [
        ("2024/IMG_0004.DNG", "2024/IMG_0004.JPG"),
        ("2023/IMG_0001.JPG", "2024/IMG_0001.DNG"),
        ("2023/IMG_0001.JPG", "2024/IMG_0001.JPG"),
    ]
    types = {
        "2024/IMG_0001.JPG": "raw_jpeg",
        "2024/DSC_0002.JPG": "raw_jpeg",
        "2024/CRW_0003.JPG": "raw_jpeg",
        "pixel/PXL_20201229_142445123.RAW-01.COVER.jpg": "raw_jpeg",
        "live/IMG_0100.JPG": "live_photo",
        "live/IMG_0101.HEIC": "live_photo",
        "edits/IMG_0200.JPG": "edited",
        "edits/beach.jpg": "edited",
    }
    return expected, decoys, types


def test_scan_groups_a_real_library(pg_settings, library, samples):
    expected, decoys, types = build(samples, library)

    report = run_scan(pg_settings, str(library))

    assert report["job"]["state"] == "done"
    found = [set(g["members"]) for g in report["groups"]]
    s = score(pairs_of_sets(found), pairs_of_sets(expected))
    assert (s.precision, s.recall) == (1.0, 1.0), (found, s)
    for a, b in decoys:
        assert not any(a in g and b in g for g in found), (a, b)
    # Primary (policy rendition: the JPEG/HEIC) and type of every group
    assert {g["primary"]: g["type"] for g in report["groups"]} == types
    assert all(g["members"][0] == g["primary"] for g in report["groups"])

    # A rescan of the unchanged library changes no group (same ids, nothing regrouped)
    again = run_scan(pg_settings, str(library))
    assert {g["id"]: g["members"] for g in again["groups"]} == {
        g["id"]: g["members"] for g in report["groups"]
    }
