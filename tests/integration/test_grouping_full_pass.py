"""A full grouping pass over a library whose groups are stored already (after an upgrade
of the rules, or a root without a watermark): it must leave exactly what a pass from
scratch leaves, keep every group's id, and write nothing when nothing changed.

PostgreSQL; each test runs in a transaction that is rolled back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, select, text

from core import jobs
from core.config import load_settings
from core.grouping import queries as Q
from core.grouping import service
from core.models import File, FileGroup, GroupMember, GroupOverride, Root
from core.paths import dir_key, path_key
from tests.factories import media_row

T0 = datetime(2024, 6, 1, 9, 0, 0)


@pytest.fixture
def root(db_session) -> Root:
    return jobs.get_or_create_root(db_session, "/lib")


def add(session, root: Root, path: str, minute: int = 0, **fields) -> File:
    f = media_row(
        root.id, path, size=1000 + len(path), taken_at=T0 + timedelta(minutes=minute), **fields
    )
    session.add(f)
    session.flush()
    return f


def library(s, root: Root) -> None:
    """Folders of RAW+JPEG pairs, Live Photos and singles; RAW folders beside their JPEG
    folders; then a user's corrections: a merge across three folders, a file split out
    of its group, a group dissolved, and a file moved to another folder."""
    cfg = load_settings({})
    for d in range(12):
        folder = f"/lib/{2020 + d % 3}/{d:02d}"
        for n in range(4):
            add(s, root, f"{folder}/IMG_{n}.CR3", n)
            add(s, root, f"{folder}/IMG_{n}.JPG", n)
        add(s, root, f"{folder}/IMG_1.xmp", 1)
        add(s, root, f"{folder}/IMG_7.HEIC", 7, content_id=f"c{d}")
        add(s, root, f"{folder}/IMG_7.MOV", 7, content_id=f"c{d}")
        add(s, root, f"{folder}/solo.jpg", 9)
        if d % 4 == 0:  # a trip whose RAWs an import tool put in RAW/
            add(s, root, f"{folder}/DSC_5.JPG", 20)
            add(s, root, f"{folder}/RAW/DSC_5.CR3", 20)
    service.regroup(s, None)

    def gid_of(path: str) -> str:
        fid = s.scalar(select(File.id).where(File.path_key == path_key(path)))
        return Q.group_id_of_files(s, [fid])[fid]

    service.merge_files(
        s, ["/lib/2020/00/solo.jpg", "/lib/2021/01/solo.jpg", "/lib/2022/02/solo.jpg"], None, cfg
    )
    service.split_group(s, gid_of("/lib/2020/03/IMG_2.JPG"), ["/lib/2020/03/IMG_2.JPG"], cfg)
    service.split_group(s, gid_of("/lib/2021/04/IMG_3.CR3"), None, cfg)
    moved = s.scalar(select(File).where(File.path_key == path_key("/lib/2022/05/IMG_0.JPG")))
    moved.path = "/lib/2022/08/IMG_8.JPG"  # a name folder 08 does not hold
    moved.path_key, moved.dir_key = path_key(moved.path), dir_key(moved.path)
    s.flush()
    service.regroup(s, None)


def stored(s) -> dict[str, tuple]:
    """Every stored group by id: what it is, when it was written, its members."""
    out = {
        g.group_id: (g.group_key, g.group_type, g.dir_key, g.source, g.created_at, g.updated_at)
        for g in s.scalars(select(FileGroup))
    }
    members: dict[str, list] = {gid: [] for gid in out}
    for m in s.scalars(select(GroupMember)):
        members[m.group_id].append(
            (m.file_id, m.file_path, m.file_type, m.role, m.is_primary, m.file_size)
        )
    return {gid: (*g, sorted(members[gid])) for gid, g in out.items()}


def shape(snap: dict[str, tuple]) -> list[tuple]:
    """The groups without their ids and timestamps (a pass from scratch makes new ones)."""
    return sorted((*g[:4], tuple(g[6])) for g in snap.values())


def overrides(s) -> list[tuple]:
    return sorted(
        (o.id, o.action, o.dir_key, o.members, o.primary_path)
        for o in s.scalars(select(GroupOverride))
    )


@pytest.mark.parametrize("batch_files", [1, 10**9])
@pytest.mark.parametrize("by_root", [False, True])
def test_an_unchanged_full_pass_keeps_every_group_as_a_pass_from_scratch_makes_it(
    db_session, root, monkeypatch, batch_files, by_root
):
    s = db_session
    # Given a grouped library with a user's merges and splits, nothing changed since
    library(s, root)
    before, kept = stored(s), overrides(s)
    files_before = sorted(s.execute(select(File.id, File.updated_at)))
    assert len(before) > 40 and {g[1] for g in before.values()} >= {
        "raw_jpeg", "live_photo", "manual"
    }  # fmt: skip
    monkeypatch.setattr(service, "BATCH_FILES", batch_files)
    # When a full pass runs (a rules upgrade), in batches of any size
    stats = service.regroup(s, None, root_id=root.id if by_root else None)
    # Then it writes nothing: every group keeps its id, members, timestamps; every
    # correction is kept, and no file is marked changed for the dedup pass
    assert (stats.created, stats.updated, stats.deleted) == (0, 0, 0)
    assert stats.unchanged == len(before)
    assert stored(s) == before and overrides(s) == kept
    assert sorted(s.execute(select(File.id, File.updated_at))) == files_before
    # And a pass from scratch (the groups deleted first) makes exactly those groups
    s.execute(delete(GroupMember))
    s.execute(delete(FileGroup))
    scratch = service.regroup(s, None, root_id=root.id if by_root else None)
    assert scratch.created == len(before)
    assert shape(stored(s)) == shape(before) and overrides(s) == kept


def test_a_file_moved_in_after_a_pass_read_its_scope_leaves_its_old_group(db_session, root):
    s = db_session
    # Given a pair in folder a, and a RAW of the same name in folder b
    add(s, root, "/lib/a/IMG_1.CR3")
    jpg = add(s, root, "/lib/a/IMG_1.JPG")
    add(s, root, "/lib/b/IMG_1.CR3")
    service.regroup(s, None)
    (old,) = s.scalars(select(FileGroup.group_id))
    # When the JPEG moves to b after a pass read which folders go together (so folder b
    # is regrouped alone, in a batch without folder a)
    jpg.path = "/lib/b/IMG_1.JPG"
    jpg.path_key, jpg.dir_key = path_key(jpg.path), dir_key(jpg.path)
    s.flush()
    stats = service.Stats()
    service._regroup_batch(s, [dir_key("/lib/b/x")], [], "rendition", stats)
    # Then its old group (in folder a) loses it, and it pairs in b: in one group only
    members = sorted(s.execute(select(GroupMember.group_id, GroupMember.file_path)))
    assert [p for _, p in members] == ["/lib/b/IMG_1.CR3", "/lib/b/IMG_1.JPG"]
    assert old not in {g for g, _ in members} and (stats.created, stats.deleted) == (1, 1)


def test_an_unchanged_full_pass_reads_each_stored_group_once_not_once_a_batch(
    db_session, root, monkeypatch
):
    s = db_session
    # Given a grouped library, passes in batches of one folder, and a planner that takes
    # an index wherever one serves (small tables are otherwise read whole anyway)
    library(s, root)
    n_groups = len(stored(s))
    monkeypatch.setattr(service, "BATCH_FILES", 1)
    s.execute(text("SET LOCAL enable_seqscan = off"))

    def reads() -> tuple[int, int]:
        return s.execute(
            text(
                "SELECT seq_scan, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
                "FROM pg_stat_xact_user_tables WHERE relname = 'file_groups'"
            )
        ).one()

    scans, rows = reads()
    # When a full pass finds nothing changed (one batch a folder: 40 batches and more)
    stats = service.regroup(s, None)
    assert not stats.changed and stats.unchanged == n_groups
    scans2, rows2 = reads()
    # Then no batch read the whole of file_groups (the groups of the batch's folders and of
    # its files: an index each), and the pass read each group a few times, not once a batch
    assert scans2 == scans
    assert rows2 - rows <= 3 * n_groups, (rows2 - rows, n_groups)
