"""Dedup pass times on a synthetic catalog: full pass vs an incremental pass after a few
changes (the baseline is the full pass, measured in the same run).

    .venv/bin/python bench/bench_dedup.py --files 200000 [--url postgresql+psycopg2://...]

The catalog is written straight into the files table (no images): random pHashes (32 of
64 bits set), 5% byte copies, 5% near variants (1-10 bits flipped). The database is a
fresh SQLite file unless --url names an empty, migrated database.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import insert_batched  # noqa: E402
from sqlalchemy import update  # noqa: E402

from core.config import load_settings  # noqa: E402
from core.db import engine_for, migrate, session_scope  # noqa: E402
from core.dedup import service  # noqa: E402
from core.models import File, Root, utcnow  # noqa: E402
from core.paths import dir_key, path_key  # noqa: E402


def rand_hash(rng: random.Random) -> int:
    return sum(1 << b for b in rng.sample(range(64), 32))


def fill(url: str, n: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    engine = engine_for(url)
    with session_scope(engine) as s:
        root = Root(path="/bench", path_key=path_key("/bench"))
        s.add(root)
        s.flush()
        root_id = root.id
    old = utcnow() - timedelta(hours=1)
    bases: list[tuple[int, str]] = []

    def rows() -> Iterator[dict]:
        for i in range(n):
            path = f"/bench/{i // 1000:04d}/IMG_{i:07d}.jpg"
            r = rng.random()
            if bases and r < 0.05:
                h, sha = rng.choice(bases)
            elif bases and r < 0.10:
                h, _ = rng.choice(bases)
                for b in rng.sample(range(64), rng.randint(1, 10)):
                    h ^= 1 << b
                sha = f"{rng.getrandbits(256):064x}"
            else:
                h, sha = rand_hash(rng), f"{rng.getrandbits(256):064x}"
                bases.append((h, sha))
            yield dict(
                root_id=root_id,
                path=path,
                path_key=path_key(path),
                dir_key=dir_key(path),
                size=1_000_000 + (i % 5000),
                mtime_ns=1,
                device=1,
                inode=i + 1,
                kind="image",
                format="jpeg",
                sha256=sha,
                phash=f"{h:016x}",
                width=4000,
                height=3000,
                status="present",
                first_seen=old,
                updated_at=old,
            )

    insert_batched(engine, File, rows())
    return root_id


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--url")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    url = args.url or f"sqlite:///{tmp / 'bench.db'}"
    if not args.url:
        migrate(url)
    settings = load_settings({}, data_dir=tmp, database_url=url)
    t = time.perf_counter()
    fill(url, args.files)
    print(f"catalog: {args.files} files written in {time.perf_counter() - t:.1f} s")
    engine = engine_for(url)

    t = time.perf_counter()
    c = time.process_time()
    with session_scope(engine) as s:
        full = service.dedupe(s, settings, since=None)
    full_s, full_cpu = time.perf_counter() - t, time.process_time() - c
    print(
        f"full pass: {full_s:.2f} s wall, {full_cpu:.2f} s CPU; {full.files} candidate files, "
        f"{full.exact} exact + {full.perceptual} perceptual groups"
    )

    since = utcnow()
    with session_scope(engine) as s:  # ten changed files
        s.execute(update(File).where(File.id <= 10).values(updated_at=utcnow()))
    t = time.perf_counter()
    c = time.process_time()
    with session_scope(engine) as s:
        inc = service.dedupe(s, settings, since=since - timedelta(seconds=1))
    inc_s, inc_cpu = time.perf_counter() - t, time.process_time() - c
    print(
        f"incremental pass (10 changed files): {inc_s:.2f} s wall, {inc_cpu:.2f} s CPU; "
        f"scope {inc.files} files; changed groups {inc.created + inc.updated + inc.deleted}"
    )
    print(f"ratio full / incremental: {full_s / inc_s:.1f}x wall")

    t = time.perf_counter()
    with session_scope(engine) as s:
        again = service.dedupe(s, settings, since=None)
    print(
        f"second full pass (nothing to write): {time.perf_counter() - t:.2f} s; "
        f"unchanged {again.unchanged}, changed {again.created + again.updated + again.deleted}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
