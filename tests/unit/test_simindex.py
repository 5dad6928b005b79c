"""core.simindex must return exactly the brute-force pairs, on uniform and on skewed data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.simindex import SimilarityIndex, hashes_from_hex, pairs_within

RADII = (0, 1, 5, 8, 10)
MAX_RADIUS = max(RADII)


# --------------------------------------------------------------------------- data


def _flip(rng: np.random.Generator, h: int, d: int) -> int:
    """``h`` with exactly ``d`` distinct bits flipped."""
    for b in rng.choice(64, size=d, replace=False):
        h ^= 1 << int(b)
    return h


def _clusters(rng: np.random.Generator, n: int) -> np.ndarray:
    """Near-duplicate clusters: a seed and 1-5 variants at distances 0..12 from it."""
    out: list[int] = []
    while len(out) < n:
        seed = int(rng.integers(0, 2**64, dtype=np.uint64))
        out.append(seed)
        for _ in range(int(rng.integers(1, 6))):
            out.append(_flip(rng, seed, int(rng.integers(0, 13))))
    return np.array(out[:n], dtype=np.uint64)


def _phash_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """Correlated, unbalanced bits as in real pHashes: a low-rank Gaussian, thresholded
    at uneven levels, a near-constant "DC" bit, and a big family around one template
    (dark or flat pictures all hash alike)."""
    latent = rng.normal(size=(n, 6)) @ rng.normal(size=(64, 6)).T
    bits = latent + 0.6 * rng.normal(size=(n, 64)) > rng.normal(0.0, 1.2, size=64)
    bits[:, 0] = rng.random(n) < 0.98
    family = n // 10
    template = rng.random(64) < 0.5
    noise = rng.random((family, 64)) < 0.03
    bits[:family] = template ^ noise
    bits[family : family + 150] = template  # 150 identical hashes
    packed = np.packbits(bits, axis=1, bitorder="little")
    return packed.view("<u8").ravel().astype(np.uint64)


def _sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [
        rng.integers(0, 2**64, size=n * 2 // 5, dtype=np.uint64),
        _clusters(rng, n * 3 // 10),
        _phash_like(rng, n - n * 2 // 5 - n * 3 // 10),
    ]
    h = np.concatenate(parts)
    return h[rng.permutation(h.size)]


def _brute_pairs(h: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All i < j within ``radius``, row block by row block (upper triangle only)."""
    ii, jj, dd = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, np.uint8)]
    block = 250
    for i0 in range(0, h.size, block):
        rows = h[i0 : i0 + block]
        d = np.bitwise_count(rows[:, None] ^ h[None, i0:])
        r, c = np.nonzero(d <= radius)
        keep = c > r  # column offset i0: j = i0 + c, i = i0 + r
        ii.append(r[keep] + i0)
        jj.append(c[keep] + i0)
        dd.append(d[r[keep], c[keep]])
    i, j, dist = np.concatenate(ii), np.concatenate(jj), np.concatenate(dd)
    order = np.lexsort((j, i))
    return i[order].astype(np.int64), j[order].astype(np.int64), dist[order].astype(np.uint8)


def _brute_query(db: np.ndarray, q: np.ndarray, radius: int):  # type: ignore[no-untyped-def]
    qq, ii, dd = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, np.uint8)]
    block = 250
    for q0 in range(0, q.size, block):
        d = np.bitwise_count(q[q0 : q0 + block, None] ^ db[None, :])
        qi, di = np.nonzero(d <= radius)  # row-major: sorted by (qi, di)
        qq.append(qi + q0)
        ii.append(di)
        dd.append(d[qi, di])
    return (
        np.concatenate(qq).astype(np.int64),
        np.concatenate(ii).astype(np.int64),
        np.concatenate(dd).astype(np.uint8),
    )


def _assert_same(got, want) -> None:  # type: ignore[no-untyped-def]
    assert [a.dtype for a in got] == [np.dtype(np.int64), np.dtype(np.int64), np.dtype(np.uint8)]
    if not all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)):
        # Say what differs, not only where: a flake seen once in CI (radius 10, equal
        # sizes, 0.2% of positions) could not be reproduced in 160 runs since.
        g = list(zip(got[0].tolist(), got[1].tolist(), got[2].tolist(), strict=True))
        w = list(zip(want[0].tolist(), want[1].tolist(), want[2].tolist(), strict=True))
        gs, ws = set(g), set(w)
        pytest.fail(
            f"{len(g)} pairs, {len(w)} expected: missing {sorted(ws - gs)[:5]} "
            f"({len(ws - gs)}), extra {sorted(gs - ws)[:5]} ({len(gs - ws)}), "
            f"repeated {len(g) - len(gs)}, in order {g == sorted(g)}"
        )


# --------------------------------------------------------------------------- 50k exactness


@pytest.fixture(scope="module")
def sample_50k() -> np.ndarray:
    return _sample(50_000, seed=20240501)


@pytest.fixture(scope="module")
def brute_50k(sample_50k: np.ndarray):  # type: ignore[no-untyped-def]
    return _brute_pairs(sample_50k, MAX_RADIUS)


def test_sample_is_hard_enough(sample_50k: np.ndarray, brute_50k) -> None:  # type: ignore[no-untyped-def]
    # Guards the data, not the code: the exactness tests below mean little without
    # duplicates, pairs at every distance up to the radius, and crowded buckets.
    _, _, dist = brute_50k
    assert set(range(MAX_RADIUS + 1)) <= set(np.unique(dist).tolist())
    assert np.count_nonzero(dist == 0) > 10_000
    first16 = sample_50k & np.uint64(0xFFFF)
    assert np.unique(first16, return_counts=True)[1].max() > 500


@pytest.mark.slow
@pytest.mark.parametrize("radius", RADII)
def test_pairs_within_equals_brute_force_50k(sample_50k, brute_50k, radius: int) -> None:  # type: ignore[no-untyped-def]
    i, j, dist = brute_50k
    keep = dist <= radius
    _assert_same(pairs_within(sample_50k, radius), (i[keep], j[keep], dist[keep]))


@pytest.mark.slow
def test_query_equals_brute_force_50k(sample_50k: np.ndarray) -> None:
    db, batch = sample_50k[:45_000], sample_50k[45_000:]
    index = SimilarityIndex(db)
    qi, di, dist = _brute_query(db, batch, MAX_RADIUS)
    for radius in RADII:
        keep = dist <= radius
        _assert_same(index.query(batch, radius), (qi[keep], di[keep], dist[keep]))


def test_single_thread_gives_the_same_pairs(sample_50k: np.ndarray) -> None:
    h = sample_50k[:8000]
    _assert_same(pairs_within(h, 10, threads=1), pairs_within(h, 10, threads=2))


def test_large_radius_on_medium_sample(sample_50k: np.ndarray) -> None:
    # Radius 20 probes 5 bits per key: more masks than occupied buckets, the other path.
    h = sample_50k[:2500]
    _assert_same(pairs_within(h, 20), _brute_pairs(h, 20))


# --------------------------------------------------------------------------- properties

_hash = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def _near_duplicates(draw: st.DrawFn) -> np.ndarray:
    """A few bases and many copies of them with a handful of bits flipped."""
    bases = draw(st.lists(_hash, min_size=1, max_size=5))
    items = draw(
        st.lists(
            st.tuples(st.integers(0, len(bases) - 1), st.lists(st.integers(0, 63), max_size=14)),
            max_size=40,
        )
    )
    out = []
    for base, bits in items:
        h = bases[base]
        for b in bits:
            h ^= 1 << b
        out.append(h)
    extra = draw(st.lists(_hash, max_size=5))
    return np.array(out + extra, dtype=np.uint64)


@settings(max_examples=150, deadline=None)
@given(h=_near_duplicates(), radius=st.integers(0, 70), threads=st.sampled_from([1, 2]))
def test_pairs_within_property(h: np.ndarray, radius: int, threads: int) -> None:
    _assert_same(pairs_within(h, radius, threads=threads), _brute_pairs(h, radius))


@settings(max_examples=150, deadline=None)
@given(db=_near_duplicates(), batch=_near_duplicates(), radius=st.integers(0, 70))
def test_query_property(db: np.ndarray, batch: np.ndarray, radius: int) -> None:
    _assert_same(SimilarityIndex(db).query(batch, radius), _brute_query(db, batch, radius))


# --------------------------------------------------------------------------- API


def test_ids_are_reported_instead_of_positions() -> None:
    h = np.array([0b1111, 0b0111, 1 << 40, 0b1111], dtype=np.uint64)
    ids = np.array([70, 50, 60, 10])
    index = SimilarityIndex(h, ids)
    qi, got, dist = index.query(np.array([0b1110], dtype=np.uint64), 2)
    assert qi.tolist() == [0, 0, 0]
    assert got.tolist() == [10, 50, 70]  # sorted by id
    assert dist.tolist() == [1, 2, 1]
    i, j, d = index.pairs_within(1)
    assert list(zip(i.tolist(), j.tolist(), d.tolist(), strict=True)) == [
        (70, 50, 1),
        (70, 10, 0),
        (50, 10, 1),
    ]


def test_add_equals_building_at_once() -> None:
    h = _sample(6000, seed=7)
    grown = SimilarityIndex(h[:4000], np.arange(4000) + 100)
    grown.add(h[4000:], np.arange(4000, 6000) + 100)
    whole = SimilarityIndex(h, np.arange(6000) + 100)
    batch = _sample(300, seed=8)
    _assert_same(grown.query(batch, 8), whole.query(batch, 8))
    _assert_same(grown.pairs_within(8), whole.pairs_within(8))
    assert len(grown) == 6000


def test_add_to_empty_index_and_id_consistency() -> None:
    index = SimilarityIndex(np.empty(0, np.uint64))
    assert [a.size for a in index.query(np.array([1], np.uint64), 3)] == [0, 0, 0]
    index.add(np.array([1, 3], np.uint64))
    assert index.query(np.array([2], np.uint64), 1)[1].tolist() == [1]
    assert index.query(np.array([2], np.uint64), 2)[1].tolist() == [0, 1]
    with pytest.raises(ValueError):
        index.add(np.array([5], np.uint64), ids=[9])
    with_ids = SimilarityIndex(np.empty(0, np.uint64), ids=[])
    with_ids.add(np.array([5, 7], np.uint64), ids=[30, 40])
    with_ids.add(np.empty(0, np.uint64))
    assert with_ids.query(np.array([5], np.uint64), 1)[1].tolist() == [30, 40]
    assert with_ids.ids.tolist() == [30, 40]


def test_signed_bigint_hashes_are_reinterpreted() -> None:
    u = np.array([2**63 + 5, 2**63 + 4, 3], dtype=np.uint64)
    _assert_same(pairs_within(u.view(np.int64), 1), pairs_within(u, 1))
    assert pairs_within([2**64 - 1, 2**64 - 2], 1)[0].tolist() == [0]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        pairs_within(np.zeros(3, np.uint64), -1)
    with pytest.raises(ValueError):
        pairs_within(np.zeros((2, 2), np.uint64), 1)
    with pytest.raises(ValueError):
        pairs_within(np.array([-1, 2], np.int32), 1)
    with pytest.raises(ValueError):
        pairs_within([2**64, 2], 1)
    with pytest.raises(TypeError):
        pairs_within(np.zeros(3, np.float64), 1)
    with pytest.raises(ValueError):
        SimilarityIndex(np.zeros(3, np.uint64), ids=[1, 2])


def test_tiny_inputs() -> None:
    for h in ([], [42]):
        assert [a.size for a in pairs_within(np.array(h, np.uint64), 10)] == [0, 0, 0]
    i, j, d = pairs_within(np.array([0, 2**64 - 1], np.uint64), 64)
    assert (i.tolist(), j.tolist(), d.tolist()) == ([0], [1], [64])
    assert pairs_within(np.array([0, 2**64 - 1], np.uint64), 63)[0].size == 0


def test_hashes_from_hex_matches_imagehash_strings() -> None:
    h = hashes_from_hex(["ffffffffffffffff", "8000000000000001", "0000000000000000"])
    assert h.dtype == np.uint64
    assert h.tolist() == [2**64 - 1, 2**63 + 1, 0]


def test_a_plain_list_with_the_top_bit_set_keeps_every_bit() -> None:
    # np.asarray([2**63, 1]) is float64: the top-bit hash and its neighbours must still
    # be read exactly when passed as the Sequence[int] the signature allows
    i, j, d = pairs_within([2**63, 1, 2**63 + 1], 1)
    assert sorted(zip(i.tolist(), j.tolist(), d.tolist(), strict=True)) == [(0, 2, 1), (1, 2, 1)]
