"""Exact Hamming range search by brute force (numpy popcount), same contract as core.simindex.

Used until ``core.simindex`` exists, and as the reference the faster index is checked
against. Work is done in blocks so memory stays bounded (a block of rows against every
later row), and the Python loop runs once per block, never once per pair.
"""

from __future__ import annotations

import numpy as np

_BLOCK = 1024


def pairs_within(hashes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` with Hamming distance <= ``radius``: (i, j, dist) as int64 arrays."""
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(h)
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    out_d: list[np.ndarray] = []
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        block = h[start:stop, None]
        rest = h[None, start:]
        dist = np.bitwise_count(block ^ rest)
        # Keep only j > i: within the block's own columns mask the lower triangle.
        rows, cols = np.nonzero(dist <= radius)
        i = rows + start
        j = cols + start
        keep = j > i
        out_i.append(i[keep].astype(np.int64))
        out_j.append(j[keep].astype(np.int64))
        out_d.append(dist[rows[keep], cols[keep]].astype(np.int64))
    if not out_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), empty.copy()
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)
