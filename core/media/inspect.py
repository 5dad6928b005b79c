"""One call per file: everything the catalog stores about it, read as little as possible.

Reading policy (``bytes_read`` counts all of it, honestly):

- Pictures other than RAW are read once, in full, into memory: the decoder needs
  most of the bytes anyway, so SHA-256 + SHA-1 come almost free and are always set.
- RAW files: with ``full_hash`` (or when smaller than 1 MiB, where one read is
  cheaper than LibRaw's seeking) the file is read once into memory, hashed, and
  LibRaw decodes from that buffer. Otherwise only the metadata directories and the
  embedded preview are read: LibRaw opens the file itself (through /proc/self/fd, so
  it reads what was opened and checked) and what it reads is
  measured from the kernel's per-thread I/O counter (``/proc/thread-self/io``
  rchar), which also counts LibRaw's re-reads.
- What a file is comes from its first 4 KiB, not its name: only a picture is read
  whole, whatever its extension says.
- Video, sidecars and other files: the first 4 KiB (to sniff), MOV/MP4 metadata boxes,
  then the full hash only with ``full_hash`` and the quick digest with ``quick_hash``.
- RAW, MOV/MP4 and HEIF/AVIF files: their own directories are checked against the
  file's size (core.media.complete: a few small reads, none for bytes already in
  memory). A file cut short gets ``error`` saying so and keeps the facts read from what
  is there (its preview's pHash, EXIF, hashes), so that it still shows as a duplicate
  of the intact copy.

``inspect_file`` never raises for bad input: every failure becomes ``error``.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, BinaryIO

from core.media.colour import colour_signature
from core.media.complete import truncation
from core.media.decode import (
    DEFAULT_MAX_PIXELS,
    MediaError,
    RawReadError,
    open_image,
    raw_decode,
    raw_open,
)
from core.media.exif import (
    ExifFacts,
    facts_from_ciff,
    facts_from_cr3,
    facts_from_quicktime,
    facts_from_tiff_fp,
    fill_missing,
)
from core.media.hashing import (
    hash_buffer,
    hash_stream,
    quick_digest_buffer,
    quick_digest_fh,
)
from core.media.kinds import (
    HEAD_SIZE,
    NOT_A_PICTURE,
    classify,
    extension,
    kind_of_extension,
    sniff_format,
    too_big_to_try,
)
from core.media.phash import phash_of
from core.paths import UnsafeFile, open_regular, os_error_reason

SMALL_RAW = 1 << 20
_TIFF_RAW = {"tiff", "dng", "cr2", "orf", "rw2"}
_QUICKTIME = {"mov", "mp4", "3gp"}
_HEIF = {"heic", "avif"}


@dataclass
class FileFacts:
    """Everything the catalog stores about one file."""

    kind: str
    format: str | None
    size: int
    mtime_ns: int
    sha256: str | None = None
    sha1: str | None = None
    quick: str | None = None
    phash: str | None = None  # 16 hex digits
    colour: str | None = None  # 96 hex digits: 4x4 RGB grid (core.media.colour)
    taken_at: datetime | None = None
    taken_offset: str | None = None
    make: str | None = None
    model: str | None = None
    serial: str | None = None
    width: int | None = None  # stored dimensions; apply orientation to get the display ones
    height: int | None = None
    orientation: int | None = None
    content_id: str | None = None
    jpeg_quality: int | None = None  # a JPEG's estimated quality (decode.jpeg_quality)
    bytes_read: int = 0
    error: str | None = None
    warning: str | None = None
    # The read failed (``error`` says why) in a way another attempt may get past: the
    # catalog keeps what it knew and reads the file again next scan
    read_failed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _take(self, facts: ExifFacts) -> None:
        fill_missing(self, facts)


class _CountingReader:
    """Seekable reader that counts the bytes it returns. ``magic`` replaces the first
    four bytes (ORF/RW2 use private TIFF signatures that Pillow's reader refuses)."""

    def __init__(self, fh: BinaryIO, magic: bytes | None = None) -> None:
        self._fh = fh
        self._magic = magic
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        pos = self._fh.tell()
        data = self._fh.read(n)
        self.count += len(data)
        if self._magic and pos < 4 and data:
            patched = bytearray(data)
            for i in range(pos, min(4, pos + len(data))):
                patched[i - pos] = self._magic[i]
            data = bytes(patched)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()


def _thread_rchar() -> tuple[int, int] | None:
    """(bytes this thread has read so far, size of this report) or None off Linux."""
    try:
        with open("/proc/thread-self/io", "rb", buffering=0) as fh:
            text = fh.read(512)
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(b"rchar:"):
            return int(line.split()[1]), len(text)
    return None


def inspect_file(
    path: str,
    *,
    full_hash: bool,
    quick_hash: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    root: str | None = None,
) -> FileFacts:
    """Kind, format, hashes, pHash and EXIF essentials of one file; never raises.

    ``root`` (the resolved library root) confines the read: a file that became a
    symlink, or is reached through one, out of the root is refused (see open_regular).
    """
    ext_kind = kind_of_extension(extension(path))
    facts = FileFacts(kind=ext_kind, format=None, size=0, mtime_ns=0)
    try:
        fd, st = open_regular(path, root)
    except OSError as exc:
        facts.error = os_error_reason(exc)
        facts.read_failed = _may_pass(exc)
        return facts
    except ValueError as exc:  # embedded NUL and the like
        facts.error = f"invalid path: {exc}"
        return facts
    facts.size, facts.mtime_ns = st.st_size, st.st_mtime_ns
    with open(fd, "rb", buffering=0) as fh:
        if st.st_size == 0:
            facts.error = "zero-byte file"
            return facts
        try:
            _inspect_open(fh, path, facts, full_hash, quick_hash, max_pixels)
            _check_unchanged(fh, facts)
        except OSError as exc:
            facts.error = os_error_reason(exc)
            facts.read_failed = _may_pass(exc)
        except MemoryError:
            facts.error = "file too large to read into memory"
        except Exception as exc:  # a decoder bug must not stop the scan
            facts.error = f"unexpected {type(exc).__name__}: {exc}"
    return facts


def _may_pass(exc: OSError) -> bool:
    """A failed read that another attempt may get past: a permission since granted, an
    I/O error or a timeout on a share. Not a file gone, nor one that is not a regular
    file inside the library (the next walk sees what it is now)."""
    return not isinstance(exc, FileNotFoundError | UnsafeFile)


def _check_unchanged(fh: BinaryIO, facts: FileFacts) -> None:
    """Streamed reads (quick digest, full hash, video boxes, LibRaw) cannot see a file
    being truncated or rewritten under them; its stat afterwards can. Such facts are
    a mix of two versions: keep none of them, say why."""
    st = os.fstat(fh.fileno())
    if (st.st_size, st.st_mtime_ns) == (facts.size, facts.mtime_ns):
        return
    for name in ("sha256", "sha1", "quick", "phash", "colour"):
        setattr(facts, name, None)
    facts.error = f"file changed while it was being read (size {facts.size}, now {st.st_size})"


def _inspect_open(
    fh: BinaryIO,
    path: str,
    facts: FileFacts,
    full_hash: bool,
    quick_hash: bool,
    max_pixels: int,
) -> None:
    size = facts.size
    # The head decides what the file is before anything else is read: a 20 GB video
    # named .jpg must be streamed like a video, not read into memory like a picture.
    # It is a peek (pread): when the whole file follows, read() returns it in one
    # buffer without a copy, and those 4 KiB come again from the page cache and are
    # counted once.
    head = os.pread(fh.fileno(), HEAD_SIZE, 0)
    kind, fmt, warning = classify(path, head)
    facts.kind, facts.format, facts.warning = kind, fmt, warning

    data: bytes | None = None
    if too_big_to_try(kind, fmt, size):
        facts.error = f"{NOT_A_PICTURE} ({_shown_size(size)}; not decoded)"
    elif kind == "image" or (kind == "raw" and (full_hash or size <= SMALL_RAW)):
        data = fh.read()
        facts.bytes_read += len(data)
    else:
        fh.seek(len(head))
        facts.bytes_read += len(head)
    if data is not None and len(data) != size:
        facts.error = f"file changed while it was being read (size {size}, read {len(data)})"
        return
    if data is not None and (kind in ("image", "raw") or full_hash):
        facts.sha256, facts.sha1 = hash_buffer(data)
    if data is not None and quick_hash:
        facts.quick = quick_digest_buffer(data)

    if kind == "image" and data is not None:
        _inspect_image(data, fmt, facts, max_pixels)
    elif kind == "raw":
        _inspect_raw(fh, path, head, data, facts, max_pixels)
    else:
        if kind == "video" and fmt in _QUICKTIME:
            reader = _CountingReader(fh)
            facts._take(facts_from_quicktime(reader, size))  # type: ignore[arg-type]
            facts.bytes_read += reader.count
        if data is None and full_hash:
            fh.seek(len(head))
            facts.sha256, facts.sha1, n = hash_stream(fh, prefix=head)
            facts.bytes_read += n
    if data is None and quick_hash:  # streamed, or a large RAW that LibRaw read by path
        facts.quick, n = quick_digest_fh(fh, size, head)
        facts.bytes_read += n
    _check_complete(fh, data, facts)


def _check_complete(fh: BinaryIO, data: bytes | None, facts: FileFacts) -> None:
    """A RAW, video or HEIF file whose own directories point past its end is truncated:
    say so in ``error`` (after any reason already there), and keep every fact read."""
    if facts.kind == "raw":
        what = "RAW data"
    elif facts.kind == "video" and facts.format in _QUICKTIME:
        what = "video data"
    elif facts.kind == "image" and facts.format in _HEIF and data is not None:
        what = "picture data"  # libheif decodes a cut tiled HEIC without a word
    else:
        return
    if data is not None:
        reason = truncation(io.BytesIO(data), facts.size, what)
    else:
        reader = _CountingReader(fh)
        reason = truncation(reader, facts.size, what)
        facts.bytes_read += reader.count
    if reason is not None:
        facts.error = reason if facts.error is None else f"{facts.error}; {reason}"


def _shown_size(size: int) -> str:
    return f"{size / (1 << 20):.0f} MiB" if size >= 1 << 20 else f"{size} bytes"


def _inspect_image(data: bytes, fmt: str | None, facts: FileFacts, max_pixels: int) -> None:
    try:
        # Drafted in colour: the chroma IDCT at 1/8 scale is cheap, and the colour
        # signature needs it (Huffman decoding, the real cost, happens either way).
        decoded = open_image(data, fmt, max_pixels=max_pixels, mode="RGB")
    except MediaError as exc:
        facts.error = str(exc)
        return
    facts.phash = phash_of(decoded.image, decoded.orientation).hex()
    facts.colour = colour_signature(decoded.image, decoded.orientation)
    facts.width, facts.height = decoded.width, decoded.height
    facts.jpeg_quality = decoded.jpeg_quality
    facts._take(decoded.facts)
    facts.orientation = decoded.orientation  # what is still to apply (libheif: nothing)


def _raw_metadata(
    fh: BinaryIO, head: bytes, data: bytes | None, size: int
) -> tuple[ExifFacts, int]:
    """EXIF of a RAW container read through Pillow's TIFF reader / CR3 / CIFF parsers."""
    content = sniff_format(head)
    source: BinaryIO = io.BytesIO(data) if data is not None else fh
    magic = b"II*\x00" if head[:2] == b"II" else b"MM\x00*"
    reader = _CountingReader(source, magic if content in ("orf", "rw2") else None)
    if content in _TIFF_RAW:
        meta = facts_from_tiff_fp(reader)  # type: ignore[arg-type]
    elif content == "cr3":
        meta = facts_from_cr3(reader, size)  # type: ignore[arg-type]
    elif content == "crw":
        meta = facts_from_ciff(reader, size)  # type: ignore[arg-type]
    else:
        meta = ExifFacts()
    return meta, (reader.count if data is None else 0)


def _libraw_path(fh: BinaryIO, path: str) -> str | None:
    """A name LibRaw can open for the file already open as ``fh``.

    /proc/self/fd/N names exactly the file that was opened and checked (regular, inside
    the root), even if the path has been swapped for something else since; it is also
    the only way to pass a non-UTF-8 name (rawpy encodes paths as UTF-8). Off Linux,
    the path itself when it is UTF-8; else None (the caller reads the bytes itself).
    """
    proc = f"/proc/self/fd/{fh.fileno()}"
    if os.path.exists(proc):
        return proc
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return None


def _read_through(fh: BinaryIO) -> int:
    """Read the whole file, to see whether its reads fail; returns the bytes read."""
    fh.seek(0)
    n = 0
    while chunk := fh.read(1 << 20):
        n += len(chunk)
    return n


def _inspect_raw(
    fh: BinaryIO, path: str, head: bytes, data: bytes | None, facts: FileFacts, max_pixels: int
) -> None:
    meta, n = _raw_metadata(fh, head, data, facts.size)
    facts.bytes_read += n
    source: str | bytes | None = data
    if data is None:
        source = _libraw_path(fh, path)
        if source is None:
            fh.seek(0)
            data = source = fh.read()
            facts.bytes_read += len(data)
    before = _thread_rchar() if data is None else None
    try:
        raw = raw_open(source)  # type: ignore[arg-type]
    except RawReadError as exc:
        if data is None:  # LibRaw read it by its path: can the file be read at all?
            facts.bytes_read += _read_through(fh)  # OSError: a failed read, tried again
        facts.error = str(exc)  # it can: a RAW cut short, not a read that failed
        raw = None
    except MediaError as exc:
        facts.error = str(exc)
        raw = None
    result = None
    if raw is not None:
        try:
            result = raw_decode(raw, max_pixels=max_pixels, mode="RGB")
        except MediaError as exc:
            facts.error = str(exc)
        finally:
            raw.close()
    if data is None:
        after = _thread_rchar()
        if before is not None and after is not None:
            facts.bytes_read += max(0, after[0] - before[0] - before[1])
        else:
            facts.bytes_read += facts.size  # no per-thread counter: assume all of it
    if result is not None:
        facts.width, facts.height, facts.orientation = (
            result.width,
            result.height,
            result.orientation,
        )
        if result.decoded is not None:
            facts.phash = phash_of(result.decoded.image, result.decoded.orientation).hex()
            facts.colour = colour_signature(result.decoded.image, result.decoded.orientation)
        elif facts.error is None:
            facts.error = result.problem
        meta.merge(result.facts)
    if facts.orientation is None and meta.orientation is not None:
        facts.orientation = meta.orientation
    facts._take(meta)
