"""Exact Hamming range search over 64-bit perceptual hashes.

Multi-index hashing (Norouzi et al., "Fast Exact Search in Hamming Space with
Multi-Index Hashing"): the 64 bits are dealt into ``CHUNKS`` keys of 16 bits. If
``popcount(a ^ b) <= r`` and ``r = CHUNKS * s + e`` (``0 <= e < CHUNKS``), then one of
the first ``e + 1`` keys differs in at most ``s`` bits or one of the others in at
most ``s - 1`` (otherwise the distance would be at least ``r + 1``). So each key has
a probe radius, candidates are only the buckets within that radius, every
candidate is verified on the full 64 bits, and a pair is emitted only from the
first key whose probe radius it meets - the result is exactly the brute-force set,
each pair once.

Buckets are direct-addressed (a counting sort per key, 2**16 + 1 offsets), so
probing a bucket is two array reads. The all-pairs join walks bucket pairs rather
than items: for every non-empty bucket ``v`` and every mask of at most ``s`` bits
it compares bucket ``v`` with bucket ``v ^ mask`` (each unordered bucket pair once),
so the probe count depends on the key space, not on ``n``. The loops are numba
kernels that release the GIL and run on a thread pool.

Which bits go into which key is chosen from the data: real pHashes have bits that
are almost constant (the DC term) and runs of correlated bits, and a key made of
such bits puts most hashes in a few buckets. Dealing the most balanced bits round
robin over the keys keeps buckets closer to uniform; correctness does not depend
on the layout, only speed does.

Hashes are ``numpy.uint64``; ``int64`` arrays (a PostgreSQL ``BIGINT`` column) are
reinterpreted bit for bit.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numba.core.config
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = [
    "CHUNKS",
    "SimilarityIndex",
    "hashes_from_hex",
    "pairs_within",
]

CHUNKS = 4
KEY_BITS = 64 // CHUNKS
NKEYS = 1 << KEY_BITS

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- disk cache


def _cache_probe() -> int:
    return 0


def _numba_can_cache() -> bool:
    """Whether numba has a folder to keep this module's machine code in. It refuses to
    define a ``cache=True`` function without one ("cannot cache function: no locator
    available"), which would make this module fail to import."""
    try:
        njit(cache=True)(_cache_probe)
    except RuntimeError as exc:
        if "cannot cache" not in str(exc):
            raise
        return False
    return True


def _own_folder(path: str) -> bool:
    """``path`` is, or is now, a folder of this user's that no one else may write: machine
    code is loaded from the cache, so a folder under a shared temp dir that someone
    else made (or can write to) is not used."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            return False
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
        tempfile.TemporaryFile(dir=path).close()
    except (OSError, AttributeError):  # AttributeError: no os.getuid (Windows)
        return False
    return True


def _disk_cache() -> bool:
    """Whether the kernels below keep their machine code on disk (``cache=True``).

    Where numba looks first is NUMBA_CACHE_DIR (the image sets /data/numba-cache), then
    beside this file, then the user's cache folder. A container run as another user
    (the owner of the library's share, README) may be able to write none of them; then
    the cache is a folder of this user's in the temp dir (compiled again after the
    container is re-created), and failing that each process compiles the kernels anew
    (a few seconds) rather than fail to import.
    """
    if _numba_can_cache():
        return True
    where = (
        getattr(numba.core.config, "CACHE_DIR", None) or "beside the source or in the user's cache"
    )
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    fallback = os.path.join(tempfile.gettempdir(), f"twinlens-numba-{uid}")
    if _own_folder(fallback):
        os.environ["NUMBA_CACHE_DIR"] = fallback
        numba.core.config.reload_config()
        if _numba_can_cache():
            log.warning("numba cannot write its cache (%s); using %s", where, fallback)
            return True
    log.warning(
        "numba cannot write its cache (%s): the kernels are compiled in each process", where
    )
    return False


_CACHE = _disk_cache()


# --------------------------------------------------------------------------- kernels


@intrinsic
def _popcount(typingctx, x):  # type: ignore[no-untyped-def]
    """POPCNT through LLVM's ctpop (numba has no popcount of its own)."""
    if not isinstance(x, types.Integer) or x.bitwidth != 64:
        return None
    sig = types.int64(x)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, [args[0]])

    return sig, codegen


@njit(nogil=True, cache=_CACHE)
def _key(h, bits, k):  # type: ignore[no-untyped-def]
    key = np.uint64(0)
    one = np.uint64(1)
    for t in range(bits.shape[1]):
        key |= ((h >> bits[k, t]) & one) << np.uint64(t)
    return np.int64(key)


@njit(nogil=True, cache=_CACHE)
def _build_chunk(h, bits, k, hs, perm, off):  # type: ignore[no-untyped-def]
    n = h.shape[0]
    keys = np.empty(n, np.int64)
    counts = np.zeros(NKEYS + 1, np.int64)
    for p in range(n):
        key = _key(h[p], bits, k)
        keys[p] = key
        counts[key + 1] += 1
    for v in range(NKEYS):
        counts[v + 1] += counts[v]
    off[k, :] = counts
    pos = counts[:NKEYS].copy()
    for p in range(n):  # stable: positions stay ascending inside a bucket
        key = keys[p]
        hs[k, pos[key]] = h[p]
        perm[k, pos[key]] = p
        pos[key] += 1


@njit(nogil=True, cache=_CACHE)
def _grow(i_out, j_out, d_out):  # type: ignore[no-untyped-def]
    cap = 2 * i_out.shape[0]
    i2 = np.empty(cap, np.int64)
    j2 = np.empty(cap, np.int64)
    d2 = np.empty(cap, np.uint8)
    n = i_out.shape[0]
    i2[:n] = i_out
    j2[:n] = j_out
    d2[:n] = d_out
    return i2, j2, d2


@njit(nogil=True, cache=_CACHE)
def _first_key(z, k, cmask, crad):  # type: ignore[no-untyped-def]
    """True when no key before ``k`` meets its probe radius for difference ``z``."""
    for j in range(k):
        if crad[j] >= 0 and _popcount(z & cmask[j]) <= crad[j]:
            return False
    return True


@njit(nogil=True, cache=_CACHE)
def _self_join(hs, perm, off, k, v0, v1, cands, xor_mode, cmask, crad, r, hits):  # type: ignore[no-untyped-def]
    """Pairs first found through key ``k`` among buckets ``v0 <= v < v1``.

    ``xor_mode``: ``cands`` are masks (bucket ``v`` meets ``v ^ mask``); otherwise
    ``cands`` are the sorted non-empty keys, filtered by distance - cheaper when the
    probe radius is so large that masks outnumber the occupied buckets.
    """
    i_out = np.empty(1024, np.int64)
    j_out = np.empty(1024, np.int64)
    d_out = np.empty(1024, np.uint8)
    n_out = 0
    sk = crad[k]
    nc = cands.shape[0]
    for v in range(v0, v1):
        a0 = off[k, v]
        a1 = off[k, v + 1]
        if a0 == a1:
            continue
        t0 = 0 if xor_mode else np.searchsorted(cands, v)
        for t in range(t0, nc):
            if xor_mode:
                w = v ^ cands[t]
                if w < v:
                    continue
            else:
                w = cands[t]
                if _popcount(np.uint64(v ^ w)) > sk:
                    continue
            b0 = off[k, w]
            b1 = off[k, w + 1]
            if b0 == b1:
                continue
            for p in range(a0, a1):
                x = hs[k, p]
                q0 = p + 1 if w == v else b0
                # Collect hits in a fixed buffer: growing the outputs inside this loop
                # (reassigning arrays) makes numba's loop ~10x slower.
                nh = 0
                for q in range(q0, b1):
                    if _popcount(x ^ hs[k, q]) <= r:
                        hits[nh] = q
                        nh += 1
                for t2 in range(nh):
                    q = hits[t2]
                    z = x ^ hs[k, q]
                    if not _first_key(z, k, cmask, crad):
                        continue
                    if n_out == i_out.shape[0]:
                        i_out, j_out, d_out = _grow(i_out, j_out, d_out)
                    a = perm[k, p]
                    b = perm[k, q]
                    i_out[n_out] = min(a, b)
                    j_out[n_out] = max(a, b)
                    d_out[n_out] = _popcount(z)
                    n_out += 1
    return i_out[:n_out].copy(), j_out[:n_out].copy(), d_out[:n_out].copy()


@njit(nogil=True, cache=_CACHE)
def _query(batch, q0, q1, bits, hs, perm, off, cands, ncands, xor_mode, cmask, crad, r, hits):  # type: ignore[no-untyped-def]
    i_out = np.empty(1024, np.int64)
    j_out = np.empty(1024, np.int64)
    d_out = np.empty(1024, np.uint8)
    n_out = 0
    m = bits.shape[0]
    for qi in range(q0, q1):
        x = batch[qi]
        for k in range(m):
            if crad[k] < 0:
                continue
            v = _key(x, bits, k)
            for t in range(ncands[k]):
                if xor_mode[k]:
                    w = v ^ cands[k, t]
                else:
                    w = cands[k, t]
                    if _popcount(np.uint64(v ^ w)) > crad[k]:
                        continue
                nh = 0
                for q in range(off[k, w], off[k, w + 1]):
                    if _popcount(x ^ hs[k, q]) <= r:
                        hits[nh] = q
                        nh += 1
                for t2 in range(nh):
                    q = hits[t2]
                    z = x ^ hs[k, q]
                    if not _first_key(z, k, cmask, crad):
                        continue
                    if n_out == i_out.shape[0]:
                        i_out, j_out, d_out = _grow(i_out, j_out, d_out)
                    i_out[n_out] = qi
                    j_out[n_out] = perm[k, q]
                    d_out[n_out] = _popcount(z)
                    n_out += 1
    return i_out[:n_out].copy(), j_out[:n_out].copy(), d_out[:n_out].copy()


# --------------------------------------------------------------------------- planning


def _as_hashes(values: np.ndarray | Sequence[int]) -> np.ndarray:
    """A contiguous 1-D uint64 array; int64 is reinterpreted, negatives elsewhere refused."""
    # A plain list of Python ints mixing values of 2**63 and above with smaller ones comes
    # out of np.asarray as float64 (precision lost): take lists as objects, checked below.
    arr = np.asarray(values) if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"hashes must be 1-D, got shape {arr.shape}")
    if arr.dtype == np.uint64:
        pass
    elif arr.dtype == np.int64:
        arr = arr.view(np.uint64)
    elif arr.size == 0:
        arr = arr.astype(np.uint64)
    elif arr.dtype == object or arr.dtype.kind in "iu":
        ints = [int(v) for v in arr.tolist()]
        if any(v < 0 or v >> 64 for v in ints):
            raise ValueError("hashes must fit in 64 unsigned bits")
        arr = np.array(ints, dtype=np.uint64)
    else:
        raise TypeError(f"hashes must be integers, got {arr.dtype}")
    return np.ascontiguousarray(arr)


def _check_radius(radius: int) -> int:
    r = int(radius)
    if r != radius or r < 0:
        raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
    return min(r, 64)


def _key_radii(radius: int) -> np.ndarray:
    """Probe radius of each key (-1: key not probed), by the refined pigeonhole bound."""
    s, e = divmod(radius, CHUNKS)
    radii = [min(s if k <= e else s - 1, KEY_BITS) for k in range(CHUNKS)]
    return np.array(radii, dtype=np.int64)


@lru_cache(maxsize=KEY_BITS + 1)
def _masks(s: int) -> np.ndarray:
    """All KEY_BITS-bit masks with at most ``s`` bits set, fewest bits first."""
    if s < 0:
        return np.empty(0, np.int64)
    allv = np.arange(NKEYS, dtype=np.int64)
    pc = np.bitwise_count(allv)
    sel = allv[pc <= s]
    return sel[np.argsort(pc[sel], kind="stable")]


def _bit_layout(h: np.ndarray) -> np.ndarray:
    """Bit positions of each key, shape (CHUNKS, KEY_BITS), uint64.

    Bits are ranked by how evenly they split the data (a sample of it) and dealt
    snake-wise, so every key gets a share of the informative bits.
    """
    step = max(1, h.size // 65536)
    sample = h[::step]
    if sample.size:
        ones = np.array(
            [np.count_nonzero((sample >> np.uint64(b)) & np.uint64(1)) for b in range(64)]
        )
        balance = np.abs(ones / sample.size - 0.5)
    else:
        balance = np.zeros(64)
    order = np.argsort(balance, kind="stable")
    layout: list[list[int]] = [[] for _ in range(CHUNKS)]
    for rank, bit in enumerate(order):
        rnd, pos = divmod(rank, CHUNKS)
        layout[pos if rnd % 2 == 0 else CHUNKS - 1 - pos].append(int(bit))
    return np.array([sorted(bits) for bits in layout], dtype=np.uint64)


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- public API


class SimilarityIndex:
    """A multi-index over 64-bit hashes for exact Hamming range queries.

    ``ids`` (int64, one per hash) are what results report; without them a hash's
    id is its position. Building is O(n) (four counting sorts); ~56 bytes per hash.
    """

    def __init__(
        self,
        hashes: np.ndarray | Sequence[int],
        ids: np.ndarray | Sequence[int] | None = None,
        *,
        threads: int | None = None,
    ) -> None:
        self.threads = threads or _default_threads()
        self._ids: np.ndarray | None = None
        self._set(_as_hashes(hashes), self._check_ids(ids, len(hashes)))

    @staticmethod
    def _check_ids(ids: np.ndarray | Sequence[int] | None, n: int) -> np.ndarray | None:
        if ids is None:
            return None
        arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64))
        if arr.shape != (n,):
            raise ValueError(f"ids must have shape ({n},), got {arr.shape}")
        return arr

    def _set(self, h: np.ndarray, ids: np.ndarray | None) -> None:
        n = h.size
        self._h = h
        self._ids = ids
        self._bits = _bit_layout(h)
        self._cmask = np.zeros(CHUNKS, dtype=np.uint64)
        for k in range(CHUNKS):
            for b in self._bits[k]:
                self._cmask[k] |= np.uint64(1) << b
        self._hs = np.empty((CHUNKS, n), dtype=np.uint64)
        self._perm = np.empty((CHUNKS, n), dtype=np.int32)  # positions; n < 2**31
        self._off = np.empty((CHUNKS, NKEYS + 1), dtype=np.int64)
        with ThreadPoolExecutor(min(self.threads, CHUNKS)) as pool:
            list(
                pool.map(
                    lambda k: _build_chunk(h, self._bits, k, self._hs, self._perm, self._off),
                    range(CHUNKS),
                )
            )
        self._occupied: list[np.ndarray | None] = [None] * CHUNKS
        self._max_bucket = int(np.diff(self._off, axis=1).max()) if n else 0

    def __len__(self) -> int:
        return int(self._h.size)

    @property
    def hashes(self) -> np.ndarray:
        """The indexed hashes in insertion order (read-only view)."""
        view = self._h.view()
        view.flags.writeable = False
        return view

    @property
    def ids(self) -> np.ndarray:
        """The id of every indexed hash, in insertion order."""
        return self._ids if self._ids is not None else np.arange(self._h.size, dtype=np.int64)

    def add(
        self, hashes: np.ndarray | Sequence[int], ids: np.ndarray | Sequence[int] | None = None
    ) -> None:
        """Append hashes (and their ids, required when the index was built with ids).

        Rebuilds the index: O(n), about 0.1 s per million hashes, so add in batches.
        """
        new = _as_hashes(hashes)
        new_ids = self._check_ids(ids, new.size)
        merged_ids: np.ndarray | None
        if self._h.size == 0:
            merged_ids = new_ids
        elif new.size == 0:
            merged_ids = self._ids
        elif self._ids is None and new_ids is None:
            merged_ids = None
        elif self._ids is not None and new_ids is not None:
            merged_ids = np.concatenate([self._ids, new_ids])
        else:
            raise ValueError("give ids for added hashes exactly when the index has ids")
        self._set(np.concatenate([self._h, new]), merged_ids)

    def _cands(self, k: int, s: int) -> tuple[np.ndarray, bool]:
        """Masks to probe key ``k`` within ``s`` bits, or the occupied keys if fewer."""
        masks = _masks(s)
        occupied = self._occupied[k]
        if occupied is None:
            occupied = np.flatnonzero(np.diff(self._off[k])).astype(np.int64)
            self._occupied[k] = occupied
        if masks.size <= occupied.size:
            return masks, True
        return occupied, False

    def _map_ids(self, pos: np.ndarray) -> np.ndarray:
        return self._ids[pos] if self._ids is not None else pos

    def query(self, batch: np.ndarray | Sequence[int], radius: int) -> Pairs:
        """Every (query, indexed hash) pair within ``radius`` bits.

        Returns ``(query_idx, index_id, dist)``: int64 positions in ``batch``, int64
        ids of the indexed hashes, uint8 distances; sorted by (query_idx, index_id).
        """
        q = _as_hashes(batch)
        r = _check_radius(radius)
        crad = _key_radii(r)
        if q.size == 0 or self._h.size == 0:
            return _empty()
        chosen = [self._cands(k, int(crad[k])) for k in range(CHUNKS)]
        width = max(1, max(c.size for c, _ in chosen))
        cands = np.zeros((CHUNKS, width), dtype=np.int64)
        ncands = np.zeros(CHUNKS, dtype=np.int64)
        xor_mode = np.zeros(CHUNKS, dtype=np.bool_)
        for k, (c, xm) in enumerate(chosen):
            cands[k, : c.size] = c
            ncands[k] = c.size
            xor_mode[k] = xm
        # Blocks small enough to balance the threads, large enough to amortise a call.
        nblocks = min(q.size, self.threads * 8)
        edges = np.linspace(0, q.size, nblocks + 1).astype(np.int64)

        def run(b: int) -> Pairs:
            return _query(
                q, edges[b], edges[b + 1], self._bits, self._hs, self._perm, self._off,
                cands, ncands, xor_mode, self._cmask, crad, r,
                np.empty(self._max_bucket, np.int64),
            )  # fmt: skip

        parts = self._map(run, range(nblocks))
        qi, pos, dist = _concat(parts)
        ident = self._map_ids(pos)
        order = np.lexsort((ident, qi))
        return qi[order], ident[order], dist[order]

    def pairs_within(self, radius: int) -> Pairs:
        """Every pair of indexed hashes within ``radius`` bits, each pair once.

        Returns ``(i, j, dist)`` as ids, with ``i``'s position before ``j``'s, sorted
        by positions (so by ``(i, j)`` when there are no ids).
        """
        r = _check_radius(radius)
        crad = _key_radii(r)
        n = self._h.size
        if n < 2:
            return _empty()
        tasks = []
        for k in range(CHUNKS):
            if crad[k] < 0:
                continue
            cands, xm = self._cands(k, int(crad[k]))
            # Split the key range so each task holds about the same number of hashes.
            ntask = self.threads * 16
            cuts = np.searchsorted(self._off[k, 1:], np.linspace(0, n, ntask + 1)[1:-1])
            edges = np.unique(np.concatenate([[0], cuts, [NKEYS]]))
            for v0, v1 in zip(edges[:-1], edges[1:], strict=True):
                tasks.append((k, int(v0), int(v1), cands, xm))

        def run(task: tuple[int, int, int, np.ndarray, bool]) -> Pairs:
            k, v0, v1, cands, xm = task
            return _self_join(
                self._hs, self._perm, self._off, k, v0, v1, cands, xm, self._cmask, crad, r,
                np.empty(self._max_bucket, np.int64),
            )  # fmt: skip

        i, j, dist = _concat(self._map(run, tasks))
        order = np.argsort(i * n + j, kind="stable")
        i, j, dist = i[order], j[order], dist[order]
        return self._map_ids(i), self._map_ids(j), dist

    def _map(self, fn, items) -> list[Pairs]:  # type: ignore[no-untyped-def]
        items = list(items)
        if self.threads == 1 or len(items) == 1:
            return [fn(it) for it in items]
        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(fn, items))


def _empty() -> Pairs:
    return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint8)


def _concat(parts: list[Pairs]) -> Pairs:
    if not parts:
        return _empty()
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def pairs_within(
    hashes: np.ndarray | Sequence[int], radius: int, *, threads: int | None = None
) -> Pairs:
    """All pairs ``i < j`` with ``popcount(hashes[i] ^ hashes[j]) <= radius``.

    Returns ``(i, j, dist)`` as int64, int64, uint8 arrays sorted by ``(i, j)``.
    Equal hashes are pairs at distance 0. Exact: the same set as brute force.

    The output is quadratic in a group of equal hashes (10,000 black frames are 50M
    pairs); callers with many equal hashes should search ``np.unique(hashes)`` and
    map back through ``return_inverse``.
    """
    r = _check_radius(radius)
    return SimilarityIndex(hashes, threads=threads).pairs_within(r)


def hashes_from_hex(values: Iterable[str]) -> np.ndarray:
    """uint64 array from 16-hex-digit pHash strings (``str(imagehash.phash(img))``)."""
    return np.array([int(v, 16) for v in values], dtype=np.uint64)
