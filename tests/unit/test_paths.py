"""Paths: lossless bytes, fixed-size keys, confinement to the library roots."""

from __future__ import annotations

import os

import pytest

from core.paths import (
    FileChanged,
    PathOutsideRoots,
    UnsafeFile,
    ancestors,
    confine,
    dir_key,
    display,
    open_regular,
    os_error_reason,
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


def test_control_characters_in_names_are_shown_escaped():
    # A name with a newline would print as a second, made-up line; ESC would drive the
    # terminal (colours, its title)
    shown = display("/photos/a\n  ! good.jpg\x1b[31m\x9b\u2028.jpg")
    assert shown == "/photos/a\\x0a  ! good.jpg\\x1b[31m\\x9b\\u2028.jpg"
    assert shown.isprintable()
    assert display("/photos/été/a.jpg") == "/photos/été/a.jpg"  # letters stay letters
    # A right-to-left override would show "\u202egpj.exe" as "exe.jpg"
    assert display("/photos/\u202egpj.exe") == "/photos/\\u202egpj.exe"


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


# --- open_regular: how the scan opens a listed file -----------------------------------


def _open_error(path, real_root=None) -> str:
    with pytest.raises(OSError) as info:
        fd, _st = open_regular(str(path), real_root)
        os.close(fd)
    return str(info.value.strerror)


def test_open_regular_reads_a_file_inside_the_root(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"abc")
    fd, st = open_regular(str(tmp_path / "a.jpg"), str(tmp_path))
    try:
        assert os.read(fd, 10) == b"abc" and st.st_size == 3
    finally:
        os.close(fd)


def test_open_regular_refuses_a_fifo_without_blocking(tmp_path):
    # Given a FIFO with no writer (a plain open() would wait forever)
    os.mkfifo(tmp_path / "fifo.jpg")
    # Then it is refused at once, naming what it is
    assert _open_error(tmp_path / "fifo.jpg") == "not a regular file: a FIFO"
    assert _open_error(tmp_path / "fifo.jpg", str(tmp_path)) == "not a regular file: a FIFO"


def test_open_regular_confined_to_the_root(tmp_path):
    # Given a library with a file symlink and a folder symlink pointing out of it
    root, outside = tmp_path / "lib", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    os.symlink(outside / "secret.jpg", root / "link.jpg")
    os.symlink(outside, root / "album")
    real_root = os.path.realpath(root)
    # Then neither is read when the root is given
    assert _open_error(root / "link.jpg", real_root) == "is a symlink now; not followed"
    assert _open_error(root / "album" / "secret.jpg", real_root) == (
        "reached through a symlink out of the library; not read"
    )
    # And without a root, a symlink is followed as open() would
    fd, _st = open_regular(str(root / "link.jpg"))
    os.close(fd)


def test_open_regular_directory(tmp_path):
    with pytest.raises(IsADirectoryError):
        open_regular(str(tmp_path))


def test_ancestors_run_from_the_path_up_to_the_filesystem_root():
    assert ancestors("/lib/2024/05") == ["/lib/2024/05", "/lib/2024", "/lib", "/"]
    assert ancestors("/") == ["/"]


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (
            FileNotFoundError(2, "No such file or directory"),
            "file vanished before it could be read",
        ),
        (PermissionError(13, "Permission denied"), "permission denied"),
        (IsADirectoryError(21, "Is a directory"), "is a directory, not a file"),
        (OSError(5, "Input/output error"), "cannot read: Input/output error"),
        (UnsafeFile(40, "is a symlink now; not followed"), "is a symlink now; not followed"),
        (FileChanged(0, "changed while it was read"), "changed while it was read"),
    ],
)
def test_a_file_error_is_worded_the_same_whichever_step_met_it(exc, reason):
    assert os_error_reason(exc) == reason
    # The step only shows where the system's own message is all there is to say.
    expected = reason.replace("cannot read", "cannot stat")
    assert os_error_reason(exc, "stat") == expected


def test_stat_numbers_past_64_signed_bits_wrap_into_the_columns() -> None:
    from core.catalog import int64

    # In range: unchanged
    for v in (0, 1, -1, 1_700_000_000_000_000_000, (1 << 63) - 1, -(1 << 63)):
        assert int64(v) == v
    # An unsigned inode with the top bit set, or a time past 2262, fits and stays distinct
    big = [1 << 63, (1 << 64) - 1, 10**19]
    assert all(-(1 << 63) <= int64(v) < 1 << 63 for v in big)
    assert len({int64(v) for v in big}) == len(big)
