"""Unchanged rescan of a 100,000-file tree on PostgreSQL (target: >= 50,000 files/s, no file opened).

Builds a tree of small files, scans it once (setup, also reported), then rescans it
unchanged and reports files/s of the rescan job and of the whole `twinlens scan`
command, plus the bytes read (must be 0). Baseline: a bare os.scandir+stat walk of
the same tree in the same run, which is the floor of any rescan.

    .venv/bin/python bench/bench_rescan.py [--files 100000] [--against /tmp/wt-old]

``--against`` another checkout (a git worktree of the code before): after the rescans
above, the unchanged rescan is timed again with its code and this one's in turns (twice
each) on the same tree and catalog, and the renamed folders with each (there and back).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PROJECT, REDIS, throwaway_pg


def make_tree(root: Path, n: int) -> None:
    per_dir = 250
    for i in range(n):
        d = root / f"{i // 10_000:02d}" / f"{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        # Unique sizes and contents: no hashing needed, so the first scan is cheap too.
        (d / f"f{i:06d}.dat").write_bytes(i.to_bytes(4, "little") * (1 + i % 97))


def bare_walk(root: str) -> int:
    n = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    e.stat(follow_symlinks=False)
                    n += 1
    return n


def scan(
    env: dict, tree: Path, report: bool = True, code: Path = PROJECT
) -> tuple[float, dict | None]:
    import json

    out = tree.parent / "report.json"
    cmd = [sys.executable, str(code / "twinlens.py"), "scan", str(tree), "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd + (["--json", str(out)] if report else []), env=env, check=True, cwd=code)
    wall = time.perf_counter() - t0
    return wall, json.loads(out.read_text())["job"] if report else None


def side_by_side(env: dict, tree: Path, files: int, against: Path) -> None:
    """The unchanged rescan with ``against``'s code and this one's in turns, then the
    renamed folders with each (renamed there by the one, back by the other)."""
    print(f"side by side: {against} (before) and {PROJECT} (after), load average in ()")
    codes = (("before", against), ("after", PROJECT))
    for _round in range(2):
        for label, code in codes:
            load = os.getloadavg()[0]
            wall, job = scan(env, tree, code=code)
            s = job["summary"]
            print(
                f"  unchanged rescan, {label:6s}: job {job['elapsed_seconds']:5.2f} s "
                f"({files / job['elapsed_seconds']:7.0f} files/s), wall {wall:5.2f} s, "
                f"unchanged {s['unchanged']}, {job['bytes_read']} bytes read  ({load:.1f})"
            )
    for label, code in codes:
        for top in sorted(p for p in tree.iterdir() if p.is_dir()):
            name = top.name
            top.rename(top.with_name(name[:-8] if name.endswith("-renamed") else name + "-renamed"))
        load = os.getloadavg()[0]
        wall, job = scan(env, tree, code=code)
        s = job["summary"]
        print(
            f"  renamed folders, {label:6s}: job {job['elapsed_seconds']:6.2f} s, wall "
            f"{wall:6.2f} s, moved {s['moved']}, missing {s['missing']}, to read {s['to_read']}, "
            f"{job['bytes_read']} bytes read  ({load:.1f})"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--against", type=Path, help="the code before (a git worktree)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tl-rescan-"))
    tree = tmp / "library"
    try:
        t0 = time.perf_counter()
        make_tree(tree, args.files)
        print(f"generated {args.files} files in {time.perf_counter() - t0:.1f} s")
        with throwaway_pg() as url:
            env = dict(
                os.environ,
                TWINLENS_DATABASE_URL=url,
                TWINLENS_BROKER_URL=f"{REDIS}/12",
                TWINLENS_CACHE_URL=f"{REDIS}/11",
                TWINLENS_DATA_DIR=str(tmp / "data"),
                TWINLENS_BATCH_FILES="512",
                TWINLENS_WORKER_THREADS="2",
            )
            import redis

            redis.Redis.from_url(f"{REDIS}/12").flushdb()
            wall1, job1 = scan(env, tree)
            print(
                f"first scan:      {wall1:7.2f} s wall, job {job1['elapsed_seconds']:.2f} s, "
                f"{args.files / job1['elapsed_seconds']:9.0f} files/s, {job1['bytes_read'] / 1e6:.1f} MB read"
            )
            t0 = time.perf_counter()
            n = bare_walk(str(tree))
            walk_s = time.perf_counter() - t0
            wall2, job2 = scan(env, tree)
            rate_job = args.files / job2["elapsed_seconds"]
            rate_wall = args.files / wall2
            print(f"bare walk:       {walk_s:7.2f} s, {n / walk_s:9.0f} files/s (floor)")
            print(f"unchanged rescan:{wall2:7.2f} s wall, job {job2['elapsed_seconds']:.2f} s")
            print(
                f"  files/s (job):  {rate_job:9.0f}   target >= 50000  -> {'MET' if rate_job >= 50_000 else 'MISSED'}"
            )
            print(
                f"  files/s (wall): {rate_wall:9.0f}   (includes interpreter start, imports, migration check, "
                f"and writing the {args.files}-file JSON report)"
            )
            wall3, _ = scan(env, tree, report=False)
            print(
                f"  without --json: {wall3:6.2f} s wall, {args.files / wall3:9.0f} files/s (the whole command)"
            )
            print(
                f"  bytes read:     {job2['bytes_read']}  (target 0)   files to read: {job2['summary']['to_read']}"
            )
            print(f"  job / bare walk: {job2['elapsed_seconds'] / walk_s:.2f}x")
            # Every top folder renamed: every file a move. Files cataloged a moment ago
            # (as here) are checked by their first and last 4 KiB; files untouched for
            # an hour before they were cataloged (a real library) by their ctime alone
            for top in sorted(p for p in tree.iterdir() if p.is_dir()):
                top.rename(top.with_name(top.name + "-renamed"))
            wall4, job4 = scan(env, tree)
            s4 = job4["summary"]
            print(
                f"renamed folders: {wall4:7.2f} s wall, job {job4['elapsed_seconds']:.2f} s, "
                f"moved {s4['moved']}, to read {s4['to_read']}, {job4['bytes_read']} bytes read"
            )
            if args.against is not None:
                side_by_side(env, tree, args.files, args.against.resolve())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
