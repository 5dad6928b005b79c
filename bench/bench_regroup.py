"""A full regroup with nothing changed against one from scratch, and the watermark check
with and without its index, on a catalog of many small folders (PostgreSQL / SQLite).

A full regroup (every folder of a root) runs after an upgrade of the grouping rules
(``core.grouping.watermark.RULES``) or when a root has no watermark yet: every library
pays it once, with its groups already stored and, mostly, unchanged.

    .venv/bin/python bench/bench_regroup.py regroup --files 1000000 --against /tmp/wt-old
    .venv/bin/python bench/bench_regroup.py watermark --files 1000000
    .venv/bin/python bench/bench_regroup.py profile --files 200000 [--code DIR]

``regroup`` builds the catalog (``--folder-size`` files a folder, a ``RAW/`` subfolder
holding the RAWs of every ``--raw-every``-th folder, so RAW folders pair across folders),
groups it once, adds user corrections through the service (splits, dissolved groups,
merges across folders), then times, each in a fresh process, ``--against``'s code and
this checkout's (``--code``) in turns: a full pass from scratch (the groups deleted
before) and a full pass with nothing changed. Every pass's groups (ids, keys, members,
timestamps) are compared: an unchanged pass must leave exactly what the pass before it
left, and both codes' passes from scratch the same groups (but for their new ids).

``watermark`` times ``watermark.due`` and ``watermark.changed_folders`` (nothing changed
since the watermark; a few folders changed) on the catalog with and without the index
``ix_files_root_id_updated_at``, and what keeping it costs: inserting the catalog (a
first scan), and updating ``updated_at`` of every row (a rescan that rewrites them all).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import random
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
INDEX = "ix_files_root_id_updated_at"
PG_ADMIN = os.environ.get("TWINLENS_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")

# --- the catalog --------------------------------------------------------------------------


def catalog_rows(files: int, folder_size: int, raw_every: int) -> list[dict[str, Any]]:
    """The files table's rows: bench_grouping's shots in folders of ``folder_size``; in
    every ``raw_every``-th folder the RAWs lie in a ``RAW/`` subfolder."""
    sys.path.insert(0, str(HERE))
    from bench_grouping import T0, _shot

    from core.paths import dir_key, path_key
    from core.records import FileRecord

    kind = {".cr3": "raw", ".arw": "raw", ".dng": "raw", ".jpg": "image", ".heic": "image",
            ".mov": "video", ".xmp": "sidecar", ".aae": "sidecar", ".json": "sidecar"}  # fmt: skip
    rnd = random.Random(1)
    recs: list[FileRecord] = []
    fi = 0
    while len(recs) < files:
        folder = f"/photos/{2000 + fi % 25}/{fi:06d}"
        start, n = len(recs), 0
        while len(recs) - start < folder_size and len(recs) < files:
            n += 1
            _shot(rnd, folder, n, T0 + timedelta(minutes=n + fi * 1_000), recs)
        if raw_every and fi % raw_every == 0:
            for i in range(start, len(recs)):
                r = recs[i]
                if r.path.endswith(".CR3"):
                    recs[i] = FileRecord(
                        id=r.id, path=f"{folder}/RAW/{r.name}", kind=r.kind, size=r.size,
                        taken_at=r.taken_at,
                    )  # fmt: skip
        fi += 1
    seen: set[str] = set()
    old = datetime(2025, 1, 1)
    rows = []
    for r in recs:
        if r.path in seen:  # the synthetic shots repeat some decoy names in a folder
            continue
        seen.add(r.path)
        rows.append(
            dict(
                id=r.id, root_id=1, path=r.path, path_key=path_key(r.path),
                dir_key=dir_key(r.path), size=1000 + r.id, mtime_ns=1, device=1, inode=r.id,
                kind=kind.get(os.path.splitext(r.path)[1].lower(), "other"),
                taken_at=r.taken_at, content_id=r.content_id, status="present",
                first_seen=old, updated_at=old,
            )
        )  # fmt: skip
    return rows


def _copy_value(v: Any) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, bytes):
        return "\\\\x" + v.hex()
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    return str(v)


def insert_rows(url: str, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into files: COPY on PostgreSQL, executemany on SQLite, 50,000 a
    transaction."""
    from sqlalchemy import insert

    from core.db import engine_for
    from core.models import File

    engine = engine_for(url)
    cols = list(rows[0])
    for i in range(0, len(rows), 50_000):
        part = rows[i : i + 50_000]
        with engine.begin() as conn:
            if conn.dialect.name != "postgresql":
                conn.execute(insert(File), part)
                continue
            buf = io.StringIO()
            for r in part:
                vals = [os.fsencode(r[c]) if c == "path" else r[c] for c in cols]
                buf.write("\t".join(_copy_value(v) for v in vals) + "\n")
            buf.seek(0)
            cur = conn.connection.dbapi_connection.cursor()
            cur.copy_expert(f"COPY files ({', '.join(cols)}) FROM STDIN", buf)
            cur.close()


def new_database(kind: str, tag: str) -> str:
    """A fresh migrated database: PostgreSQL (``kind`` pg) or an SQLite file."""
    from sqlalchemy import create_engine, text

    from core.db import migrate

    name = f"twinlens_bench_{tag}_{uuid.uuid4().hex[:6]}"
    if kind == "pg":
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = f"sqlite:////tmp/{name}.db"
    migrate(url)
    return url


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    from core.db import engine_for

    engine_for(url).dispose()
    engine_for.cache_clear()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


def build(url: str, files: int, folder_size: int, raw_every: int) -> int:
    from core.db import engine_for, session_scope
    from core.models import Root
    from core.paths import path_key

    with session_scope(engine_for(url)) as s:
        s.add(Root(id=1, path="/photos", path_key=path_key("/photos")))
    rows = catalog_rows(files, folder_size, raw_every)
    insert_rows(url, rows)
    analyze(url)
    return len(rows)


def analyze(url: str) -> None:
    """Statistics, and on PostgreSQL the dead rows of the groups deleted before a pass from
    scratch vacuumed away: left, each pass from scratch ran slower than the one before it
    (160, 250, 246, 362 s at a million files, old and new code in turns), whatever the
    code."""
    from sqlalchemy import create_engine, text

    if not url.startswith("postgresql"):
        with create_engine(url).begin() as c:
            c.execute(text("ANALYZE"))
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")  # VACUUM runs outside one
    with engine.connect() as c:
        c.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def add_corrections(url: str, n: int) -> dict[str, int]:
    """User corrections through the service, on grouped folders: ``n`` files split out of
    their groups, ``n`` groups dissolved, ``n`` merges of two files in two folders."""
    from sqlalchemy import select

    from core.config import load_settings
    from core.db import engine_for, session_scope
    from core.grouping import service
    from core.models import FileGroup, GroupMember

    settings = load_settings({}, database_url=url)
    rnd = random.Random(5)
    done = {"split": 0, "dissolved": 0, "merged": 0}
    with session_scope(engine_for(url)) as s:
        groups = list(
            s.scalars(
                select(FileGroup.group_id)
                .where(FileGroup.group_type.in_(("raw_jpeg", "live_photo")))
                .order_by(FileGroup.group_key)
                .limit(20 * n)
            )
        )
    picked = rnd.sample(groups, 2 * n)
    for k, gid in enumerate(picked):
        with session_scope(engine_for(url)) as s:
            members = sorted(
                s.scalars(select(GroupMember.file_path).where(GroupMember.group_id == gid))
            )
            if k < n:
                service.split_group(s, gid, [members[-1]], settings)
                done["split"] += 1
            else:
                service.split_group(s, gid, None, settings)
                done["dissolved"] += 1
    with session_scope(engine_for(url)) as s:
        lone = list(
            s.execute(
                select(GroupMember.file_path, FileGroup.dir_key)
                .join(FileGroup, FileGroup.group_id == GroupMember.group_id)
                .where(GroupMember.is_primary.is_(True), FileGroup.group_type == "edited")
                .order_by(FileGroup.group_key)
                .limit(20 * n)
            )
        )
    pairs = rnd.sample(lone, 2 * n)
    for a, b in zip(pairs[::2], pairs[1::2], strict=True):
        if a[1] == b[1]:
            continue
        with session_scope(engine_for(url)) as s:
            service.merge_files(s, [a[0], b[0]], None, settings)
            done["merged"] += 1
    return done


# --- one pass, in its own process ------------------------------------------------------------


def snapshot(url: str) -> dict[str, str]:
    """Digests of the stored groups: ``full`` with ids and timestamps, ``shape`` without
    (a pass from scratch gives new ids)."""
    from sqlalchemy import text

    from core.db import engine_for

    with engine_for(url).connect() as c:
        groups = {
            gid: [_plain(key), gtype, _plain(dk), src, str(ca), str(ua)]
            for gid, key, gtype, dk, src, ca, ua in c.execute(
                text(
                    "SELECT group_id, group_key, group_type, dir_key, source, created_at,"
                    " updated_at FROM file_groups"
                )
            )
        }
        members: dict[str, list] = {g: [] for g in groups}
        for gid, fid, ftype, role, prim, size in c.execute(
            text(
                "SELECT group_id, file_id, file_type, role, is_primary, file_size"
                " FROM group_members"
            )
        ):
            members[gid].append([fid, ftype, role, bool(prim), size])
        overrides = sorted(
            tuple(map(_plain, r))
            for r in c.execute(
                text("SELECT id, action, dir_key, members, primary_path FROM group_overrides")
            )
        )
        touched = c.execute(text("SELECT max(updated_at) FROM files")).scalar()
    full = sorted([gid, *g, sorted(members[gid])] for gid, g in groups.items())
    shape = sorted([*g[:4], sorted(members[gid])] for gid, g in groups.items())

    def digest(x: Any) -> str:
        return hashlib.sha256(json.dumps(x, default=str).encode()).hexdigest()[:16]

    return {
        "full": digest([full, overrides, str(touched)]),
        "shape": digest([shape, overrides]),
        "groups": str(len(groups)),
        "members": str(sum(map(len, members.values()))),
    }


def _plain(v: Any) -> str:
    """A column's value as text (PostgreSQL gives bytea as a memoryview, whose str is its
    address)."""
    return bytes(v).hex() if isinstance(v, memoryview | bytes) else str(v)


def one_pass(url: str, mode: str, prof: str | None) -> None:
    """Time one full regroup of root 1 (``mode`` scratch: the groups deleted first), as
    ``run_job`` runs it: a commit after each batch. Prints a JSON line."""
    from sqlalchemy import text

    from core.db import engine_for, session_scope
    from core.grouping import service

    engine = engine_for(url)
    if mode == "scratch":
        with engine.begin() as c:
            c.execute(text("DELETE FROM group_members"))
            c.execute(text("DELETE FROM file_groups"))
    # Statistics as autovacuum keeps them on a library in use: without, the pass after a
    # pass from scratch plans for the empty tables the one before left (minutes at 20,000
    # files, nested loops over whole tables)
    analyze(url)
    before = snapshot(url)
    profiler = cProfile.Profile() if prof else None
    t0 = time.perf_counter()
    c0 = time.process_time()
    with session_scope(engine) as s:

        def progress(done: int, total: int) -> bool:
            s.commit()
            return True

        if profiler:
            profiler.enable()
        stats = service.regroup(s, None, root_id=1, progress=progress)
        if profiler:
            profiler.disable()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    after = snapshot(url)
    if profiler and prof:
        profiler.dump_stats(prof)
    print(
        json.dumps(
            dict(mode=mode, wall=wall, cpu=cpu, stats=stats.as_dict(), before=before, after=after)
        )
    )


def run_pass(code: Path, url: str, mode: str, prof: str | None = None) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "bench_regroup.py"), "pass", "--url", url,
           "--mode", mode, "--code", str(code)] + (["--prof", prof] if prof else [])  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# --- regroup: old and new code side by side ---------------------------------------------------


def cmd_regroup(args: argparse.Namespace) -> None:
    codes = {"old": Path(args.against).resolve(), "new": Path(args.code).resolve()}
    url = new_database(args.db, "regroup")
    try:
        t0 = time.perf_counter()
        n = build(url, args.files, args.folder_size, args.raw_every)
        print(f"catalog: {n:,} files, built in {time.perf_counter() - t0:.0f} s ({args.db})")
        first = run_pass(codes["new"], url, "scratch")
        t0 = time.perf_counter()
        corr = add_corrections(url, args.corrections)
        print(f"corrections through the service: {corr} ({time.perf_counter() - t0:.0f} s)")
        print(f"first pass: {first['after']['groups']} groups; load average {load()}")
        times: dict[tuple[str, str], list[dict[str, Any]]] = {}
        ok = True
        shapes: dict[str, set[str]] = {"scratch": set(), "unchanged": set()}
        for rep in range(args.repeat):
            order = ("old", "new") if rep % 2 == 0 else ("new", "old")
            for who in order:
                for mode in ("scratch", "unchanged"):
                    r = run_pass(codes[who], url, mode)
                    times.setdefault((who, mode), []).append(r)
                    shapes[mode].add(r["after"]["shape"])
                    same = r["after"]["full"] == r["before"]["full"]
                    if mode == "unchanged" and (
                        not same
                        or r["stats"]["created"]
                        or r["stats"]["updated"]
                        or r["stats"]["deleted"]
                    ):
                        ok = False  # fmt: skip
                    print(
                        f"  {who} {mode:9s} {r['wall']:7.1f} s wall {r['cpu']:7.1f} s CPU"
                        f"  {r['stats']}  unchanged groups identical: {same}  (load {load()})",
                        flush=True,
                    )
        same_shape = len(shapes["scratch"] | shapes["unchanged"]) == 1
        print()
        # The best run: at two runs a median is the worse one, and a neighbour's load (or
        # a first pass's dead rows) only ever adds time
        print(f"| best of {args.repeat}, wall (CPU) | old | new | new / old |")
        print("|---|---|---|---|")
        best: dict[tuple[str, str], tuple[float, float]] = {}
        for key, rs in times.items():
            walls = sorted(r["wall"] for r in rs)
            cpus = sorted(r["cpu"] for r in rs)
            best[key] = (walls[0], cpus[0])
        for mode in ("scratch", "unchanged"):
            (ow, oc), (nw, nc) = best[("old", mode)], best[("new", mode)]
            print(
                f"| full pass, {mode} | {ow:.1f} s ({oc:.1f}) | {nw:.1f} s ({nc:.1f}) "
                f"| {nw / ow:.2f} |"
            )
        for who in ("old", "new"):
            (sw, sc), (uw, uc) = best[(who, "scratch")], best[(who, "unchanged")]
            print(f"| {who}: unchanged / scratch | | | {uw / sw:.2f} wall, {uc / sc:.2f} CPU |")
        print(
            f"every unchanged pass left its groups exactly as they were (ids, members, "
            f"timestamps, overrides): {ok}; every pass the same groups: {same_shape}"
        )
    finally:
        drop_database(url)


# --- watermark: the check with and without the index -----------------------------------------


def _timed(fn: Any, n: int) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cmd_watermark(args: argparse.Namespace) -> None:
    from sqlalchemy import select, text

    from core.db import engine_for, session_scope
    from core.grouping import watermark as W
    from core.models import File, Job, Root

    rows = catalog_rows(args.files, args.folder_size, 0)
    for db in args.dbs.split(","):
        url = new_database(db, "wm")
        engine = engine_for(url)
        results: dict[str, dict[str, float]] = {"with": {}, "without": {}}
        plans: dict[str, str] = {}
        try:
            with session_scope(engine) as s:
                s.add(Root(id=1, path="/photos", path_key="k1"))
            # In turns: the index dropped, kept, dropped, kept (--repeat 2)
            for with_index in (False, True) * args.repeat:
                tag = "with" if with_index else "without"
                r = results[tag]
                with engine.begin() as c:
                    c.execute(text("DELETE FROM files"))
                    c.execute(text(f"DROP INDEX IF EXISTS {INDEX}"))
                    if with_index:
                        c.execute(text(f"CREATE INDEX {INDEX} ON files (root_id, updated_at)"))
                if db == "pg":
                    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                        c.execute(text("VACUUM files"))
                # A first scan: every row inserted (50,000 a transaction)
                t_ins = time.perf_counter()
                insert_rows(url, rows)
                t_ins = time.perf_counter() - t_ins
                analyze(url)
                # A rescan that rewrites every row's updated_at (50,000 a transaction)
                t_upd = time.perf_counter()
                for lo in range(0, len(rows) + 1, 50_000):
                    with engine.begin() as c:
                        c.execute(
                            text("UPDATE files SET updated_at = :t WHERE id >= :a AND id < :b"),
                            {"t": datetime(2025, 6, 1), "a": lo, "b": lo + 50_000},
                        )
                t_upd = time.perf_counter() - t_upd
                # Then a few folders changed (a watcher's import): 1 file in 5,000
                changed = datetime(2025, 7, 1)
                with engine.begin() as c:
                    c.execute(
                        text("UPDATE files SET updated_at = :t WHERE id % 5000 = 7"), {"t": changed}
                    )
                analyze(url)
                t_idx = 0.0
                if with_index:  # what the migration costs: building the index on these rows
                    with engine.begin() as c:
                        c.execute(text(f"DROP INDEX {INDEX}"))
                    t_idx = time.perf_counter()
                    with engine.begin() as c:
                        c.execute(text(f"CREATE INDEX {INDEX} ON files (root_id, updated_at)"))
                    t_idx = time.perf_counter() - t_idx
                    analyze(url)
                with session_scope(engine) as s:
                    root = s.get(Root, 1)
                    assert root is not None
                    mark = changed + timedelta(days=1)
                    summary = json.dumps({"watermark": mark.isoformat(), "rules": W.RULES})
                    s.execute(text("DELETE FROM jobs"))
                    s.add(Job(kind="group", root_id=1, path=root.path, state="done",
                              finished_at=mark, summary=summary))  # fmt: skip
                    scan = Job(kind="scan", root_id=1, state="done", started_at=mark)
                    s.add(scan)
                    s.flush()
                    # Nothing changed since the watermark: the check finds no row
                    assert not W.due(s, scan)
                    t_quiet = _timed(lambda s=s, scan=scan: W.due(s, scan), args.n)
                    some = changed - timedelta(seconds=1)
                    n_changed = len(W.changed_folders(s, root, some))
                    t_changed = _timed(
                        lambda s=s, r=root, t=some: W.changed_folders(s, r, t), args.n
                    )
                    if db == "pg":
                        q = select(File.dir_key).where(File.root_id == 1, File.updated_at >= mark)
                        sql = str(q.compile(engine, compile_kwargs={"literal_binds": True}))
                        plans[tag] = " / ".join(
                            p[0].strip() for p in s.execute(text("EXPLAIN " + sql))
                        )[:160]
                    s.rollback()
                for k, v in (("insert", t_ins), ("update", t_upd), ("due", t_quiet),
                             ("changed", t_changed), ("build", t_idx)):  # fmt: skip
                    r[k] = min(r.get(k, float("inf")), v)
                r["n_changed"] = n_changed
                print(
                    f"  {db} {tag:7s} index: insert {t_ins:.1f} s, update {t_upd:.1f} s, due "
                    f"{t_quiet * 1000:.1f} ms, changed_folders {t_changed * 1000:.1f} ms"
                    + (f", CREATE INDEX {t_idx:.1f} s" if with_index else "")
                    + f" (load {load()})",
                    flush=True,
                )
        finally:
            drop_database(url)
        w, o = results["with"], results["without"]
        print(f"\n{db}: {len(rows):,} files; best of {args.repeat} (each check: best of {args.n})")
        print("| | without index | with index | with / without |")
        print("|---|---|---|---|")
        for k, label, scale in (
            ("due", "watermark.due, nothing changed since the watermark", 1000),
            ("changed", f"watermark.changed_folders, {int(w['n_changed'])} folders changed", 1000),
            ("insert", f"insert {len(rows):,} rows (a first scan)", 1),
            ("update", f"update updated_at of {len(rows):,} rows (a rescan)", 1),
        ):
            u = "ms" if scale == 1000 else "s"
            print(
                f"| {label} | {o[k] * scale:.1f} {u} | {w[k] * scale:.1f} {u} | {w[k] / o[k]:.3g} |"
            )
        print(f"building the index on {len(rows):,} rows (the migration): {w['build']:.1f} s")
        for tag, plan in plans.items():
            print(f"plan {tag} the index: {plan}")


# --- profile ----------------------------------------------------------------------------------


def cmd_profile(args: argparse.Namespace) -> None:
    url = new_database(args.db, "prof")
    try:
        n = build(url, args.files, args.folder_size, args.raw_every)
        print(f"catalog: {n:,} files")
        code = Path(args.code).resolve()
        for mode in ("scratch", "unchanged"):
            prof = f"/tmp/regroup-{mode}.prof"
            r = run_pass(code, url, mode, prof)
            print(f"{mode}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU {r['stats']}")
            st = pstats.Stats(prof)
            st.sort_stats("cumulative").print_stats("core/grouping", 25)
    finally:
        drop_database(url)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("regroup", "watermark", "profile", "pass"):
        p = sub.add_parser(name)
        p.add_argument("--files", type=int, default=1_000_000)
        p.add_argument("--folder-size", type=int, default=20)
        p.add_argument("--raw-every", type=int, default=20)
        p.add_argument("--db", default="pg", choices=("pg", "sqlite"))
        p.add_argument("--code", default=str(HERE.parent))
        p.add_argument("--repeat", type=int, default=2)
    sub.choices["regroup"].add_argument("--against", required=True)
    sub.choices["regroup"].add_argument("--corrections", type=int, default=50)
    sub.choices["watermark"].add_argument("--dbs", default="pg,sqlite")
    sub.choices["watermark"].add_argument("--n", type=int, default=5)
    sub.choices["pass"].add_argument("--url", required=True)
    sub.choices["pass"].add_argument("--mode", choices=("scratch", "unchanged"), required=True)
    sub.choices["pass"].add_argument("--prof")
    args = ap.parse_args()
    # The code under test first on the path (another checkout's, in a worktree)
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(Path(args.code).resolve()))
    if args.cmd == "pass":
        one_pass(args.url, args.mode, args.prof)
    else:
        {"regroup": cmd_regroup, "watermark": cmd_watermark, "profile": cmd_profile}[args.cmd](args)


if __name__ == "__main__":
    main()
