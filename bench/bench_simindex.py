"""Similarity index: all pairs within 10 bits among 1M 64-bit hashes, and a batch query.

Baseline: faiss-cpu ``IndexBinaryFlat.range_search`` (its range is strict, so it is
asked for ``r + 1``). faiss all-pairs at 1M takes minutes, so it is timed on a
sample of queries against all 1M hashes and extrapolated; the output says so.

    .venv/bin/python bench/bench_simindex.py [--n 1000000] [--faiss-queries 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.simindex import SimilarityIndex, pairs_within  # noqa: E402

RADIUS = 10


def rss_mib() -> float:
    """Peak resident set since the last reset_peak() (VmHWM), else the process peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> bool:
    """Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def flip_bits(rng: np.random.Generator, seeds: np.ndarray, dists: np.ndarray) -> np.ndarray:
    """Each seed with exactly ``dists[i]`` distinct random bits flipped (vectorised)."""
    order = np.argsort(rng.random((seeds.size, 64)), axis=1)  # a random bit order per row
    take = np.arange(64)[None, :] < dists[:, None]
    masks = np.where(take, np.uint64(1) << order.astype(np.uint64), np.uint64(0))
    return seeds ^ np.bitwise_or.reduce(masks, axis=1)


def make_data(n: int, seed: int = 12345) -> np.ndarray:
    """80 % uniform random hashes, 20 % clusters: a seed plus 1-5 variants at 0..12 bits."""
    rng = np.random.default_rng(seed)
    n_clustered = n // 5
    n_seeds = n_clustered // 4
    seeds = rng.integers(0, 2**64, size=n_seeds, dtype=np.uint64)
    owner = rng.integers(0, n_seeds, size=n_clustered - n_seeds)
    variants = flip_bits(rng, seeds[owner], rng.integers(0, 13, size=owner.size))
    uniform = rng.integers(0, 2**64, size=n - n_clustered, dtype=np.uint64)
    h = np.concatenate([uniform, seeds, variants])
    return h[rng.permutation(h.size)]


def faiss_index(h: np.ndarray):  # type: ignore[no-untyped-def]
    import faiss

    index = faiss.IndexBinaryFlat(64)
    index.add(h.view(np.uint8).reshape(-1, 8))
    return index


def faiss_range(index, q: np.ndarray, radius: int):  # type: ignore[no-untyped-def]
    """(query_idx, db_idx, dist) sorted like ours; faiss's radius is exclusive."""
    lims, dist, ids = index.range_search(q.view(np.uint8).reshape(-1, 8), radius + 1)
    qi = np.repeat(np.arange(q.size, dtype=np.int64), np.diff(lims.astype(np.int64)))
    order = np.lexsort((ids, qi))
    return qi[order], ids[order].astype(np.int64), dist[order].astype(np.uint8)


def brute_pairs(h: np.ndarray, radius: int):  # type: ignore[no-untyped-def]
    ii, jj, dd = [], [], []
    for i0 in range(0, h.size, 250):
        d = np.bitwise_count(h[i0 : i0 + 250, None] ^ h[None, i0:])
        r, c = np.nonzero(d <= radius)
        keep = c > r
        ii.append(r[keep] + i0)
        jj.append(c[keep] + i0)
        dd.append(d[r[keep], c[keep]])
    i, j, dist = np.concatenate(ii), np.concatenate(jj), np.concatenate(dd)
    order = np.lexsort((j, i))
    return i[order], j[order], dist[order]


def same(a, b) -> bool:  # type: ignore[no-untyped-def]
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--faiss-queries", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--exact-sample", type=int, default=50_000)
    args = ap.parse_args()
    import faiss
    import numba

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"faiss {faiss.__version__} ({faiss.omp_get_max_threads()} OpenMP threads)"
    )
    print(f"# load average at start: {os.getloadavg()[0]:.2f} (other jobs share the CPUs)")
    rows: list[tuple[str, str, str, str]] = []

    t = time.perf_counter()
    warm = make_data(2000, seed=1)  # compile (or load cached) numba kernels first
    pairs_within(warm, RADIUS)
    SimilarityIndex(warm).query(warm[:10], RADIUS)
    print(f"numba warm-up (compile or cache load): {time.perf_counter() - t:.2f} s")

    h = make_data(args.n)
    batch = make_data(args.batch, seed=999)  # new hashes, partly near the old clusters
    batch[: args.batch // 2] = flip_bits(
        np.random.default_rng(5), h[: args.batch // 2], np.full(args.batch // 2, 4)
    )
    print(f"data: {h.size:,} hashes (20 % in near-duplicate clusters), seed 12345")

    # (1) ours, all pairs at several radii; r=10 is the target.
    peak_reset = reset_peak()
    rss0 = current_rss_mib()
    ours: dict[int, tuple[float, tuple]] = {}
    cpu: dict[str, float] = {}
    for r in (0, 5, 8, RADIUS):
        t, c = time.perf_counter(), time.process_time()
        res = pairs_within(h, r)
        ours[r] = (time.perf_counter() - t, res)
        cpu[f"ours r={r}"] = time.process_time() - c
        print(
            f"ours all-pairs r={r:2d}: {ours[r][0]:6.2f} s wall, {cpu[f'ours r={r}']:6.2f} s CPU, "
            f"{res[0].size:,} pairs"
        )
    rss_ours = rss_mib()
    t_ours, (pi, pj, pd) = ours[RADIUS]

    # (2) faiss IndexBinaryFlat on a sample of queries against all n.
    t = time.perf_counter()
    fidx = faiss_index(h)
    t_fadd = time.perf_counter() - t
    rng = np.random.default_rng(7)
    qsel = np.sort(rng.choice(h.size, size=min(args.faiss_queries, h.size), replace=False))
    t, c = time.perf_counter(), time.process_time()
    fq, fj, fd = faiss_range(fidx, h[qsel], RADIUS)
    t_fq = time.perf_counter() - t
    cpu_fq = time.process_time() - c
    cpu_faiss_all = cpu_fq / qsel.size * h.size
    t_faiss_all_full = (t_fq / qsel.size) * h.size + t_fadd  # range_search of all n
    print(
        f"faiss range_search r<{RADIUS + 1}: {qsel.size:,} queries x {h.size:,} in {t_fq:.2f} s "
        f"({qsel.size / t_fq:,.0f} q/s, {cpu_fq:.2f} s CPU); add {t_fadd:.2f} s. EXTRAPOLATED "
        f"all-pairs (all {h.size:,} as queries): {t_faiss_all_full:.0f} s wall, "
        f"{cpu_faiss_all:.0f} s CPU"
    )
    # Same neighbours for the sampled queries? Ours, from the pair list, both directions.
    keep_self = fj != qsel[fq]
    f_set = set(
        zip(
            qsel[fq[keep_self]].tolist(),
            fj[keep_self].tolist(),
            fd[keep_self].tolist(),
            strict=True,
        )
    )
    in_q = np.zeros(h.size, bool)
    in_q[qsel] = True
    a = in_q[pi]
    b = in_q[pj]
    o_set = set(zip(pi[a].tolist(), pj[a].tolist(), pd[a].tolist(), strict=True)) | set(
        zip(pj[b].tolist(), pi[b].tolist(), pd[b].tolist(), strict=True)
    )
    faiss_agrees = o_set == f_set
    print(
        f"ours == faiss on the {qsel.size:,} sampled queries: {faiss_agrees} ({len(f_set):,} neighbours)"
    )

    rows.append(
        (
            f"all pairs r<={RADIUS}, {h.size:,} hashes",
            f"{t_ours:.2f} s",
            f"~{t_faiss_all_full:.0f} s (extrapolated from {qsel.size:,} queries)",
            f"{t_faiss_all_full / t_ours:.0f}x",
        )
    )
    cpu_ours = cpu[f"ours r={RADIUS}"]
    rows.append(
        (
            "  same, CPU seconds (both threads)",
            f"{cpu_ours:.2f} s",
            f"~{cpu_faiss_all:.0f} s (extrapolated)",
            f"{cpu_faiss_all / cpu_ours:.0f}x",
        )
    )

    # (3) batch of new hashes against the index.
    t = time.perf_counter()
    index = SimilarityIndex(h)
    t_build = time.perf_counter() - t
    index.query(batch[:10], RADIUS)
    t, c = time.perf_counter(), time.process_time()
    mine = index.query(batch, RADIUS)
    t_q = time.perf_counter() - t
    cpu_q = time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    theirs = faiss_range(fidx, batch, RADIUS)
    t_fb = time.perf_counter() - t
    cpu_fb = time.process_time() - c
    t = time.perf_counter()
    brute_q = []
    for q0 in range(0, batch.size, 10):
        d = np.bitwise_count(batch[q0 : q0 + 10, None] ^ h[None, :])
        qi, di = np.nonzero(d <= RADIUS)
        brute_q.append((qi + q0, di, d[qi, di]))
    t_np = time.perf_counter() - t
    brute = tuple(np.concatenate([p[k] for p in brute_q]) for k in range(3))
    batch_ok = same(mine, theirs) and same(mine, brute)
    print(
        f"batch {batch.size:,} x {h.size:,} r<={RADIUS}: ours {t_q * 1000:.1f} ms "
        f"(index build {t_build:.2f} s), faiss {t_fb * 1000:.0f} ms, numpy brute force "
        f"{t_np * 1000:.0f} ms; {mine[0].size:,} matches; all equal: {batch_ok}"
    )
    rows.append(
        (
            f"{batch.size:,} new vs {h.size:,}, r<={RADIUS}",
            f"{t_q * 1000:.1f} ms",
            f"{t_fb * 1000:.0f} ms",
            f"{t_fb / t_q:.0f}x",
        )
    )
    rows.append(
        (
            "  same, CPU seconds",
            f"{cpu_q * 1000:.1f} ms",
            f"{cpu_fb * 1000:.0f} ms",
            f"{cpu_fb / max(cpu_q, 1e-9):.0f}x",
        )
    )
    t = time.perf_counter()
    index.add(batch)
    t_add = time.perf_counter() - t
    del index, fidx

    # (4) exactness against numpy brute force on a sample.
    sample = h[np.sort(rng.choice(h.size, size=min(args.exact_sample, h.size), replace=False))]
    sample[: sample.size // 10] = sample[sample.size // 10 : sample.size // 5]  # duplicates
    t = time.perf_counter()
    ref = brute_pairs(sample, RADIUS)
    t_brute = time.perf_counter() - t
    exact = {}
    for r in (0, 1, 5, 8, RADIUS):
        keep = ref[2] <= r
        exact[r] = same(pairs_within(sample, r), (ref[0][keep], ref[1][keep], ref[2][keep]))
    print(
        f"exactness vs numpy brute force on {sample.size:,} ({ref[0].size:,} pairs at r<={RADIUS}, "
        f"brute {t_brute:.1f} s): {exact}"
    )

    print()
    print("| test | ours | faiss IndexBinaryFlat | faiss / ours |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(
        f"ours all-pairs r={RADIUS}: {t_ours:.2f} s, {pi.size:,} pairs; peak RSS during the "
        f"all-pairs runs {rss_ours:.0f} MiB ({'VmHWM reset before' if peak_reset else 'process peak'}"
        f"; RSS before {rss0:.0f} MiB: interpreter, libraries, data); "
        f"add({batch.size}) to 1M: {t_add:.2f} s; exact vs brute force: {all(exact.values())}; "
        f"vs faiss sample: {faiss_agrees}; batch equal: {batch_ok}"
    )
    print(f"# load average at end: {os.getloadavg()[0]:.2f}")
    ok = all(exact.values()) and faiss_agrees and batch_ok
    print(
        f"targets: all-pairs <= 60 s: {t_ours <= 60}; peak RSS < 2 GiB: {rss_ours < 2048}; "
        f"batch <= 1 s: {t_q <= 1}; exact: {ok}"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
