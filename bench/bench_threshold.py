"""pHash threshold study: precision/recall of "same picture" against Hamming distance.

Builds the labelled library of tests/dedup_dataset.py (every readable sample image plus
re-encodes, resizes, PNG conversions, EXIF-stripped and rotated-with-tag copies as
positives; crops, burst-like shifts and strong colour edits as decoys), hashes every
file after EXIF orientation, and reports for thresholds 0..16:

* pair level: every pair of distinct contents, positive if same picture;
* cluster level: what the user sees - core.dedup.find_duplicates (complete linkage,
  exact groups reported once) turned into pairs and scored the same way;
* per transform: how far positives land and how close decoys come.

Run:  .venv/bin/python bench/bench_threshold.py [--keep DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.dedup import COLOUR_TOLERANCE, colour_distance, find_duplicates, informative  # noqa: E402
from core.records import FileRecord  # noqa: E402
from tests.dedup_dataset import (  # noqa: E402
    DECOYS,
    POSITIVES,
    Truth,
    build_library,
    score_pairs,
    signatures_file,
)

THRESHOLDS = range(0, 17)


def _hash(path: str) -> tuple[str, str] | tuple[None, None]:
    try:
        return signatures_file(Path(path))
    except Exception:  # noqa: BLE001 - unreadable files get no pHash, as in the catalog
        return None, None


def hash_all(truth: Truth, workers: int) -> tuple[dict[str, str | None], dict[str, str | None]]:
    paths = [it.path for it in truth.items if it.role != "empty"]
    ctx = multiprocessing.get_context("spawn")  # rawpy/OpenMP is not fork-safe
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        sigs = list(pool.map(_hash, [str(truth.root / p) for p in paths], chunksize=8))
    ph = {p: s[0] for p, s in zip(paths, sigs, strict=True)}
    col = {p: s[1] for p, s in zip(paths, sigs, strict=True)}
    return ph, col


def ham(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def records(truth: Truth, ph: dict[str, str | None]) -> list[FileRecord]:
    out = []
    for k, it in enumerate(sorted(truth.items, key=lambda i: i.path)):
        st = os.stat(truth.root / it.path)
        out.append(
            FileRecord(
                id=k, path=it.path, kind="image", size=st.st_size, sha256=it.sha256,
                phash=ph.get(it.path), device=st.st_dev, inode=st.st_ino,
            )
        )  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", type=Path, help="build the library here and keep it")
    ap.add_argument("--out", type=Path, help="also write the markdown report to this file")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    tmp = None
    dest = args.keep
    if dest is None:
        tmp = tempfile.TemporaryDirectory(prefix="twinlens-threshold-")
        dest = Path(tmp.name)
    t0 = time.perf_counter()
    truth = build_library(dest)
    t1 = time.perf_counter()
    ph, col = hash_all(truth, args.workers)
    t2 = time.perf_counter()
    by_path = truth.by_path()
    units = truth.units()
    nfiles = len(truth.items)
    say(f"library: {nfiles} files, {len(units)} distinct contents; built in {t1 - t0:.1f} s, "
        f"hashed in {t2 - t1:.1f} s ({args.workers} processes)")  # fmt: skip

    # ---- pair level over distinct contents
    uh = {sha: ph.get(it.path) for sha, it in units.items()}
    scored = [(sha, it) for sha, it in units.items() if it.hashable and uh[sha]]
    uc = {sha: col.get(it.path) for sha, it in units.items()}
    pos_d: list[int] = []
    neg_d: list[int] = []
    pos_c: list[bool] = []  # colour check passes
    neg_c: list[bool] = []
    neg_natural: list[int] = []
    n_ign = 0
    for a_i, (sa, a) in enumerate(scored):
        for sb, b in scored[a_i + 1 :]:
            lab = truth.label(a, b)
            if lab == "ignore":
                n_ign += 1
                continue
            d = ham(uh[sa], uh[sb])  # type: ignore[arg-type]
            ok = colour_distance(uc[sa], uc[sb]) <= COLOUR_TOLERANCE  # type: ignore[arg-type]
            if lab == "same":
                pos_d.append(d)
                pos_c.append(ok)
            else:
                neg_d.append(d)
                neg_c.append(ok)
                if a.role != "decoy" and b.role != "decoy":
                    neg_natural.append(d)
    say(f"pairs: {len(pos_d)} positive, {len(neg_d)} negative, {n_ign} not scored")
    say()
    say("### Pair level (every pair of distinct contents)")
    say()
    say(f"pHash alone, and pHash + colour check (tolerance {COLOUR_TOLERANCE:g}):")
    say()
    say("| threshold | TP | FP | FN | precision | recall | +colour TP | FP | precision | recall |")
    say("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in THRESHOLDS:
        tp = sum(d <= t for d in pos_d)
        fp = sum(d <= t for d in neg_d)
        prec = tp / (tp + fp) if tp + fp else 1.0
        tpc = sum(d <= t and c for d, c in zip(pos_d, pos_c, strict=True))
        fpc = sum(d <= t and c for d, c in zip(neg_d, neg_c, strict=True))
        precc = tpc / (tpc + fpc) if tpc + fpc else 1.0
        say(f"| {t} | {tp} | {fp} | {len(pos_d) - tp} | {prec:.4f} | {tp / len(pos_d):.4f} "
            f"| {tpc} | {fpc} | {precc:.4f} | {tpc / len(pos_d):.4f} |")  # fmt: skip

    # ---- per transform: distance original -> variant
    say()
    say("### Distance from the original, per variant")
    say()
    say(
        "| variant | label | n | median | p95 | max | min | share <= 8 | colour: median | max | min |"
    )
    say("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in (*POSITIVES, *DECOYS):
        ds = []
        cs = []
        for it in truth.items:
            if it.transform != name or not ph.get(it.path):
                continue
            orig = by_path[it.source]  # type: ignore[index]
            if ph.get(orig.path):
                ds.append(ham(ph[it.path], ph[orig.path]))  # type: ignore[arg-type]
                cs.append(colour_distance(col[it.path], col[orig.path]))  # type: ignore[arg-type]
        if not ds:
            continue
        ds.sort()
        p95 = ds[min(len(ds) - 1, int(0.95 * len(ds)))]
        lab = "same" if name in POSITIVES else "decoy"
        share = sum(d <= 8 for d in ds) / len(ds)
        say(f"| {name} | {lab} | {len(ds)} | {statistics.median(ds):g} | {p95} | {ds[-1]} | "
            f"{ds[0]} | {share:.3f} | {statistics.median(cs):.1f} | {max(cs):.1f} | {min(cs):.1f} |")  # fmt: skip
    # Negatives that come closest, for the record.
    say()
    say("Closest natural negatives (two different sample pictures, no decoy): "
        + ", ".join(str(d) for d in sorted(neg_natural)[:10]))  # fmt: skip

    # ---- what the user sees: find_duplicates at each threshold
    recs = records(truth, ph)
    path_of = {r.id: r.path for r in recs}
    say()
    say("### Cluster level (core.dedup.find_duplicates, complete linkage)")
    say()
    say("| threshold | colour check | perceptual precision | recall | FP pairs | decoys reported | "
        "exact precision | exact recall | time |")  # fmt: skip
    say("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    want_exact = set(truth.exact_sets())
    colour_of = {r.id: col.get(r.path) for r in recs if col.get(r.path)}
    for t, use_colour in [(t, u) for t in THRESHOLDS for u in (False, True)]:
        s0 = time.perf_counter()
        groups = find_duplicates(recs, threshold=t, colour_of=colour_of if use_colour else None)
        el = time.perf_counter() - s0
        pairs = []
        got_exact = set()
        for g in groups:
            paths = [path_of[m.file_id] for m in g.members]
            if g.type == "exact":
                got_exact.add(frozenset(paths))
            else:
                pairs += [(a, b) for k, a in enumerate(paths) for b in paths[k + 1 :]]
        s = score_pairs(pairs, truth)
        ep = len(got_exact & want_exact) / len(got_exact) if got_exact else 1.0
        er = len(got_exact & want_exact) / len(want_exact) if want_exact else 1.0
        say(f"| {t} | {'yes' if use_colour else 'no'} | {s['precision']:.4f} | {s['recall']:.4f} | {s['fp']} | "
            f"{s['decoys_reported']} | {ep:.3f} | {er:.3f} | {el * 1000:.0f} ms |")  # fmt: skip
    # What is still reported wrongly at the default threshold with the colour check.
    groups = find_duplicates(recs, threshold=8, colour_of=colour_of)
    pos, ign = truth.labelled_pairs()
    wrong: dict[tuple[str, str], int] = {}
    for g in groups:
        if g.type != "perceptual":
            continue
        ms = [by_path[path_of[m.file_id]] for m in g.members]
        for k, a in enumerate(ms):
            for b in ms[k + 1 :]:
                pair = frozenset((a.sha256, b.sha256))
                if pair not in pos and pair not in ign:
                    kinds = tuple(sorted((a.transform or a.role, b.transform or b.role)))
                    wrong[kinds] = wrong.get(kinds, 0) + 1  # type: ignore[index]
    say()
    say("False-positive pairs at threshold 8 with the colour check, by kind: "
        + (", ".join(f"{a}+{b}: {n}" for (a, b), n in sorted(wrong.items())) or "none"))  # fmt: skip
    missed: dict[str, int] = {}
    got = set()
    for g in groups:
        if g.type == "perceptual":
            ss = [by_path[path_of[m.file_id]].sha256 for m in g.members]
            got |= {frozenset((x, y)) for k, x in enumerate(ss) for y in ss[k + 1 :]}
    for pair in pos - got:
        x, y = (units[u] for u in pair)
        key = " / ".join(sorted({x.source or x.path, y.source or y.path}))
        missed[key] = missed.get(key, 0) + 1
    say("Missed positive pairs at threshold 8 with the colour check, by source picture: "
        + (", ".join(f"{k}: {n}" for k, n in sorted(missed.items())) or "none"))  # fmt: skip
    uninf = sum(1 for h in ph.values() if h and not informative(h))
    say()
    say(f"Files with an uninformative (flat-image) hash, skipped by perceptual dedup: {uninf}")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
