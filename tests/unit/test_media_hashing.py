"""One-pass SHA-256 + SHA-1 and the quick first/last-block digest."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from core.media.hashing import (
    CHUNK,
    QUICK_BLOCK,
    hash_buffer,
    hash_file,
    hash_stream,
    quick_digest,
    quick_digest_buffer,
    quick_digest_fh,
)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7])
def test_one_pass_hashes_equal_hashlib(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    want = (hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest())
    assert hash_buffer(data) == want
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert hash_file(str(path)) == (*want, size)
    # The head the caller already read is hashed but not read (or counted) again.
    fh = io.BytesIO(data)
    head = fh.read(100)
    assert hash_stream(fh, prefix=head) == (*want, max(0, size - 100))


@pytest.mark.parametrize(
    "size",
    [1, 100, QUICK_BLOCK, QUICK_BLOCK + 1, 5000, 2 * QUICK_BLOCK, 2 * QUICK_BLOCK + 1, 100_000],
)
def test_quick_digest_file_equals_buffer(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    digest, read = quick_digest(str(path), size)
    assert digest == quick_digest_buffer(data)
    assert read == min(size, 2 * QUICK_BLOCK)
    # With the head already in hand only the tail is read.
    with open(path, "rb") as fh:
        head = fh.read(QUICK_BLOCK)
        digest2, read2 = quick_digest_fh(fh, size, head)
    assert digest2 == digest
    assert read2 == max(0, min(size, 2 * QUICK_BLOCK) - QUICK_BLOCK)


def test_quick_digest_separates_what_it_sees() -> None:
    base = bytearray(os.urandom(50_000))
    same_ends = bytearray(base)
    same_ends[20_000] ^= 0xFF  # differs only in the middle: quick digest cannot tell
    other_tail = bytearray(base)
    other_tail[-1] ^= 0xFF
    assert quick_digest_buffer(base) == quick_digest_buffer(same_ends)
    assert quick_digest_buffer(base) != quick_digest_buffer(other_tail)
    # the size is part of it: same first and last bytes, one byte longer
    assert quick_digest_buffer(bytes(9000)) != quick_digest_buffer(bytes(9001))
