from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from core.dedup import choose_keeper, format_of
from core.dedup.keeper import METADATA, file_group_rank
from core.records import FileRecord

T1 = datetime(2020, 1, 1, 12, 0, 0)
T2 = datetime(2021, 1, 1, 12, 0, 0)


def rec(
    i,
    path,
    *,
    w=100,
    h=100,
    size=1000,
    fmt="jpeg",
    kind="image",
    taken=T1,
    error=None,
    read_failures=0,
):
    return FileRecord(
        id=i,
        path=path,
        kind=kind,
        size=size,
        format=fmt,
        width=w,
        height=h,
        taken_at=taken,
        error=error,
        read_failures=read_failures,
    )


CUT_SHORT = "truncated RAW: image data ends at 40% of the file"


CASES = [
    # (members, preferred folders, expected keeper id, expected rule)
    ([rec(1, "/a", w=50, size=9000), rec(2, "/b", w=100)], (), 2, "resolution"),
    ([rec(1, "/a", size=10), rec(2, "/b", size=20)], (), 2, "size"),
    ([rec(1, "/a.jpg"), rec(2, "/b.heic", fmt="heic")], (), 2, "format"),
    ([rec(1, "/a.png", fmt="png"), rec(2, "/b.jpg")], (), 2, "format"),
    ([rec(1, "/a", fmt="png"), rec(2, "/b.dng", fmt="tiff", kind="raw")], (), 2, "format"),
    ([rec(1, "/a", taken=T2), rec(2, "/b", taken=T1)], (), 2, "capture_time"),
    ([rec(1, "/a", taken=None), rec(2, "/b", taken=T2)], (), 2, "capture_time"),
    ([rec(1, "/x/a"), rec(2, "/keep/b")], ("/keep",), 2, "folder"),
    # the first listed preferred folder wins over a later one
    ([rec(1, "/p2/a"), rec(2, "/p1/b")], ("/p1", "/p2"), 2, "folder"),
    # a sibling with the folder name as prefix is not inside it
    ([rec(1, "/keep2/a"), rec(2, "/keep/b")], (Path("/keep"),), 2, "folder"),
    ([rec(2, "/b"), rec(1, "/a")], (), 1, "tie: path"),
    # earlier rules beat later ones: the full-size copy wins over a downsized one in the
    # preferred folder (trashing the only full-size copy is the mistake to avoid)
    ([rec(1, "/keep/a.jpg", w=50), rec(2, "/b.png", fmt="png")], ("/keep",), 2, "resolution"),
    # the preferred folder decides before the format, and a copy with its capture time
    # before the preferred folder (an EXIF-stripped copy there is not the original)
    ([rec(1, "/keep/a.png", fmt="png"), rec(2, "/b.jpg")], ("/keep",), 1, "folder"),
    ([rec(1, "/keep/a.jpg", taken=None), rec(2, "/b.jpg")], ("/keep",), 2, "capture_time"),
    # the user's preferred folder decides before bytes do
    ([rec(1, "/keep/a.jpg", size=10), rec(2, "/b.jpg", size=20)], ("/keep",), 1, "folder"),
    # a bigger file is not a better picture in another format: a PNG conversion of the
    # camera's JPEG that lost its EXIF, or kept it; a HEIC original and its JPEG export
    (
        [rec(1, "/a.jpg", size=4), rec(2, "/b.png", fmt="png", size=20, taken=None)],
        (),
        1,
        "capture_time",
    ),
    ([rec(1, "/a.jpg", size=4), rec(2, "/b.png", fmt="png", size=20)], (), 1, "format"),
    ([rec(1, "/a.jpg", size=9), rec(2, "/b.heic", fmt="heic", size=5)], (), 2, "format"),
    # an EXIF-stripped re-encode at a higher quality is bigger, not better
    ([rec(1, "/a.jpg", size=5, taken=None), rec(2, "/b.jpg", size=3)], (), 2, "capture_time"),
    ([rec(7, "/only")], (), 7, "only"),
    # byte copies tie on every picture rule: the original's name wins over a copy's,
    # though a space, "(" and "-" sort before "." and "/" (the smallest path would not)
    ([rec(1, "/p/IMG_1 copy.JPG"), rec(2, "/p/IMG_1.JPG")], (), 2, "name"),
    ([rec(1, "/p/IMG_1 - Copy (2).JPG"), rec(2, "/p/IMG_1.JPG")], (), 2, "name"),
    ([rec(1, "/p/IMG_1 (1).JPG"), rec(2, "/p/IMG_1.JPG")], (), 2, "name"),
    ([rec(1, "/p/Copy of IMG_1.JPG"), rec(2, "/p/IMG_1.JPG")], (), 2, "name"),
    ([rec(1, "/2019 - Copy/IMG_1.JPG"), rec(2, "/2019/IMG_1.JPG")], (), 2, "name"),
    # a folder of copies, which the smallest path would have kept ("B", "T" < "i")
    (
        [rec(1, "/lib/Takeout/Google Photos/IMG_1.JPG"), rec(2, "/lib/iPhone/IMG_1.JPG")],
        (),
        2,
        "name",
    ),
    (
        [
            rec(1, "/lib/takeout-20240101T000000Z-001/Takeout/IMG_1.JPG"),
            rec(2, "/lib/iPhone/IMG_1.JPG"),
        ],
        (),
        2,
        "name",
    ),
    ([rec(1, "/lib/Backup/2019/IMG_1.JPG"), rec(2, "/lib/iphone/2019/IMG_1.JPG")], (), 2, "name"),
    ([rec(1, "/lib/Backups_old/IMG_1.JPG"), rec(2, "/lib/iphone/IMG_1.JPG")], (), 2, "name"),
    # ... but not a name that only starts like one, nor a file named so
    ([rec(1, "/lib/Backyard/IMG_1.JPG"), rec(2, "/lib/iphone/IMG_1.JPG")], (), 1, "tie: path"),
    ([rec(1, "/lib/a/backup.jpg"), rec(2, "/lib/b/backup.jpg")], (), 1, "tie: path"),
    # ... and a library kept wholly under one marks both copies alike
    (
        [rec(1, "/Backup/Photos/A/IMG_1.JPG"), rec(2, "/Backup/Photos/B/IMG_1.JPG")],
        (),
        1,
        "tie: path",
    ),
    # names that only look alike are no copies: the path decides between them
    ([rec(1, "/p/Photocopy.jpg"), rec(2, "/p/Q.jpg")], (), 1, "tie: path"),
    ([rec(1, "/p/IMG_1_01.jpg"), rec(2, "/p/IMG_2.jpg")], (), 1, "tie: path"),
    # a year in brackets names a folder, it marks no copy: the sorted
    # "Italy (2019)" copy is not the one to trash (path decides: "I" < "u")
    (
        [rec(1, "/lib/Italy (2019)/IMG_5.jpg"), rec(2, "/lib/unsorted/IMG_5.jpg")],
        (),
        1,
        "tie: path",
    ),
    # ... while a download saved again, numbered, still is one
    ([rec(1, "/lib/Photos (12)/IMG_5.jpg"), rec(2, "/lib/Photos/IMG_5.jpg")], (), 2, "name"),
    # a preferred folder still decides first
    ([rec(1, "/keep/IMG_1 copy.JPG"), rec(2, "/p/IMG_1.JPG")], ("/keep",), 1, "folder"),
]


@pytest.mark.parametrize("members, folders, keeper, rule", CASES)
def test_keeper_rule_order(members, folders, keeper, rule):
    assert choose_keeper(members, preferred_folders=folders) == (keeper, rule)


def test_format_preference_is_configurable():
    members = [rec(1, "/a.jpg"), rec(2, "/b.png", fmt="png")]
    assert choose_keeper(members, format_preference=("png", "jpeg")) == (2, "format")
    assert choose_keeper(members, format_preference=("jpg", "png")) == (1, "format")


def test_unknown_format_ranks_last():
    members = [rec(1, "/a.xyz", fmt="xyz"), rec(2, "/b.webp", fmt="webp")]
    assert choose_keeper(members) == (2, "format")


@pytest.mark.parametrize(
    "record, expected",
    [
        (rec(1, "/a.JPG", fmt=None), "jpeg"),
        (rec(1, "/a.hif", fmt=None), "heic"),
        (rec(1, "/a.NEF", fmt=None), "raw"),
        (rec(1, "/a.x", fmt="HEIF"), "heic"),
        (rec(1, "/a.dng", fmt="tiff", kind="raw"), "raw"),
    ],
)
def test_format_of(record, expected):
    assert format_of(record) == expected


# --- a copy the catalog could not read whole is never the keeper while an intact one exists


@pytest.mark.parametrize(
    "members, folders",
    [
        # the broken copy sits in the preferred folder
        ([rec(1, "/keep/a.dng", kind="raw", error=CUT_SHORT), rec(2, "/b.jpg")], ("/keep",)),
        # ... has more pixels, its capture time, a bigger size, a better format
        (
            [
                rec(1, "/a.dng", w=6000, h=4000, size=9, kind="raw", error=CUT_SHORT),
                rec(2, "/b.jpg", w=1600, h=1200, size=1, taken=None),
            ],
            (),
        ),
        # ... and its intact twin is named as a copy
        ([rec(1, "/p/IMG_1.JPG", error="truncated JPEG"), rec(2, "/p/IMG_1 copy.JPG")], ()),
    ],
)
def test_a_broken_copy_is_never_the_keeper(members, folders):
    # Given a group with one copy the catalog marked with an error and one intact copy
    # When the keeper is chosen
    keeper = choose_keeper(members, preferred_folders=folders)
    # Then the intact copy is kept, and the reason says it is the intact one
    assert keeper == (2, "intact")


def test_among_intact_copies_the_usual_rules_decide():
    # Given a broken copy and two intact ones, one of them in the preferred folder
    members = [
        rec(1, "/keep/a.jpg", error="truncated JPEG"),
        rec(2, "/keep/b.jpg"),
        rec(3, "/c.jpg", w=200),
    ]
    # When the keeper is chosen, then it is the intact one the next rule prefers
    assert choose_keeper(members, preferred_folders=("/keep",)) == (3, "resolution")


def test_when_every_copy_is_broken_the_usual_rules_decide():
    # Given two copies, both with an error
    members = [rec(1, "/a.jpg", error="truncated JPEG"), rec(2, "/keep/b.jpg", error="corrupt")]
    # When the keeper is chosen, then "intact" decides nothing: the preferred folder does
    assert choose_keeper(members, preferred_folders=("/keep",)) == (2, "folder")


EIO = "Input/output error"


def test_a_copy_whose_last_read_failed_is_judged_on_what_its_last_good_read_found():
    # Given the library's full-size JPEG, whose read on this rescan failed (an I/O error:
    # the catalog kept its facts, set the error and counted the failure), and a small web
    # copy of it read without trouble
    library = rec(1, "/lib/Pictures/IMG_9000.JPG", w=2400, h=1800, error=EIO, read_failures=1)
    web = rec(2, "/lib/Web/IMG_9000.JPG", w=600, h=450, size=90)
    # When the keeper is chosen
    keeper = choose_keeper([web, library])
    # Then the full-size copy is still kept, for its pixels, not the small one as "intact"
    assert keeper == (1, "resolution")


@pytest.mark.parametrize(
    "error, read_failures, broken",
    [
        (None, 0, False),
        ("truncated JPEG: image file is truncated", 0, True),  # the content is at fault
        (EIO, 1, False),  # the disk, the share or a permission is
        ("Permission denied", 3, False),
        ("skipped: the reader crashed on it twice", 1, False),
    ],
)
def test_broken_means_read_and_found_at_fault(error, read_failures, broken):
    assert rec(1, "/a.jpg", error=error, read_failures=read_failures).broken is broken


def test_an_empty_file_is_broken_whatever_its_reads_did():
    assert rec(1, "/a.jpg", size=0, error=EIO, read_failures=2).broken


def test_a_truncated_copy_still_loses_to_one_whose_read_failed():
    # Given a copy read and found truncated, and one whose last read failed
    cut = rec(1, "/keep/a.jpg", error="truncated JPEG")
    unread = rec(2, "/b.jpg", error=EIO, read_failures=1)
    # When the keeper is chosen, then the truncated one is not kept, even when preferred
    assert choose_keeper([cut, unread], preferred_folders=("/keep",)) == (2, "intact")


def test_a_broken_look_alike_joins_its_intact_twins_group_and_is_not_kept():
    from core.dedup import find_duplicates

    # Given an intact JPEG and a RAW cut short whose preview still gave the same pHash,
    # the RAW in the preferred folder
    ph = "c3a5f00f96e1c3a5"
    intact = FileRecord(1, "/lib/2024/IMG_1.JPG", "image", 2000, format="jpeg", phash=ph)
    broken = FileRecord(
        2, "/lib/keep/IMG_1.DNG", "raw", 9000, format="raw", phash=ph, error=CUT_SHORT
    )
    # When duplicates are found
    groups = find_duplicates([intact, broken], preferred_folders=("/lib/keep",))
    # Then both form one look-alike group whose keeper is the intact copy
    assert [(g.type, sorted(m.file_id for m in g.members)) for g in groups] == [
        ("perceptual", [1, 2])
    ]
    assert (groups[0].keeper_id, groups[0].keeper_rule) == (1, "intact")


# --- a copy that belongs to a file group is kept over its loose byte copies and look-alikes

SHOOT = "/lib/Pictures/2018-01-01 Shoot"
BACKUP = "/lib/Backup/2018-01-01 Shoot"
RAW_JPEG_XMP = ("image", "raw", "sidecar")  # kinds of a RAW+JPEG pair with its XMP


def test_a_byte_copy_in_a_raw_jpeg_pair_is_kept_over_its_backup_copy():
    # Given the JPEG of a RAW+JPEG+XMP shoot and its byte copy in a backup folder whose
    # path sorts first
    members = [rec(1, f"{BACKUP}/IMG_0001.JPG"), rec(2, f"{SHOOT}/IMG_0001.JPG")]
    # When the keeper is chosen knowing which copy belongs to a file group
    keeper = choose_keeper(members, file_groups={2: RAW_JPEG_XMP})
    # Then the shoot's JPEG is kept, and the reason says so
    assert keeper == (2, "file_group")


def test_the_copy_in_the_bigger_group_is_kept_when_both_are_grouped():
    # Given the backup holds the RAW+JPEG pair too, without the XMP
    members = [rec(1, f"{BACKUP}/IMG_0001.CRW", kind="raw", fmt="raw")]
    members.append(rec(2, f"{SHOOT}/IMG_0001.CRW", kind="raw", fmt="raw"))
    groups = {1: ("image", "raw"), 2: RAW_JPEG_XMP}
    # When the keeper is chosen, then the copy its sidecar belongs with is kept
    assert choose_keeper(members, file_groups=groups) == (2, "file_group")


def test_a_live_photo_still_is_kept_over_its_takeout_copy():
    # Given an iPhone Live Photo's still (HEIC + MOV + AAE) and its byte copy in a Google
    # Takeout export, which Takeout's JSON makes a sidecar group of its own
    live = rec(1, "/lib/iPhone/2023/IMG_1234.HEIC", fmt="heic")
    takeout = rec(2, "/lib/Takeout/Google Photos/Photos from 2023/IMG_1234.HEIC", fmt="heic")
    groups = {1: ("image", "sidecar", "video"), 2: ("image", METADATA)}
    # When the keeper is chosen, then the Live Photo's still is kept ("T" < "i" no more)
    assert choose_keeper([takeout, live], file_groups=groups) == (1, "file_group")
    # and so it is when the Takeout copy stands alone
    assert choose_keeper([takeout, live], file_groups={1: groups[1]}) == (1, "file_group")


def test_a_group_holding_a_raw_video_or_sidecar_beats_a_group_of_pictures_only():
    # Given a copy in an "edited" group (the photo and its edit: pictures only) and a byte
    # copy that is the JPEG of a RAW+JPEG pair
    members = [rec(1, "/a/IMG_1.JPG"), rec(2, "/b/IMG_1.JPG")]
    groups = {1: ("image", "image", "image"), 2: ("image", "raw")}
    # When the keeper is chosen, then the pair's JPEG is kept, though its group is smaller
    assert choose_keeper(members, file_groups=groups) == (2, "file_group")
    # and any group beats none
    assert choose_keeper(members, file_groups={2: ("image", "image")}) == (2, "file_group")


@pytest.mark.parametrize(
    "members, folders, keeper, rule",
    [
        # the only full-size copy is never trashed for a group's sake
        ([rec(1, "/a/x.jpg", w=200), rec(2, "/b/x.jpg")], (), 1, "resolution"),
        # nor is the copy that kept its capture time
        ([rec(1, "/a/x.jpg"), rec(2, "/b/x.jpg", taken=None)], (), 1, "capture_time"),
        # a preferred folder decides first: the user's word on the whole library
        ([rec(1, "/keep/x.jpg"), rec(2, "/b/x.jpg")], ("/keep",), 1, "folder"),
        # a better format and a bigger file come after it too
        ([rec(1, "/a/x.heic", fmt="heic"), rec(2, "/b/x.jpg")], (), 2, "file_group"),
        ([rec(1, "/a/x.jpg", size=9000), rec(2, "/b/x.jpg")], (), 2, "file_group"),
    ],
)
def test_the_file_group_rule_ranks_after_the_picture_and_the_folder_before_the_tie_breaks(
    members, folders, keeper, rule
):
    # Given copy 2 belongs to a RAW+JPEG pair and copy 1 to no group
    # When the keeper is chosen, then the rules before "file_group" still decide first
    assert choose_keeper(members, preferred_folders=folders, file_groups={2: RAW_JPEG_XMP}) == (
        keeper,
        rule,
    )


TAKEOUT = "/lib/Takeout/Google Photos/Photos from 2019"


def test_a_takeout_photo_with_its_json_is_no_group_over_a_loose_library_copy():
    # Given a library JPEG in no file group, and its byte copy in a Google Takeout export,
    # which Takeout's IMG_5000.JPG.json makes a sidecar group of its own
    library = rec(1, "/lib/Pictures/2019/IMG_5000.JPG")
    takeout = rec(2, f"{TAKEOUT}/IMG_5000.JPG")
    groups = {2: ("image", METADATA)}
    # When the keeper is chosen, then the JSON binds nothing: "file_group" decides nothing,
    # and the copy in the Takeout export is the copy
    assert choose_keeper([takeout, library], file_groups=groups) == (1, "name")
    # and the user's preferred folder is heard
    assert choose_keeper(
        [takeout, library], preferred_folders=("/lib/Pictures",), file_groups=groups
    ) == (1, "folder")


def test_a_preferred_folder_decides_before_a_file_group_elsewhere():
    # Given the Takeout copy has a group that binds (its Live Photo video came along) and
    # the library's copy is loose, in the folder the user prefers
    library = rec(1, "/lib/Pictures/2019/IMG_5000.JPG")
    takeout = rec(2, f"{TAKEOUT}/IMG_5000.JPG")
    groups = {2: ("image", METADATA, "video")}
    # When the keeper is chosen, then the preferred folder decides
    keeper = choose_keeper(
        [takeout, library], preferred_folders=("/lib/Pictures",), file_groups=groups
    )
    assert keeper == (1, "folder")


def test_a_takeout_live_photo_with_its_json_ranks_no_higher_than_the_librarys():
    # Given the library's Live Photo (HEIC + MOV) and a Takeout copy of it (still, MOV and
    # the still's JSON: three members), the Takeout path sorting after the library's
    library = rec(1, "/lib/Apple/2019/IMG_5001.HEIC", fmt="heic")
    takeout = rec(2, f"{TAKEOUT}/IMG_5001.HEIC", fmt="heic")
    groups = {1: ("image", "video"), 2: ("image", METADATA, "video")}
    # When the keeper is chosen, then the JSON adds nothing: the groups tie
    assert file_group_rank(groups[1]) == file_group_rank(groups[2])
    assert choose_keeper([takeout, library], file_groups=groups) == (1, "name")


@pytest.mark.parametrize(
    "kinds, rank",
    [
        (None, (2, 0)),
        ((), (2, 0)),
        (("image", METADATA), (2, 0)),  # a photo and its Takeout JSON: loose
        (("image", "image"), (1, -2)),  # an edit
        (("image", "image", METADATA), (1, -2)),
        (("image", "sidecar"), (0, -2)),  # an XMP or AAE binds
        (("image", "raw", "sidecar"), (0, -3)),
        (("image", METADATA, "video"), (0, -2)),
    ],
)
def test_file_group_rank_counts_no_json_metadata(kinds, rank):
    assert file_group_rank(kinds) == rank


def test_a_broken_grouped_copy_is_not_kept_over_an_intact_loose_one():
    # Given the grouped copy is the one the catalog could not read whole
    members = [rec(1, "/a/x.jpg"), rec(2, "/b/x.jpg", error="truncated JPEG")]
    # When the keeper is chosen, then the intact copy is kept
    assert choose_keeper(members, file_groups={2: RAW_JPEG_XMP}) == (1, "intact")


def test_the_stack_cover_is_kept_over_a_bigger_loose_look_alike():
    from core.dedup import find_duplicates

    # Given the JPEG of a RAW+JPEG pair (the stack's cover in Immich) and a loose
    # re-encode of it elsewhere, bigger, in a folder that sorts first
    ph = "c3a5f00f96e1c3a5"
    cover = FileRecord(1, "/lib/shoot/IMG_1.JPG", "image", 2000, format="jpeg", phash=ph)
    loose = FileRecord(2, "/lib/Exports/IMG_1.jpg", "image", 3000, format="jpeg", phash=ph)
    # When duplicates are found knowing the cover's file group
    groups = find_duplicates([cover, loose], file_groups={1: ("image", "raw")})
    # Then the look-alike group keeps the cover, and says why
    assert [(g.type, g.keeper_id, g.keeper_rule) for g in groups] == [
        ("perceptual", 1, "file_group")
    ]


def test_a_hard_link_kept_for_its_names_belongs_to_the_group_of_any_of_them():
    from core.dedup import find_duplicates

    # Given a JPEG in a RAW+JPEG pair, hard-linked into an album folder whose name sorts
    # first (so the album's name stands for the file), and a byte copy in a backup
    sha = "ab" * 32
    common = {"kind": "image", "size": 2000, "format": "jpeg", "sha256": sha}
    album = FileRecord(1, "/lib/Album/IMG_1.JPG", device=1, inode=7, **common)  # type: ignore[arg-type]
    paired = FileRecord(2, "/lib/shoot/IMG_1.JPG", device=1, inode=7, **common)  # type: ignore[arg-type]
    backup = FileRecord(3, "/lib/Backup/IMG_1.JPG", device=1, inode=8, **common)  # type: ignore[arg-type]
    # When duplicates are found
    groups = find_duplicates([album, paired, backup], file_groups={2: ("image", "raw")})
    # Then the file the pair belongs with is kept, under the name kept for it
    assert [(g.type, g.keeper_id, g.keeper_rule) for g in groups] == [("exact", 1, "file_group")]


# --- between JPEGs of one picture, the one encoded at the higher quality


def encoded(f: FileRecord, quality: int | None) -> FileRecord:
    from dataclasses import replace

    return replace(f, jpeg_quality=quality)


def test_the_higher_quality_export_is_kept_over_an_older_lower_quality_one():
    # Given a Q60 export made in 2019 and a Q100 re-export of the shot made in 2024
    old = encoded(rec(1, "/lib/Exports/2019/IMG_1.jpg", size=400_000), 60)
    new = encoded(rec(2, "/lib/Exports/2024/IMG_1.jpg", size=2_100_000), 100)
    # When the keeper is chosen, then the Q100 one is kept, and the reason says why
    assert choose_keeper([old, new]) == (2, "jpeg_quality")


def test_the_higher_quality_original_is_kept_over_a_bigger_lower_quality_re_save():
    # Given the phone's original (its tables estimate Q85) and a re-save of it at Q82
    # with full-resolution chroma (4:4:4), which came out bigger
    original = encoded(rec(1, "/lib/Phone/20190926_163800.jpg", size=945_207), 85)
    re_save = encoded(rec(2, "/lib/Exports/20190926_163800.jpg", size=949_438), 82)
    # When the keeper is chosen, then the original is kept, not the bigger file
    assert choose_keeper([re_save, original]) == (1, "jpeg_quality")


@pytest.mark.parametrize(
    "qualities",
    [
        (85, 85),  # a metadata-only edit: the same tables
        (85, 87),  # within the slack of the estimate
        (None, 95),  # a row cataloged before qualities were stored
        (None, None),
    ],
)
def test_without_a_clear_quality_difference_the_size_decides(qualities):
    # Given a library JPEG with keywords written into it (303 bytes more) and its
    # untouched backup copy
    library = encoded(rec(1, "/lib/Pictures/IMG_1.JPG", size=2_000_303), qualities[0])
    backup = encoded(rec(2, "/lib/Backup/IMG_1.JPG", size=2_000_000), qualities[1])
    # When the keeper is chosen, then the bigger file is kept, as before
    assert choose_keeper([backup, library]) == (1, "size")


def test_a_copy_of_unknown_quality_stays_in_while_a_known_worse_one_drops_out():
    # Given a Q95, a Q70 and a copy whose quality is not known, the Q70 one biggest
    best = encoded(rec(1, "/a.jpg", size=900), 95)
    worse = encoded(rec(2, "/b.jpg", size=5000), 70)
    unknown = encoded(rec(3, "/c.jpg", size=1000), None)
    # When the keeper is chosen, then the Q70 one is out and the size decides the rest
    assert choose_keeper([best, worse, unknown]) == (3, "size")
    assert choose_keeper([best, worse]) == (1, "jpeg_quality")


@pytest.mark.parametrize(
    "later, rule",
    [
        # the lower-quality copy has more pixels ...
        ({"w": 200}, "resolution"),
        # ... kept its capture time where the other lost it
        ({"taken": T1}, "capture_time"),
        # ... is in a better format
        ({"fmt": "heic", "path": "/b.heic"}, "format"),
    ],
)
def test_the_rules_before_jpeg_quality_still_decide_first(later, rule):
    # Given a Q95 JPEG and a Q70 copy that wins an earlier rule
    good = encoded(rec(1, "/a.jpg", size=900, taken=T2), 95)
    kw = {"size": 1200, "taken": T2, **later}
    other = encoded(rec(2, kw.pop("path", "/b.jpg"), **kw), 70)
    # When the keeper is chosen, then the Q70 copy is kept by that earlier rule
    assert choose_keeper([good, other]) == (2, rule)


def test_byte_copies_have_one_quality_and_the_name_decides():
    copy = encoded(rec(1, "/p/IMG_1 copy.JPG"), 90)
    original = encoded(rec(2, "/p/IMG_1.JPG"), 90)
    assert choose_keeper([copy, original]) == (2, "name")
