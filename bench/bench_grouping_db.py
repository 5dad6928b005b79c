"""Grouping service on PostgreSQL: a 100,000-file catalog from scratch, an idempotent
rerun, and one new file (incremental: only its folder is read and written).

Baseline in the same run: the pure rules (group_folder over the same records held in
memory), i.e. what the service adds for reading the catalog and writing the groups.

    .venv/bin/python bench/bench_grouping_db.py [--files 100000]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta

from _common import throwaway_pg  # noqa: F401  (also puts the project on sys.path)
from bench_grouping import build_catalog
from sqlalchemy import func, insert, select, text

from core.db import engine_for, session_scope
from core.grouping import service
from core.grouping.rules import group_folder, partition_by_folder
from core.models import File, FileGroup, GroupMember, Root
from core.paths import dir_key, path_key

KIND = {
    ".cr3": "raw",
    ".arw": "raw",
    ".dng": "raw",
    ".jpg": "image",
    ".heic": "image",
    ".mov": "video",
    ".xmp": "sidecar",
    ".aae": "sidecar",
    ".json": "sidecar",
}


def seed(url: str, total: int) -> list:
    # The synthetic catalog repeats some decoy names in a folder; a real one cannot.
    seen: set[str] = set()
    records = [r for r in build_catalog(total) if not (r.path in seen or seen.add(r.path))]
    engine = engine_for(url)
    with session_scope(engine) as s:
        s.add(Root(id=1, path="/photos", path_key=path_key("/photos")))
        s.flush()
        rows = [
            dict(
                id=r.id,
                root_id=1,
                path=r.path,
                path_key=path_key(r.path),
                dir_key=dir_key(r.path),
                size=1000 + r.id,
                mtime_ns=1,
                device=1,
                inode=r.id,
                kind=KIND.get(os.path.splitext(r.path)[1].lower(), "other"),
                taken_at=r.taken_at,
                content_id=r.content_id,
                status="present",
            )
            for r in records
        ]
        for i in range(0, len(rows), 10_000):
            s.execute(insert(File), rows[i : i + 10_000])
    return records


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def regroup(url: str, dir_keys=None) -> service.Stats:
    with session_scope(engine_for(url)) as s:
        return service.regroup(s, dir_keys)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    args = ap.parse_args()
    with throwaway_pg() as url:
        t_seed, records = timed(lambda: seed(url, args.files))
        folders = partition_by_folder(records)
        print(
            f"catalog: {len(records):,} files in {len(folders)} folders "
            f"(largest {max(map(len, folders.values())):,}); seeded by SQL in {t_seed:.1f} s"
        )

        def best(fn, before=None, n=3):
            times, out = [], None
            for _ in range(n):
                if before:
                    before()
                t, out = timed(fn)
                times.append(t)
            return min(times), sorted(times)[len(times) // 2], out

        def wipe() -> None:
            with session_scope(engine_for(url)) as s:
                s.execute(text("TRUNCATE group_members, file_groups"))

        t_rules, _, _ = best(lambda: [group_folder(fs) for fs in folders.values()])
        t_full, m_full, st = best(lambda: regroup(url), before=wipe)
        with session_scope(engine_for(url)) as s:
            n_groups = s.scalar(select(func.count()).select_from(FileGroup))
            n_members = s.scalar(select(func.count()).select_from(GroupMember))
        print("(best / median of 3 runs, wall clock)")
        print(f"rules only (in memory, baseline):  {t_rules:6.2f} s")
        print(
            f"service from scratch (PostgreSQL): {t_full:6.2f} s / {m_full:6.2f} s  "
            f"({t_full / t_rules:.2f}x the rules; {len(records) / t_full:,.0f} files/s; target < 10 s)"
            f" -> {n_groups:,} groups, {n_members:,} members"
        )
        t_again, m_again, st2 = best(lambda: regroup(url))
        print(
            f"rerun, nothing changed:            {t_again:6.2f} s / {m_again:6.2f} s  "
            f"(writes: {st2.changed}; {st2.as_dict()})"
        )

        # One new file: a RAW next to a lone JPEG of a ~1,000-file folder and of the largest
        for k, name in enumerate(("small", "large")):
            target = min(
                (fs for fs in folders.values() if (len(fs) >= 5_000) == (name == "large")), key=len
            )
            lone = next(r for r in target if r.name.startswith("DSC_") and len(r.name) == 13)
            new_path = lone.path[:-4] + ".ARW"
            dk = dir_key(new_path)

            def add_file(p=new_path, lone=lone, k=k) -> None:
                with session_scope(engine_for(url)) as s:
                    s.execute(
                        text("UPDATE files SET status = 'missing' WHERE id = :i"),
                        {"i": 10_000_000 + k},
                    )
                    service.regroup(s, [dir_key(p)])  # back to the state before the file
                    s.execute(text("DELETE FROM files WHERE id = :i"), {"i": 10_000_000 + k})
                    s.execute(
                        insert(File),
                        [
                            dict(
                                id=10_000_000 + k,
                                root_id=1,
                                path=p,
                                path_key=path_key(p),
                                dir_key=dir_key(p),
                                size=5,
                                mtime_ns=1,
                                device=1,
                                inode=10_000_000 + k,
                                kind="raw",
                                taken_at=lone.taken_at + timedelta(seconds=0.5),
                                status="present",
                            )
                        ],
                    )

            t_one, m_one, st3 = best(lambda dk=dk: regroup(url, [dk]), before=add_file)
            t_folder, _, _ = best(lambda t=target: group_folder(t))
            print(
                f"one new file in a {len(target):,}-file folder: {t_one * 1000:7.1f} ms / "
                f"{m_one * 1000:7.1f} ms  ({t_full / t_one:,.0f}x faster than from scratch; "
                f"{st3.as_dict()}); rules alone on that folder (baseline): {t_folder * 1000:.1f} ms"
            )


if __name__ == "__main__":
    main()
