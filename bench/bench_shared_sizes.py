"""The shared-size count of a scan that finds a few new files, at a million catalog rows:
reading the catalog whole against asking it for the wanted sizes (PostgreSQL / SQLite).

Every scan with files to read counts which of their sizes two or more distinct files
hold across the catalog (``core.catalog._shared_sizes``): those files get a quick digest,
for the exact duplicate finder. A watcher's folder scan that finds one new photo paid
for a read of every row; now few sizes are asked for by ``ix_files_size``.

    .venv/bin/python bench/bench_shared_sizes.py --files 1000000 --against /tmp/wt-old

Builds a catalog of ``--files`` rows over two roots (sizes of camera files, 1-30 MB, a
tenth of them byte copies, some hard links), then times, each in a fresh process and
``--against``'s code and this checkout's in turns, ``_shared_sizes`` for a folder scan
of root 1 with 1, 10 and 1,000 new files, and for a first scan of root 1 (every size
of its walk wanted, where both read the catalog whole). Best of ``--n`` calls a process;
both codes must give the same sizes.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def rows(files: int) -> list[dict[str, Any]]:
    from datetime import datetime

    from core.paths import dir_key, path_key

    rnd = random.Random(7)
    out: list[dict[str, Any]] = []
    sizes: list[int] = []
    old = datetime(2025, 1, 1)
    for i in range(1, files + 1):
        root = 1 if i % 2 else 2
        if sizes and rnd.random() < 0.1:
            size = rnd.choice(sizes)  # a byte copy from an old backup
        else:
            size = rnd.randint(1_000_000, 30_000_000)
            sizes.append(size)
        inode = i
        if i > 2 and rnd.random() < 0.01:  # now and then a hard link of the row before
            inode, size = out[-1]["inode"], out[-1]["size"]
        path = f"/r{root}/{i // 500:05d}/IMG_{i:07d}.JPG"
        out.append(
            dict(
                id=i, root_id=root, path=path, path_key=path_key(path), dir_key=dir_key(path),
                size=size, mtime_ns=1, device=1, inode=inode, kind="image", status="present",
                first_seen=old, updated_at=old,
            )
        )  # fmt: skip
    return out


def build(url: str, files: int) -> None:
    from bench_regroup import analyze, insert_rows
    from sqlalchemy import text

    from core.db import engine_for, session_scope
    from core.models import Root
    from core.paths import path_key

    with session_scope(engine_for(url)) as s:
        for rid in (1, 2):
            s.add(Root(id=rid, path=f"/r{rid}", path_key=path_key(f"/r{rid}")))
    insert_rows(url, rows(files))
    if url.startswith("postgresql"):
        with engine_for(url).begin() as c:
            c.execute(text("SELECT setval('files_id_seq', (SELECT max(id) FROM files))"))
    analyze(url)


def walk_of(url: str, new: int, case: str) -> tuple[list[list[int]], list[int], bool]:
    """The walk's three columns, the wanted sizes and whether the walk covered root 1."""
    from sqlalchemy import text

    from core.db import engine_for

    rnd = random.Random(new)
    with engine_for(url).connect() as c:
        if case == "first":  # every file of root 1 new, every size wanted
            got = c.execute(text("SELECT size, device, inode FROM files WHERE root_id = 1"))
            cols = [list(x) for x in zip(*got, strict=True)]
            return cols, sorted(set(cols[0])), True
        # A folder of root 1 with ``new`` new files: half of them copies of a cataloged file
        known = [r[0] for r in c.execute(text("SELECT size FROM files LIMIT 100000"))]
    sizes = [rnd.choice(known) if k % 2 else rnd.randint(1_000_000, 30_000_000) for k in range(new)]
    cols = [sizes, [1] * new, list(range(10**9, 10**9 + new))]
    return cols, sorted(set(sizes)), False


def one(url: str, new: int, case: str, n: int) -> None:
    from array import array

    from core import catalog
    from core.db import engine_for, session_scope

    cols, wanted, whole = walk_of(url, new, case)
    best = float("inf")
    result: Any = ()
    # Code before session 22 takes and gives sets of sizes; since, sorted int64 arrays
    as_set = "set" in str(inspect.signature(catalog._shared_sizes).parameters["wanted"].annotation)
    asked = set(wanted) if as_set else np.array(wanted, dtype=np.int64)
    for _ in range(n):
        walk = [array("q", c) for c in cols]
        with session_scope(engine_for(url)) as s:
            t0 = time.perf_counter()
            result = catalog._shared_sizes(s, *walk, 1, whole, asked)
            best = min(best, time.perf_counter() - t0)
    digest = hash(tuple(sorted(int(x) for x in result)))
    print(json.dumps(dict(best=best, shared=len(result), wanted=len(wanted), digest=digest)))


def run(code: Path, url: str, new: int, case: str, n: int) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "bench_shared_sizes.py"), "--one", "--url", url,
           "--new", str(new), "--case", case, "--n", str(n), "--code", str(code)]  # fmt: skip
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--against")
    ap.add_argument("--code", default=str(HERE.parent))
    ap.add_argument("--dbs", default="pg,sqlite")
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--one", action="store_true")
    ap.add_argument("--url")
    ap.add_argument("--new", type=int, default=1)
    ap.add_argument("--case", default="folder")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(Path(args.code).resolve()))
    if args.one:
        one(args.url, args.new, args.case, args.n)
        return
    from bench_regroup import drop_database, new_database

    codes = {"old": Path(args.against).resolve(), "new": Path(args.code).resolve()}
    cases = [("folder", 1), ("folder", 10), ("folder", 1000), ("first", 0)]
    print("| database | scan | sizes wanted | old: read whole | new | new / old | shared |")
    print("|---|---|---|---|---|---|---|")
    for db in args.dbs.split(","):
        url = new_database(db, "sizes")
        try:
            t0 = time.perf_counter()
            build(url, args.files)
            print(f"<!-- {db}: {args.files:,} rows built in {time.perf_counter() - t0:.0f} s -->")
            for case, new in cases:
                got: dict[str, dict[str, Any]] = {}
                for who in ("old", "new") if new % 2 else ("new", "old"):
                    got[who] = run(codes[who], url, new, case, 1 if case == "first" else args.n)
                o, w = got["old"], got["new"]
                assert o["digest"] == w["digest"], (case, new, o, w)  # the same sizes
                scan = "first scan" if case == "first" else f"folder scan, {new} new"
                print(
                    f"| {db} | {scan} | {w['wanted']:,} | {o['best'] * 1000:,.1f} ms "
                    f"| {w['best'] * 1000:,.1f} ms | {w['best'] / o['best']:.3f} | {w['shared']:,} |",
                    flush=True,
                )
        finally:
            drop_database(url)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
