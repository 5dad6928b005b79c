"""Grouping rules (core.grouping): names, pairs, decoys, sidecars, overrides, determinism."""

from __future__ import annotations

import itertools
import unicodedata
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.grouping import names as N
from core.grouping.evaluate import grouped_pairs, pairs_of_sets, score
from core.grouping.rules import (
    GroupResult,
    ManualGroup,
    Overrides,
    group_folder,
    partition_by_folder,
    split_all,
    split_out,
)
from core.records import FileRecord

T0 = datetime(2023, 10, 6, 12, 34, 56)
DIR = "/lib/2023/10"
_ids = itertools.count(1)


def rec(name: str, dt: float | None = 0.0, *, folder: str = DIR, **kw) -> FileRecord:
    """A file named ``name`` taken ``dt`` seconds after T0 (None: unknown time)."""
    taken = None if dt is None else T0 + timedelta(seconds=dt)
    kind = kw.pop("kind", "other")  # rules must work from names alone
    return FileRecord(
        id=next(_ids), path=f"{folder}/{name}", kind=kind, size=1, taken_at=taken, **kw
    )


def shape(groups: list[GroupResult]) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """Groups as (type, {(basename, role)}) for comparison with a table."""
    return {
        (g.type, frozenset((m.path.rsplit("/", 1)[1], m.role) for m in g.members)) for g in groups
    }


def G(gtype: str, **roles: str) -> tuple[str, frozenset[tuple[str, str]]]:
    """Expected group: G("raw_jpeg", **{"A.JPG": "primary", "A.CR3": "raw"})."""
    return (gtype, frozenset((name, role) for name, role in roles.items()))


def check_invariants(groups: list[GroupResult]) -> None:
    seen: set[str] = set()
    for g in groups:
        assert len(g.members) >= 2
        assert g.members[0].is_primary and g.members[0].role == "primary"
        assert sum(m.is_primary for m in g.members) == 1
        assert len(g.key) == 32 and int(g.key, 16) >= 0
        for m in g.members:
            assert m.path not in seen, f"{m.path} in two groups"
            seen.add(m.path)
    assert len({g.key for g in groups}) == len(groups)


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name, stem, ext",
    [
        ("IMG_1.CR2", "IMG_1", "cr2"),
        ("a.b.JPG", "a.b", "jpg"),
        ("noext", "noext", ""),
        (".hidden", ".hidden", ""),
        ("PXL_20231006_123456789.RAW-01.COVER.jpg", "PXL_20231006_123456789.RAW-01.COVER", "jpg"),
    ],
)
def test_split_ext(name: str, stem: str, ext: str) -> None:
    assert N.split_ext(name) == (stem, ext)
    assert N.stem(name) == stem


@pytest.mark.parametrize(
    "name, radical",
    [
        ("PXL_20231006_123456789.RAW-01.COVER.jpg", "PXL_20231006_123456789"),
        ("PXL_20231006_123456789.RAW-02.ORIGINAL.dng", "PXL_20231006_123456789"),
        ("PXL_20240615_204528165.NIGHT.RAW-01.COVER.jpg", "PXL_20240615_204528165"),
        ("pxl_20231006_123456789.jpg", "pxl_20231006_123456789"),
        ("PXL_20231006_1234567890.jpg", None),  # not the 9-digit time
        ("IMG_1123.jpg", None),
    ],
)
def test_pixel_radical(name: str, radical: str | None) -> None:
    assert N.pixel_radical(name) == radical


@pytest.mark.parametrize(
    "stem, base",
    [
        ("IMG_E1234", "IMG_1234"),
        ("img_e0042", "img_0042"),
        ("holiday-edited", "holiday"),
        ("holiday (edited)", "holiday"),
        ("DSC_0001-Edit", "DSC_0001"),
        ("DSC_0001-Edit-2", "DSC_0001"),
        ("holiday-bearbeitet", "holiday"),
        ("IMG_20180830_123540573-edited(1)", "IMG_20180830_123540573(1)"),  # Takeout index
        ("IMG_E1234(2)", "IMG_1234(2)"),
        ("IMG_1234 (1)", None),  # a copy, not an edit
        ("IMG_1234(1)", None),
        ("IMG_1234", None),
        ("IMG_EXTRA", None),
        ("credit", None),
    ],
)
def test_edit_base(stem: str, base: str | None) -> None:
    assert N.edit_base(stem) == base


# The suffixes editors and Google Takeout (in its languages) put on an edited copy,
# written out here: dropping one from the code must fail a test.
EDITED = (
    "-edited", "-edit", " (edited)", "(edited)", "-bearbeitet", "-modifié", "-modifie",
    "-editado", "-modificato", "-bewerkt", "-redigerad", "-redigeret", "-redigert",
    "-muokattu", "-edytowane", "-upraveno",
)  # fmt: skip


@pytest.mark.parametrize("suffix", EDITED)
@pytest.mark.parametrize("base", ["IMG_1", "Straße", "İstanbul", "Cafe\u0301", "ÉTÉ"])
def test_every_edit_suffix_after_any_name(base: str, suffix: str) -> None:
    # Whatever the name (a casefold longer or shorter than it, a Mac's NFD), and in the
    # suffix's own case or upper case
    nfc = unicodedata.normalize("NFC", base)
    assert N.edit_base(base + suffix) == nfc
    assert N.edit_base(base + suffix.upper()) == nfc


def test_an_edit_with_an_accented_or_unusual_name_joins_its_original() -> None:
    for original, edit in (
        ("Straße.jpg", "Straße-edited.jpg"),
        ("Café.jpg", "Cafe\u0301-edited.jpg"),
    ):
        groups = group_folder([rec(original), rec(edit)])
        assert [g.type for g in groups] == ["edited"], (original, edit)


def test_shot_key_is_case_and_normalisation_insensitive() -> None:
    assert N.shot_key("IMG_1.CR2") == N.shot_key("img_1.jpg")
    assert N.shot_key("Cafe\u0301.jpg") == N.shot_key("Café.CR3")  # NFD (macOS) vs NFC
    assert N.shot_key("PXL_20231006_123456789.RAW-01.COVER.jpg") == N.shot_key(
        "PXL_20231006_123456789.RAW-02.ORIGINAL.dng"
    )
    # An edited copy keeps its own key; it must not compete with the cover for the RAW.
    assert N.shot_key("PXL_20231006_123456789-edited.jpg") != N.shot_key(
        "PXL_20231006_123456789.RAW-01.COVER.jpg"
    )


@pytest.mark.parametrize(
    "name, full, stem",
    [
        ("IMG_1.xmp", "img_1", "img_1"),
        ("IMG_1.CR2.xmp", "img_1.cr2", "img_1"),
        ("IMG_1.AAE", "img_1", "img_1"),
        ("IMG_1.jpg.json", "img_1.jpg", "img_1"),
        ("IMG_1.jpg.supplemental-metadata.json", "img_1.jpg", "img_1"),
        ("IMG_1.jpg.supplemental-me.json", "img_1.jpg", "img_1"),
        ("IMG_1.jpg(1).json", "img_1(1).jpg", "img_1(1)"),
        ("IMG_1.jpg.supplemental-metadata(2).json", "img_1(2).jpg", "img_1(2)"),
        ("IMG_1.jpg..json", "img_1.jpg", "img_1"),  # supplemental part cut to nothing
    ],
)
def test_sidecar_targets(name: str, full: str, stem: str) -> None:
    t = N.sidecar_targets(name)
    assert t is not None
    assert full in t.full_names
    assert stem in t.stem_keys


def test_darktable_duplicate_sidecar_names_its_original() -> None:
    assert N.sidecar_targets("IMG_1234_01.CR3.xmp").version_of == ("img_1234.cr3",)
    assert N.sidecar_targets("DSC_0001_12.NEF.xmp").version_of == ("dsc_0001.nef",)
    # a camera counter is not a version: IMG_1234.CR3.xmp is not about IMG.CR3
    assert N.sidecar_targets("IMG_1234.CR3.xmp").version_of == ()
    assert N.sidecar_targets("IMG_20231006_123456.jpg.xmp").version_of == ()
    assert N.sidecar_targets("IMG_1234_1.CR3.xmp").version_of == ()  # nn has two digits
    assert N.sidecar_targets("IMG_1234_01.xmp").version_of == ()  # no image extension
    assert N.sidecar_targets("IMG_1234_01.CR3.json").version_of == ()  # darktable: .xmp


def test_truncated_takeout_json_keeps_its_index() -> None:
    t = N.sidecar_targets(f"{'a' * 46}(3).json")
    assert (t.prefix, t.index) == ("a" * 46, "(3)")
    assert N.takeout_index_agrees("a" * 46 + "b(3).jpg", t.prefix, t.index)
    assert not N.takeout_index_agrees("a" * 46 + "b.jpg", t.prefix, t.index)
    assert not N.takeout_index_agrees("a" * 46 + "b(3)(1).jpg", t.prefix, t.index)
    assert N.sidecar_targets(f"{'a' * 45}(3).json").prefix is None  # not cut


@pytest.mark.parametrize("name", ["PXL_1.MP", "PXL_1.mp", "PXL_1.MP~2", "PXL_1.MP~12"])
def test_pixel_motion_video_names_are_live_videos(name: str) -> None:
    assert N.category(name) == N.VIDEO
    assert N.is_live_video(name)


@pytest.mark.parametrize("name", ["a.mpg", "a.mp3", "a.MP~", "a.mpx"])
def test_other_mp_names_are_not_live_videos(name: str) -> None:
    assert not N.is_live_video(name)


def test_sidecar_targets_of_other_names() -> None:
    assert N.sidecar_targets("IMG_1.jpg") is None
    assert N.stem_key("IMG_1234") in N.sidecar_targets("IMG_O1234.AAE").stem_keys
    assert N.sidecar_targets("IMG_1.jpg.json").prefix is None  # short: not truncated
    long = "Screenshot_20231006-123456_Some Long App Name.j.json"
    assert N.sidecar_targets(long).prefix == N.norm(long[:-5])


@pytest.mark.parametrize(
    "name, kind, fmt, cat",
    [
        ("a.CR3", "other", None, N.RAW),  # unreadable RAW: the name still says RAW
        ("a.HIF", "image", "heic", N.RENDITION),
        ("a.jpg", "image", "heic", N.RENDITION),
        ("a.png", "image", "png", N.IMAGE),
        ("a.MOV", "video", "mov", N.VIDEO),
        ("a.xmp", "sidecar", "xmp", N.SIDECAR),
        ("a.bin", "raw", None, N.RAW),  # unknown extension: the catalog's kind decides
        ("a.bin", "image", "jpeg", N.RENDITION),
        ("a.txt", "other", None, N.OTHER),
    ],
)
def test_category(name: str, kind: str, fmt: str | None, cat: str) -> None:
    assert N.category(name, kind, fmt) == cat


# ----------------------------------------------------------------------------- pairs

RAW_JPEG_CASES = [
    # (id, files, expected shapes)
    (
        "same time",
        [rec("IMG_1.CR2"), rec("IMG_1.JPG")],
        {G("raw_jpeg", **{"IMG_1.JPG": "primary", "IMG_1.CR2": "raw"})},
    ),
    (
        "1.9 s apart",
        [rec("IMG_1.NEF", 0), rec("IMG_1.JPG", 1.9)],
        {G("raw_jpeg", **{"IMG_1.JPG": "primary", "IMG_1.NEF": "raw"})},
    ),
    ("2.5 s apart", [rec("IMG_1.NEF", 0), rec("IMG_1.JPG", 2.5)], set()),
    (
        "counter rollover: hours apart",
        [rec("IMG_0001.CR2", 0), rec("IMG_0001.JPG", 5 * 3600)],
        set(),
    ),
    (
        "times unknown: name alone",
        [rec("IMG_1.ARW", None), rec("IMG_1.JPG", None)],
        {G("raw_jpeg", **{"IMG_1.JPG": "primary", "IMG_1.ARW": "raw"})},
    ),
    (
        "one time unknown",
        [rec("IMG_1.ARW", None), rec("IMG_1.JPG", 0)],
        {G("raw_jpeg", **{"IMG_1.JPG": "primary", "IMG_1.ARW": "raw"})},
    ),
    (
        "case-insensitive stems",
        [rec("IMG_1.CR2"), rec("img_1.jpg")],
        {G("raw_jpeg", **{"img_1.jpg": "primary", "IMG_1.CR2": "raw"})},
    ),
    (
        "HEIC rendition",
        [rec("DSC_1.ARW"), rec("DSC_1.HEIC")],
        {G("raw_jpeg", **{"DSC_1.HEIC": "primary", "DSC_1.ARW": "raw"})},
    ),
    (
        "HIF rendition",
        [rec("R5_0001.CR3"), rec("R5_0001.HIF")],
        {G("raw_jpeg", **{"R5_0001.HIF": "primary", "R5_0001.CR3": "raw"})},
    ),
    ("PNG is not a rendition", [rec("IMG_1.CR2"), rec("IMG_1.png")], set()),
    ("two RAWs are not a pair", [rec("IMG_1.CR2"), rec("IMG_1.DNG")], set()),
    ("different stems", [rec("IMG_1.CR2"), rec("IMG_2.JPG")], set()),
    (
        "Pixel RAW-01/RAW-02",
        [
            rec("PXL_20231006_123456789.RAW-01.COVER.jpg"),
            rec("PXL_20231006_123456789.RAW-02.ORIGINAL.dng", 0.4),
        ],
        {
            G(
                "raw_jpeg",
                **{
                    "PXL_20231006_123456789.RAW-01.COVER.jpg": "primary",
                    "PXL_20231006_123456789.RAW-02.ORIGINAL.dng": "raw",
                },
            )
        },
    ),
    (
        "Pixel night mode",
        [
            rec("PXL_20240615_204528165.NIGHT.RAW-01.COVER.jpg"),
            rec("PXL_20240615_204528165.NIGHT.RAW-02.ORIGINAL.dng"),
        ],
        {
            G(
                "raw_jpeg",
                **{
                    "PXL_20240615_204528165.NIGHT.RAW-01.COVER.jpg": "primary",
                    "PXL_20240615_204528165.NIGHT.RAW-02.ORIGINAL.dng": "raw",
                },
            )
        },
    ),
    (
        "other Pixel shot",
        [
            rec("PXL_20231006_123456789.RAW-01.COVER.jpg"),
            rec("PXL_20231006_123456790.RAW-02.ORIGINAL.dng"),
        ],
        set(),
    ),
    (
        "same serial",
        [rec("A.CR3", serial="0123"), rec("A.JPG", serial="123")],
        {G("raw_jpeg", **{"A.JPG": "primary", "A.CR3": "raw"})},
    ),
    ("different serials", [rec("A.CR3", serial="111"), rec("A.JPG", serial="222")], set()),
    (
        "model with and without make",
        [rec("A.CR3", model="EOS R6"), rec("A.JPG", model="Canon EOS R6")],
        {G("raw_jpeg", **{"A.JPG": "primary", "A.CR3": "raw"})},
    ),
    ("different models", [rec("A.ARW", model="ILCE-7M3"), rec("A.JPG", model="ILCE-7RM3")], set()),
    (
        "one model unknown",
        [rec("A.ARW", model="ILCE-7M3"), rec("A.JPG")],
        {G("raw_jpeg", **{"A.JPG": "primary", "A.ARW": "raw"})},
    ),
]


@pytest.mark.parametrize(
    "files, expected", [c[1:] for c in RAW_JPEG_CASES], ids=[c[0] for c in RAW_JPEG_CASES]
)
def test_raw_jpeg(files: list[FileRecord], expected: set) -> None:
    groups = group_folder(files)
    check_invariants(groups)
    assert shape(groups) == expected


def test_offsets_compare_instants_when_both_known() -> None:
    # Given a camera on UTC and a phone on local time at the same instant
    raw = FileRecord(1, f"{DIR}/A.DNG", "raw", 1, taken_at=T0, taken_offset="+00:00")
    jpg = FileRecord(
        2, f"{DIR}/A.JPG", "image", 1, taken_at=T0 + timedelta(hours=2), taken_offset="+02:00"
    )
    # Then they are the same shot
    assert shape(group_folder([raw, jpg])) == {
        G("raw_jpeg", **{"A.JPG": "primary", "A.DNG": "raw"})
    }


def test_rendition_pairs_with_the_closest_of_two_raws() -> None:
    # Given one JPEG and two RAWs of the same stem, the CR3 closer in time
    files = [rec("IMG_1.JPG", 0), rec("IMG_1.CR2", 1.5), rec("IMG_1.CR3", 0.5)]
    # When grouped
    groups = group_folder(files)
    # Then the JPEG pairs with the CR3 only
    assert shape(groups) == {G("raw_jpeg", **{"IMG_1.JPG": "primary", "IMG_1.CR3": "raw"})}


def test_rendition_tie_between_raws_is_broken_by_name() -> None:
    files = [rec("IMG_1.JPG"), rec("IMG_1.CR3"), rec("IMG_1.CR2")]
    assert shape(group_folder(files)) == {
        G("raw_jpeg", **{"IMG_1.JPG": "primary", "IMG_1.CR2": "raw"})
    }


def test_two_shots_with_one_name_pair_one_to_one() -> None:
    # Given two RAW+JPEG shots whose names collide (two cameras, same counter)
    files = [
        rec("IMG_1.CR2", 0),
        rec("IMG_1.JPG", 0.5),
        rec("IMG_1.CR3", 1.8),
        rec("IMG_1.HEIC", 1.9),
    ]
    groups = group_folder(files)
    # Then each rendition takes a RAW of its own rather than both taking the closest
    assert shape(groups) == {
        G("raw_jpeg", **{"IMG_1.JPG": "primary", "IMG_1.CR2": "raw"}),
        G("raw_jpeg", **{"IMG_1.HEIC": "primary", "IMG_1.CR3": "raw"}),
    }


def test_a_raw_is_not_shared_while_another_is_free() -> None:
    # Given two shots under one name: CR2+JPG at once, and a HEIC nearer the CR2 than
    # its own CR3
    files = [
        rec("IMG_1.CR2", 0),
        rec("IMG_1.JPG", 0),
        rec("IMG_1.HEIC", 0.3),
        rec("IMG_1.CR3", 1.0),
    ]
    # Then each RAW takes one rendition
    assert shape(group_folder(files)) == {
        G("raw_jpeg", **{"IMG_1.JPG": "primary", "IMG_1.CR2": "raw"}),
        G("raw_jpeg", **{"IMG_1.HEIC": "primary", "IMG_1.CR3": "raw"}),
    }


def test_a_raw_with_a_known_close_time_beats_one_with_no_time() -> None:
    files = [rec("IMG_1.JPG", 0), rec("IMG_1.CR2", None), rec("IMG_1.CR3", 0.5)]
    assert shape(group_folder(files)) == {
        G("raw_jpeg", **{"IMG_1.JPG": "primary", "IMG_1.CR3": "raw"})
    }


def test_raw_with_jpeg_and_hif_is_one_group() -> None:
    groups = group_folder([rec("A.CR3"), rec("A.JPG"), rec("A.HIF")])
    assert len(groups) == 1
    assert sorted(m.role for m in groups[0].members) == ["primary", "raw", "rendition"]
    assert groups[0].primary.path.endswith((".JPG", ".HIF"))


def test_policy_raw_makes_the_raw_primary() -> None:
    files = [rec("IMG_1.CR2"), rec("IMG_1.JPG")]
    assert shape(group_folder(files, policy="raw")) == {
        G("raw_jpeg", **{"IMG_1.CR2": "primary", "IMG_1.JPG": "rendition"})
    }


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="policy"):
        group_folder([], policy="biggest")


def test_unreadable_raw_still_pairs_by_name() -> None:
    # Given a RAW the catalog could not read: no kind, no time, no camera (but bytes: an
    # empty file pairs with nothing)
    broken = FileRecord(1, f"{DIR}/IMG_7.RAF", "other", 5000, error="corrupt RAF")
    jpg = FileRecord(2, f"{DIR}/IMG_7.JPG", "image", 10, format="jpeg", taken_at=T0, model="X-T4")
    assert shape(group_folder([broken, jpg])) == {
        G("raw_jpeg", **{"IMG_7.JPG": "primary", "IMG_7.RAF": "raw"})
    }


def test_same_stem_in_different_folders_is_not_a_pair() -> None:
    # Given the RAW in one folder and the JPEG in another (the service calls per folder)
    files = [rec("IMG_1.CR2", folder="/lib/a"), rec("IMG_1.JPG", folder="/lib/b")]
    parts = partition_by_folder(files)
    assert list(parts) == ["/lib/a", "/lib/b"]
    assert all(group_folder(fs) == [] for fs in parts.values())
    # and even when both folders are passed at once
    assert group_folder(files) == []


def test_partition_by_folder_sorts_and_keeps_every_file() -> None:
    files = [rec("b.jpg", folder="/z"), rec("a.jpg", folder="/a"), rec("a.jpg", folder="/z")]
    parts = partition_by_folder(files)
    assert list(parts) == ["/a", "/z"]
    assert [f.name for f in parts["/z"]] == ["a.jpg", "b.jpg"]
    assert sum(len(v) for v in parts.values()) == 3


# ----------------------------------------------------------------------------- live photos

LIVE_CASES = [
    (
        "HEIC+MOV, no content id",
        [rec("IMG_5.HEIC"), rec("IMG_5.MOV", -1.5)],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "IMG_5.MOV": "video"})},
    ),
    (
        "JPG+MP4",
        [rec("IMG_5.JPG"), rec("IMG_5.MP4")],
        {G("live_photo", **{"IMG_5.JPG": "primary", "IMG_5.MP4": "video"})},
    ),
    (
        "equal content ids",
        [rec("IMG_5.HEIC", content_id="AB-1"), rec("IMG_5.MOV", content_id="ab-1")],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "IMG_5.MOV": "video"})},
    ),
    (
        "mismatched content ids",
        [rec("IMG_5.HEIC", content_id="A"), rec("IMG_5.MOV", content_id="B")],
        set(),
    ),
    (
        "one content id unknown",
        [rec("IMG_5.HEIC", content_id="A"), rec("IMG_5.MOV")],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "IMG_5.MOV": "video"})},
    ),
    (
        "video time in UTC (2 h off)",
        [rec("IMG_5.HEIC", 0), rec("IMG_5.MOV", -7200 - 1)],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "IMG_5.MOV": "video"})},
    ),
    (
        "video time in UTC, west of it (UTC-5)",
        [rec("IMG_5.HEIC", 0), rec("IMG_5.MOV", 5 * 3600 - 1.5)],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "IMG_5.MOV": "video"})},
    ),
    (
        "video 3 s before the still",
        [rec("IMG_5.HEIC", 0), rec("IMG_5.MOV", -3)],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "IMG_5.MOV": "video"})},
    ),
    (
        "video time in UTC, a half-hour zone (India)",
        [rec("IMG_5.HEIC", 0), rec("IMG_5.MOV", -(5.5 * 3600 + 1.5))],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "IMG_5.MOV": "video"})},
    ),
    ("rollover: 3 h 17 min apart", [rec("IMG_5.HEIC", 0), rec("IMG_5.MOV", 11820)], set()),
    (
        "equal ids beat the time check",
        [rec("IMG_5.HEIC", 0, content_id="A"), rec("IMG_5.MOV", 11820, content_id="A")],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "IMG_5.MOV": "video"})},
    ),
    (
        "renamed, equal ids",
        [rec("Beach.heic", content_id="A"), rec("IMG_9.MOV", content_id="A")],
        {G("live_photo", **{"Beach.heic": "primary", "IMG_9.MOV": "video"})},
    ),
    ("AVI is not a live video", [rec("IMG_5.JPG"), rec("IMG_5.AVI")], set()),
    ("PNG is not a live still", [rec("IMG_5.PNG"), rec("IMG_5.MOV")], set()),
    (
        "one video, two stills: HEIC wins",
        [rec("IMG_5.JPG"), rec("IMG_5.HEIC"), rec("IMG_5.MOV")],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "IMG_5.MOV": "video"})},
    ),
    (
        # icloudpd's default: the Live Photo's video as _HEVC, beside a plain video of
        # the same counter taken later (both offsets known: 2 h is 2 h, not a zone)
        "icloudpd _HEVC video beside a plain video of the same name",
        [
            rec("IMG_5.HEIC", 0, content_id="A", taken_offset="+02:00"),
            rec("IMG_5_HEVC.MOV", -1.5, content_id="A", taken_offset="+02:00"),
            rec("IMG_5.MOV", 7201, taken_offset="+02:00"),
        ],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "IMG_5_HEVC.MOV": "video"})},
    ),
    (
        "icloudpd _HEVC video, no content ids",
        [rec("IMG_5.HEIC", 0), rec("IMG_5_HEVC.MOV", -1.5)],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "IMG_5_HEVC.MOV": "video"})},
    ),
    (
        "both offsets known: an hour apart is an hour",
        [
            rec("IMG_5.HEIC", 0, taken_offset="+01:00"),
            rec("IMG_5.MOV", 3600, taken_offset="+01:00"),
        ],
        set(),
    ),
    (
        "a still's id waits for its own video",
        [
            rec("IMG_5.HEIC", 0, content_id="A"),
            rec("IMG_5.MOV", 2),
            rec("Renamed.MOV", -1.5, content_id="A"),
        ],
        {G("live_photo", **{"IMG_5.HEIC": "primary", "Renamed.MOV": "video"})},
    ),
    (
        "two phones: a still and a video of another camera",
        [rec("IMG_5.HEIC", 0, model="iPhone 12"), rec("IMG_5.MOV", None, model="iPhone 14 Pro")],
        set(),
    ),
]


@pytest.mark.parametrize(
    "files, expected", [c[1:] for c in LIVE_CASES], ids=[c[0] for c in LIVE_CASES]
)
def test_live_photo(files: list[FileRecord], expected: set) -> None:
    groups = group_folder(files)
    check_invariants(groups)
    assert shape(groups) == expected


# ----------------------------------------------------------------------------- edits

EDIT_CASES = [
    (
        "iPhone IMG_E",
        [rec("IMG_1234.HEIC"), rec("IMG_E1234.JPG")],
        {G("edited", **{"IMG_1234.HEIC": "primary", "IMG_E1234.JPG": "edit"})},
    ),
    (
        "Takeout -edited",
        [rec("holiday.jpg"), rec("holiday-edited.jpg")],
        {G("edited", **{"holiday.jpg": "primary", "holiday-edited.jpg": "edit"})},
    ),
    (
        "(edited)",
        [rec("holiday.jpg"), rec("holiday (edited).jpg")],
        {G("edited", **{"holiday.jpg": "primary", "holiday (edited).jpg": "edit"})},
    ),
    (
        "Lightroom -Edit of a RAW",
        [rec("DSC_0001.NEF"), rec("DSC_0001-Edit.tif", 3600)],
        {G("edited", **{"DSC_0001.NEF": "primary", "DSC_0001-Edit.tif": "edit"})},
    ),
    (
        "Lightroom Denoise: a DNG made from the RAW",
        [rec("IMG_1234.CR3"), rec("IMG_1234-Enhanced-NR.dng", 60)],
        {G("edited", **{"IMG_1234.CR3": "primary", "IMG_1234-Enhanced-NR.dng": "edit"})},
    ),
    (
        "Lightroom Super Resolution and HDR merge",
        [rec("IMG_7.ARW"), rec("IMG_7-Enhanced-SR.dng", 60), rec("IMG_7-HDR.dng", 90)],
        {
            G(
                "edited",
                **{
                    "IMG_7.ARW": "primary",
                    "IMG_7-Enhanced-SR.dng": "edit",
                    "IMG_7-HDR.dng": "edit",
                },
            )
        },
    ),
    (
        "an edit of an edit",
        [rec("DSC_0001.NEF"), rec("DSC_0001-Edit.tif", 60), rec("DSC_0001-Edit-Edit.tif", 90)],
        {
            G(
                "edited",
                **{
                    "DSC_0001.NEF": "primary",
                    "DSC_0001-Edit.tif": "edit",
                    "DSC_0001-Edit-Edit.tif": "edit",
                },
            )
        },
    ),
    (
        "an edit of an HDR merge whose frames are gone",
        [rec("IMG_1234-HDR.dng"), rec("IMG_1234-HDR-Edit.tif", 60)],
        {G("edited", **{"IMG_1234-HDR.dng": "primary", "IMG_1234-HDR-Edit.tif": "edit"})},
    ),
    (
        "a Pixel edit of an edit whose original is gone",
        [rec("PXL_20231006_123456789-edited.jpg"), rec("PXL_20231006_123456789-edited-edited.jpg")],
        {
            G(
                "edited",
                **{
                    "PXL_20231006_123456789-edited.jpg": "primary",
                    "PXL_20231006_123456789-edited-edited.jpg": "edit",
                },
            )
        },
    ),
    (
        "an edit of an edit, the first edit gone",
        [rec("DSC_0001.NEF"), rec("DSC_0001-Edit-Edit.tif", 90)],
        {G("edited", **{"DSC_0001.NEF": "primary", "DSC_0001-Edit-Edit.tif": "edit"})},
    ),
    ("no original", [rec("IMG_E1234.JPG"), rec("IMG_1235.JPG")], set()),
    (
        # the counter rolled over: this IMG_1234 is a year older than the edit's own
        "the original of the same name a year earlier",
        [rec("IMG_1234.HEIC", 0), rec("IMG_E1234.JPG", 365 * 86400)],
        set(),
    ),
    (
        "edit-like name with its own RAW",
        [rec("photo-edit.cr2"), rec("photo-edit.jpg")],
        {G("raw_jpeg", **{"photo-edit.jpg": "primary", "photo-edit.cr2": "raw"})},
    ),
    (
        "edit of a video",
        [rec("IMG_1234.MOV"), rec("IMG_E1234.MOV")],
        {G("edited", **{"IMG_1234.MOV": "primary", "IMG_E1234.MOV": "edit"})},
    ),
    (
        "Pixel edit joins its shot, not as the cover",
        [
            rec("PXL_20231006_123456789.RAW-01.COVER.jpg"),
            rec("PXL_20231006_123456789.RAW-02.ORIGINAL.dng"),
            rec("PXL_20231006_123456789-edited.jpg"),
        ],
        {
            G(
                "raw_jpeg",
                **{
                    "PXL_20231006_123456789.RAW-01.COVER.jpg": "primary",
                    "PXL_20231006_123456789.RAW-02.ORIGINAL.dng": "raw",
                    "PXL_20231006_123456789-edited.jpg": "edit",
                },
            )
        },
    ),
]


@pytest.mark.parametrize(
    "files, expected", [c[1:] for c in EDIT_CASES], ids=[c[0] for c in EDIT_CASES]
)
def test_edited(files: list[FileRecord], expected: set) -> None:
    groups = group_folder(files)
    check_invariants(groups)
    assert shape(groups) == expected


def test_edit_joins_the_original_of_its_own_time() -> None:
    # Given two shots named IMG_1234 (rollover) and an edit carrying the later shot's time
    files = [rec("IMG_1234.HEIC", 0), rec("IMG_1234.JPG", 86400), rec("IMG_E1234.JPG", 86400)]
    assert shape(group_folder(files)) == {
        G("edited", **{"IMG_1234.JPG": "primary", "IMG_E1234.JPG": "edit"})
    }


def test_edited_live_photo_is_one_group() -> None:
    # Given what an iPhone exports for an edited Live Photo
    files = [
        rec("IMG_1234.HEIC"),
        rec("IMG_1234.MOV"),
        rec("IMG_E1234.HEIC"),
        rec("IMG_E1234.MOV"),
        rec("IMG_1234.AAE", None),
        rec("IMG_O1234.AAE", None),
    ]
    # Then it is one Live Photo group with the edited still and video as edits
    assert shape(group_folder(files)) == {
        G(
            "live_photo",
            **{
                "IMG_1234.HEIC": "primary",
                "IMG_1234.MOV": "video",
                "IMG_E1234.HEIC": "edit",
                "IMG_E1234.MOV": "edit",
                "IMG_1234.AAE": "sidecar",
                "IMG_O1234.AAE": "sidecar",
            },
        )
    }


# ----------------------------------------------------------------------------- sidecars

SIDECAR_CASES = [
    (
        "name.xmp",
        [rec("DSC_1.NEF"), rec("DSC_1.xmp", None)],
        {G("sidecar", **{"DSC_1.NEF": "primary", "DSC_1.xmp": "sidecar"})},
    ),
    (
        "DxO and RawTherapee sidecars",
        [rec("DSC_1.NEF"), rec("DSC_1.NEF.dop", None), rec("DSC_1.NEF.pp3", None)],
        {
            G(
                "sidecar",
                **{"DSC_1.NEF": "primary", "DSC_1.NEF.dop": "sidecar", "DSC_1.NEF.pp3": "sidecar"},
            )
        },
    ),
    (
        "name.ext.xmp",
        [rec("DSC_1.NEF"), rec("DSC_1.NEF.xmp", None)],
        {G("sidecar", **{"DSC_1.NEF": "primary", "DSC_1.NEF.xmp": "sidecar"})},
    ),
    (
        "both styles on one file",
        [rec("DSC_1.NEF"), rec("DSC_1.xmp", None), rec("dsc_1.nef.XMP", None)],
        {
            G(
                "sidecar",
                **{"DSC_1.NEF": "primary", "DSC_1.xmp": "sidecar", "dsc_1.nef.XMP": "sidecar"},
            )
        },
    ),
    (
        "name.aae",
        [rec("IMG_1.HEIC"), rec("IMG_1.AAE", None)],
        {G("sidecar", **{"IMG_1.HEIC": "primary", "IMG_1.AAE": "sidecar"})},
    ),
    (
        "Takeout json",
        [rec("IMG_1.jpg"), rec("IMG_1.jpg.json", None)],
        {G("sidecar", **{"IMG_1.jpg": "primary", "IMG_1.jpg.json": "sidecar"})},
    ),
    (
        "Takeout supplemental-metadata",
        [rec("IMG_1.jpg"), rec("IMG_1.jpg.supplemental-metadata.json", None)],
        {
            G(
                "sidecar",
                **{"IMG_1.jpg": "primary", "IMG_1.jpg.supplemental-metadata.json": "sidecar"},
            )
        },
    ),
    (
        "Takeout duplicate (1)",
        [
            rec("IMG_1.jpg"),
            rec("IMG_1(1).jpg"),
            rec("IMG_1.jpg(1).json", None),
            rec("IMG_1.jpg.json", None),
        ],
        {
            G("sidecar", **{"IMG_1.jpg": "primary", "IMG_1.jpg.json": "sidecar"}),
            G("sidecar", **{"IMG_1(1).jpg": "primary", "IMG_1.jpg(1).json": "sidecar"}),
        },
    ),
    (
        "Takeout truncated name",
        [
            rec("Screenshot_20231006-123456_Some Long App Name.jpg"),
            rec("Screenshot_20231006-123456_Some Long App Name.j.json", None),
        ],
        {
            G(
                "sidecar",
                **{
                    "Screenshot_20231006-123456_Some Long App Name.jpg": "primary",
                    "Screenshot_20231006-123456_Some Long App Name.j.json": "sidecar",
                },
            )
        },
    ),
    (
        "unmatched sidecars stay alone",
        [rec("IMG_1.jpg"), rec("IMG_2.xmp", None), rec("metadata.json", None)],
        set(),
    ),
    (
        "xmp joins a RAW+JPEG pair",
        [rec("A.CR3"), rec("A.JPG"), rec("A.xmp", None)],
        {G("raw_jpeg", **{"A.JPG": "primary", "A.CR3": "raw", "A.xmp": "sidecar"})},
    ),
    (
        "xmp prefers the RAW of two shots",
        [rec("A.CR3", 0), rec("A.JPG", 9000), rec("A.xmp", None)],
        {G("sidecar", **{"A.CR3": "primary", "A.xmp": "sidecar"})},
    ),
    (
        "aae prefers the still",
        [rec("IMG_1.DNG", 0), rec("IMG_1.HEIC", 9000), rec("IMG_1.AAE", None)],
        {G("sidecar", **{"IMG_1.HEIC": "primary", "IMG_1.AAE": "sidecar"})},
    ),
    (
        "THM of a video clip",
        [rec("MVI_1.MOV"), rec("MVI_1.THM", None)],
        {G("sidecar", **{"MVI_1.MOV": "primary", "MVI_1.THM": "sidecar"})},
    ),
    (
        "full name beats stem",
        [rec("A.CR3", 0), rec("A.JPG", 9000), rec("A.JPG.xmp", None)],
        {G("sidecar", **{"A.JPG": "primary", "A.JPG.xmp": "sidecar"})},
    ),
    (
        # Takeout cuts the ORIGINAL's JSON name past 51 characters (.jp.json); the
        # device radical (PXL_<time>) names both files of the shot, the cut name one
        "Pixel portrait: each Takeout JSON to its own file",
        [
            rec("PXL_20201119_165135173.PORTRAIT-01.COVER.jpg"),
            rec("PXL_20201119_165135173.PORTRAIT-02.ORIGINAL.jpg"),
            rec("PXL_20201119_165135173.PORTRAIT-01.COVER.jpg.s.json", None),
            rec("PXL_20201119_165135173.PORTRAIT-02.ORIGINAL.jp.json", None),
        ],
        {
            G(
                "sidecar",
                **{
                    "PXL_20201119_165135173.PORTRAIT-01.COVER.jpg": "primary",
                    "PXL_20201119_165135173.PORTRAIT-01.COVER.jpg.s.json": "sidecar",
                },
            ),
            G(
                "sidecar",
                **{
                    "PXL_20201119_165135173.PORTRAIT-02.ORIGINAL.jpg": "primary",
                    "PXL_20201119_165135173.PORTRAIT-02.ORIGINAL.jp.json": "sidecar",
                },
            ),
        },
    ),
]


@pytest.mark.parametrize(
    "files, expected", [c[1:] for c in SIDECAR_CASES], ids=[c[0] for c in SIDECAR_CASES]
)
def test_sidecars(files: list[FileRecord], expected: set) -> None:
    groups = group_folder(files)
    check_invariants(groups)
    assert shape(groups) == expected


def test_combination_raw_jpeg_edit_sidecars_is_one_group() -> None:
    # Given a RAW+JPEG shot with an iPhone-style edit of the JPEG and three sidecars
    files = [
        rec("IMG_1234.CR2"),
        rec("IMG_1234.JPG", 0.3),
        rec("IMG_E1234.JPG", 0.3),
        rec("IMG_1234.xmp", None),
        rec("IMG_1234.JPG.json", None),
        rec("IMG_E1234.JPG.xmp", None),
    ]
    # When grouped under either policy
    for policy, primary in (("rendition", "IMG_1234.JPG"), ("raw", "IMG_1234.CR2")):
        groups = group_folder(files, policy=policy)
        # Then there is one raw_jpeg group with a role for each member
        assert len(groups) == 1
        g = groups[0]
        assert g.type == "raw_jpeg"
        assert g.primary.path.endswith(primary)
        roles = {m.path.rsplit("/", 1)[1]: m.role for m in g.members}
        assert roles["IMG_E1234.JPG"] == "edit"
        assert roles["IMG_1234.xmp"] == roles["IMG_1234.JPG.json"] == "sidecar"
        assert roles["IMG_E1234.JPG.xmp"] == "sidecar"
        assert roles["IMG_1234.CR2"] == ("raw" if policy == "rendition" else "primary")


def test_raw_jpeg_live_photo_is_raw_jpeg_with_video() -> None:
    # ProRAW Live Photo: DNG + HEIC + MOV
    files = [rec("IMG_1.DNG"), rec("IMG_1.HEIC"), rec("IMG_1.MOV")]
    assert shape(group_folder(files)) == {
        G("raw_jpeg", **{"IMG_1.HEIC": "primary", "IMG_1.DNG": "raw", "IMG_1.MOV": "video"})
    }


def test_members_are_ordered_primary_then_role() -> None:
    files = [rec("A.xmp", None), rec("A.CR3"), rec("A-edited.jpg"), rec("A.JPG")]
    g = group_folder(files)[0]
    assert [m.role for m in g.members] == ["primary", "raw", "edit", "sidecar"]


def test_non_utf8_names_round_trip() -> None:
    bad = "\udcff\udcfe"  # os.fsdecode of invalid UTF-8 bytes
    files = [rec(f"{bad}.CR2"), rec(f"{bad}.jpg"), rec(f"{bad}.xmp", None)]
    (g,) = group_folder(files)
    assert g.type == "raw_jpeg"
    assert g.paths == {f.path for f in files}


# ----------------------------------------------------------------------------- overrides


def test_forced_apart_pair_is_never_regrouped() -> None:
    raw, jpg = rec("IMG_1.CR2"), rec("IMG_1.JPG")
    ov = Overrides(forced_apart=frozenset({frozenset({raw.path, jpg.path})}))
    assert group_folder([raw, jpg], overrides=ov) == []


def test_forced_apart_lets_the_next_candidate_pair() -> None:
    # Given the JPEG split from its closest RAW
    jpg, cr3, cr2 = rec("IMG_1.JPG", 0), rec("IMG_1.CR3", 0), rec("IMG_1.CR2", 1)
    ov = Overrides(forced_apart={frozenset({jpg.path, cr3.path})})
    # Then it pairs with the other RAW of the shot
    assert shape(group_folder([jpg, cr3, cr2], overrides=ov)) == {
        G("raw_jpeg", **{"IMG_1.JPG": "primary", "IMG_1.CR2": "raw"})
    }


def test_split_out_takes_one_member_out_and_keeps_the_rest() -> None:
    files = [rec("A.CR3"), rec("A.JPG"), rec("A-edited.jpg"), rec("A.xmp", None)]
    (g,) = group_folder(files)
    edit = next(m.path for m in g.members if m.role == "edit")
    groups = group_folder(files, overrides=Overrides(forced_apart=split_out(edit, g.paths)))
    assert shape(groups) == {
        G("raw_jpeg", **{"A.JPG": "primary", "A.CR3": "raw", "A.xmp": "sidecar"})
    }


def test_split_all_dissolves_a_group() -> None:
    files = [rec("A.CR3"), rec("A.JPG"), rec("A.xmp", None)]
    (g,) = group_folder(files)
    assert group_folder(files, overrides=Overrides(forced_apart=split_all(g.paths))) == []


def test_overrides_reject_non_pairs() -> None:
    with pytest.raises(ValueError):
        Overrides(forced_apart={frozenset({"/a", "/b", "/c"})})


def test_forced_together_forms_a_manual_group() -> None:
    # Given two unrelated files the user merged, one of them the JPEG of a pair
    a, b, raw = rec("sunset.jpg"), rec("IMG_9.JPG"), rec("IMG_9.CR2")
    side = rec("sunset.jpg.xmp", None)
    ov = Overrides(forced_together=({a.path, b.path},))
    groups = group_folder([a, b, raw, side], overrides=ov)
    # Then the merged files are one manual group (with the sidecar of a member),
    # and the RAW stays out of it
    assert shape(groups) == {
        G(
            "manual",
            **{"IMG_9.JPG": "primary", "sunset.jpg": "rendition", "sunset.jpg.xmp": "sidecar"},
        )
    }


def test_forced_together_with_a_chosen_primary_across_folders() -> None:
    raw = rec("DSC_1.NEF", folder="/lib/raw")
    jpg = rec("DSC_1.JPG", folder="/lib/jpg")
    ov = Overrides(
        forced_together=(ManualGroup(frozenset({raw.path, jpg.path}), primary=raw.path),)
    )
    (g,) = group_folder([jpg, raw], overrides=ov)
    assert g.type == "manual"
    assert g.primary.path == raw.path and g.members[1].role == "rendition"
    # The default primary follows the policy
    ov2 = Overrides(forced_together=({raw.path, jpg.path},))
    assert group_folder([jpg, raw], overrides=ov2)[0].primary.path == jpg.path
    assert group_folder([jpg, raw], policy="raw", overrides=ov2)[0].primary.path == raw.path


def test_a_manual_group_whose_chosen_primary_is_gone() -> None:
    a, b = rec("a.jpg"), rec("b.jpg")
    ov = Overrides(
        forced_together=(
            ManualGroup(frozenset({a.path, b.path, f"{DIR}/c.jpg"}), primary=f"{DIR}/c.jpg"),
        )
    )
    (g,) = group_folder([a, b], overrides=ov)
    assert g.type == "manual" and g.paths == {a.path, b.path} and g.primary.path == a.path


def test_a_manual_group_without_a_primary_does_not_pick_the_edit() -> None:
    orig, edit = rec("holiday.jpg"), rec("holiday-edited.jpg")
    ov = Overrides(forced_together=({orig.path, edit.path},))
    (g,) = group_folder([edit, orig], overrides=ov)
    assert g.primary.path == orig.path
    assert {m.path: m.role for m in g.members}[edit.path] == "edit"


def test_overlapping_manual_groups_merge_and_keep_their_key() -> None:
    a, b, c = rec("a.jpg"), rec("b.jpg"), rec("c.jpg")
    ov = Overrides(forced_together=({a.path, b.path}, {b.path, c.path}))
    (g,) = group_folder([a, b, c], overrides=ov)
    assert g.paths == {a.path, b.path, c.path}
    # Its key depends on the override, not on which files are present
    (g2,) = group_folder([a, b], overrides=ov)
    assert g2.key == g.key


def test_manual_group_with_one_present_member_is_no_group() -> None:
    a = rec("a.jpg")
    ov = Overrides(forced_together=({a.path, "/elsewhere/b.jpg"},))
    assert group_folder([a], overrides=ov) == []


def test_forced_together_wins_over_forced_apart() -> None:
    a, b = rec("a.jpg"), rec("b.jpg")
    ov = Overrides(forced_apart={frozenset({a.path, b.path})}, forced_together=({a.path, b.path},))
    assert [g.type for g in group_folder([a, b], overrides=ov)] == ["manual"]


# ----------------------------------------------------------------------------- identity


def test_key_is_stable_when_the_raw_arrives_later_and_across_policies() -> None:
    jpg, xmp, raw = rec("IMG_1.JPG"), rec("IMG_1.xmp", None), rec("IMG_1.CR2")
    (before,) = group_folder([jpg, xmp])
    (after,) = group_folder([jpg, xmp, raw])
    (raw_policy,) = group_folder([jpg, xmp, raw], policy="raw")
    assert before.type == "sidecar" and after.type == "raw_jpeg"
    assert before.key == after.key == raw_policy.key


def test_keys_differ_for_two_shots_with_one_name() -> None:
    files = [
        rec("IMG_1.CR2", 0),
        rec("IMG_1.JPG", 0),
        rec("IMG_1.HEIC", 7200),
        rec("IMG_1.MOV", 7200),
    ]
    groups = group_folder(files)
    assert {g.type for g in groups} == {"raw_jpeg", "live_photo"}
    assert len({g.key for g in groups}) == 2


def test_same_folder_layout_elsewhere_gets_other_keys() -> None:
    a = group_folder([rec("A.CR3", folder="/x"), rec("A.JPG", folder="/x")])
    b = group_folder([rec("A.CR3", folder="/y"), rec("A.JPG", folder="/y")])
    assert a[0].key != b[0].key


def test_duplicate_records_of_one_path_count_once() -> None:
    jpg = rec("A.JPG")
    groups = group_folder([jpg, jpg, rec("A.CR3")])
    check_invariants(groups)
    assert len(groups[0].members) == 2


def _rich_folder() -> list[FileRecord]:
    return [
        rec("IMG_1234.CR2"),
        rec("IMG_1234.JPG", 0.2),
        rec("IMG_E1234.JPG"),
        rec("IMG_1234.xmp", None),
        rec("IMG_1234.JPG.json", None),
        rec("IMG_0001.CR2", 0),
        rec("IMG_0001.JPG", 4 * 3600),
        rec("IMG_0001.xmp", None),
        rec("IMG_2.HEIC", content_id="x"),
        rec("IMG_2.MOV", content_id="x"),
        rec("IMG_2.AAE", None),
        rec("IMG_3.HEIC", content_id="y"),
        rec("IMG_3.MOV", content_id="z"),
        rec("PXL_20231006_123456789.RAW-01.COVER.jpg"),
        rec("PXL_20231006_123456789.RAW-02.ORIGINAL.dng"),
        rec("a.JPG"),
        rec("a.CR3"),
        rec("a.CR2", 1),
        rec("a.HIF", 1),
        rec("trip.jpg"),
        rec("trip-edited.jpg"),
        rec("trip (edited).jpg"),
        rec("lonely.jpg"),
        rec("orphan.xmp", None),
        rec("notes.txt", None),
    ]


RICH = _rich_folder()
RICH_OVERRIDES = Overrides(
    forced_apart={frozenset({f"{DIR}/a.JPG", f"{DIR}/a.CR3"})},
    forced_together=({f"{DIR}/lonely.jpg", f"{DIR}/IMG_3.HEIC"},),
)


@settings(max_examples=60, deadline=None)
@given(st.permutations(RICH), st.sampled_from(["rendition", "raw"]), st.booleans())
def test_order_independence(perm: list[FileRecord], policy: str, with_overrides: bool) -> None:
    ov = RICH_OVERRIDES if with_overrides else None
    expected = group_folder(RICH, policy=policy, overrides=ov)
    got = group_folder(perm, policy=policy, overrides=ov)
    assert got == expected
    check_invariants(got)
    # Idempotent: grouping the grouped files again gives the same groups.
    grouped = {p for g in got for p in g.paths}
    again = group_folder([f for f in perm if f.path in grouped], policy=policy, overrides=ov)
    assert again == got


def test_rich_folder_groups() -> None:
    groups = group_folder(RICH, overrides=RICH_OVERRIDES)
    check_invariants(groups)
    by_primary = {g.primary.path.rsplit("/", 1)[1]: g for g in groups}
    assert {k: g.type for k, g in by_primary.items()} == {
        "IMG_1234.JPG": "raw_jpeg",
        "IMG_0001.CR2": "sidecar",  # the JPEG 4 h later is another shot
        "IMG_2.HEIC": "live_photo",
        "IMG_3.HEIC": "manual",
        "PXL_20231006_123456789.RAW-01.COVER.jpg": "raw_jpeg",
        "a.HIF": "raw_jpeg",  # a.JPG was split from a.CR3; a.CR2 takes the closer HIF
        "trip.jpg": "edited",
    }
    assert len(by_primary["IMG_1234.JPG"].members) == 5
    assert len(by_primary["trip.jpg"].members) == 3


name_parts = st.sampled_from(
    [
        "IMG_1",
        "IMG_2",
        "img_1",
        "A",
        "A-edited",
        "IMG_E1234",
        "IMG_1234",
        "PXL_20231006_123456789.RAW-01.COVER",
    ]
)
exts = st.sampled_from(["CR2", "jpg", "HEIC", "MOV", "xmp", "dng", "png", "AAE", "jpg.json"])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(name_parts, exts, st.sampled_from([None, 0, 1, 3, 3600])),
        max_size=14,
        unique_by=lambda t: (t[0], t[1]),
    ),
    st.randoms(use_true_random=False),
)
def test_random_folders_are_deterministic_and_well_formed(entries, rnd) -> None:
    files = [rec(f"{n}.{e}", t) for n, e, t in entries]
    expected = group_folder(files)
    check_invariants(expected)
    shuffled = list(files)
    rnd.shuffle(shuffled)
    assert group_folder(shuffled) == expected
    for g in expected:
        assert g.type in ("raw_jpeg", "live_photo", "edited", "sidecar")
        if g.type == "raw_jpeg":
            assert any(
                m.role == "raw" or (m.is_primary and N.category(m.path) == N.RAW) for m in g.members
            )


# ----------------------------------------------------------------------------- evaluation


def test_pair_scoring_helpers() -> None:
    files = [rec("A.CR3"), rec("A.JPG"), rec("A.xmp", None), rec("B.CR3"), rec("B.JPG", 3600)]
    found = grouped_pairs(group_folder(files))
    expected = pairs_of_sets(
        [{f"{DIR}/A.CR3", f"{DIR}/A.JPG", f"{DIR}/A.xmp"}, {f"{DIR}/B.CR3", f"{DIR}/B.JPG"}]
    )
    s = score(found, expected)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (3, 0, 1)
    assert s.precision == 1.0 and s.recall == 0.75
    assert score(set(), set()).precision == 1.0


# ----------------------------------------------------------------------------- real-world names
# Each case is a naming convention seen in the wild, with its source.

_LONG = "original_1d4caa6f-16c6-4c3d-901b-9387de10e528_"  # 46 characters: Takeout's JSON cut
_WED = "Backyard_ceremony_wedding_photography_xxxxxxx_"  # 46 characters as well

CONVENTION_CASES = [
    (
        # Takeout exports a Pixel motion photo as PXL_..MP.jpg + PXL_..MP, the MP4 part
        # without an extension (immich-go filetypes/supported.go; PhotoPrism issue 2133)
        "Pixel motion photo from Takeout (.MP)",
        [
            rec("PXL_20231118_035751175.MP.jpg"),
            rec("PXL_20231118_035751175.MP", -1.0),
            rec("PXL_20231118_035751175.MP.jpg.json", None),
        ],
        {
            G(
                "live_photo",
                **{
                    "PXL_20231118_035751175.MP.jpg": "primary",
                    "PXL_20231118_035751175.MP": "video",
                    "PXL_20231118_035751175.MP.jpg.json": "sidecar",
                },
            )
        },
    ),
    (
        # ... and an edited one as .MP~2 (immich-go issue 405)
        "Pixel motion photo from Takeout (.MP~2)",
        [rec("PXL_20210102_221126856.MP~2.jpg"), rec("PXL_20210102_221126856.MP~2")],
        {
            G(
                "live_photo",
                **{
                    "PXL_20210102_221126856.MP~2.jpg": "primary",
                    "PXL_20210102_221126856.MP~2": "video",
                },
            )
        },
    ),
    (
        # darktable: duplicate nn of <basename>.<ext> is described by <basename>_nn.<ext>.xmp
        # (darktable user manual, "sidecar files")
        "darktable duplicate versions",
        [
            rec("IMG_1234.CR3"),
            rec("IMG_1234.CR3.xmp", None),
            rec("IMG_1234_01.CR3.xmp", None),
            rec("IMG_1234_02.CR3.xmp", None),
        ],
        {
            G(
                "sidecar",
                **{
                    "IMG_1234.CR3": "primary",
                    "IMG_1234.CR3.xmp": "sidecar",
                    "IMG_1234_01.CR3.xmp": "sidecar",
                    "IMG_1234_02.CR3.xmp": "sidecar",
                },
            )
        },
    ),
    (
        # Given an orphaned sidecar of a counter-named file and a file named like its
        # prefix, Then the counter is not read as a darktable version
        "counter is not a darktable version",
        [rec("IMG.CR3"), rec("IMG_1234.CR3.xmp", None)],
        set(),
    ),
    (
        # A real file of that name still owns its exact sidecar.
        "darktable-like name with its own file",
        [
            rec("IMG_1234.CR3"),
            rec("IMG_1234_01.CR3"),
            rec("IMG_1234_01.CR3.xmp", None),
        ],
        {G("sidecar", **{"IMG_1234_01.CR3": "primary", "IMG_1234_01.CR3.xmp": "sidecar"})},
    ),
    (
        # Takeout puts the uniqueness index after "-edited": IMG(1).jpg, IMG-edited(1).jpg
        # (andyjohnson0/TakeoutExtractor README; ente metadata-json tests)
        "Takeout edit of a numbered copy",
        [
            rec("IMG_20180830_123540573.jpg"),
            rec("IMG_20180830_123540573(1).jpg", 3600),
            rec("IMG_20180830_123540573-edited(1).jpg", 3600),
        ],
        {
            G(
                "edited",
                **{
                    "IMG_20180830_123540573(1).jpg": "primary",
                    "IMG_20180830_123540573-edited(1).jpg": "edit",
                },
            )
        },
    ),
    (
        # A truncated JSON without an index is not the numbered copy's (immich-go
        # matchNormal compares the "(n)" of both names)
        "truncated Takeout JSON skips the numbered copy",
        [rec(f"{_LONG}P.jpg"), rec(f"{_LONG}P(1).jpg"), rec(f"{_LONG}.json", None)],
        {G("sidecar", **{f"{_LONG}P.jpg": "primary", f"{_LONG}.json": "sidecar"})},
    ),
    (
        # ... and one with an index is that copy's (immich-go matchVeryLongNameWithNumber)
        "truncated Takeout JSON with an index",
        [
            rec(f"{_WED}m(494).jpg"),
            rec(f"{_WED}m(185).jpg"),
            rec(f"{_WED}(494).json", None),
        ],
        {G("sidecar", **{f"{_WED}m(494).jpg": "primary", f"{_WED}(494).json": "sidecar"})},
    ),
    (
        # supplemental-metadata cut to nothing leaves "name.jpg..json" (ente metadata-json tests)
        "Takeout JSON with the supplemental part cut to nothing",
        [
            rec("Screenshot_20231006-123456_WhatsApp_Photo.jpg"),
            rec("Screenshot_20231006-123456_WhatsApp_Photo.jpg..json", None),
        ],
        {
            G(
                "sidecar",
                **{
                    "Screenshot_20231006-123456_WhatsApp_Photo.jpg": "primary",
                    "Screenshot_20231006-123456_WhatsApp_Photo.jpg..json": "sidecar",
                },
            )
        },
    ),
]


@pytest.mark.parametrize(
    "files, expected", [c[1:] for c in CONVENTION_CASES], ids=[c[0] for c in CONVENTION_CASES]
)
def test_naming_conventions(files: list[FileRecord], expected: set) -> None:
    groups = group_folder(files)
    check_invariants(groups)
    assert shape(groups) == expected


@pytest.mark.parametrize(
    ("a", "b", "differ"),
    [
        ("Canon EOS R6", "EOS R6", False),  # the make in front: one camera
        ("NIKON D70", "D70", False),
        ("NIKON D70", "NIKON D70s", True),  # two bodies in the sample library
        ("Canon EOS R", "Canon EOS R5", True),
        ("iPhone 12", "iPhone 12 Pro", True),
        ("Canon EOS R6", "Canon EOS R6 Mark II", True),
        ("Canon EOS R6", None, False),  # unknown: no objection
    ],
)
def test_camera_models_that_only_start_alike_are_different_cameras(a, b, differ):
    from core.grouping.rules import cameras_differ

    def camera(model):
        return FileRecord(id=1, path="/x/a.jpg", kind="image", size=1, model=model)

    assert cameras_differ(camera(a), camera(b)) is differ


# --- broken and empty files: never a cover while a healthy member exists, empty ones alone


def test_a_zero_byte_jpeg_does_not_pair_with_its_good_raw() -> None:
    # Given a good DNG and the JPEG of the shot, which a copy left empty
    dng = rec("IMG_0001.DNG", kind="raw", format="raw")
    jpg = FileRecord(next(_ids), f"{DIR}/IMG_0001.JPG", "other", 0, error="zero-byte file")
    # When the folder is grouped, then the empty file is no rendition (and no cover)
    assert group_folder([dng, jpg]) == []


def test_zero_byte_files_are_grouped_with_nothing() -> None:
    # Given three empty files of one name: a HEIC, a JPEG and a RAW, and an empty sidecar
    # beside a good JPEG
    empty = [
        FileRecord(next(_ids), f"{DIR}/{n}", "other", 0, error="zero-byte file")
        for n in ("zero.heic", "zero.jpg", "zero.CR2", "good.xmp")
    ]
    good = rec("good.jpg", kind="image", format="jpeg")
    # When the folder is grouped, then there is no group
    assert group_folder([*empty, good]) == []


def test_a_broken_rendition_is_not_the_primary_of_its_raw_pair() -> None:
    # Given a good RAW and its JPEG, truncated (the catalog recorded an error)
    raw = rec("IMG_2.CR3", kind="raw", format="raw")
    jpg = rec("IMG_2.JPG", kind="image", format="jpeg", error="truncated JPEG: image file is")
    # When the folder is grouped (policy "rendition": the JPEG would be the cover)
    groups = group_folder([raw, jpg])
    # Then they are still one shot, and the RAW is its primary
    assert shape(groups) == {G("raw_jpeg", **{"IMG_2.CR3": "primary", "IMG_2.JPG": "rendition"})}
    check_invariants(groups)


def test_a_healthy_rendition_is_chosen_over_a_broken_one() -> None:
    # Given a RAW with a JPEG that is broken and a HIF that is fine
    files = [
        rec("IMG_3.CR3", kind="raw", format="raw"),
        rec("IMG_3.JPG", kind="image", format="jpeg", error="corrupt JPEG"),
        rec("IMG_3.HIF", kind="image", format="heic"),
    ]
    # When the folder is grouped, then the HIF is the cover
    assert shape(group_folder(files)) == {
        G("raw_jpeg", **{"IMG_3.HIF": "primary", "IMG_3.CR3": "raw", "IMG_3.JPG": "rendition"})
    }


@pytest.mark.parametrize(
    "names, broken, primary",
    [
        # a Live Photo whose still is broken: its video is what can be shown
        (("IMG_4.HEIC", "IMG_4.MOV"), "IMG_4.HEIC", "IMG_4.MOV"),
        # an edit whose original is broken
        (("IMG_0005.JPG", "IMG_E0005.JPG"), "IMG_0005.JPG", "IMG_E0005.JPG"),
        # policy "raw" with a broken RAW: its JPEG
        (("IMG_6.CR2", "IMG_6.JPG"), "IMG_6.CR2", "IMG_6.JPG"),
    ],
)
def test_a_broken_natural_primary_gives_way_to_a_healthy_member(names, broken, primary) -> None:
    # Given a group whose natural primary the catalog marked with an error
    files = [rec(n, error="corrupt" if n == broken else None) for n in names]
    # When the folder is grouped
    (group,) = group_folder(files, policy="raw")
    # Then a healthy member is the primary
    assert group.primary.path == f"{DIR}/{primary}"
    check_invariants([group])


def test_a_broken_file_with_only_a_sidecar_stays_primary() -> None:
    # Given a broken JPEG and its XMP: nothing else could be the cover
    files = [rec("IMG_8.JPG", error="truncated JPEG"), rec("IMG_8.xmp")]
    # When grouped, then the JPEG is still the primary (a sidecar is never a cover)
    assert shape(group_folder(files)) == {
        G("sidecar", **{"IMG_8.JPG": "primary", "IMG_8.xmp": "sidecar"})
    }


def test_a_manual_group_avoids_a_broken_primary_unless_the_user_named_it() -> None:
    # Given two files the user merged, the one the policy prefers broken
    jpg = rec("a.jpg", error="truncated JPEG")
    raw = rec("b.cr2")
    together = Overrides(forced_together=(ManualGroup(frozenset({jpg.path, raw.path})),))
    # When grouped without a named primary, then the healthy file is the primary
    (group,) = group_folder([jpg, raw], overrides=together)
    assert group.primary.path == raw.path
    # And when the user named the broken file as the primary, it stays
    named = Overrides(forced_together=(ManualGroup(frozenset({jpg.path, raw.path}), jpg.path),))
    (group,) = group_folder([jpg, raw], overrides=named)
    assert group.primary.path == jpg.path


def test_a_rendition_whose_last_read_failed_stays_the_primary_of_its_raw_pair() -> None:
    # Given a RAW and its JPEG, whose read on this rescan failed (an I/O error on the
    # share: the catalog kept what its last good read found, and counted the failure)
    raw = rec("IMG_9.CR3", kind="raw", format="raw")
    jpg = rec("IMG_9.JPG", kind="image", format="jpeg", error="Input/output error", read_failures=1)
    # When the folder is grouped, then the JPEG is still the cover: it is not broken
    assert shape(group_folder([raw, jpg])) == {
        G("raw_jpeg", **{"IMG_9.JPG": "primary", "IMG_9.CR3": "raw"})
    }


# --- RAW folders: a RAW kept in a subfolder pairs with the JPEG beside it ----------------


def _groups_by_path(groups: list[GroupResult]) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    return {(g.type, frozenset((m.path, m.role) for m in g.members)) for g in groups}


@pytest.mark.parametrize(
    "raw_folder, jpeg_folder",
    [
        (f"{DIR}/RAW", DIR),  # trip/RAW/IMG_1.CR3 + trip/IMG_1.JPG
        (f"{DIR}/raw", f"{DIR}/JPG"),  # trip/raw/ + trip/JPG/
        (f"{DIR}/Raw Files", f"{DIR}/jpeg"),
    ],
)
def test_a_raw_in_a_raw_folder_pairs_with_its_jpeg_beside_it(raw_folder, jpeg_folder):
    # Given a shot's RAW (with its XMP) in a RAW folder and its JPEG beside that folder
    files = [
        rec("IMG_1.CR3", 0, folder=raw_folder),
        rec("IMG_1.CR3.xmp", None, folder=raw_folder),
        rec("IMG_1.JPG", 0.4, folder=jpeg_folder),
        # and another shot whose JPEG only is there
        rec("IMG_2.JPG", 9, folder=jpeg_folder),
    ]
    # When the folders are grouped together
    groups = group_folder(files)
    check_invariants(groups)
    # Then the RAW, its sidecar and the JPEG are one raw_jpeg group, the JPEG primary
    assert _groups_by_path(groups) == {
        (
            "raw_jpeg",
            frozenset(
                {
                    (f"{jpeg_folder}/IMG_1.JPG", "primary"),
                    (f"{raw_folder}/IMG_1.CR3", "raw"),
                    (f"{raw_folder}/IMG_1.CR3.xmp", "sidecar"),
                }
            ),
        )
    }


@pytest.mark.parametrize(
    "files",
    [
        # the same name, another shot (the counter rolled over): times apart
        [rec("IMG_1.CR3", 0, folder=f"{DIR}/RAW"), rec("IMG_1.JPG", 3600)],
        # a capture time unknown: across folders, not enough
        [rec("IMG_1.CR3", None, folder=f"{DIR}/RAW"), rec("IMG_1.JPG", 0)],
        # two cameras
        [
            rec("IMG_1.CR3", 0, folder=f"{DIR}/RAW", model="EOS R5"),
            rec("IMG_1.JPG", 0, model="X-T4"),
        ],
        # a folder not named as a RAW folder: folders stay apart
        [rec("IMG_1.CR3", 0, folder=f"{DIR}/selects"), rec("IMG_1.JPG", 0)],
        # a RAW folder's RAW does not reach a cousin folder
        [rec("IMG_1.CR3", 0, folder=f"{DIR}/a/RAW"), rec("IMG_1.JPG", 0, folder=f"{DIR}/b")],
    ],
)
def test_raw_folders_pair_nothing_that_is_not_the_same_shot(files):
    assert group_folder(files) == []


def test_a_pair_within_a_folder_is_not_undone_by_a_raw_folder():
    # Given a RAW+JPEG pair in the folder, and the same shot's RAW again in RAW/ (a copy)
    files = [
        rec("IMG_1.CR3", 0),
        rec("IMG_1.JPG", 0),
        rec("IMG_1.CR3", 0, folder=f"{DIR}/RAW"),
    ]
    groups = group_folder(files)
    # Then the pair in the folder stands, and the copy in RAW/ joins nothing
    assert _groups_by_path(groups) == {
        (
            "raw_jpeg",
            frozenset({(f"{DIR}/IMG_1.JPG", "primary"), (f"{DIR}/IMG_1.CR3", "raw")}),
        )
    }


def test_companion_folders_name_the_folders_a_raw_may_pair_across():
    from core.grouping.rules import companion_folders

    trip = "/lib/trip"
    assert f"{trip}/RAW" in companion_folders(trip)
    assert {trip, f"{trip}/JPG", f"{trip}/jpeg"} <= set(companion_folders(f"{trip}/Raw"))
    assert f"{trip}/RAW" in companion_folders(f"{trip}/JPG")
    assert trip not in companion_folders(f"{trip}/selects")


@pytest.mark.parametrize(
    "raw_name, jpeg_name, pairs",
    [
        ("RAWs", "JPGs", True),
        ("RAW Files", "JPEG Files", True),
        ("raw_files", "jpg", True),
        # a spelling the service cannot find by name is no RAW folder for the rules either
        # (else the pair would form or not by the folders one batch held)
        ("rAw", "JPG", False),
        ("RAW", "jPg", False),
    ],
)
def test_raw_folder_names_are_exactly_those_the_service_finds(raw_name, jpeg_name, pairs):
    from core.grouping.rules import companion_folders

    raw_folder, jpeg_folder = f"{DIR}/{raw_name}", f"{DIR}/{jpeg_name}"
    files = [rec("IMG_1.CR3", 0, folder=raw_folder), rec("IMG_1.JPG", 0, folder=jpeg_folder)]
    assert bool(group_folder(files)) is pairs
    # ... and the folders the service brings together are the ones that pair
    assert (jpeg_folder in companion_folders(raw_folder)) is pairs
    assert (raw_folder in companion_folders(jpeg_folder)) is pairs


def test_an_edit_saved_beside_the_raw_does_not_keep_it_from_its_jpeg():
    # Given a RAW and an edit of it in RAW/, and the camera's JPEG beside RAW/; and a DNG
    # made from another shot's JPEG, saved beside that JPEG
    files = [
        rec("IMG_1.CR3", 0, folder=f"{DIR}/RAW"),
        rec("IMG_1-Edit.JPG", 0, folder=f"{DIR}/RAW"),
        rec("IMG_1.JPG", 0.2),
        rec("IMG_2.CR3", 5, folder=f"{DIR}/RAW"),
        rec("IMG_2.JPG", 5),
        rec("IMG_2-Enhanced-NR.dng", 5),
    ]
    groups = _groups_by_path(group_folder(files))
    # Then each shot is one raw_jpeg group, as the same files in one folder would be
    assert groups == {
        (
            "raw_jpeg",
            frozenset(
                {
                    (f"{DIR}/IMG_1.JPG", "primary"),
                    (f"{DIR}/RAW/IMG_1.CR3", "raw"),
                    (f"{DIR}/RAW/IMG_1-Edit.JPG", "edit"),
                }
            ),
        ),
        (
            "raw_jpeg",
            frozenset(
                {
                    (f"{DIR}/IMG_2.JPG", "primary"),
                    (f"{DIR}/RAW/IMG_2.CR3", "raw"),
                    (f"{DIR}/IMG_2-Enhanced-NR.dng", "edit"),
                }
            ),
        ),
    }


# --- which stored group a new group continues (service.carry_ids) ---------------------


@pytest.mark.parametrize(
    ("fresh", "stored", "carried"),
    [
        # the same files under a new key (moved folder): the same group
        ([{1, 2}], {"a": {1, 2}}, {0: "a"}),
        # a member gained (a RAW arriving in RAW/) or lost (the RAW deleted)
        ([{1, 2, 3}], {"a": {1, 2}}, {0: "a"}),
        ([{1, 2}], {"a": {1, 2, 3}}, {0: "a"}),
        # a JPEG that left its RAW for another (moved beside it): a new pair
        ([{2, 9}], {"a": {1, 2}}, {}),
        # split in two, two merged into one: new groups
        ([{1, 2}, {3, 4}], {"a": {1, 2, 3, 4}}, {}),
        ([{1, 2, 3, 4}], {"a": {1, 2}, "b": {3, 4}}, {}),
        # one continues, the other is new; a same-files match wins over a subset
        ([{1, 2, 3}, {7, 8}], {"a": {1, 2}}, {0: "a"}),
        ([{1, 2}, {1, 2, 3}], {"a": {1, 2}}, {0: "a"}),
        # nothing stored, nothing shared
        ([{1, 2}], {}, {}),
        ([{1, 2}], {"a": {5, 6}}, {}),
    ],
)
def test_a_new_group_continues_the_stored_group_it_grew_or_shrank_from(fresh, stored, carried):
    from core.grouping.service import carry_ids

    got = carry_ids([frozenset(f) for f in fresh], {k: frozenset(v) for k, v in stored.items()})
    assert got == carried


@pytest.mark.parametrize("copy_path", [f"{DIR}/IMG_1.JPG", f"{DIR}/jpeg/IMG_1.JPG"])
def test_a_split_pair_does_not_pair_again_with_a_byte_copy_of_the_split_file(copy_path):
    # Given a RAW in RAW/ paired with its JPEG in JPG/, and a byte copy of that JPEG
    # (same content) where the RAW could pair with it too
    raw = rec("IMG_1.CR3", 0, folder=f"{DIR}/RAW")
    jpg = rec("IMG_1.JPG", 0.2, folder=f"{DIR}/JPG", sha256="aa" * 32)
    folder, name = copy_path.rsplit("/", 1)
    copy = rec(name, 0.2, folder=folder, sha256="aa" * 32)
    files = [raw, jpg, copy]
    assert any({raw.path, copy.path} <= g.paths for g in group_folder([raw, copy]))
    # When the user splits the RAW from its JPEG
    ov = Overrides(forced_apart={frozenset({raw.path, jpg.path})})
    # Then the RAW pairs with no copy of that JPEG: the split was of the picture
    assert not any(raw.path in g.paths for g in group_folder(files, overrides=ov))


def test_a_split_pair_may_pair_with_another_file_of_the_same_name():
    # Given the same RAW and JPEG, and a JPEG of that name with other content (an edit
    # exported under the camera's name): not the picture the user split off
    raw = rec("IMG_1.CR3", 0, folder=f"{DIR}/RAW")
    jpg = rec("IMG_1.JPG", 0.2, folder=f"{DIR}/JPG", sha256="aa" * 32)
    other = rec("IMG_1.JPG", 0.2, sha256="bb" * 32)
    ov = Overrides(forced_apart={frozenset({raw.path, jpg.path})})
    # Then it is the next best candidate, as before
    (g,) = group_folder([raw, jpg, other], overrides=ov)
    assert g.paths == {raw.path, other.path}
