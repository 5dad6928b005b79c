"""The suggested keeper in realistic libraries (embedded default: SQLite, in-process
workers): copies of the shared sample files and Pillow re-encodes of them, scanned with
`twinlens.run_scan`, the duplicate groups read from its report."""

from __future__ import annotations

import errno
import io
import os
import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
import rawpy
from PIL import Image, ImageEnhance

from core.config import Settings
from core.media.inspect import inspect_file
from tests.factories import exif_for, write_bytes, write_jpeg
from twinlens import run_scan

XMP = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'></x:xmpmeta>"
AAE = b'<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict></dict></plist>'
SHOOT = "Pictures/2018-01-01 Shoot"
BACKUP = "Backup/2018-01-01 Shoot"
IPHONE = "iPhone/2023-10"
TAKEOUT = "Takeout/Google Photos/Photos from 2023"


def copy(src: Path, dst: Path) -> Path:
    """A byte copy that keeps its modification time (cp -p, rsync -a, Finder)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    return dst


def duplicates(report: dict) -> dict[frozenset[str], tuple[str, str, str]]:
    """members -> (type, keep, keep_reason) of every duplicate group of a scan."""
    return {
        frozenset(m["path"] for m in d["members"]): (d["type"], d["keep"], d["keep_reason"])
        for d in report["duplicates"]
    }


def by_path(report: dict) -> dict[str, dict]:
    return {f["path"]: f for f in report["files"]}


def file_groups(report: dict) -> dict[frozenset[str], str]:
    return {frozenset(g["members"]): g["type"] for g in report["groups"]}


def no_keeper_is_trashed_by_another_group(report: dict) -> bool:
    """What "accept all suggestions" needs: no group trashes a file another group keeps."""
    kept = {d["keep"] for d in report["duplicates"]}
    trashed = {m["path"] for d in report["duplicates"] for m in d["members"]} - kept
    return not kept & trashed and all(
        d["keep"] not in {m["path"] for m in e["members"]} - {e["keep"]}
        for d in report["duplicates"]
        for e in report["duplicates"]
    )


def test_the_copies_a_raw_jpeg_pair_and_a_live_photo_belong_with_are_kept(
    embedded_settings: Settings, library: Path, samples: Path
) -> None:
    # Given a shoot of a Canon CRW with the camera's JPEG and an XMP sidecar, and a backup
    # folder (sorting first) holding byte copies of the CRW and the JPEG
    crw = copy(samples / "imagemeta/CRW.CRW", library / SHOOT / "IMG_0001.CRW")
    taken = inspect_file(str(crw), full_hash=False).taken_at
    assert taken is not None  # the pair relies on the RAW's own capture time
    jpg = write_jpeg(
        library / SHOOT / "IMG_0001.JPG",
        1,
        size=(1088, 724),
        taken=taken,
        make="Canon",
        model="Canon EOS D30",
    )
    write_bytes(library / SHOOT / "IMG_0001.xmp", XMP)
    copy(crw, library / BACKUP / "IMG_0001.CRW")
    copy(jpg, library / BACKUP / "IMG_0001.JPG")
    # and an iPhone Live Photo (HEIC, MOV, AAE) whose still has a byte copy, with its JSON,
    # in a Google Takeout export ("T" sorts before "i")
    heic = copy(samples / "lychee/classic-car.heic", library / IPHONE / "IMG_1234.HEIC")
    write_bytes(library / IPHONE / "IMG_1234.MOV", os.urandom(30_000))
    write_bytes(library / IPHONE / "IMG_1234.AAE", AAE)
    copy(heic, library / TAKEOUT / "IMG_1234.HEIC")
    write_bytes(library / TAKEOUT / "IMG_1234.HEIC.json", b'{"title": "IMG_1234.HEIC"}')

    # When the library is scanned
    report = run_scan(embedded_settings, str(library))

    # Then grouping made the file groups the copies belong to
    groups = file_groups(report)
    assert groups[frozenset({f"{SHOOT}/IMG_0001.{x}" for x in ("CRW", "JPG", "xmp")})] == (
        "raw_jpeg"
    )
    assert groups[frozenset({f"{IPHONE}/IMG_1234.{x}" for x in ("HEIC", "MOV", "AAE")})] == (
        "live_photo"
    )
    # And each byte copy's group keeps the copy its pair, sidecar or video belongs with
    dups = duplicates(report)
    for name in ("IMG_0001.CRW", "IMG_0001.JPG"):
        members = frozenset({f"{BACKUP}/{name}", f"{SHOOT}/{name}"})
        assert dups[members] == ("exact", f"{SHOOT}/{name}", "file_group")
    members = frozenset({f"{IPHONE}/IMG_1234.HEIC", f"{TAKEOUT}/IMG_1234.HEIC"})
    assert dups[members] == ("exact", f"{IPHONE}/IMG_1234.HEIC", "file_group")
    assert no_keeper_is_trashed_by_another_group(report)


def test_the_look_alike_group_keeps_what_the_byte_copy_group_keeps(
    embedded_settings: Settings, library: Path
) -> None:
    # Given a photo, its Finder copy ("IMG_0002 copy.JPG" sorts before "IMG_0002.JPG")
    # and a half-size resize of it (EXIF kept) in another folder
    taken = datetime(2024, 5, 4, 10, 11, 12)
    original = write_jpeg(
        library / "Shoot/IMG_0002.JPG", 2, size=(1280, 960), taken=taken, make="Canon",
        model="Canon EOS R6",
    )  # fmt: skip
    copy(original, library / "Shoot/IMG_0002 copy.JPG")
    small = library / "Small/IMG_0002.JPG"
    small.parent.mkdir()
    with Image.open(original) as im:
        im.resize((640, 480)).save(small, "JPEG", quality=90, exif=im.getexif())

    # When the library is scanned
    report = run_scan(embedded_settings, str(library))

    # Then the byte copies' group keeps the original by its name
    dups = duplicates(report)
    exact = frozenset({"Shoot/IMG_0002.JPG", "Shoot/IMG_0002 copy.JPG"})
    assert dups[exact] == ("exact", "Shoot/IMG_0002.JPG", "name")
    # and the look-alike group shows them by that file and keeps it too
    look_alike = frozenset({"Shoot/IMG_0002.JPG", "Small/IMG_0002.JPG"})
    assert dups[look_alike] == ("perceptual", "Shoot/IMG_0002.JPG", "resolution")
    # so accepting every suggestion at once contradicts nothing (the gateway's 409)
    assert no_keeper_is_trashed_by_another_group(report)


SAMSUNG = "metadata-extractor/jpg/Samsung SM-J327T1.jpg"


def set_mtime(path: Path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def with_keywords(path: Path, added: int = 303) -> None:
    """Write keywords into a JPEG in place, as a photo manager does: an XMP segment of
    ``added`` bytes after its APP segments, the picture's bytes untouched."""
    data = path.read_bytes()
    at = 2
    while data[at] == 0xFF and 0xE0 <= data[at + 1] <= 0xEF:
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    head = b"http://ns.adobe.com/xap/1.0/\x00"
    xmp = (
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/"
        b"02/22-rdf-syntax-ns#'><rdf:Description xmlns:dc='http://purl.org/dc/elements/1.1/'>"
        b"<dc:subject><rdf:Bag><rdf:li>beach</rdf:li></rdf:Bag></dc:subject>"
        b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    payload = head + xmp.ljust(added - 4 - len(head))
    segment = b"\xff\xe1" + (2 + len(payload)).to_bytes(2, "big") + payload
    path.write_bytes(data[:at] + segment + data[at:])


def test_the_phones_original_is_kept_over_a_bigger_lower_quality_re_save(
    embedded_settings: Settings, library: Path, samples: Path
) -> None:
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import File
    from workers import runtime

    # Given a Samsung phone's JPEG (its own tables: quality 85 by libjpeg's scale),
    # copied into the library today
    original = copy(samples / SAMSUNG, library / "Phone/2019/20190926_163800.jpg")
    set_mtime(original, datetime.now())
    # and a Pillow re-save of it at quality 82 with full-resolution chroma (4:4:4) that
    # kept the EXIF: bigger than the original, and dated by a tool to its capture time
    export = library / "Exports/20190926_163800.jpg"
    export.parent.mkdir()
    with Image.open(original) as im:
        im.save(export, "JPEG", quality=82, subsampling=0, exif=im.info["exif"])
    set_mtime(export, datetime(2019, 9, 26, 16, 38, 0))
    assert export.stat().st_size > original.stat().st_size

    # When the library is scanned
    report = run_scan(embedded_settings, str(library))

    # Then the catalog estimated both qualities
    with session_scope(runtime.engine()) as s:
        quality = {p: q for p, q in s.execute(select(File.path, File.jpeg_quality))}
    assert quality == {str(original): 85, str(export): 82}
    # and their look-alike group keeps the original, for its quality, not its size
    members = frozenset({"Phone/2019/20190926_163800.jpg", "Exports/20190926_163800.jpg"})
    assert duplicates(report) == {
        members: ("perceptual", "Phone/2019/20190926_163800.jpg", "jpeg_quality")
    }


def test_a_photo_with_keywords_written_into_it_is_kept_over_its_untouched_backup(
    embedded_settings: Settings, library: Path
) -> None:
    # Given a photo and its backup copy, both from 2020, and keywords written into the
    # library's photo today (303 bytes more, a new modification time, the same tables)
    taken = datetime(2020, 7, 1, 12, 0, 0)
    photo = write_jpeg(
        library / "Pictures/2020/IMG_7000.JPG", 70, size=(1280, 960), quality=92,
        taken=taken, make="Canon", model="Canon EOS R6",
    )  # fmt: skip
    backup = copy(photo, library / "Backup/2020/IMG_7000.JPG")
    set_mtime(backup, taken)
    size = photo.stat().st_size
    with_keywords(photo)
    assert photo.stat().st_size == size + 303

    # When the library is scanned
    report = run_scan(embedded_settings, str(library))

    # Then the qualities tie and the size keeps the library's photo, not the old backup
    members = frozenset({"Pictures/2020/IMG_7000.JPG", "Backup/2020/IMG_7000.JPG"})
    assert duplicates(report) == {members: ("perceptual", "Pictures/2020/IMG_7000.JPG", "size")}


def test_a_quality_100_re_export_is_kept_over_the_quality_60_export_before_it(
    embedded_settings: Settings, library: Path
) -> None:
    # Given a shot exported at quality 60 in 2019 and again at quality 100 in 2024
    taken = datetime(2019, 3, 2, 8, 30, 0)
    old = write_jpeg(
        library / "Exports/2019/IMG_8000.jpg", 80, size=(1280, 960), quality=60, taken=taken,
        make="Canon", model="Canon EOS R6",
    )  # fmt: skip
    new = write_jpeg(
        library / "Exports/2024/IMG_8000.jpg", 80, size=(1280, 960), quality=100, taken=taken,
        make="Canon", model="Canon EOS R6",
    )  # fmt: skip
    set_mtime(old, datetime(2019, 3, 3))
    set_mtime(new, datetime(2024, 1, 5))

    # When the library is scanned
    report = run_scan(embedded_settings, str(library))

    # Then the quality 100 export is kept, for its quality, not the older file
    members = frozenset({"Exports/2019/IMG_8000.jpg", "Exports/2024/IMG_8000.jpg"})
    assert duplicates(report) == {
        members: ("perceptual", "Exports/2024/IMG_8000.jpg", "jpeg_quality")
    }


def _crw_and_its_preview(samples: Path, to: Path) -> tuple[Image.Image, Image.Exif]:
    """The sample Canon CRW copied to ``to``; its embedded preview, and EXIF with the
    RAW's capture time and camera (what the camera's own JPEG of it would carry)."""
    crw = copy(samples / "imagemeta/CRW.CRW", to)
    taken = inspect_file(str(crw), full_hash=False).taken_at
    assert taken is not None
    with rawpy.imread(str(crw)) as raw:
        preview = Image.open(io.BytesIO(raw.extract_thumb().data))
        preview.load()
    return preview, exif_for(taken, "Canon", "Canon EOS D30")


def test_an_edit_of_the_raws_jpeg_in_another_folder_is_no_duplicate_of_the_raw(
    embedded_settings: Settings, library: Path, samples: Path
) -> None:
    # Given an import sorted by type: the Canon CRW in RAW/, the camera's JPEG of it (its
    # embedded preview, with the RAW's EXIF) in JPG/, and an edit of that JPEG beside it
    # (contrast x1.25, EXIF kept)
    preview, exif = _crw_and_its_preview(samples, library / "2018/RAW/IMG_0001.CRW")
    jpg = library / "2018/JPG/IMG_0001.JPG"
    jpg.parent.mkdir(parents=True)
    preview.save(jpg, "JPEG", quality=92, exif=exif)
    edit = ImageEnhance.Contrast(preview).enhance(1.25)
    edit.save(library / "2018/JPG/IMG_0001-Edit.jpg", "JPEG", quality=92, exif=exif)

    # When the library is scanned
    report = run_scan(embedded_settings, str(library))

    # Then grouping made the three one group (the RAW in RAW/ pairs with its JPEG in the
    # sibling JPG/, the edit joins that JPEG), and dedup suggests trashing none of them:
    # they are versions of one shot
    assert file_groups(report) == {
        frozenset(
            {"2018/RAW/IMG_0001.CRW", "2018/JPG/IMG_0001.JPG", "2018/JPG/IMG_0001-Edit.jpg"}
        ): "raw_jpeg"
    }
    assert duplicates(report) == {}


def test_a_read_that_fails_on_a_rescan_does_not_hand_the_group_to_a_smaller_copy(
    embedded_settings: Settings, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.media import inspect

    # Given a full-size photo in the library and a small web copy of it (EXIF kept)
    taken = datetime(2024, 5, 4, 10, 11, 12)
    original = write_jpeg(
        library / "Pictures/IMG_9000.JPG", 9, size=(2400, 1800), taken=taken, make="Canon",
        model="Canon EOS R6",
    )  # fmt: skip
    web = library / "Web/IMG_9000.JPG"
    web.parent.mkdir()
    with Image.open(original) as im:
        im.resize((600, 450)).save(web, "JPEG", quality=85, exif=im.getexif())
    members = frozenset({"Pictures/IMG_9000.JPG", "Web/IMG_9000.JPG"})
    first = run_scan(embedded_settings, str(library))
    assert duplicates(first) == {members: ("perceptual", "Pictures/IMG_9000.JPG", "resolution")}
    open_regular = inspect.open_regular

    def eio(path: str, *args: object, **kwargs: object) -> object:
        if path.endswith("Pictures/IMG_9000.JPG"):
            raise OSError(errno.EIO, "Input/output error", path)
        return open_regular(path, *args, **kwargs)  # type: ignore[arg-type]

    # When a full rescan fails to read the original once (an I/O error on the share)
    monkeypatch.setattr(inspect, "open_regular", eio)
    report = run_scan(embedded_settings, str(library), full=True)

    # Then the read failure is reported on the file, which keeps what was known of it
    files = by_path(report)
    assert "input/output error" in files["Pictures/IMG_9000.JPG"]["error"].lower()
    assert (
        files["Pictures/IMG_9000.JPG"]["phash"] == by_path(first)["Pictures/IMG_9000.JPG"]["phash"]
    )
    # and the full-size original is still the copy to keep: a failed read is no broken file
    assert duplicates(report) == {members: ("perceptual", "Pictures/IMG_9000.JPG", "resolution")}


TAKEOUT_2019 = "Takeout/Google Photos/Photos from 2019"


def test_a_takeout_copy_with_its_json_is_not_kept_over_the_librarys_photo(
    embedded_settings: Settings, library: Path
) -> None:
    # Given a loose photo in the library and its byte copy in a Google Takeout export,
    # with the JSON Takeout writes beside every photo
    photo = write_jpeg(
        library / "Pictures/2019/IMG_5000.JPG", 50, size=(1280, 960),
        taken=datetime(2019, 6, 1, 9, 0, 0), make="Apple", model="iPhone 8",
    )  # fmt: skip
    copy(photo, library / TAKEOUT_2019 / "IMG_5000.JPG")
    write_bytes(library / TAKEOUT_2019 / "IMG_5000.JPG.json", b'{"title": "IMG_5000.JPG"}')
    members = frozenset({"Pictures/2019/IMG_5000.JPG", f"{TAKEOUT_2019}/IMG_5000.JPG"})

    # When the library is scanned
    report = run_scan(embedded_settings, str(library))

    # Then the Takeout photo and its JSON are a sidecar group, which binds nothing: the
    # library's photo is kept, the one not in a folder of copies ("name")
    assert file_groups(report) == {
        frozenset({f"{TAKEOUT_2019}/IMG_5000.JPG", f"{TAKEOUT_2019}/IMG_5000.JPG.json"}): (
            "sidecar"
        )
    }
    assert duplicates(report) == {members: ("exact", "Pictures/2019/IMG_5000.JPG", "name")}

    # And when the user names the library's folder as the preferred one, that decides
    preferring = replace(embedded_settings, preferred_folders=(library / "Pictures",))
    report = run_scan(preferring, str(library), full=True)
    assert duplicates(report) == {members: ("exact", "Pictures/2019/IMG_5000.JPG", "folder")}


def test_a_takeout_live_photo_with_its_json_does_not_outrank_the_librarys_live_photo(
    embedded_settings: Settings, library: Path, samples: Path
) -> None:
    # Given an iPhone Live Photo in the library (HEIC + MOV) and its Takeout copy (the
    # still, the video and the still's JSON: three members to the library's two)
    lib = "Pictures/iPhone/2019"
    heic = copy(samples / "lychee/classic-car.heic", library / lib / "IMG_5001.HEIC")
    mov = write_bytes(library / lib / "IMG_5001.MOV", os.urandom(30_000))
    copy(heic, library / TAKEOUT_2019 / "IMG_5001.HEIC")
    copy(mov, library / TAKEOUT_2019 / "IMG_5001.MOV")
    write_bytes(library / TAKEOUT_2019 / "IMG_5001.HEIC.json", b'{"title": "IMG_5001.HEIC"}')

    # When the library is scanned
    report = run_scan(embedded_settings, str(library))

    # Then both are file groups
    assert set(file_groups(report)) == {
        frozenset({f"{lib}/IMG_5001.HEIC", f"{lib}/IMG_5001.MOV"}),
        frozenset({f"{TAKEOUT_2019}/IMG_5001.{x}" for x in ("HEIC", "MOV", "HEIC.json")}),
    }
    # and the JSON adds nothing to the Takeout's: "file_group" decides nothing, so that the
    # library's still and video are kept (byte copies: the Takeout's are in a folder of
    # copies)
    dups = duplicates(report)
    for name in ("IMG_5001.HEIC", "IMG_5001.MOV"):
        members = frozenset({f"{lib}/{name}", f"{TAKEOUT_2019}/{name}"})
        assert dups[members] == ("exact", f"{lib}/{name}", "name")


def test_a_copy_of_the_jpeg_a_raw_is_paired_with_is_its_duplicate(
    embedded_settings: Settings, library: Path, samples: Path
) -> None:
    # Given a shoot of a Canon CRW and the camera's JPEG of it (its embedded preview, with
    # the RAW's EXIF), and a quality 70 copy of that JPEG (EXIF kept) in a shared folder:
    # the same stem, capture time and camera as the RAW
    preview, exif = _crw_and_its_preview(samples, library / "Shoot/IMG_0001.CRW")
    preview.save(library / "Shoot/IMG_0001.JPG", "JPEG", quality=92, exif=exif)
    (library / "Shared").mkdir()
    preview.save(library / "Shared/IMG_0001.JPG", "JPEG", quality=70, exif=exif)

    # When the library is scanned
    report = run_scan(embedded_settings, str(library))

    # Then the RAW and its JPEG are a pair, and the copy is a look-alike of that JPEG
    # (two renditions of one RAW are no versions of each other), which is kept
    assert file_groups(report) == {
        frozenset({"Shoot/IMG_0001.CRW", "Shoot/IMG_0001.JPG"}): "raw_jpeg"
    }
    members = frozenset({"Shoot/IMG_0001.JPG", "Shared/IMG_0001.JPG"})
    assert duplicates(report) == {members: ("perceptual", "Shoot/IMG_0001.JPG", "file_group")}


@pytest.mark.parametrize("look_alike", [False, True], ids=["byte-copy", "re-saved"])
def test_a_copy_kept_for_its_live_photo_is_not_kept_once_the_video_is_gone(
    embedded_settings: Settings, library: Path, monkeypatch: pytest.MonkeyPatch, look_alike: bool
) -> None:
    from datetime import timedelta

    from core.dedup import service as dedup_service
    from core.grouping import watermark

    # (one host: incremental passes then look at exactly what changed since the last)
    monkeypatch.setattr(watermark, "CLOCK_SLACK", timedelta(0))
    monkeypatch.setattr(dedup_service, "CLOCK_SLACK", timedelta(0))
    # Given a Live Photo whose still is a quality-60 JPEG, and an archive copy of the
    # picture: byte for byte, or re-saved at quality 95
    live = write_jpeg(library / "live" / "IMG_0100.JPG", 1, quality=60)
    write_bytes(library / "live" / "IMG_0100.MOV", os.urandom(20_000))
    if look_alike:
        write_jpeg(library / "archive" / "IMG_0100.JPG", 1, quality=95)
    else:
        copy(live, library / "archive" / "IMG_0100.JPG")
    first = run_scan(embedded_settings, str(library))
    assert file_groups(first) == {
        frozenset({"live/IMG_0100.JPG", "live/IMG_0100.MOV"}): "live_photo"
    }
    pair = frozenset({"live/IMG_0100.JPG", "archive/IMG_0100.JPG"})
    assert duplicates(first)[pair][1:] == ("live/IMG_0100.JPG", "file_group")
    # And a later scan whose duplicate pass found nothing new
    write_bytes(library / "archive" / "notes.bin", os.urandom(3_000))
    run_scan(embedded_settings, str(library))
    # When the Live Photo's video is deleted, and the library scanned
    (library / "live" / "IMG_0100.MOV").unlink()
    report = run_scan(embedded_settings, str(library))
    # Then the still is in no group, and the keeper is chosen again without it, as a
    # first scan of the library would: the quality-95 re-save, or (byte copies, equals)
    # the first path
    assert file_groups(report) == {}
    kind, keep, reason = duplicates(report)[pair]
    assert keep == "archive/IMG_0100.JPG" and reason != "file_group"
    assert reason == ("jpeg_quality" if look_alike else "tie: path")


def test_identical_sidecars_are_not_offered_as_duplicates(
    embedded_settings: Settings, library: Path
) -> None:
    # Given two different photos whose XMP sidecars are byte for byte the same (an
    # editor's untouched defaults), and a backup of the first photo with its sidecar
    write_jpeg(library / SHOOT / "IMG_0001.JPG", 1)
    write_bytes(library / SHOOT / "IMG_0001.xmp", XMP)
    write_jpeg(library / SHOOT / "IMG_0002.JPG", 2)
    write_bytes(library / SHOOT / "IMG_0002.xmp", XMP)
    copy(library / SHOOT / "IMG_0001.JPG", library / BACKUP / "IMG_0001.JPG")
    copy(library / SHOOT / "IMG_0001.xmp", library / BACKUP / "IMG_0001.xmp")
    # When the library is scanned
    report = run_scan(embedded_settings, str(library))
    # Then the photo's copy is a duplicate, kept where its sidecar is part of the group,
    # and no group is made of sidecars
    assert duplicates(report) == {
        frozenset({f"{SHOOT}/IMG_0001.JPG", f"{BACKUP}/IMG_0001.JPG"}): (
            "exact",
            f"{SHOOT}/IMG_0001.JPG",
            "name",
        )
    }
