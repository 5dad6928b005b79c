from __future__ import annotations

import pytest

from core.dedup import collapse_hard_links, exact_candidates, exact_groups, exact_index
from core.records import FileRecord


def rec(i, path, size, sha=None, dev=None, ino=None):
    return FileRecord(id=i, path=path, kind="image", size=size, sha256=sha, device=dev, inode=ino)


def paths(groups):
    return [[f.path for f in g] for g in groups]


@pytest.mark.parametrize(
    "files, expected",
    [
        # unique sizes need no hashing at all
        ([rec(1, "/a", 10), rec(2, "/b", 11)], []),
        # same size -> one bucket, members sorted by path
        ([rec(1, "/b", 10), rec(2, "/a", 10), rec(3, "/c", 11)], [["/a", "/b"]]),
        # zero-byte files are never candidates
        ([rec(1, "/a", 0), rec(2, "/b", 0)], []),
        # two names of one inode are one file: no candidate
        ([rec(1, "/a", 10, dev=1, ino=7), rec(2, "/b", 10, dev=1, ino=7)], []),
        # same inode number on another device is another file
        ([rec(1, "/a", 10, dev=1, ino=7), rec(2, "/b", 10, dev=2, ino=7)], [["/a", "/b"]]),
        # hard link + a real copy: bucket of two, the link represented by its smallest path
        (
            [rec(1, "/z", 10, dev=1, ino=7), rec(2, "/b", 10, dev=1, ino=7), rec(3, "/c", 10)],
            [["/b", "/c"]],
        ),
        # larger sizes first
        (
            [rec(1, "/s1", 5), rec(2, "/s2", 5), rec(3, "/l1", 50), rec(4, "/l2", 50)],
            [["/l1", "/l2"], ["/s1", "/s2"]],
        ),
    ],
)
def test_exact_candidates(files, expected):
    assert paths(exact_candidates(files)) == expected


@pytest.mark.parametrize(
    "files, expected",
    [
        ([rec(1, "/a", 10, "aa"), rec(2, "/b", 10, "bb")], []),
        ([rec(1, "/b", 10, "aa"), rec(2, "/a", 10, "aa")], [["/a", "/b"]]),
        # files not hashed yet are ignored
        ([rec(1, "/a", 10, "aa"), rec(2, "/b", 10, None)], []),
        # empty files share the empty-file sha256 but are not duplicates
        ([rec(1, "/a", 0, "e3b0"), rec(2, "/b", 0, "e3b0")], []),
        ([rec(1, "/a", 10, "aa", 1, 5), rec(2, "/b", 10, "aa", 1, 5)], []),
        # hex case does not split a group; groups sorted by sha
        (
            [
                rec(1, "/x", 9, "BB"),
                rec(2, "/y", 9, "bb"),
                rec(3, "/p", 9, "aa"),
                rec(4, "/q", 9, "aa"),
            ],
            [["/p", "/q"], ["/x", "/y"]],
        ),
    ],
)
def test_exact_groups(files, expected):
    assert paths(exact_groups(files)) == expected


def test_exact_groups_input_order_does_not_matter():
    files = [rec(i, f"/d{i % 3}/f{i}", 100 + i % 4, f"s{i % 4}") for i in range(40)]
    assert paths(exact_groups(files)) == paths(exact_groups(list(reversed(files))))
    assert all(len(g) == 10 for g in exact_groups(files))


def test_exact_index_maps_members_to_sha():
    groups = exact_groups([rec(1, "/a", 3, "AA"), rec(2, "/b", 3, "aa"), rec(3, "/c", 3, "cc")])
    assert exact_index(groups) == {1: "aa", 2: "aa"}


def test_collapse_hard_links_keeps_smallest_path():
    files = [rec(1, "/z", 1, dev=1, ino=2), rec(2, "/m", 1, dev=1, ino=2), rec(3, "/q", 1)]
    assert sorted(f.path for f in collapse_hard_links(files)) == ["/m", "/q"]
