"""Paths: lossless bytes, fixed-size keys, confinement to the library roots."""

from __future__ import annotations

import os

import pytest

from core.paths import (
    PathOutsideRoots,
    confine,
    dir_key,
    display,
    path_key,
    relative_posix,
    root_of,
    to_bytes,
    to_str,
)


def test_non_utf8_names_round_trip_losslessly():
    raw = b"/photos/caf\xe9/\xff\xfe.jpg"
    text = to_str(raw)
    assert to_bytes(text) == raw
    assert display(text) == "/photos/caf\\xe9/\\xff\\xfe.jpg"


def test_keys_are_fixed_size_for_any_path_length():
    long_path = "/photos/" + "/".join(["a" * 200] * 20) + "/x.jpg"  # far over 512 bytes
    assert len(long_path.encode()) > 4000
    assert len(path_key(long_path)) == 32
    assert path_key(long_path) != path_key(long_path + "x")
    assert dir_key("/a/b/c.jpg") == path_key("/a/b") == dir_key("/a/b/d.jpg")


def test_confine_refuses_dotdot_and_symlink_escapes(tmp_path):
    root = tmp_path / "lib"
    (root / "2024").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    os.symlink(outside, root / "escape")
    assert confine(str(root / "2024"), [root]) == str(root / "2024")
    with pytest.raises(PathOutsideRoots):
        confine(str(root / ".." / "secret"), [root])
    with pytest.raises(PathOutsideRoots):
        confine(str(root / "escape"), [root])
    with pytest.raises(PathOutsideRoots):
        confine(str(tmp_path / "lib-sibling"), [root])  # a prefix of the name is not inside
    with pytest.raises(PathOutsideRoots):
        confine("/etc/passwd\x00", [root])


def test_root_of_and_relative_paths():
    roots = ["/photos", "/photos/archive", "/other"]
    assert root_of("/photos/archive/x.jpg", roots) == "/photos/archive"
    assert root_of("/photos2/x.jpg", roots) is None
    assert relative_posix("/photos/2024/a.jpg", "/photos") == "2024/a.jpg"
