"""A scan compares its walk with the catalog a batch of folders at a time
(core.catalog.DIFF_BATCH_FILES / DIFF_BATCH_FOLDERS) and tells moves, missing files and
unlisted folders across batches at the end. Here the batches are made one to three
folders, so that every case crosses a batch's boundary."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from core.config import Settings
from tests.factories import write_jpeg
from twinlens import run_scan


@pytest.fixture(params=[1, 2, 3])
def small_batches(request, monkeypatch) -> int:  # type: ignore[no-untyped-def]
    from core import catalog

    monkeypatch.setattr(catalog, "DIFF_BATCH_FILES", request.param)
    monkeypatch.setattr(catalog, "DIFF_BATCH_FOLDERS", request.param)
    return int(request.param)


def _rows() -> dict[str, tuple[int, str, str | None]]:
    """Every row by its path: (id, status, sha256)."""
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import File
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        return {f.path: (f.id, f.status, f.sha256) for f in s.scalars(select(File))}


def _library(library: Path) -> None:
    """Six folders, two pictures each, and one at the top."""
    seed = 1
    for folder in ("a", "b", "c/d", "c/e", "f", "g"):
        for i in range(2):
            write_jpeg(library / folder / f"p{i}.jpg", seed)
            seed += 1
    write_jpeg(library / "top.jpg", seed)


def test_a_file_moved_to_a_folder_of_another_batch_keeps_its_row(
    embedded_settings, library, small_batches
):
    _library(library)
    run_scan(embedded_settings, str(library))
    before = _rows()
    # When a picture moves from a to g (far apart in the walk), and one from f to c/d
    os.rename(library / "a" / "p0.jpg", library / "g" / "from-a.jpg")
    os.rename(library / "f" / "p1.jpg", library / "c" / "d" / "from-f.jpg")
    report = run_scan(embedded_settings, str(library))
    # Then both are moves: their rows, with their hashes, under their new names
    summary = report["job"]["summary"]
    assert (summary["moved"], summary["missing"], summary["to_read"]) == (2, 0, 0)
    assert summary["unchanged"] == 11 and summary["walked"] == 13
    after = _rows()
    assert after[str(library / "g" / "from-a.jpg")] == before[str(library / "a" / "p0.jpg")]
    assert after[str(library / "c" / "d" / "from-f.jpg")] == before[str(library / "f" / "p1.jpg")]
    assert str(library / "a" / "p0.jpg") not in after
    assert len(after) == 13


def test_a_folder_deleted_wholesale_is_missing_and_a_renamed_one_moves(
    embedded_settings, library, small_batches
):
    _library(library)
    run_scan(embedded_settings, str(library))
    before = _rows()
    # When one folder (with its subfolders) is deleted and another renamed
    shutil.rmtree(library / "c")
    os.rename(library / "b", library / "b-renamed")
    report = run_scan(embedded_settings, str(library))
    # Then the deleted folder's rows, never reached by the walk, are marked missing, and
    # the renamed folder's rows moved with it
    summary = report["job"]["summary"]
    assert (summary["missing"], summary["moved"], summary["to_read"]) == (4, 2, 0)
    after = _rows()
    for name in ("d/p0.jpg", "d/p1.jpg", "e/p0.jpg", "e/p1.jpg"):
        assert after[str(library / "c" / name)][1] == "missing"
    for i in range(2):
        assert (
            after[str(library / "b-renamed" / f"p{i}.jpg")]
            == before[str(library / "b" / f"p{i}.jpg")]
        )
    assert sum(1 for _, status, _ in after.values() if status == "present") == 9


def test_a_folder_that_cannot_be_listed_keeps_its_rows_across_batches(
    embedded_settings, library, small_batches, monkeypatch
):
    from core import catalog

    _library(library)
    run_scan(embedded_settings, str(library))
    # When c cannot be listed (its subfolders are then never reached), and a picture
    # in c/d is deleted meanwhile
    os.remove(library / "c" / "d" / "p0.jpg")
    real = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if str(path) == str(library / "c"):
            raise OSError(5, "Input/output error")
        return real(path)

    monkeypatch.setattr(catalog.os, "scandir", scandir)
    report = run_scan(embedded_settings, str(library))
    # Then the rows under it keep their state: nothing there is missing
    summary = report["job"]["summary"]
    assert (summary["missing"], summary["kept_unlisted"], summary["walk_errors"]) == (0, 4, 1)
    assert all(status == "present" for _, status, _ in _rows().values())
    # And once it lists again, the deleted picture is noticed
    monkeypatch.setattr(catalog.os, "scandir", real)
    report = run_scan(embedded_settings, str(library))
    assert (report["job"]["summary"]["missing"], report["job"]["summary"]["unchanged"]) == (1, 12)


def test_a_folder_scan_in_batches_sees_its_subfolders_and_nothing_else(
    embedded_settings, library, small_batches
):
    _library(library)
    run_scan(embedded_settings, str(library))
    # When, under c, c/e is deleted and a picture moves from c/d to c; and outside c a
    # picture is deleted
    shutil.rmtree(library / "c" / "e")
    os.rename(library / "c" / "d" / "p1.jpg", library / "c" / "moved.jpg")
    os.remove(library / "a" / "p0.jpg")
    report = run_scan(embedded_settings, str(library / "c"))
    # Then the folder scan notices what changed under c, and only that
    summary = report["job"]["summary"]
    assert (summary["missing"], summary["moved"], summary["unchanged"]) == (2, 1, 1)
    rows = _rows()
    assert rows[str(library / "a" / "p0.jpg")][1] == "present"
    assert rows[str(library / "c" / "moved.jpg")][1] == "present"


def test_a_remounted_share_with_a_move_across_batches_reads_nothing(
    embedded_settings, library, small_batches
):
    from sqlalchemy import select, update

    from core.catalog import int64
    from core.db import session_scope
    from core.models import File
    from workers import runtime

    _library(library)
    run_scan(embedded_settings, str(library))
    with session_scope(runtime.engine()) as s:
        s.execute(update(File).values(device=File.device + 7))
    os.rename(library / "g" / "p0.jpg", library / "a" / "from-g.jpg")
    report = run_scan(embedded_settings, str(library))
    summary = report["job"]["summary"]
    assert (summary["unchanged"], summary["moved"], summary["to_read"]) == (12, 1, 0)
    with session_scope(runtime.engine()) as s:
        devices = set(s.scalars(select(File.device).where(File.status == "present")))
    assert devices == {int64(library.stat().st_dev)}


def test_the_catalog_is_read_a_batch_of_folders_at_a_time(embedded_settings, library, monkeypatch):
    from core import catalog

    # Given a cataloged library of seven folders
    _library(library)
    run_scan(embedded_settings, str(library))
    # When it is scanned again in batches of two folders
    monkeypatch.setattr(catalog, "DIFF_BATCH_FOLDERS", 2)
    loads: list[int] = []
    real = catalog._known_rows

    def known_rows(session, root_id, dir_keys, *where):  # type: ignore[no-untyped-def]
        if dir_keys:  # (the end's look for folders the walk did not list finds none)
            loads.append(len(dir_keys))
        return real(session, root_id, dir_keys, *where)

    monkeypatch.setattr(catalog, "_known_rows", known_rows)
    report = run_scan(embedded_settings, str(library))
    # Then no read of the catalog's rows took more than two folders, and every one of the
    # eight folders (c too, which holds only folders) was read once
    assert max(loads) == 2 and sum(loads) == 8
    assert report["job"]["summary"]["unchanged"] == 13


def test_a_folder_key_is_the_dir_key_of_the_files_listed_in_it(tmp_path):
    from core import catalog
    from core.paths import dir_key

    write_jpeg(tmp_path / "x" / "a.jpg", 1)
    write_jpeg(tmp_path / "b.jpg", 2)
    for top in (str(tmp_path), str(tmp_path) + "/", str(tmp_path) + "//"):
        result = catalog.WalkResult()
        listed = 0
        for folder, entries in catalog.walk_folders(top, (), frozenset(), None, result):
            for e in entries:
                assert dir_key(e.path) == catalog._folder_key(folder)
                listed += 1
        assert listed == 2


def test_counting_only_the_wanted_sizes_gives_what_counting_all_gives():
    import numpy as np

    from core import catalog

    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(0, 60))
        # Few sizes, devices and inodes: hard links, stale rows of another size, and the
        # same inode number on two devices all occur
        sizes = rng.integers(0, 8, n).astype(np.int64)
        devices = rng.integers(1, 3, n).astype(np.int64)
        inodes = rng.integers(1, 20, n).astype(np.int64)
        wanted = np.unique(rng.integers(0, 8, int(rng.integers(1, 4))))
        every = set(catalog._sizes_held_twice(sizes, devices, inodes).tolist()) & set(
            wanted.tolist()
        )
        only = catalog._sizes_held_twice(*catalog._files_of_sizes(sizes, devices, inodes, wanted))
        assert set(only.tolist()) & set(wanted.tolist()) == every


def _catalog_of_two_roots(s, rng, stale: bool) -> list[int]:  # type: ignore[no-untyped-def]
    """Rows over two roots with few sizes, devices and inodes (hard links; rows missing
    or empty), a root's id each; ``stale``: rows of one inode may disagree on its size."""
    from core import jobs
    from tests.factories import file_row

    roots = [jobs.get_or_create_root(s, p).id for p in ("/a", "/b")]
    for i in range(300):
        device, inode = int(rng.integers(1, 3)), int(rng.integers(1, 60))
        size = int(rng.integers(0, 40)) if stale else (device * 61 + inode) * 7 % 40
        s.add(
            file_row(
                roots[i % 2], f"/{'ab'[i % 2]}/{i}.jpg", size=size, device=device, inode=inode,
                kind="image", status="present" if rng.random() < 0.9 else "missing",
            )
        )  # fmt: skip
    s.flush()
    return roots


@pytest.mark.parametrize("stale", [False, True])
@pytest.mark.parametrize("whole_root", [True, False])
def test_asking_the_catalog_for_the_wanted_sizes_counts_as_reading_it_whole(
    db_session, monkeypatch, whole_root, stale
):
    from array import array

    import numpy as np
    from sqlalchemy import event

    from core import catalog

    s = db_session
    rng = np.random.default_rng(5)
    default = catalog.SIZES_BY_INDEX
    # Given a catalog of two roots (its hard links of one size each, or some rows of an
    # inode stale, of another size) and walks of a folder or of the first root
    roots = _catalog_of_two_roots(s, rng, stale)
    statements: list[str] = []
    event.listen(s.get_bind(), "before_cursor_execute", lambda *a: statements.append(a[2]))

    def shared(wanted: set[int], by_index: int, seed: int) -> set[int]:
        monkeypatch.setattr(catalog, "SIZES_BY_INDEX", by_index)
        walk_rng = np.random.default_rng(seed)  # the same walk both times
        walk = [array("q", (int(x) for x in walk_rng.integers(lo, hi, 20))) for lo, hi in
                ((0, 40), (1, 3), (1, 60))]  # fmt: skip
        statements.clear()
        asked = np.array(sorted(wanted), dtype=np.int64)
        return set(catalog._shared_sizes(s, *walk, roots[0], whole_root, asked).tolist())

    counted: list[set[int]] = []
    for k in range(40):
        wanted = {int(x) for x in rng.integers(0, 40, int(rng.integers(1, 5)))}
        # When the shared sizes are counted with the catalog read whole and by size
        every = shared(wanted, 0, k)
        assert not any(" IN " in q.upper() for q in statements)
        only = shared(wanted, default, k)
        assert statements and all(" IN " in q.upper() for q in statements)
        # Then the second, from the wanted sizes' rows alone, finds the same sizes; with
        # stale rows, never fewer (a catalog-only inode whose rows disagree counts with
        # whichever row comes first when read whole)
        assert only == every if not stale else only >= every, (wanted, every, only)
        counted.append(every)
    assert any(counted) and not all(counted)  # sizes shared and sizes not, both seen


# --- another scan rewrites a row while the walk runs ------------------------------------
# A single pass read the catalog after the walk: a row written meanwhile (by a watcher's
# folder scan) was compared as it was then. In batches, the row's folder may have been
# settled before: what that batch decided about it must be taken back, not kept beside.


def _meanwhile(monkeypatch, library: Path, action) -> None:  # type: ignore[no-untyped-def]
    """Run ``action`` once, as the walk is about to list its last folder (the top
    folder, and the row of top.jpg, settled long before, in another batch)."""
    from core import catalog

    result = catalog.WalkResult()
    last = [f for f, _ in catalog.walk_folders(str(library), (), frozenset(), None, result)][-1]
    assert last != str(library)
    real = catalog._listing
    pending = [action]

    def listing(folder, result):  # type: ignore[no-untyped-def]
        if folder == last and pending:
            pending.pop()(last)
        yield from real(folder, result)

    monkeypatch.setattr(catalog, "_listing", listing)


def _write_row(at: Path, **values) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from core.db import session_scope
    from core.models import File, utcnow
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        values.setdefault("updated_at", utcnow())
        s.execute(update(File).where(File.path == str(at)).values(**values))


def _reads(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """The paths the catalog phase reads, as it reads them."""
    from core import catalog

    read: list[str] = []
    real = catalog.inspect_file

    def inspect_file(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        read.append(os.fsdecode(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(catalog, "inspect_file", inspect_file)
    return read


def _plans(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """How each run of the scan's plan ended ("done", or the exception's name)."""
    from core import catalog

    ends: list[str] = []
    real = catalog.plan_scan

    def plan_scan(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            out = real(*args, **kwargs)
        except Exception as exc:
            ends.append(type(exc).__name__)
            raise
        ends.append("done")
        return out

    monkeypatch.setattr(catalog, "plan_scan", plan_scan)
    return ends


def _counts(report) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    s = report["job"]["summary"]
    names = ("walked", "unchanged", "newer_elsewhere", "to_read", "moved", "missing", "revived")
    return (*(s[n] for n in names), report["job"]["failed"])


def test_a_row_marked_missing_after_its_batch_counts_once_as_newer(
    embedded_settings, library, small_batches, monkeypatch
):
    _library(library)
    run_scan(embedded_settings, str(library))
    top = library / "top.jpg"

    # When, after the walk listed top.jpg, it is deleted and a watcher marks its row missing
    def gone(_last: str) -> None:
        os.remove(top)
        _write_row(top, status="missing")

    _meanwhile(monkeypatch, library, gone)
    read = _reads(monkeypatch)
    report = run_scan(embedded_settings, str(library))
    # Then it is news from elsewhere, not also unchanged (13 files walked, counted once)
    assert _counts(report) == (13, 12, 1, 0, 0, 0, 0, 0)
    assert read == [] and _rows()[str(top)][1] == "missing"


def test_a_row_revived_after_its_batch_is_unchanged_not_revived_again(
    embedded_settings, library, small_batches, monkeypatch
):
    _library(library)
    run_scan(embedded_settings, str(library))
    top = library / "top.jpg"
    # Given top.jpg marked missing in the catalog (before this scan) though it is there
    _write_row(top, status="missing", updated_at=datetime(2020, 1, 1))

    # When, after the walk listed it, a watcher revives its row
    _meanwhile(monkeypatch, library, lambda _last: _write_row(top, status="present"))
    read = _reads(monkeypatch)
    report = run_scan(embedded_settings, str(library))
    # Then the scan finds it unchanged, as it is now, and has nothing to revive
    assert _counts(report) == (13, 13, 0, 0, 0, 0, 0, 0)
    assert read == [] and _rows()[str(top)][1] == "present"


def _top_changed(settings: Settings, library: Path) -> tuple[Path, tuple[int, str, str | None]]:
    """The library cataloged, then top.jpg written anew: (its path, its row before)."""
    _library(library)
    run_scan(settings, str(library))
    top = library / "top.jpg"
    before = _rows()[str(top)]
    write_jpeg(top, 4242)
    return top, before


def test_a_changed_file_read_by_another_scan_during_the_walk_is_not_read_again(
    embedded_settings, library, small_batches, monkeypatch
):
    # Given top.jpg changed since the last scan (the walk sees it changed)
    top, _ = _top_changed(embedded_settings, library)

    # When, after the walk listed it, a watcher's scan catalogs it as it is now
    def cataloged(_last: str) -> None:
        st = os.stat(top)
        _write_row(top, size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)

    _meanwhile(monkeypatch, library, cataloged)
    read = _reads(monkeypatch)
    report = run_scan(embedded_settings, str(library))
    # Then its row is as the walk saw the file: unchanged, not read a second time
    assert _counts(report) == (13, 13, 0, 0, 0, 0, 0, 0)
    assert read == []


def test_a_file_cataloged_by_another_scan_during_the_walk_is_compared_with_its_row(
    embedded_settings, library, small_batches, monkeypatch
):
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import File, utcnow
    from core.paths import dir_key, path_key
    from workers import runtime

    _library(library)
    run_scan(embedded_settings, str(library))
    new = library / "new.jpg"
    # Given a new picture at the top, which the walk lists with no row there
    write_jpeg(new, 777)

    # When, after the walk listed it, a watcher's scan gives it its row
    def cataloged(_last: str) -> None:
        st = os.stat(new)
        with session_scope(runtime.engine()) as s:
            like = s.scalars(select(File).where(File.path == str(library / "top.jpg"))).one()
            cols = {c.key: getattr(like, c.key) for c in File.__table__.columns if c.key != "id"}
            cols.update(
                path=str(new), path_key=path_key(str(new)), dir_key=dir_key(str(new)),
                size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino,
                updated_at=utcnow(), first_seen=utcnow(), sha256=None, sha1=None,
            )  # fmt: skip
            s.add(File(**cols))

    _meanwhile(monkeypatch, library, cataloged)
    read = _reads(monkeypatch)
    report = run_scan(embedded_settings, str(library))
    # Then the file is compared with that row (unchanged), not read as a new one
    assert _counts(report) == (14, 14, 0, 0, 0, 0, 0, 0)
    assert read == []


def _move_top_to_the_last_folder(
    monkeypatch: pytest.MonkeyPatch, library: Path, top: Path
) -> list[Path]:
    """After the walk listed ``top``, it moves to the folder the walk lists last, and a
    watcher's scan moves its row there (as it was: not read again). Returns [its new path]
    once it has moved."""
    from core.paths import dir_key, path_key

    moved: list[Path] = []

    def move(last: str) -> None:
        dst = Path(last) / "moved.jpg"
        os.rename(top, dst)
        p = str(dst)
        _write_row(top, path=p, path_key=path_key(p), dir_key=dir_key(p))
        moved.append(dst)

    _meanwhile(monkeypatch, library, move)
    return moved


def test_a_row_moved_after_its_batch_is_not_counted_twice(
    embedded_settings, library, small_batches, monkeypatch
):
    _library(library)
    run_scan(embedded_settings, str(library))
    top = library / "top.jpg"
    before = _rows()[str(top)]
    # When, after the walk listed top.jpg, it moves to the folder the walk lists last, and
    # a watcher's scan moves its row there
    moved = _move_top_to_the_last_folder(monkeypatch, library, top)
    read = _reads(monkeypatch)
    report = run_scan(embedded_settings, str(library))
    # Then the row is unchanged at its new path, once; the file walked at its old path
    # (whose name the walk did not keep) counts as news from elsewhere, and nothing goes
    # missing. (A single pass after the walk read the old path, and failed: it vanished.)
    assert _counts(report) == (14, 13, 1, 0, 0, 0, 0, 0)
    assert read == []
    rows = _rows()
    assert rows[str(moved[0])] == before and str(top) not in rows


def test_a_changed_file_whose_row_moved_after_its_batch_is_read_once_where_it_is(
    embedded_settings, library, small_batches, monkeypatch
):
    # Given top.jpg changed since the last scan (the walk sees it changed)
    top, before = _top_changed(embedded_settings, library)
    # When, after the walk listed it, it moves to the folder the walk lists last, and a
    # watcher's scan moves its row there (as it was: not read yet)
    moved = _move_top_to_the_last_folder(monkeypatch, library, top)
    read = _reads(monkeypatch)
    report = run_scan(embedded_settings, str(library))
    # Then the file walked at its old path, whose row went elsewhere, is a file with no row
    # there, to read, and said to have vanished by then; the row is read where the file
    # is now, once, and keeps its id; nothing goes missing
    assert _counts(report) == (14, 12, 0, 2, 0, 0, 0, 1)
    assert report["job"]["errors"] == [
        {"path": "top.jpg", "error": "file vanished before it could be read"}
    ]
    assert read == [str(moved[0])]
    rows = _rows()
    assert rows[str(moved[0])][0] == before[0] and str(top) not in rows
    assert rows[str(moved[0])][2] != before[2]  # read as it is now


def test_a_changed_file_whose_row_another_scan_rewrote_during_the_walk_is_read_once(
    embedded_settings, library, small_batches, monkeypatch
):
    # Given top.jpg changed since the last scan (the walk sees it changed)
    top, before = _top_changed(embedded_settings, library)

    # When, after the walk listed it, a watcher's scan rewrites its row as another version
    # of the file than the one on disk now (it changed again since that scan read it)
    def rewritten(_last: str) -> None:
        _write_row(top, size=123, mtime_ns=1)

    _meanwhile(monkeypatch, library, rewritten)
    read = _reads(monkeypatch)
    plans = _plans(monkeypatch)
    report = run_scan(embedded_settings, str(library))
    # Then the file is compared again with the row as it is now, found changed, and read
    # once, on its own row, by the plan's first run (before, that plan failed, BufferError,
    # and its retry walked the whole library again)
    assert plans == ["done"]
    assert _counts(report) == (13, 12, 0, 1, 0, 0, 0, 0)
    assert read == [str(top)]
    after = _rows()[str(top)]
    assert after[0] == before[0] and after[2] != before[2]
