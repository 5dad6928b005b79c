"""Peak memory (RSS) of the embedded default's heavy passes on a large SQLite catalog.

    .venv/bin/python bench/bench_memory.py build --files 500000 --dir /tmp/mem500k
    .venv/bin/python bench/bench_memory.py run --dir /tmp/mem500k [--code /tmp/wt-scale]
    .venv/bin/python bench/bench_memory.py run --dir /tmp/mem500k --only dedup-full --trace

``build`` writes a library of sparse files (no disk blocks: an unchanged rescan opens no
file) and its catalog, as a scan would leave it, without reading anything: the grouping
benchmark's folders and names (RAW+JPEG, Live Photos, Takeout, Pixel, singles), the dedup
benchmark's hashes (random pHashes, 5% byte copies, 5% near variants), real stat values.

``run`` copies that catalog and runs each pass in a fresh process, in this order: grouping
from scratch, grouping again (nothing changes), dedup full from scratch, dedup full again,
an incremental dedup pass after 10 changed files, an unchanged rescan's plan (walk and
diff), a full rescan's (``full-plan``: every file to read again), the unchanged rescan's
left-over sweep (``advance`` past the catalog phase), what a scan prints at its end
(``scan-summary``: ``core.report.summary``) and its ``--json`` report of every file,
group and duplicate (``scan-report``: ``core.report.build``), and a first scan's plan
(the catalog emptied first: every walked file is new). Each process reports
its RSS before the pass (imports, numba warmed up) and the peak during it (VmHWM, reset
by /proc/self/clear_refs), and writes the groups and duplicates it leaves to a JSON file
so that two versions of the code can be compared. ``--code`` runs another checkout's
code (a git worktree of the old version); ``--trace`` adds tracemalloc's largest holders
at the pass's peak (slow: a few times the pass's time); ``--reuse --only PASS`` runs one
pass again on the catalog the last run left.

    .venv/bin/python bench/bench_memory.py rescan --dir /tmp/mem1m --against /tmp/wt-old --repeat 2

``rescan`` runs the unchanged rescan's plan alone (the peak of the embedded default),
``--against``'s code and this one's (``--code``) in turns, each in a fresh process on a
fresh copy of the catalog, and prints both side by side with the load average.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PASSES = (
    "group-full",
    "group-again",
    "dedup-full",
    "dedup-again",
    "dedup-incremental",
    "rescan-plan",
    "full-plan",
    "rescan-sweep",
    "scan-summary",
    "scan-report",
    "first-plan",  # last: it empties the catalog
)


def _status(field: str) -> int:
    """A /proc/self/status value in kB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5\n")  # resets VmHWM to the current RSS (Linux >= 4.0)


# --- build --------------------------------------------------------------------------------

KIND = {
    ".cr3": ("raw", "raw"),
    ".arw": ("raw", "raw"),
    ".dng": ("raw", "raw"),
    ".jpg": ("image", "jpeg"),
    ".heic": ("image", "heic"),
    ".mov": ("video", "mov"),
    ".xmp": ("sidecar", "xmp"),
    ".aae": ("sidecar", "aae"),
    ".json": ("sidecar", "json"),
}


def _hashes(rng: random.Random, bases: list[tuple[int, str, int]]) -> tuple[int, str, int]:
    """(pHash, SHA-256, size): 5% byte copies, 5% near variants, else a new picture."""
    r = rng.random()
    if bases and r < 0.05:
        return rng.choice(bases)
    if bases and r < 0.10:
        h, _sha, _size = rng.choice(bases)
        for b in rng.sample(range(64), rng.randint(1, 10)):
            h ^= 1 << b
        return h, f"{rng.getrandbits(256):064x}", rng.randint(500_000, 30_000_000)
    out = (
        sum(1 << b for b in rng.sample(range(64), 32)),
        f"{rng.getrandbits(256):064x}",
        rng.randint(500_000, 30_000_000),
    )
    bases.append(out)
    return out


def build(files: int, folder: Path) -> None:
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from _common import insert_batched
    from bench_grouping import build_catalog

    from core.catalog import stat_key
    from core.db import engine_for, migrate, session_scope
    from core.models import File, Root, utcnow
    from core.paths import dir_key, path_key

    lib = folder / "lib"
    db = folder / "base.db"
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{db}"
    migrate(url)
    engine = engine_for(url)
    with session_scope(engine) as s:
        s.add(Root(id=1, path=str(lib), path_key=path_key(str(lib))))
    rng = random.Random(7)
    bases: list[tuple[int, str, int]] = []
    seen: set[str] = set()
    old = utcnow().replace(year=2025)
    t0 = time.perf_counter()

    def rows() -> Iterator[dict[str, Any]]:
        for r in build_catalog(files):
            path = str(lib) + r.path[len("/photos") :]
            if path in seen:  # the synthetic catalog repeats some decoy names in a folder
                continue
            seen.add(path)
            kind, fmt = KIND.get(os.path.splitext(path)[1].lower(), ("other", None))
            ph, sha, size = _hashes(rng, bases) if kind in ("raw", "image") else (None, None, 0)
            if kind in ("video", "sidecar"):
                size = rng.randint(1_000, 50_000_000)
                sha = f"{rng.getrandbits(256):064x}"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.truncate(size)  # sparse: no blocks on disk
            mtime, dev, ino = stat_key(os.stat(path))
            yield dict(
                root_id=1, path=path, path_key=path_key(path), dir_key=dir_key(path),
                size=size, mtime_ns=mtime, device=dev, inode=ino, kind=kind, format=fmt,
                sha256=sha, phash=None if ph is None else f"{ph:016x}",
                width=4000 if ph is not None else None, height=3000 if ph is not None else None,
                taken_at=r.taken_at, content_id=r.content_id, make="Canon", model="EOS R5",
                quick=hashlib.blake2b(path.encode(), digest_size=8).hexdigest(),
                status="present", first_seen=old, updated_at=old,
            )  # fmt: skip

    insert_batched(engine, File, rows())
    print(f"built {len(seen):,} files in {time.perf_counter() - t0:.0f} s: {lib}, {db}")


# --- one pass in this process ----------------------------------------------------------------


def _snapshot_at_peak(trace: bool) -> Any:
    """With ``trace``: a function, hooked into the pass's steps, that notes tracemalloc's
    peak since its last call and keeps the snapshot of the largest size seen at a call."""
    import tracemalloc

    best: dict[str, Any] = {"size": 0, "snap": None, "where": ""}

    def check(where: str) -> None:
        cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        best.setdefault("steps", []).append(f"{peak / 2**20:6.0f} MB traced peak up to {where}")
        if cur > best["size"]:
            best.update(size=cur, snap=tracemalloc.take_snapshot(), where=where)

    if trace:
        tracemalloc.start(8)
    return best, check


def _own(traceback: Any) -> list[Any]:
    """The innermost frames first, without this script's wrappers."""
    return [f for f in reversed(traceback) if not f.filename.endswith("bench_memory.py")][:5]


def _hook(module: Any, name: str, check: Any) -> None:
    """Call ``check`` on entry to and exit from ``module.name``."""
    fn = getattr(module, name)

    def wrapped(*a: Any, **kw: Any) -> Any:
        check(f"{module.__name__}.{name} (entry)")
        out = fn(*a, **kw)
        check(f"{module.__name__}.{name} (exit)")
        return out

    setattr(module, name, wrapped)


def _hooks(check: Any) -> None:
    import core.catalog as C
    import core.dedup.groups as DG
    import core.dedup.queries as DQ
    import core.dedup.service as DS
    import core.grouping.queries as GQ
    import core.grouping.service as GS

    for mod, names in (
        (DQ, ("rows_by_ids", "phash_table", "shared_sha_rows", "file_group_of", "stored_groups")),
        (DS, ("full_candidate_ids", "incremental_scope", "find_duplicates", "_write")),
        (DG, ("exact_groups", "perceptual_clusters")),
        (GQ, ("records_in_folders", "stored_groups")),
        (GS, ("_write", "group_folder", "_scope")),
        (C, ("_known_rows", "_shared_sizes", "_diff", "_apply", "walk")),
        (C, ("walk_folders", "_left_over_sizes")),
    ):
        for n in names:
            if hasattr(mod, n):
                _hook(mod, n, check)


def _dump(session: Any, out: Path) -> None:
    """The groups and duplicates the pass left, without ids (new ones are random)."""
    from sqlalchemy import text

    groups = sorted(
        (t, k, dk, json.dumps(sorted(json.loads(m))))
        for t, k, dk, m in session.execute(
            text(
                "SELECT g.group_type, g.group_key, g.dir_key, json_group_array(json_array("
                "m.file_id, m.role, m.is_primary, m.file_size)) FROM file_groups g JOIN "
                "group_members m ON m.group_id = g.group_id GROUP BY g.group_id"
            )
        )
    )
    dups = sorted(
        (t, k, st, round(sim, 6), keeper, reason, rb, json.dumps(sorted(json.loads(m))))
        for t, k, st, sim, keeper, reason, rb, m in session.execute(
            text(
                "SELECT g.duplicate_type, g.group_key, g.status, g.similarity, g.keeper_file_id,"
                " g.keeper_reason, g.reclaimable_bytes, json_group_array(json_array(m.file_id,"
                " m.file_hash, m.perceptual_hash, round(m.similarity_score, 6), m.file_size))"
                " FROM duplicate_groups g JOIN duplicate_members m ON m.group_id = g.group_id"
                " GROUP BY g.group_id"
            )
        )
    )
    files = list(session.execute(text("SELECT id, status, device FROM files ORDER BY id")))
    digest = hashlib.sha256(json.dumps([groups, dups, [list(f) for f in files]]).encode())
    out.write_text(
        json.dumps({"groups": len(groups), "duplicates": len(dups), "sha256": digest.hexdigest()})
    )


def one_pass(name: str, folder: Path, trace: bool) -> dict[str, Any]:
    from datetime import timedelta

    import numpy as np
    from sqlalchemy import update

    from core import catalog, jobs
    from core.config import load_settings
    from core.db import engine_for, session_scope
    from core.dedup import service as dedup
    from core.grouping import service as grouping
    from core.models import File, Root, utcnow
    from core.simindex import SimilarityIndex, pairs_within

    # numba's JIT compiled, as in a process that ran a pass before
    warm = np.array([1, 3], dtype=np.uint64)
    pairs_within(warm, 8)
    SimilarityIndex(warm, np.array([1, 2], dtype=np.int64)).query(warm, 8)
    url = f"sqlite:///{folder / 'work.db'}"
    settings = load_settings({}, data_dir=folder / "data", database_url=url)
    engine = engine_for(url)
    if name == "first-plan":
        # A first scan: the same library, and a catalog that holds none of it yet
        from sqlalchemy import delete

        with session_scope(engine) as s:
            s.execute(delete(File))
    best, check = _snapshot_at_peak(trace)
    if trace:
        _hooks(check)
    stats: Any = None
    gc.collect()
    before = _status("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    with session_scope(engine) as s:
        if name.startswith("group-"):
            stats = grouping.regroup(s, None).as_dict()
        elif name in ("dedup-full", "dedup-again"):
            stats = dedup.dedupe(s, settings, since=None).as_dict()
        elif name == "dedup-incremental":
            since = utcnow()
            s.execute(update(File).where(File.id <= 10).values(updated_at=utcnow()))
            s.flush()
            stats = dedup.dedupe(s, settings, since=since - timedelta(seconds=1)).as_dict()
        elif name in ("rescan-plan", "full-plan", "first-plan"):
            job, _ = jobs.start_job(s, "scan", root=s.get(Root, 1), full=name == "full-plan")
            s.commit()
            catalog.plan_scan(s, job.id, settings)
            stats = json.loads(job.summary or "{}")
            jobs.finish_job(s, job.id, "done")
        elif name in ("scan-summary", "scan-report"):
            from core import report

            job, _ = jobs.start_job(s, "scan", root=s.get(Root, 1))
            jobs.finish_job(s, job.id, "done")
            rep = report.summary(s, 1, job.id)
            if name == "scan-report":
                rep.update(report.build(s, 1, job.id))
            stats = rep["totals"]
        elif name == "rescan-sweep":
            job, _ = jobs.start_job(s, "scan", root=s.get(Root, 1))
            job.phase = "catalog"
            s.flush()
            stats = {"phase": catalog.advance(s, job.id, "catalog", settings)}
            jobs.finish_job(s, job.id, "done")
    wall = time.perf_counter() - t0
    peak = _status("VmHWM")
    with session_scope(engine) as s:
        _dump(s, folder / f"out-{name}.json")
    out = {"pass": name, "rss_before_mb": before / 1024, "peak_mb": peak / 1024,
           "pass_mb": (peak - before) / 1024, "wall_s": wall, "stats": stats}  # fmt: skip
    if trace and best["snap"] is not None:
        top = best["snap"].statistics("traceback")[:12]
        out["trace_at"] = best["where"]
        out["traced_mb"] = best["size"] / 2**20
        out["top"] = best["steps"] + [f"traced {out['traced_mb']:.0f} MB at {best['where']}"]
        out["top"] += [
            f"{st.size / 2**20:7.1f} MB {st.count:9d} blocks  "
            + " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in _own(st.traceback))
            for st in top
        ]
    return out


# --- run --------------------------------------------------------------------------------------


def run(folder: Path, code: Path, only: list[str], trace: bool, reuse: bool) -> None:
    if not reuse:
        shutil.copyfile(folder / "base.db", folder / "work.db")
    rows = []
    for name in PASSES:
        if only and name not in only and (reuse or not name.startswith(("group-", "dedup-full"))):
            continue  # (a later pass needs the groups and duplicates the earlier ones left)
        cmd = [sys.executable, __file__, "_pass", name, "--dir", str(folder), "--code", str(code)]
        if trace and (not only or name in only):
            cmd.append("--trace")
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            print(res.stdout, res.stderr)
            raise SystemExit(f"{name} failed")
        r = json.loads(res.stdout.strip().splitlines()[-1])
        r["out"] = json.loads((folder / f"out-{name}.json").read_text())
        rows.append(r)
        print(
            f"{name:18s} before {r['rss_before_mb']:6.0f} MB  peak {r['peak_mb']:6.0f} MB  "
            f"pass +{r['pass_mb']:6.0f} MB  {r['wall_s']:7.1f} s  -> {r['out']['groups']:,} "
            f"groups, {r['out']['duplicates']:,} duplicate groups, {r['out']['sha256'][:12]}",
            flush=True,
        )
        print("      ", json.dumps(r["stats"]))
        for line in r.get("top", []):
            print("      ", line)
    (folder / f"results-{code.name}.json").write_text(json.dumps(rows, indent=1))


def rescan(folder: Path, codes: list[Path], repeat: int) -> None:
    """The unchanged rescan's plan of each checkout in ``codes``, in turns, ``repeat``
    times; each on a fresh copy of the catalog (the plan adds a job and its summary)."""
    got: dict[Path, list[dict[str, Any]]] = {code: [] for code in codes}
    for i in range(repeat):
        for code in codes:
            shutil.copyfile(folder / "base.db", folder / "work.db")
            load = os.getloadavg()[0]
            cmd = [sys.executable, __file__, "_pass", "rescan-plan", "--dir", str(folder)]
            res = subprocess.run(cmd + ["--code", str(code)], capture_output=True, text=True)
            if res.returncode:
                print(res.stdout, res.stderr)
                raise SystemExit(f"{code} failed")
            r = json.loads(res.stdout.strip().splitlines()[-1])
            r["out"] = json.loads((folder / "out-rescan-plan.json").read_text())
            r["load"] = load
            got[code].append(r)
            print(
                f"{str(code):24s} run {i + 1}: before {r['rss_before_mb']:5.0f} MB  peak "
                f"{r['peak_mb']:6.0f} MB  pass +{r['pass_mb']:5.0f} MB  {r['wall_s']:6.1f} s  "
                f"(load {load:.1f})  rows {r['out']['sha256'][:12]}  {json.dumps(r['stats'])}",
                flush=True,
            )
    print()
    print("| | " + " | ".join(str(c) for c in codes) + " |")
    print("|---|" + "---|" * len(codes))
    for label, key, fmt in (
        ("plan: peak RSS growth", "pass_mb", "+{:,.0f} MB"),
        ("process peak", "peak_mb", "{:,.0f} MB"),
        ("plan: wall", "wall_s", "{:.1f} s"),
    ):
        cells = [" / ".join(fmt.format(r[key]) for r in got[c]) for c in codes]
        print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=("build", "run", "rescan", "_pass"))
    ap.add_argument("name", nargs="?")
    ap.add_argument("--files", type=int, default=500_000)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--code", type=Path, default=HERE.parent)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="the catalog the last run left")
    ap.add_argument("--against", type=Path, help="rescan: the other checkout (the code before)")
    ap.add_argument("--repeat", type=int, default=1, help="rescan: rounds of runs")
    args = ap.parse_args()
    if args.cmd == "build":
        build(args.files, args.dir)
    elif args.cmd == "run":
        run(args.dir, args.code.resolve(), args.only, args.trace, args.reuse)
    elif args.cmd == "rescan":
        codes = ([args.against.resolve()] if args.against else []) + [args.code.resolve()]
        rescan(args.dir, codes, args.repeat)
    else:
        sys.path.insert(0, str(args.code))
        print(json.dumps(one_pass(args.name, args.dir, args.trace)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
