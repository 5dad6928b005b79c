"""Filesystem paths as Twinlens stores and shows them.

Paths on a NAS can be longer than any index allows and need not be valid UTF-8.
In Python they are ``str`` made with ``os.fsdecode`` (invalid bytes become lone
surrogates, reversibly); in the database they are the raw bytes; the unique key is
a fixed-size digest of those bytes so that no index entry grows with the path.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote_to_bytes


def to_bytes(path: str | bytes | os.PathLike[str]) -> bytes:
    """Raw bytes of a path (lossless for names that are not UTF-8)."""
    if isinstance(path, bytes):
        return path
    return os.fsencode(os.fspath(path))


def to_str(path: str | bytes | os.PathLike[str]) -> str:
    """The surrogateescape'd str form used everywhere in Python code."""
    if isinstance(path, bytes):
        return os.fsdecode(path)
    return os.fspath(path)


def path_key(path: str | bytes) -> str:
    """Fixed-size unique key of a path: hex BLAKE2b-128 of its bytes."""
    return hashlib.blake2b(to_bytes(path), digest_size=16).hexdigest()


def dir_key(path: str | bytes) -> str:
    """Key of the folder holding ``path`` (grouping works folder by folder)."""
    return path_key(os.path.dirname(to_bytes(path)))


# Control characters in a file name (a newline, ESC) would start a fake line or drive the
# terminal when the name is printed, and bidi controls would show it reversed: shown
# escaped, as invalid bytes are
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029"
    # and the invisible ones that reorder or hide what follows ("\u202egpj.exe")
    "\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def display(path: str | bytes) -> str:
    """Human-readable form: invalid bytes and control characters shown as ``\\xNN``
    (for messages, not keys)."""
    return _CONTROL.sub(_escaped, to_bytes(path).decode("utf-8", "backslashreplace"))


def relative_posix(path: str, root: str | Path) -> str:
    """Path relative to a library root, with forward slashes (reports)."""
    rel = os.path.relpath(path, os.fspath(root))
    return rel.replace(os.sep, "/")


PATH_MAX = 4096  # Linux: no longer path names a file


class PathOutsideRoots(ValueError):
    """A requested path is not inside any configured library root."""


def confine(path: str, roots: Iterable[str | Path]) -> str:
    """Resolve ``path`` (following symlinks, collapsing ``..``) and insist that it
    lies inside one of ``roots``; returns the resolved path.

    Raises PathOutsideRoots otherwise, so that neither ``..`` nor a symlink that
    points out of the library can reach other files.

    The answer is spelt under the root as configured, not as resolved: a root that is
    itself a symlink (``~/Photos`` -> ``/mnt/nas/photos``) is walked, and its files
    catalogued, under its own name.
    """
    if not path or "\x00" in path:
        raise PathOutsideRoots("path is empty or contains a NUL byte")
    try:
        size = len(os.fsencode(path))
    except UnicodeEncodeError:
        # A lone surrogate that is not a \udcXX byte escape: JSON can carry it, no file
        # name is made of it, and every os call on it raises.
        raise PathOutsideRoots("path is not a file path: it holds an unpaired surrogate") from None
    if size > PATH_MAX:
        # Said before resolving it: realpath's cost grows with the square of the length
        raise PathOutsideRoots(f"path is longer than {PATH_MAX} bytes")
    resolved = os.path.realpath(path)
    for root in roots:
        named = os.path.abspath(os.fspath(root))
        real_root = os.path.realpath(named)
        if resolved == real_root:
            return named
        if is_inside(resolved, real_root):
            return os.path.join(named, os.path.relpath(resolved, real_root))
    raise PathOutsideRoots(f"path {display(path)!r} is outside the library roots")


def root_of(path: str, roots: Iterable[str | Path]) -> str | None:
    """The configured root that contains ``path`` (no symlink resolution), or None."""
    best = None
    for root in roots:
        r = os.fspath(root).rstrip(os.sep) or os.sep
        if path == r or path.startswith(r + os.sep) or r == os.sep:
            if best is None or len(r) > len(best):
                best = r
    return best


def query_paths(query: bytes) -> dict[str, str]:
    """A URL query string's values decoded as file names are (os.fsdecode), the first of
    each name. Werkzeug's ``request.args`` turns bytes that are not UTF-8 into U+FFFD,
    which names no file; here they become \\udcXX escapes, as in JSON bodies."""
    out: dict[str, str] = {}
    for part in query.split(b"&"):
        key, _, value = part.partition(b"=")
        name = unquote_to_bytes(key.replace(b"+", b" ")).decode("utf-8", "replace")
        out.setdefault(name, os.fsdecode(unquote_to_bytes(value.replace(b"+", b" "))))
    return out


class UnsafeFile(OSError):
    """A listed file that may not be read: it is no longer a regular file, or it is
    reached through a symlink that leaves the library root. ``strerror`` says which."""


class FileChanged(OSError):
    """The file's size or mtime moved while it was being hashed."""


def os_error_reason(exc: OSError, doing: str = "read") -> str:
    """A file error as scan reports word it, whichever step met it (stat, read, hash)."""
    if isinstance(exc, FileNotFoundError):
        return "file vanished before it could be read"
    if isinstance(exc, UnsafeFile | FileChanged):
        return str(exc.strerror)  # our own: the reason is the whole message
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    return f"cannot {doing}: {exc.strerror or exc}"


_FILE_TYPES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_type(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO")."""
    return next((name for test, name in _FILE_TYPES if test(mode)), "not a regular file")


def ancestors(path: str) -> list[str]:
    """``path`` and every folder above it, nearest first."""
    out = [path]
    while (parent := os.path.dirname(path)) != path:
        out.append(parent)
        path = parent
    return out


def is_inside(path: str, top: str) -> bool:
    """``path`` is ``top`` or below it, by name (resolve both first where links matter);
    a folder whose name merely starts like ``top``'s (``/lib-old`` for ``/lib``) is not."""
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def _real_path_of(fd: int, path: str) -> str:
    # The kernel's name for what was actually opened: immune to a folder being swapped
    # for a symlink between any check and the open. Off Linux, resolve the name (racy).
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def open_regular(path: str, real_root: str | None = None) -> tuple[int, os.stat_result]:
    """Open a library file for reading: (fd, its fstat). Raises OSError.

    O_NONBLOCK: opening a FIFO that replaced the file must not wait for a writer
    forever (reads of regular files ignore the flag). With ``real_root`` (the resolved
    library root) a symlink in the last component is not followed and the opened file
    must lie inside the root, so that nothing swapped in after the walk (a symlink to
    /etc/passwd, a folder replaced by a link elsewhere) is read. Raises UnsafeFile then.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if real_root is not None:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and real_root is not None and os.path.islink(path):
            raise UnsafeFile(errno.ELOOP, "is a symlink now; not followed") from None
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(errno.EINVAL, f"not a regular file: {file_type(st.st_mode)}")
        if real_root is not None and not is_inside(_real_path_of(fd, path), real_root):
            raise UnsafeFile(errno.EXDEV, "reached through a symlink out of the library; not read")
    except BaseException:
        os.close(fd)
        raise
    return fd, st
