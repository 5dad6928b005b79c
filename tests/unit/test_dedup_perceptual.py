from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest

from core.dedup import (
    find_duplicates,
    informative,
    perceptual_clusters,
    similarity_score,
    still_dismissed,
)
from core.dedup._bruteforce import pairs_within
from core.records import FileRecord

BASE = 0x0F0F_0F0F_3C3C_3C3C  # 32 bits set, an informative hash


def flip(*bits: int, base: int = BASE) -> str:
    h = base
    for b in bits:
        h ^= 1 << b
    return f"{h:016x}"


def rec(i, path, phash, *, size=1000, sha=None, dev=None, ino=None, w=100):
    return FileRecord(
        id=i, path=path, kind="image", size=size, sha256=sha, phash=phash,
        device=dev, inode=ino, width=w, height=w, format="jpeg",
    )  # fmt: skip


def id_sets(clusters):
    return [sorted(m.id for m in c.members) for c in clusters]


A = flip()
B = flip(0, 1, 2, 3, 4, 5)  # d(A, B) = 6
C = flip(0, 1, 2, 3, 4, 5, 32, 33, 34, 35, 36, 37)  # d(B, C) = 6, d(A, C) = 12


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1)])
def test_no_chaining_a_b_c(order):
    files = [rec(1, "/a", A), rec(2, "/b", B), rec(3, "/c", C)]
    clusters = perceptual_clusters([files[k] for k in order], threshold=8)
    # A and C are 12 apart: they are never in one cluster, whatever the input order.
    assert id_sets(clusters) == [[1, 2]]
    assert clusters[0].max_distance == 6


def test_c_joins_when_it_is_near_everyone():
    c_near = flip(0, 1, 2, 32)  # d(A,c)=4, d(B,c)=4
    clusters = perceptual_clusters(
        [rec(1, "/a", A), rec(2, "/b", B), rec(3, "/c", c_near)], threshold=8
    )
    assert id_sets(clusters) == [[1, 2, 3]]


@pytest.mark.parametrize("d, threshold, linked", [(8, 8, True), (9, 8, False), (0, 0, True)])
def test_threshold_is_inclusive(d, threshold, linked):
    files = [rec(1, "/a", A), rec(2, "/b", flip(*range(d)))]
    assert bool(perceptual_clusters(files, threshold)) is linked


def test_complete_linkage_on_random_data_is_deterministic_and_disjoint():
    rnd = random.Random(7)
    centres = [rnd.getrandbits(64) for _ in range(6)]
    files = []
    for i in range(120):
        h = centres[i % 6]
        for _ in range(rnd.randint(0, 7)):
            h ^= 1 << rnd.randrange(64)
        files.append(rec(i, f"/p/{rnd.random():.8f}", f"{h:016x}"))
    clusters = perceptual_clusters(files, threshold=6)
    assert clusters
    seen: set[int] = set()
    for c in clusters:
        assert c.max_distance <= 6  # every pair, not just a chain
        ids = {m.id for m in c.members}
        assert not ids & seen
        seen |= ids
    rnd.shuffle(files)
    assert id_sets(perceptual_clusters(files, threshold=6)) == id_sets(clusters)


@pytest.mark.parametrize("as_mapping", [True, False])
def test_members_of_one_file_group_are_versions(as_mapping):
    files = [
        rec(1, "/x/IMG_1.dng", A),
        rec(2, "/x/IMG_1.jpg", flip(0)),
        rec(3, "/y/z.jpg", flip(9)),
    ]
    groups = {1: "g", 2: "g"}
    same = (
        groups
        if as_mapping
        else (lambda a, b: groups.get(a) is not None and groups.get(a) == groups.get(b))
    )
    clusters = perceptual_clusters(files, threshold=8, same_group=same)
    # 1 and 2 are never together; the outside copy pairs with one of them.
    assert len(clusters) == 1
    ids = {m.id for m in clusters[0].members}
    assert 3 in ids and not {1, 2} <= ids


def test_byte_identical_files_are_not_perceptual_duplicates():
    files = [rec(1, "/a.jpg", A, sha="aa"), rec(2, "/b.jpg", A, sha="aa")]
    assert perceptual_clusters(files, threshold=8) == []


def test_exact_group_is_represented_once_in_a_perceptual_cluster():
    files = [
        rec(1, "/b/copy.jpg", A, sha="aa"),
        rec(2, "/a/orig.jpg", A, sha="aa"),
        rec(3, "/c/reencoded.jpg", flip(3), sha="cc"),
    ]
    [cluster] = perceptual_clusters(files, threshold=8)
    assert [m.id for m in cluster.members] == [2, 3]  # representative: smallest path
    assert cluster.exact_of == ("aa", None)


def test_copy_of_a_group_member_is_not_paired_with_the_other_version():
    # RAW+JPEG pair in one file group; a byte copy of the JPEG elsewhere sorts first
    # and becomes the representative: it must not become a duplicate of the RAW.
    files = [
        rec(1, "/photos/IMG_1.dng", flip(1)),
        rec(2, "/photos/IMG_1.jpg", A, sha="jj"),
        rec(3, "/backup/IMG_1.jpg", A, sha="jj"),
    ]
    assert perceptual_clusters(files, threshold=8, same_group={1: 10, 2: 10}) == []


def test_hard_links_are_one_file():
    files = [rec(1, "/a", A, dev=1, ino=5), rec(2, "/b", A, dev=1, ino=5)]
    assert perceptual_clusters(files, threshold=8) == []


def test_a_hard_link_of_a_group_member_is_not_paired_with_the_other_version():
    from core.dedup.groups import find_duplicates

    # RAW+JPEG pair in one file group; an album folder holds a hard link to the JPEG
    # (same inode) whose path sorts first, so it is the record kept for that inode
    files = [
        rec(1, "/lib/Camera/IMG_1.CR3", flip(1), size=30_000),
        rec(2, "/lib/Camera/IMG_1.JPG", A, dev=1, ino=7),
        rec(3, "/lib/Albums/Wedding/IMG_1.JPG", A, dev=1, ino=7),
    ]
    same = {1: 10, 2: 10}
    # Then the RAW and its JPEG are still versions, not duplicates (before: one group,
    # and with the album as a preferred folder the RAW was the copy to trash)
    assert perceptual_clusters(files, threshold=8, same_group=same) == []
    assert find_duplicates(files, same_group=same, preferred_folders=["/lib/Albums"]) == []


@pytest.mark.parametrize("phash", ["0000000000000000", "8000000000000000", "ffffffffffffffff"])
def test_flat_image_hashes_are_skipped(phash):
    assert not informative(phash)
    files = [rec(1, "/a", phash, sha="1"), rec(2, "/b", phash, sha="2")]
    assert perceptual_clusters(files, threshold=8) == []


@pytest.mark.parametrize(
    "d, score", [(0, 1.0), (8, 0.875), (32, 0.5), (64, 0.0), (70, 0.0), (-1, 1.0)]
)
def test_similarity_score_range(d, score):
    assert similarity_score(d) == score


def test_find_duplicates_scores_keys_and_keeper():
    files = [
        rec(1, "/a/big.jpg", A, sha="aa", w=200, size=5000),
        rec(2, "/b/big.jpg", A, sha="aa", w=200, size=5000),
        rec(3, "/c/small.jpg", flip(0, 1, 2, 3), sha="cc", w=100, size=900),
    ]
    groups = find_duplicates(files, threshold=8)
    assert [g.type for g in groups] == ["exact", "perceptual"]
    exact, perc = groups
    assert exact.key == "aa" and {m.file_id for m in exact.members} == {1, 2}
    assert exact.reclaimable_bytes == 5000
    assert {m.file_id for m in perc.members} == {1, 3}
    assert (perc.keeper_id, perc.keeper_rule) == (1, "resolution")
    scores = {m.file_id: m.similarity_score for m in perc.members}
    assert scores == {1: 1.0, 3: 1 - 4 / 64}
    assert all(0.0 <= m.similarity_score <= 1.0 for g in groups for m in g.members)
    assert len(perc.key) <= 64 and perc.key.startswith("p:")

    # Another copy that becomes the representative does not change the perceptual key.
    more = [*files, rec(4, "/0/big.jpg", A, sha="aa", w=200, size=5000)]
    again = find_duplicates(list(reversed(more)), threshold=8)
    assert again[1].key == perc.key
    assert [m.file_id for m in again[1].members] == [4, 3]


def test_similarity_is_measured_from_the_keeper_wherever_it_sorts():
    # Given a downsized copy that sorts first by path and the full-size keeper after it
    files = [
        rec(1, "/a/small.jpg", A, sha="s", w=100, size=900),
        rec(2, "/z/full.jpg", flip(0, 1, 2, 3), sha="f", w=400, size=5000),
    ]
    [group] = find_duplicates(files, threshold=8)
    assert (group.keeper_id, group.keeper_rule) == (2, "resolution")
    # Then the keeper scores 1 and the copy its distance from the keeper
    assert {m.file_id: m.similarity_score for m in group.members} == {2: 1.0, 1: 1 - 4 / 64}


def test_the_closest_copy_is_linked_first():
    # Given B at 6 bits from A and C at 2 bits from B (8 from A): at a threshold of 6,
    # complete linkage can hold B with A or with C, not all three
    files = [
        rec(1, "/a.jpg", A, sha="a"),
        rec(2, "/b.jpg", B, sha="b"),
        rec(3, "/c.jpg", flip(0, 1, 2, 3, 4, 5, 40, 41), sha="c"),
    ]
    # Then B goes with its closer match C
    assert [{m.file_id for m in g.members} for g in find_duplicates(files, threshold=6)] == [{2, 3}]


def test_a_perceptual_keeper_follows_the_preferred_folder():
    # Given the same picture twice, equal in pixels, the backup's re-encode the bigger file
    files = [
        rec(1, "/keep/a.jpg", A, sha="k", size=900),
        rec(2, "/backup/a.jpg", flip(0, 1), sha="b", size=1500),
    ]
    [group] = find_duplicates(files, threshold=8, preferred_folders=("/keep",))
    # Then the copy in the folder the user named is kept
    assert (group.keeper_id, group.keeper_rule) == (1, "folder")


def test_a_groups_similarity_is_that_of_its_least_similar_pair():
    # A and B 6 bits apart, c 4 bits from each: one group at threshold 6
    files = [
        rec(1, "/a.jpg", A, sha="a"),
        rec(2, "/b.jpg", B, sha="b"),
        rec(3, "/c.jpg", flip(0, 1, 2, 40), sha="c"),
    ]
    [group] = find_duplicates(files, threshold=6)
    assert len(group.members) == 3 and group.similarity_score == 1 - 6 / 64


def test_dismissal_survives_losing_a_member_but_not_a_new_one():
    f = [rec(1, "/a", A, sha="1"), rec(2, "/b", flip(1), sha="2"), rec(3, "/c", flip(2), sha="3")]
    [dismissed] = find_duplicates(f, threshold=8)
    [smaller] = find_duplicates(f[:2], threshold=8)
    [bigger] = find_duplicates([*f, rec(4, "/d", flip(3), sha="4")], threshold=8)
    assert still_dismissed(dismissed, [dismissed.identities])
    assert still_dismissed(smaller, [dismissed.identities])
    assert not still_dismissed(bigger, [dismissed.identities])


@pytest.mark.parametrize("n, radius", [(0, 3), (1, 3), (50, 64), (1500, 20)])
def test_bruteforce_pairs_within_matches_full_matrix(n, radius):
    rng = np.random.default_rng(n)
    base = rng.integers(0, 2**63, size=max(n // 10, 1), dtype=np.uint64)
    h = base[rng.integers(0, len(base), size=n)] ^ (
        np.uint64(1) << rng.integers(0, 64, size=n).astype(np.uint64)
    )
    i, j, d = pairs_within(h, radius)
    full = np.bitwise_count(h[:, None] ^ h[None, :])
    ei, ej = np.nonzero(np.triu(full <= radius, k=1))
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == sorted(
        zip(ei.tolist(), ej.tolist(), strict=True)
    )
    assert (d == full[i, j]).all() and (i < j).all()


GREY = "80" * 48
SEPIA = "b4" * 16 + "80" * 16 + "40" * 16  # mean abs difference (52 + 0 + 64) / 3


@pytest.mark.parametrize(
    "colour_a, colour_b, linked",
    [
        (GREY, GREY, True),
        (GREY, "82" * 48, True),  # re-encode noise: 2 levels
        (GREY, SEPIA, False),  # strong colour edit with the same structure
        (GREY, None, True),  # no signature on one side: pHash alone decides
    ],
)
def test_colour_check(colour_a, colour_b, linked):
    files = [rec(1, "/a", A), rec(2, "/b", flip(0, 1))]
    colours = {1: colour_a, 2: colour_b}
    assert bool(perceptual_clusters(files, 8, colour_of=colours)) is linked
    groups = find_duplicates(files, threshold=8, colour_of=colours)
    assert bool(groups) is linked


def test_colour_distance():
    from core.dedup import colour_distance

    assert colour_distance(GREY, GREY) == 0.0
    assert colour_distance(GREY, SEPIA) == pytest.approx(116 / 3)
    with pytest.raises(ValueError):
        colour_distance(GREY, "80")


# --- a look-alike group shows byte copies by the copy their exact group keeps


def kept_and_trashed(groups):
    kept = {g.keeper_id for g in groups}
    trashed = {m.file_id for g in groups for m in g.members if m.file_id != g.keeper_id}
    return kept, trashed


def test_the_look_alike_keeper_is_the_byte_copy_keeper():
    # Given a photo, its byte copy named as a copy (a space sorts before ".", so the copy
    # has the smaller path) and a half-size resize of it in another folder
    files = [
        rec(1, "/lib/Shoot/IMG_0002.JPG", A, sha="aa", w=200, size=5000),
        rec(2, "/lib/Shoot/IMG_0002 copy.JPG", A, sha="aa", w=200, size=5000),
        rec(3, "/lib/Small/IMG_0002.JPG", flip(0, 1), sha="ss", w=100, size=900),
    ]
    # When duplicates are found
    exact, look_alike = find_duplicates(files, threshold=8)
    # Then the exact group keeps the original by its name
    assert (exact.keeper_id, exact.keeper_rule) == (1, "name")
    # and the look-alike group shows the byte copies by that same file, and keeps it
    assert [m.file_id for m in look_alike.members] == [1, 3]
    assert look_alike.members[0].exact_key == "aa"
    assert (look_alike.keeper_id, look_alike.keeper_rule) == (1, "resolution")
    # so accepting every suggestion trashes nothing another suggestion keeps
    kept, trashed = kept_and_trashed([exact, look_alike])
    assert kept == {1} and trashed == {2, 3}


def test_the_look_alike_group_shows_the_grouped_byte_copy_and_keeps_it():
    # Given the JPEG of a RAW+JPEG pair (the stack's cover), its byte copy in a backup
    # folder that sorts first, and a bigger re-encode of it in an export folder
    files = [
        rec(1, "/lib/Backup/IMG_1.JPG", A, sha="aa", size=5000),
        rec(2, "/lib/Shoot/IMG_1.JPG", A, sha="aa", size=5000),
        rec(3, "/lib/Exports/IMG_1.jpg", flip(0, 1), sha="ee", size=7000),
    ]
    # When duplicates are found knowing the pair
    exact, look_alike = find_duplicates(files, threshold=8, file_groups={2: ("image", "raw")})
    # Then both groups keep the pair's JPEG: the look-alike group holds it, not the backup
    assert (exact.keeper_id, exact.keeper_rule) == (2, "file_group")
    assert sorted(m.file_id for m in look_alike.members) == [2, 3]
    assert (look_alike.keeper_id, look_alike.keeper_rule) == (2, "file_group")


def test_a_stand_in_chooses_which_byte_copy_represents_its_exact_group():
    files = [
        rec(1, "/a/copy.jpg", A, sha="aa"),
        rec(2, "/b/orig.jpg", A, sha="aa"),
        rec(3, "/c/reencoded.jpg", flip(3), sha="cc"),
    ]
    # Given a stand-in that picks the original; when clustered
    [cluster] = perceptual_clusters(files, threshold=8, stand_in=lambda copies: 2)
    # Then the original represents the byte copies
    assert [m.id for m in cluster.members] == [2, 3]
    assert cluster.exact_of == ("aa", None)


# --- a RAW is a version of every member of its rendition's file group


def shot(i, path, phash, kind="image", taken=datetime(2018, 1, 1, 13, 3, 32)):
    return FileRecord(
        id=i, path=path, kind=kind, size=1000 + i, phash=phash, taken_at=taken,
        make="Canon", model="Canon EOS D30", width=100, height=100,
        format="raw" if kind == "raw" else "jpeg",
    )  # fmt: skip


def test_the_edit_of_a_raws_rendition_in_another_folder_is_a_version_of_the_raw():
    # Given a RAW sorted into RAW/, the camera's JPEG of it in JPG/ and an edit of that
    # JPEG beside it (contrast, EXIF kept), which grouping made one "edited" group
    raw = shot(1, "/lib/2018/RAW/IMG_0001.CRW", A, kind="raw")
    jpeg = shot(2, "/lib/2018/JPG/IMG_0001.JPG", flip(1))
    edit = shot(3, "/lib/2018/JPG/IMG_0001-Edit.jpg", flip(2, 3))
    # When look-alikes are clustered
    clusters = perceptual_clusters([raw, jpeg, edit], threshold=8, same_group={2: 9, 3: 9})
    # Then the edit is no look-alike of the RAW to trash: all three are versions
    assert clusters == []


def test_a_raw_is_a_version_of_its_renditions_group_through_a_byte_copy():
    # Given the same, with a byte copy of the edit in a backup (which represents it)
    raw = shot(1, "/lib/2018/RAW/IMG_0001.CRW", A, kind="raw")
    jpeg = shot(2, "/lib/2018/JPG/IMG_0001.JPG", flip(1))
    edit = replace(shot(3, "/lib/2018/JPG/IMG_0001-Edit.jpg", flip(2, 3)), sha256="ee")
    backup = replace(edit, id=4, path="/lib/Backup/IMG_0001-Edit.jpg")
    files = [raw, jpeg, edit, backup]
    # When duplicates are found, then only the byte copies are a group
    groups = find_duplicates(files, threshold=8, same_group={2: 9, 3: 9})
    assert [(g.type, sorted(m.file_id for m in g.members)) for g in groups] == [("exact", [3, 4])]


# --- two renditions of one RAW are not versions of each other


def test_a_copy_of_a_raws_jpeg_is_a_duplicate_of_that_jpeg():
    # Given a shoot's CRW and the camera's JPEG of it (a RAW+JPEG group), and a Q70 copy
    # of that JPEG in a shared folder: the same stem, capture time and camera
    # (and an edit developed from the RAW, in its group too)
    raw = shot(1, "/lib/Shoot/IMG_0001.CRW", A, kind="raw")
    jpeg = shot(2, "/lib/Shoot/IMG_0001.JPG", flip(1))
    shared = shot(3, "/lib/Shared/IMG_0001.JPG", flip(1, 4))
    developed = shot(4, "/lib/Shoot/IMG_0001-Edit.jpg", flip(4, 5))
    groups = {1: 9, 2: 9, 4: 9}
    # When look-alikes are clustered
    clusters = perceptual_clusters([raw, jpeg, shared, developed], 8, same_group=groups)
    # Then the copy and the JPEG it copies are one look-alike group; the RAW and the edit
    # are in none
    assert id_sets(clusters) == [[2, 3]]


def test_a_copy_of_a_raws_jpeg_is_no_look_alike_of_the_edit_of_that_jpeg():
    # Given an import sorted by type: the RAW in RAW/, the camera's JPEG with an edit of
    # it in JPG/; and a strongly compressed copy of the camera's JPEG in a shared folder,
    # whose pHash happens to lie closer to the edit's (1 bit) than to the JPEG's (6 bits)
    raw = shot(1, "/lib/2018/RAW/IMG_0001.CRW", A, kind="raw")
    jpeg = shot(2, "/lib/2018/JPG/IMG_0001.JPG", flip(1))
    edit = shot(3, "/lib/2018/JPG/IMG_0001-Edit.jpg", flip(1, 4, 5, 6, 7, 8, 9, 10))
    shared = shot(4, "/lib/Shared/IMG_0001.JPG", flip(1, 4, 5, 6, 7, 8, 9))
    # When look-alikes are clustered
    clusters = perceptual_clusters([raw, jpeg, edit, shared], 8, same_group={2: 9, 3: 9})
    # Then the copy is a look-alike of the camera's JPEG, not of its edit: the edit is a
    # version of the shot, as the RAW is
    assert id_sets(clusters) == [[2, 4]]


def test_rendition_partners_leaves_out_a_bucket_no_camera_writes():
    from core.dedup.perceptual import rendition_partners

    # Given 4,000 files named image.* taken in one second, half of them "RAW"s
    many = [
        shot(i, f"/lib/export/{i}/image.{'dng' if i % 2 else 'jpg'}", A,
             kind="raw" if i % 2 else "image")
        for i in range(4000)
    ]  # fmt: skip
    # and a RAW with its JPEG, as a camera writes them
    pair = [shot(5000, "/lib/RAW/IMG_1.CRW", A, kind="raw"), shot(5001, "/lib/JPG/IMG_1.JPG", A)]
    # When rendition partners are found, then that bucket pairs nothing (it would make 8
    # million pairs), and the camera's pair is found
    assert rendition_partners([*many, *pair]) == {5000: (5001,), 5001: (5000,)}
