"""The grouping service on PostgreSQL: catalog rows in, file_groups/group_members out.

Catalog rows are inserted directly (the scan is tested elsewhere); each test runs in a
transaction that is rolled back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from core import jobs
from core.config import load_settings
from core.grouping import service
from core.models import File, FileGroup, GroupMember, GroupOverride, Job, Root
from core.paths import dir_key, path_key
from tests.factories import media_row

T0 = datetime(2024, 6, 1, 9, 0, 0)


@pytest.fixture
def root(db_session) -> Root:
    return jobs.get_or_create_root(db_session, "/lib")


def add(
    session, root: Root, path: str, taken: datetime | None = T0, size: int = 1000, **fields
) -> File:
    f = media_row(root.id, path, size=size, taken_at=taken, **fields)
    session.add(f)
    session.flush()
    return f


def groups(session) -> dict[frozenset[str], tuple[str, str, str]]:
    """{member paths: (group id, type, primary path)}"""
    out: dict[str, list] = {}
    for gid, gtype, p, prim in session.execute(
        select(
            FileGroup.group_id, FileGroup.group_type, GroupMember.file_path, GroupMember.is_primary
        ).join(GroupMember, GroupMember.group_id == FileGroup.group_id)
    ):
        out.setdefault(gid, [gtype, None, set()])
        out[gid][2].add(p)
        if prim:
            out[gid][1] = p
    return {frozenset(ps): (gid, t, prim) for gid, (t, prim, ps) in out.items()}


def test_from_scratch_incremental_and_idempotent(db_session, root):
    s = db_session
    add(s, root, "/lib/a/IMG_1.CR2")
    add(s, root, "/lib/a/IMG_1.JPG")
    add(s, root, "/lib/a/IMG_2.JPG")
    add(s, root, "/lib/b/IMG_1.JPG")  # the same stem in another folder: not a pair
    st = service.regroup(s, None)
    assert st.created == 1 and st.changed
    g = groups(s)
    assert list(g) == [frozenset({"/lib/a/IMG_1.CR2", "/lib/a/IMG_1.JPG"})]
    gid, gtype, prim = g[frozenset({"/lib/a/IMG_1.CR2", "/lib/a/IMG_1.JPG"})]
    assert (gtype, prim) == ("raw_jpeg", "/lib/a/IMG_1.JPG")

    # Nothing changed: nothing is written
    again = service.regroup(s, None)
    assert not again.changed and again.unchanged == 1

    # A new sidecar joins the existing group (same id) by regrouping its folder only
    add(s, root, "/lib/a/IMG_1.xmp")
    st = service.regroup(s, [dir_key("/lib/a/IMG_1.xmp")])
    assert st.folders == 1 and st.updated == 1 and st.created == 0
    assert (
        groups(s)[frozenset({"/lib/a/IMG_1.CR2", "/lib/a/IMG_1.JPG", "/lib/a/IMG_1.xmp"})][0] == gid
    )

    # A new file forms a new group in the other folder without touching folder a
    add(s, root, "/lib/b/IMG_1.DNG")
    st = service.regroup(s, [dir_key("/lib/b/IMG_1.DNG")])
    assert (st.folders, st.created, st.updated, st.deleted) == (1, 1, 0, 0)
    assert len(groups(s)) == 2


def test_decoy_hours_apart_stays_apart(db_session, root):
    add(db_session, root, "/lib/c/DSC_0001.CR2", T0)
    add(db_session, root, "/lib/c/DSC_0001.JPG", T0.replace(hour=15))
    assert not service.regroup(db_session, None).changed
    assert groups(db_session) == {}


def test_moved_and_missing_files(db_session, root):
    s = db_session
    raw = add(s, root, "/lib/a/IMG_5.CR2")
    jpg = add(s, root, "/lib/a/IMG_5.JPG")
    add(s, root, "/lib/a/IMG_5.xmp")
    service.regroup(s, None)
    ((gid, *_),) = groups(s).values()

    # Both media files and the sidecar move to folder b (the scan updates path and dir_key)
    for f in s.scalars(select(File)):
        new = f.path.replace("/lib/a/", "/lib/b/")
        f.path, f.path_key, f.dir_key = new, path_key(new), dir_key(new)
    s.flush()
    st = service.regroup(s, [dir_key("/lib/b/x")])  # only the destination changed
    g = groups(s)
    assert list(g) == [frozenset({"/lib/b/IMG_5.CR2", "/lib/b/IMG_5.JPG", "/lib/b/IMG_5.xmp"})]
    assert next(iter(g.values()))[0] == gid  # the moved shot keeps its group id
    assert st.deleted == 0

    # The JPEG alone moves back: its old group loses it (but keeps the RAW + sidecar)
    jpg.path, jpg.path_key, jpg.dir_key = (
        "/lib/a/IMG_5.JPG",
        path_key("/lib/a/IMG_5.JPG"),
        dir_key("/lib/a/x"),
    )
    s.flush()
    service.regroup(s, [dir_key("/lib/a/x")])
    assert set(groups(s)) == {frozenset({"/lib/b/IMG_5.CR2", "/lib/b/IMG_5.xmp"})}

    # The RAW is deleted: the group is left with one member and dissolves
    s.execute(update(File).where(File.id == raw.id).values(status="missing"))
    st = service.regroup(s, [dir_key("/lib/b/x")])
    assert groups(s) == {} and st.deleted == 1
    assert s.scalar(select(func.count()).select_from(GroupMember)) == 0


def test_split_and_merge_survive_regrouping(db_session, root):
    s = db_session
    cfg = load_settings({})
    for p in (
        "/lib/a/IMG_1.CR2",
        "/lib/a/IMG_1.JPG",
        "/lib/a/IMG_1.xmp",
        "/lib/a/IMG_2.JPG",
        "/lib/other/scan.jpg",
    ):
        add(s, root, p)
    service.regroup(s, None)
    gid = groups(s)[frozenset({"/lib/a/IMG_1.CR2", "/lib/a/IMG_1.JPG", "/lib/a/IMG_1.xmp"})][0]

    # Take the JPEG out: the RAW keeps its sidecar, the JPEG stands alone
    service.split_group(s, gid, ["/lib/a/IMG_1.JPG"], cfg)
    assert set(groups(s)) == {frozenset({"/lib/a/IMG_1.CR2", "/lib/a/IMG_1.xmp"})}
    # ...and a later regroup from scratch respects it
    s.execute(GroupMember.__table__.delete())
    s.execute(FileGroup.__table__.delete())
    service.regroup(s, None)
    assert set(groups(s)) == {frozenset({"/lib/a/IMG_1.CR2", "/lib/a/IMG_1.xmp"})}

    # Merge files from two folders with a chosen primary
    mid, _ = service.merge_files(
        s, ["/lib/a/IMG_2.JPG", "/lib/other/scan.jpg"], "/lib/other/scan.jpg", cfg
    )
    g = groups(s)
    assert g[frozenset({"/lib/a/IMG_2.JPG", "/lib/other/scan.jpg"})] == (
        mid,
        "manual",
        "/lib/other/scan.jpg",
    )
    assert s.get(FileGroup, mid).source == "manual"
    # Regrouping only one of the two folders keeps the manual group whole
    assert not service.regroup(s, [dir_key("/lib/a/x")]).changed
    # Dissolving the manual group drops the merge
    service.split_group(s, mid, None, cfg)
    assert set(groups(s)) == {frozenset({"/lib/a/IMG_1.CR2", "/lib/a/IMG_1.xmp"})}
    assert (
        s.scalar(
            select(func.count()).select_from(GroupOverride).where(GroupOverride.action == "merge")
        )
        == 0
    )


def test_a_raw_split_from_its_jpeg_stays_apart_from_that_jpegs_byte_copy(db_session, root):
    s = db_session
    cfg = load_settings({})
    # Given a RAW in RAW/ paired with its JPEG in JPG/ (the JPEG nearer in time), and a
    # byte copy of that JPEG in the trip's folder, a pair too once the first is gone
    add(s, root, "/lib/trip/RAW/IMG_1.CR3")
    add(s, root, "/lib/trip/JPG/IMG_1.JPG", sha256="aa" * 32)
    add(s, root, "/lib/trip/IMG_1.JPG", taken=T0 + timedelta(seconds=1), sha256="aa" * 32)
    service.regroup(s, None)
    pair = frozenset({"/lib/trip/RAW/IMG_1.CR3", "/lib/trip/JPG/IMG_1.JPG"})
    assert set(groups(s)) == {pair}
    # When the user splits the RAW from it
    service.split_group(s, groups(s)[pair][0], None, cfg)
    # Then the RAW pairs with no copy of that picture, now or in a later pass
    assert groups(s) == {}
    s.execute(GroupMember.__table__.delete())
    s.execute(FileGroup.__table__.delete())
    service.regroup(s, None)
    assert groups(s) == {}


def test_taking_the_linking_file_out_of_a_group_of_two_merges_keeps_the_rest(db_session, root):
    s, cfg = db_session, load_settings({})
    for p in ("/lib/x/a.jpg", "/lib/x/b.jpg", "/lib/y/c.jpg"):
        add(s, root, p)
    service.regroup(s, None)
    # Given a manual group made by two merges that share a file: [a, b], then [b, c]
    service.merge_files(s, ["/lib/x/a.jpg", "/lib/x/b.jpg"], None, cfg)
    gid, _ = service.merge_files(s, ["/lib/x/b.jpg", "/lib/y/c.jpg"], None, cfg)
    assert frozenset({"/lib/x/a.jpg", "/lib/x/b.jpg", "/lib/y/c.jpg"}) in groups(s)
    # When only b is taken out
    service.split_group(s, gid, ["/lib/x/b.jpg"], cfg)
    # Then a and c stay one group (before: both merges shrank to one file and went)
    assert set(groups(s)) == {frozenset({"/lib/x/a.jpg", "/lib/y/c.jpg"})}
    service.regroup(s, None)  # and a later pass agrees
    assert set(groups(s)) == {frozenset({"/lib/x/a.jpg", "/lib/y/c.jpg"})}


def test_merging_again_with_another_primary_changes_the_primary(db_session, root):
    s, cfg = db_session, load_settings({})
    for p in ("/lib/x/a.jpg", "/lib/x/b.jpg", "/lib/x/c.jpg"):
        add(s, root, p)
    service.regroup(s, None)
    # Given a manual group whose primary is a
    service.merge_files(s, ["/lib/x/a.jpg", "/lib/x/b.jpg"], "/lib/x/a.jpg", cfg)
    # When the same files are merged again (with one more) choosing b
    gid, _ = service.merge_files(s, ["/lib/x/b.jpg", "/lib/x/c.jpg"], "/lib/x/b.jpg", cfg)
    # Then b is the primary, now and after a later pass
    everything = frozenset({"/lib/x/a.jpg", "/lib/x/b.jpg", "/lib/x/c.jpg"})
    assert groups(s)[everything] == (gid, "manual", "/lib/x/b.jpg")
    service.regroup(s, None)
    assert groups(s)[everything][1:] == ("manual", "/lib/x/b.jpg")


def test_a_new_primary_alone_rewrites_the_group(db_session, root):
    s, cfg = db_session, load_settings({})
    add(s, root, "/lib/p/IMG_1.CR2")
    add(s, root, "/lib/p/IMG_1.JPG")
    for p in ("/lib/x/a.jpg", "/lib/x/b.jpg"):
        add(s, root, p)
    service.regroup(s, None)
    pair = frozenset({"/lib/p/IMG_1.CR2", "/lib/p/IMG_1.JPG"})
    assert groups(s)[pair][2] == "/lib/p/IMG_1.JPG"
    # When the primary policy changes, the members staying the same
    stats = service.regroup(s, None, policy="raw")
    # Then the stored group gets the RAW as its primary
    assert groups(s)[pair][2] == "/lib/p/IMG_1.CR2" and stats.updated == 1
    # And merging the same files again with another primary moves the primary
    service.merge_files(s, ["/lib/x/a.jpg", "/lib/x/b.jpg"], "/lib/x/a.jpg", cfg)
    gid, _ = service.merge_files(s, ["/lib/x/a.jpg", "/lib/x/b.jpg"], "/lib/x/b.jpg", cfg)
    assert groups(s)[frozenset({"/lib/x/a.jpg", "/lib/x/b.jpg"})] == (gid, "manual", "/lib/x/b.jpg")


def test_taking_a_file_out_keeps_the_chosen_primary(db_session, root):
    s, cfg = db_session, load_settings({})
    for p in ("/lib/x/a.jpg", "/lib/x/b.jpg", "/lib/x/c.jpg"):
        add(s, root, p)
    service.regroup(s, None)
    # Given a manual group of three with c chosen as its primary
    gid, _ = service.merge_files(
        s, ["/lib/x/a.jpg", "/lib/x/b.jpg", "/lib/x/c.jpg"], "/lib/x/c.jpg", cfg
    )
    # When a is taken out
    service.split_group(s, gid, ["/lib/x/a.jpg"], cfg)
    # Then the rest keeps c as its primary, now and after a later pass
    rest = frozenset({"/lib/x/b.jpg", "/lib/x/c.jpg"})
    assert groups(s)[rest][1:] == ("manual", "/lib/x/c.jpg")
    service.regroup(s, None)
    assert groups(s)[rest][1:] == ("manual", "/lib/x/c.jpg")


def test_a_merge_made_while_a_pass_runs_is_not_undone_by_it(db_session, root, monkeypatch):
    s, cfg = db_session, load_settings({})
    # Given a library of two folders that a pass takes in two batches
    for p in ("/lib/a/one.jpg", "/lib/b/two.jpg", "/lib/b/three.jpg"):
        add(s, root, p)
    monkeypatch.setattr(service, "BATCH_FOLDERS", 1)
    monkeypatch.setattr(service._Scope.batches, "__defaults__", (1,))
    service.regroup(s, None)
    merged = frozenset({"/lib/b/two.jpg", "/lib/b/three.jpg"})

    # When a user merges two files of the second folder after the pass read the merges
    # (it does at its start) and before it reached that folder
    def progress(done: int, total: int) -> bool:
        if done == 1:
            service.merge_files(s, sorted(merged), None, cfg)
        return True

    service.regroup(s, None, progress=progress)
    # Then the pass ends with the user's group in place
    assert merged in groups(s)


def test_corrections_refuse_bad_input(db_session, root):
    cfg = load_settings({})
    add(db_session, root, "/lib/a/IMG_1.CR2")
    add(db_session, root, "/lib/a/IMG_1.JPG")
    service.regroup(db_session, None)
    ((gid, *_),) = groups(db_session).values()
    with pytest.raises(service.GroupingError) as e:
        service.split_group(db_session, "nope", None, cfg)
    assert e.value.status == 404
    with pytest.raises(service.GroupingError):
        service.split_group(db_session, gid, ["/lib/a/other.jpg"], cfg)
    with pytest.raises(service.GroupingError):
        service.merge_files(db_session, ["/lib/a/IMG_1.JPG"], None, cfg)
    with pytest.raises(service.GroupingError) as e:
        service.merge_files(db_session, ["/lib/a/IMG_1.JPG", "/lib/a/none.jpg"], None, cfg)
    assert e.value.status == 404
    with pytest.raises(service.GroupingError):
        service.merge_files(db_session, ["/lib/a/IMG_1.JPG", "/lib/a/IMG_1.CR2"], "/lib/x.jpg", cfg)


def _three_pairs_and_a_pass(s, root) -> Job:
    """A RAW+JPEG pair in each of three folders, and a grouping pass queued over them."""
    for i in range(3):
        add(s, root, f"/lib/f{i}/IMG_1.CR2")
        add(s, root, f"/lib/f{i}/IMG_1.JPG")
    job = Job(kind="group", root_id=root.id, path="/lib", trigger="scan")
    s.add(job)
    s.flush()
    return job


def test_run_job_reports_folders_as_progress(db_session, root):
    s = db_session
    job = _three_pairs_and_a_pass(s, root)
    assert service.run_job(s, job.id, None, load_settings({})) is True
    s.refresh(job)
    assert (job.state, job.total, job.done) == ("done", 3, 3)
    assert job.started_at is not None and job.finished_at is not None
    # A redelivered message for a finished job does nothing
    assert service.run_job(s, job.id, None, load_settings({})) is False
    assert len(groups(s)) == 3


def test_a_cancel_during_a_batch_leaves_that_batch_unwritten(pg_db, monkeypatch):
    from core.db import engine_for, session_scope

    engine = engine_for(pg_db)
    # Given three folders of RAW+JPEG pairs and a grouping job
    with session_scope(engine) as s:
        root = jobs.get_or_create_root(s, "/lib")
        for i in range(3):
            add(s, root, f"/lib/f{i}/IMG_1.CR2")
            add(s, root, f"/lib/f{i}/IMG_1.JPG")
        job = Job(kind="group", root_id=root.id, path="/lib", trigger="scan")
        s.add(job)
    real = service._regroup_batch

    def cancelled_meanwhile(session, *args):  # the user presses Cancel while a batch runs
        real(session, *args)
        with session_scope(engine) as other:
            jobs.cancel_job(other, job.id)

    monkeypatch.setattr(service, "_regroup_batch", cancelled_meanwhile)
    # When the job runs
    with session_scope(engine) as s:
        service.run_job(s, job.id, None, load_settings({}))
    # Then it stays cancelled and the batch it was writing is not committed
    with session_scope(engine) as s:
        assert s.get(Job, job.id).state == "cancelled"
        assert s.scalar(select(func.count()).select_from(FileGroup)) == 0


def test_what_the_catalog_knows_of_a_shot_reaches_the_rules(db_session, root):
    s = db_session
    # Given a Live Photo renamed on export (only Apple's content id ties it), and two
    # bodies of one model whose counters collide (only the serials tell them apart)
    add(s, root, "/lib/l/Beach.heic", content_id="6C7A0B9E-1")
    add(s, root, "/lib/l/IMG_9.MOV", content_id="6C7A0B9E-1")
    add(s, root, "/lib/c/A.CR3", make="Canon", model="EOS R5", serial="111")
    add(s, root, "/lib/c/A.JPG", make="Canon", model="EOS R5", serial="222")
    # When the service groups them from the catalog
    service.regroup(s, None)
    # Then the Live Photo is one group and the two cameras' files are not
    assert {paths: t for paths, (_gid, t, _p) in groups(s).items()} == {
        frozenset({"/lib/l/Beach.heic", "/lib/l/IMG_9.MOV"}): "live_photo"
    }


def test_a_pass_batches_folders_by_files_with_the_same_groups(db_session, root, monkeypatch):
    s = db_session
    # Given three folders of 2, 1 and 2 files, and batches of at most two files
    for p in ("/lib/a/IMG_1.CR2", "/lib/a/IMG_1.JPG", "/lib/b/IMG_2.JPG"):
        add(s, root, p)
    for p in ("/lib/c/IMG_3.CR2", "/lib/c/IMG_3.JPG"):
        add(s, root, p)
    service.regroup(s, None)
    before = groups(s)
    monkeypatch.setattr(service, "BATCH_FILES", 2)
    scope = service._scope(s, [dir_key(f"/lib/{d}/x") for d in "abc"], expand=False)
    # Then each batch holds at most two files (a folder never split), and a pass in
    # those batches finds the same groups and changes nothing
    assert [len(b) for b in scope.batches()] == [1, 1, 1]
    stats = service.regroup(s, None)
    assert groups(s) == before and not stats.changed and len(before) == 2


# Folders tied by a manual merge (or a stored group) stay in one batch however small the
# batches are: the same groups, ids and stats as with one batch (review of ef72815)
def _build(s, root):
    cfg = load_settings({})
    for d in "abcdefgh":
        for n in range(3):
            add(s, root, f"/lib/{d}/IMG_{n}.CR2")
            add(s, root, f"/lib/{d}/IMG_{n}.JPG")
        add(s, root, f"/lib/{d}/solo.jpg")
    service.regroup(s, None)
    # a manual merge across far-apart folders, one spanning three
    service.merge_files(s, ["/lib/a/solo.jpg", "/lib/h/solo.jpg"], None, cfg)
    gid, _ = service.merge_files(
        s, ["/lib/b/solo.jpg", "/lib/e/solo.jpg", "/lib/g/solo.jpg"], None, cfg
    )
    # partial split of a cross-folder group
    service.split_group(s, gid, ["/lib/e/solo.jpg"], cfg)
    s.flush()


def _rename_folder(s, old, new):
    for f in s.scalars(select(File).where(File.dir_key == dir_key(old + "/x"))):
        p = new + f.path[len(old) :]
        f.path, f.path_key, f.dir_key = p, path_key(p), dir_key(p)
    s.flush()


def _snapshot(s):
    return dict(groups(s))  # members -> (id, type, primary)


@pytest.mark.parametrize("batch_files", [1, 3, 7])
def test_batches_of_any_size_keep_merges_splits_and_renamed_folders_the_same(
    db_session, root, monkeypatch, batch_files
):
    s = db_session
    _build(s, root)
    s.flush()
    results = []
    for bf in (10**9, batch_files):
        nested = s.begin_nested()
        monkeypatch.setattr(service, "BATCH_FILES", bf)
        _rename_folder(s, "/lib/c", "/lib/zz")  # a renamed folder
        _rename_folder(s, "/lib/h", "/lib/c2")  # the folder of a manual merge's member
        st1 = service.regroup(s, None)
        snap1 = _snapshot(s)
        # a folder-scoped pass
        add(s, root, "/lib/d/IMG_9.CR2")
        add(s, root, "/lib/d/IMG_9.JPG")
        st2 = service.regroup(s, [dir_key("/lib/d/x"), dir_key("/lib/zz/x")])
        snap2 = _snapshot(s)
        st3 = service.regroup(s, None)
        results.append((snap1, snap2, st1.as_dict(), st2.as_dict(), st3.as_dict(), _snapshot(s)))
        nested.rollback()
    big, small = results

    # ids of fresh groups differ (new_id); compare membership/type/primary plus ids of kept groups
    def norm(snap, before):
        return {k: (v[1], v[2], v[0] if v[0] in before else "new") for k, v in snap.items()}

    before = {v[0] for v in _snapshot(s).values()}
    for i in (0, 1, 5):
        assert norm(big[i], before) == norm(small[i], before)
    for i in (2, 3, 4):
        a, b = dict(big[i]), dict(small[i])
        assert {k: v for k, v in a.items() if k != "folders"} == {
            k: v for k, v in b.items() if k != "folders"
        }


@pytest.mark.parametrize("batch_folders", [1, 200])
def test_a_raw_folder_pairs_with_the_folder_holding_it_in_every_pass(
    db_session, root, monkeypatch, batch_folders
):
    s = db_session
    # (batches of one folder: the RAW folder and its neighbour must still meet in one)
    monkeypatch.setattr(service, "BATCH_FOLDERS", batch_folders)
    monkeypatch.setattr(service._Scope.batches, "__defaults__", (batch_folders,))
    # Given a trip whose RAWs an import tool put in RAW/, with a folder of others between
    add(s, root, "/lib/trip/IMG_1.JPG")
    add(s, root, "/lib/trip/RAW/IMG_1.CR3")
    add(s, root, "/lib/trip/Q/IMG_9.JPG")
    add(s, root, "/lib/trip2/JPG/IMG_5.JPG")
    add(s, root, "/lib/trip2/raw/IMG_5.CR3")
    add(s, root, "/lib/trip5/JPG Files/IMG_9.JPG")
    add(s, root, "/lib/trip5/RAWs/IMG_9.CR3")
    # When the library is grouped from scratch
    service.regroup(s, None)
    # Then each RAW pairs with its JPEG across the folders, the JPEG the primary
    pair = frozenset({"/lib/trip/IMG_1.JPG", "/lib/trip/RAW/IMG_1.CR3"})
    pair2 = frozenset({"/lib/trip2/JPG/IMG_5.JPG", "/lib/trip2/raw/IMG_5.CR3"})
    pair5 = frozenset({"/lib/trip5/JPG Files/IMG_9.JPG", "/lib/trip5/RAWs/IMG_9.CR3"})
    g = groups(s)
    assert set(g) == {pair, pair2, pair5}
    assert g[pair][1:] == ("raw_jpeg", "/lib/trip/IMG_1.JPG")
    # And when a shot's JPEG arrives after its RAW (an incremental pass of that folder
    # only), or a RAW after its JPEG, they pair too
    add(s, root, "/lib/trip/RAW/IMG_2.CR3", taken=T0.replace(minute=5))
    service.regroup(s, [dir_key("/lib/trip/RAW/IMG_2.CR3")])
    add(s, root, "/lib/trip/IMG_2.JPG", taken=T0.replace(minute=5))
    service.regroup(s, [dir_key("/lib/trip/IMG_2.JPG")])
    add(s, root, "/lib/trip2/JPG/IMG_6.JPG", taken=T0.replace(minute=6))
    service.regroup(s, [dir_key("/lib/trip2/JPG/IMG_6.JPG")])
    add(s, root, "/lib/trip2/raw/IMG_6.CR3", taken=T0.replace(minute=6))
    service.regroup(s, [dir_key("/lib/trip2/raw/IMG_6.CR3")])
    # (and in folders that no group ties yet: the pass finds the neighbour by its name)
    add(s, root, "/lib/trip3/RAW/IMG_7.CR3")
    service.regroup(s, [dir_key("/lib/trip3/RAW/IMG_7.CR3")])
    add(s, root, "/lib/trip3/IMG_7.JPG")
    service.regroup(s, [dir_key("/lib/trip3/IMG_7.JPG")])
    add(s, root, "/lib/trip4/jpeg/IMG_8.JPG")
    service.regroup(s, [dir_key("/lib/trip4/jpeg/IMG_8.JPG")])
    add(s, root, "/lib/trip4/RAW/IMG_8.CR3")
    service.regroup(s, [dir_key("/lib/trip4/RAW/IMG_8.CR3")])
    assert set(groups(s)) == {
        pair,
        pair2,
        pair5,
        frozenset({"/lib/trip/IMG_2.JPG", "/lib/trip/RAW/IMG_2.CR3"}),
        frozenset({"/lib/trip2/JPG/IMG_6.JPG", "/lib/trip2/raw/IMG_6.CR3"}),
        frozenset({"/lib/trip3/IMG_7.JPG", "/lib/trip3/RAW/IMG_7.CR3"}),
        frozenset({"/lib/trip4/jpeg/IMG_8.JPG", "/lib/trip4/RAW/IMG_8.CR3"}),
    }
    # And a pass over everything again changes nothing
    assert not service.regroup(s, None).changed


def test_a_group_keeps_its_id_when_its_raw_arrives_in_a_raw_folder_and_goes(db_session, root):
    s = db_session
    # Given a JPEG and its edit's sidecar, grouped, their RAW not copied off the card yet
    add(s, root, "/lib/trip/IMG_1.JPG")
    add(s, root, "/lib/trip/IMG_1.xmp")
    service.regroup(s, None)
    ((first, gid),) = [(ps, g[0]) for ps, g in groups(s).items()]
    # When the RAW arrives in RAW/ (a pass of that folder alone, as the watcher runs it)
    raw = add(s, root, "/lib/trip/RAW/IMG_1.CR3")
    stats = service.regroup(s, [dir_key(raw.path)])
    # Then the group that gained it is the same group: its id, now a RAW+JPEG pair
    g = groups(s)
    assert set(g) == {first | {"/lib/trip/RAW/IMG_1.CR3"}}
    assert g[first | {"/lib/trip/RAW/IMG_1.CR3"}][:2] == (gid, "raw_jpeg")
    assert (stats.created, stats.updated, stats.deleted) == (0, 1, 0)
    # And when the RAW is deleted again, the group that lost it keeps its id too
    raw.status = "missing"
    s.flush()
    service.regroup(s, [dir_key(raw.path)])
    assert {ps: v[0] for ps, v in groups(s).items()} == {first: gid}


def test_a_second_delivery_racing_the_first_leaves_the_progress_it_made(
    db_session, root, monkeypatch
):
    s = db_session
    cfg = load_settings({})
    job = _three_pairs_and_a_pass(s, root)
    real = jobs.mark_running
    calls: list[str] = []

    def racing(session, job_id):
        calls.append(job_id)
        if len(calls) == 1:  # delivery B, past its check: delivery A runs to its end first
            assert service.run_job(session, job_id, None, cfg) is True
        real(session, job_id)

    monkeypatch.setattr(service.jobs, "mark_running", racing)
    # When a message is delivered twice, the second past its check as the first finishes
    service.run_job(s, job.id, None, cfg)
    # Then the job stays finished with the progress the first made, not done 0 of 3
    s.refresh(job)
    assert (job.state, job.total, job.done) == ("done", 3, 3)
    assert len(groups(s)) == 3


def test_a_pass_of_older_rules_leaves_every_folder_due(db_session, root):
    import json

    from core.grouping import watermark as W
    from core.models import utcnow

    s = db_session
    # Given a RAW folder beside its JPEG, cataloged and grouped by a pass of the rules
    # before RAW folders paired (its summary names no rules), nothing changed since
    add(s, root, "/lib/trip/IMG_1.JPG")
    add(s, root, "/lib/trip/RAW/IMG_1.CR3")
    mark = (utcnow() + timedelta(minutes=1)).isoformat()
    old = Job(kind="group", root_id=root.id, path="/lib", state="done", trigger="scan")
    old.summary = json.dumps({"watermark": mark})
    scan = Job(kind="scan", root_id=root.id, path="/lib", state="done", trigger="api")
    scan.started_at = utcnow()
    s.add_all([old, scan])
    s.flush()
    # Then the next scan's grouping pass is due, over every folder, and pairs them
    assert W.due(s, scan)
    job = Job(kind="group", root_id=root.id, path="/lib", trigger="scan", parent_id=scan.id)
    s.add(job)
    s.flush()
    service.run_job(s, job.id, None, load_settings({}))
    assert set(groups(s)) == {frozenset({"/lib/trip/IMG_1.JPG", "/lib/trip/RAW/IMG_1.CR3"})}
    # And a pass of these rules leaves a watermark that counts: nothing is due after it
    s.refresh(job)
    assert json.loads(job.summary)["rules"] == W.RULES
    assert not W.due(s, scan)
