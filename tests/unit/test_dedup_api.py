"""The dedup API (port 8001) through Flask's test client, on an embedded SQLite catalog.

Catalog rows are written directly (no image decoding), then a real dedup pass
(core.dedup.service.dedupe) fills the duplicate tables the API serves.
"""

from __future__ import annotations

import json
import os
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select, update

import api
from core.config import Settings, load_settings
from core.db import engine_for, migrate, session_scope
from core.dedup import service
from core.models import DuplicateGroup, DuplicateResolution, File, Job, Root
from core.paths import dir_key, path_key
from tests.factories import file_row

TOKEN = "unit-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class RecordingBroker:
    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[Any, ...]]] = []

    def declare_queue(self, name: str) -> None:
        pass

    def enqueue(self, message: Any, delay: int | None = None) -> Any:
        self.messages.append((message.actor_name, tuple(message.args)))
        return message


def rand_hash(rng: random.Random) -> int:
    bits = rng.sample(range(64), 32)
    return sum(1 << b for b in bits)


def flip(h: int, n: int, rng: random.Random) -> int:
    for b in rng.sample(range(64), n):
        h ^= 1 << b
    return h


class Catalog:
    def __init__(self, settings: Settings, lib: Path) -> None:
        self.settings = settings
        self.lib = lib
        self.engine = engine_for(settings.database_url)
        with session_scope(self.engine) as s:
            root = Root(path=str(lib), path_key=path_key(str(lib)))
            s.add(root)
            s.flush()
            self.root_id = root.id

    def add(
        self,
        rel: str,
        *,
        size: int = 1000,
        sha: str | None = None,
        phash: int | None = None,
        width: int = 400,
        height: int = 300,
        fmt: str = "jpeg",
        sha1: str | None = None,
        taken: datetime | None = None,
        model: str = "EOS",
        serial: str | None = None,
    ) -> int:
        path = str(self.lib / rel)
        with session_scope(self.engine) as s:
            f = file_row(
                self.root_id,
                path,
                size=size,
                kind="image",
                format=fmt,
                sha256=sha,
                sha1=sha1,
                phash=f"{phash:016x}" if phash is not None else None,
                width=width,
                height=height,
                taken_at=taken,
                make="Canon",
                model=model,
                serial=serial,
            )
            s.add(f)
            s.flush()
            return f.id

    def path(self, rel: str) -> str:
        return str(self.lib / rel)

    def mark_missing(self, rel: str) -> None:
        """The file is gone from disk, as a scan records it (an incremental pass sees it)."""
        with session_scope(self.engine) as s:
            s.execute(
                update(File)
                .where(File.path_key == path_key(self.path(rel)))
                .values(status="missing", updated_at=datetime.now())
            )

    def move(self, rel: str, to: str) -> None:
        """The file was moved, as a scan records it: the same row, a new path."""
        with session_scope(self.engine) as s:
            s.execute(
                update(File)
                .where(File.path_key == path_key(self.path(rel)))
                .values(
                    path=self.path(to),
                    path_key=path_key(self.path(to)),
                    dir_key=dir_key(self.path(to)),
                    updated_at=datetime.now(),
                )
            )

    def dedupe(self, *, full: bool = True, since: datetime | None = None) -> service.Stats:
        with session_scope(self.engine) as s:
            return service.dedupe(s, self.settings, since=None if full else since)


@pytest.fixture
def env(tmp_path: Path):
    lib = (tmp_path / "library").resolve()
    lib.mkdir()
    settings = load_settings(
        {},
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'data' / 'twinlens.db'}",
        library_roots=(lib,),
        service_token=TOKEN,
    )
    migrate(settings.database_url)
    cat = Catalog(settings, lib)
    broker = RecordingBroker()
    app = api.create_app("dedup", {"settings": settings, "broker": broker, "TESTING": True})
    yield cat, app.test_client(), broker
    engine_for(settings.database_url).dispose()


def sha(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def world(env):
    """3 exact groups (sizes 3000, 2000, 1000 per copy), 2 perceptual groups (pHash
    distance 2 and 6), and a lone file."""
    cat, client, broker = env
    rng = random.Random(7)
    for k, size in enumerate((3000, 2000, 1000), start=1):
        h = rand_hash(rng)
        for n in range(2):
            cat.add(f"exact{k}/copy{n}.jpg", size=size, sha=sha(k), phash=h, sha1=f"{k:040x}")
    base1, base2 = rand_hash(rng), rand_hash(rng)
    cat.add("p1/big.jpg", size=500, sha=sha(11), phash=base1, width=4000, height=3000)
    cat.add(
        "p1/small.jpg", size=400, sha=sha(12), phash=flip(base1, 2, rng), width=2000, height=1500
    )
    cat.add("p2/a.jpg", size=300, sha=sha(21), phash=base2)
    cat.add("p2/b.png", size=300, sha=sha(22), phash=flip(base2, 6, rng), fmt="png")
    cat.add("lone.jpg", size=123, sha=sha(99), phash=rand_hash(rng), sha1="f" * 40)
    cat.dedupe()
    return cat, client, broker


def get(client, url: str, **kw: Any):
    return client.get(url, headers=AUTH, **kw)


def post(client, url: str, body: Any = None, **kw: Any):
    if body is not None and not isinstance(body, (bytes, str)):
        kw["json"] = body
    elif body is not None:
        kw["data"] = body
        kw["content_type"] = "application/json"
    return client.post(url, headers=AUTH, **kw)


def items(client, query: str = "") -> dict[str, Any]:
    r = get(client, "/duplicates" + query)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def by_path(client, rel_first: str, cat: Catalog) -> dict[str, Any]:
    for d in items(client, "?size=1000")["items"]:
        if any(m["path"] == cat.path(rel_first) for m in d["members"]):
            return d
    raise AssertionError(f"no group holds {rel_first}")


# --- listing -----------------------------------------------------------------------------


def test_paging_order_and_totals(world) -> None:
    cat, client, _ = world
    first = items(client, "?size=2")
    assert first["total"] == 5 and first["page"] == 1 and first["size"] == 2
    assert [d["reclaimable_bytes"] for d in first["items"]] == [3000, 2000]
    third = items(client, "?size=2&page=3")
    assert len(third["items"]) == 1
    everything = items(client, "?size=1000")["items"]
    assert len({d["id"] for d in everything}) == 5
    assert items(client, "?size=2&page=9")["items"] == []


def test_filters(world) -> None:
    cat, client, _ = world
    assert items(client, "?type=exact")["total"] == 3
    perceptual = items(client, "?type=perceptual")["items"]
    assert len(perceptual) == 2 and all(d["type"] == "perceptual" for d in perceptual)
    close = items(client, "?min_similarity=0.95")["items"]
    assert sorted(d["type"] for d in close) == ["exact"] * 3 + ["perceptual"]
    assert all(d["similarity"] >= 0.95 for d in close)
    assert items(client, "?min_similarity=1")["total"] == 3
    assert items(client, "?status=open")["total"] == 5
    assert items(client, "?status=dismissed")["total"] == 0


def test_a_folder_filter_lists_the_groups_with_a_copy_there(world) -> None:
    cat, client, _ = world
    # Given a fourth byte copy of exact2's picture in a backup folder
    cat.add("backup/2019/copy.jpg", size=2000, sha=sha(2), sha1=f"{2:040x}")
    cat.dedupe()
    # When the groups with a copy under backup/ are asked for
    page = items(client, "?" + urlencode({"path_prefix": cat.path("backup")}))
    # Then only that group comes, with all its copies, and the total counts it alone
    assert page["total"] == 1
    assert {m["path"] for m in page["items"][0]["members"]} == {
        cat.path("exact2/copy0.jpg"),
        cat.path("exact2/copy1.jpg"),
        cat.path("backup/2019/copy.jpg"),
    }
    # A folder is a folder: "p" holds neither p1 nor p2, and filters combine
    assert items(client, "?" + urlencode({"path_prefix": cat.path("p")}))["total"] == 0
    p1 = urlencode({"path_prefix": cat.path("p1"), "type": "perceptual"})
    assert items(client, "?" + p1)["total"] == 1
    # And a folder outside the library is refused, not answered with nothing
    r = get(client, "/duplicates?" + urlencode({"path_prefix": "/etc"}))
    assert r.status_code == 400 and "outside" in r.get_json()["error"]


def test_detail_shape_and_keeper(world) -> None:
    cat, client, _ = world
    d = by_path(client, "p1/big.jpg", cat)
    one = get(client, f"/duplicates/{d['id']}").get_json()
    assert one == d
    assert one["type"] == "perceptual" and one["status"] == "open"
    assert one["keep"] == cat.path("p1/big.jpg") and one["keep_reason"] == "resolution"
    assert one["reclaimable_bytes"] == 400
    assert one["similarity"] == pytest.approx(1 - 2 / 64, abs=1e-4)
    keeper, other = one["members"]
    assert keeper["path"] == one["keep"] and keeper["similarity"] == 1.0
    assert other["similarity"] == pytest.approx(1 - 2 / 64, abs=1e-4)
    assert set(other) >= {
        "path",
        "size",
        "width",
        "height",
        "taken_at",
        "make",
        "model",
        "similarity",
        "sha1",
        "kind",
        "format",
        "file_id",
    }
    assert (other["width"], other["height"], other["make"], other["kind"]) == (
        2000,
        1500,
        "Canon",
        "image",
    )
    ex = by_path(client, "exact1/copy0.jpg", cat)
    assert ex["type"] == "exact" and ex["similarity"] == 1.0
    assert ex["keep_reason"] == "tie: path" and ex["keep"] == cat.path("exact1/copy0.jpg")
    assert {m["sha1"] for m in ex["members"]} == {f"{1:040x}"}


def test_unknown_group_is_404(world) -> None:
    _cat, client, _ = world
    r = get(client, "/duplicates/nope")
    assert r.status_code == 404 and "nope" in r.get_json()["error"]
    assert (
        post(client, "/duplicates/nope/resolution", {"action": "not_duplicate"}).status_code == 404
    )
    assert client.delete("/duplicates/nope/resolution", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "query, word",
    [
        ("?type=bogus", "type"),
        ("?status=closed", "status"),
        ("?min_similarity=abc", "min_similarity"),
        ("?min_similarity=1.5", "min_similarity"),
        ("?min_similarity=nan", "min_similarity"),
        ("?page=0", "page"),
        ("?page=x", "page"),
        ("?size=5000", "size"),
        ("?size=-1", "size"),
    ],
)
def test_bad_filters_and_paging_are_400(world, query: str, word: str) -> None:
    _cat, client, _ = world
    r = get(client, "/duplicates" + query)
    assert r.status_code == 400
    assert word in r.get_json()["error"]


# --- decisions -----------------------------------------------------------------------------


def test_two_decisions_on_one_group_at_once_one_wins_on_sqlite(world, monkeypatch) -> None:
    import threading

    from core.dedup import service as dedup_service

    cat, client, _ = world
    d = by_path(client, "p2/a.jpg", cat)
    paths = [m["path"] for m in d["members"]]
    # Given two reviewers deciding the same group at the same moment (each request
    # waits for the other just after it found the group open, if it ever gets there)
    met = threading.Barrier(2, timeout=1.5)
    real = dedup_service._identities

    def meet(*args, **kwargs):
        try:
            met.wait()
        except threading.BrokenBarrierError:
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(dedup_service, "_identities", meet)
    statuses: list[int] = []

    def decide(keep: str) -> None:
        c = client.application.test_client()
        r = post(c, f"/duplicates/{d['id']}/resolution", {"action": "trash", "keep": [keep]})
        statuses.append(r.status_code)

    threads = [threading.Thread(target=decide, args=(p,)) for p in paths[:2]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then one decision is recorded and the other is refused: both would trash a copy
    assert sorted(statuses) == [200, 409]
    with session_scope(cat.engine) as s:
        assert len(s.scalars(select(DuplicateResolution)).all()) == 1


def test_not_duplicate_is_recorded_and_survives_reruns(world) -> None:
    cat, client, _ = world
    d = by_path(client, "p2/a.jpg", cat)
    r = post(
        client,
        f"/duplicates/{d['id']}/resolution",
        {"action": "not_duplicate", "keep": [m["path"] for m in d["members"]]},
    )
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "dismissed" and body["resolution"]["action"] == "not_duplicate"
    with session_scope(cat.engine) as s:
        res = s.scalars(select(DuplicateResolution)).one()
        assert res.group_id == d["id"] and res.action == "not_duplicate"
        recorded = json.loads(res.members)
        # each member by its path, and by its catalog row (which a move keeps)
        assert sorted(x for x in recorded if not x.startswith("fid:")) == sorted(
            path_key(m["path"]) for m in d["members"]
        )
        assert sorted(x for x in recorded if x.startswith("fid:")) == sorted(
            f"fid:{fid}"
            for fid in s.scalars(
                select(File.id).where(File.path.in_([m["path"] for m in d["members"]]))
            )
        )
    # A full pass and an incremental pass over a touched member keep it dismissed, same id.
    cat.dedupe()
    with session_scope(cat.engine) as s:
        mark = datetime.now() - timedelta(days=1)
        s.execute(
            update(File)
            .where(File.path_key == path_key(cat.path("p2/a.jpg")))
            .values(updated_at=datetime(2100, 1, 1))
        )
    cat.dedupe(full=False, since=mark)
    again = get(client, f"/duplicates/{d['id']}").get_json()
    assert again["status"] == "dismissed"
    assert items(client, "?status=dismissed")["total"] == 1
    # Deciding twice is a conflict.
    r = post(client, f"/duplicates/{d['id']}/resolution", {"action": "not_duplicate"})
    assert r.status_code == 409


def test_a_new_member_reopens_a_dismissed_group(world) -> None:
    cat, client, _ = world
    d = by_path(client, "p2/a.jpg", cat)
    post(client, f"/duplicates/{d['id']}/resolution", {"action": "not_duplicate"})
    with session_scope(cat.engine) as s:
        ph = int(
            s.scalar(select(File.phash).where(File.path_key == path_key(cat.path("p2/a.jpg")))), 16
        )
    since = datetime.now() - timedelta(seconds=1)
    cat.add("p2/c.jpg", size=299, sha=sha(23), phash=ph ^ 1)
    cat.dedupe(full=False, since=since)
    now = by_path(client, "p2/c.jpg", cat)
    assert now["status"] == "open"
    assert now["id"] == d["id"]  # the group that gained a member keeps its id
    assert len(now["members"]) == 3


def test_a_group_reopened_by_a_new_copy_keeps_its_last_decision_to_undo(world) -> None:
    cat, client, _ = world
    # Given exact copies resolved (one kept, the other sent to Immich's trash)
    d = by_path(client, "exact2/copy0.jpg", cat)
    keep, gone = cat.path("exact2/copy1.jpg"), cat.path("exact2/copy0.jpg")
    trashed = [{"path": gone, "sha1": f"{2:040x}"}]
    body = {"action": "trash", "keep": [keep], "trashed": trashed}
    assert post(client, f"/duplicates/{d['id']}/resolution", body).status_code == 200
    # When a new copy of it arrives (a phone backup) and reopens the group
    since = datetime.now() - timedelta(seconds=1)
    cat.add("exact2/copy2.jpg", size=2000, sha=sha(2), sha1=f"{2:040x}")
    cat.dedupe(full=False, since=since)
    now = get(client, f"/duplicates/{d['id']}").get_json()
    assert (now["status"], len(now["members"]), now["resolution"]) == ("open", 3, None)
    # Then its last decision is still there to undo, with what it trashed
    previous = now["previous_resolution"]
    assert (previous["action"], previous["keep"], previous["trashed"]) == ("trash", [keep], trashed)
    # And withdrawing it leaves the group open, with nothing left to withdraw
    r = client.delete(f"/duplicates/{d['id']}/resolution", headers=AUTH)
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["status"], r.get_json()["previous_resolution"]) == ("open", None)
    assert client.delete(f"/duplicates/{d['id']}/resolution", headers=AUTH).status_code == 409
    # A decided group shows no previous decision
    other = by_path(client, "exact1/copy0.jpg", cat)
    assert other["previous_resolution"] is None


@pytest.mark.parametrize("rel", ["p2/a.jpg", "exact1/copy0.jpg"], ids=["look-alikes", "copies"])
def test_a_decision_holds_when_its_files_are_filed_elsewhere(world, rel: str) -> None:
    cat, client, _ = world
    # Given a group judged "not duplicates" (two backups kept on purpose, say)
    d = by_path(client, rel, cat)
    r = post(client, f"/duplicates/{d['id']}/resolution", {"action": "not_duplicate"})
    assert r.status_code == 200, r.get_json()
    # When one of its files is moved into a dated folder, and a pass runs
    cat.move(rel, "2024/2024-06-01 Wedding/" + rel.replace("/", "-"))
    cat.dedupe()
    # Then the decision still holds: the same file, moved
    moved = by_path(client, "2024/2024-06-01 Wedding/" + rel.replace("/", "-"), cat)
    assert moved["status"] == "dismissed", moved
    assert items(client, "?status=open")["total"] == 4  # the other groups, untouched
    # And undoing it there withdraws the decision for good: the next pass leaves it open
    r = client.delete(f"/duplicates/{moved['id']}/resolution", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["status"] == "open", r.get_json()
    cat.dedupe()
    assert get(client, f"/duplicates/{moved['id']}").get_json()["status"] == "open"


def test_undo_withdraws_a_decision_its_group_came_back_to_under_a_new_id(world) -> None:
    cat, client, _ = world
    # Given look-alikes judged "not duplicates"
    d = by_path(client, "p2/a.jpg", cat)
    post(client, f"/duplicates/{d['id']}/resolution", {"action": "not_duplicate"})
    others = [m["path"] for m in d["members"] if m["path"] != cat.path("p2/a.jpg")]
    other = os.path.relpath(others[0], cat.lib)
    # ... whose group went away for a pass (a copy briefly gone from the share), and came
    # back with the other file moved: a new group, which the decision still covers
    cat.mark_missing(other)
    cat.dedupe()
    with session_scope(cat.engine) as s:
        s.execute(
            update(File).where(File.path_key == path_key(cat.path(other))).values(status="present")
        )
    cat.move("p2/a.jpg", "sorted/a.jpg")
    cat.dedupe()
    back = by_path(client, "sorted/a.jpg", cat)
    assert back["id"] != d["id"] and back["status"] == "dismissed"
    # ... and shows it: the decision undo withdraws (and restores from, for a trash)
    assert back["resolution"]["action"] == "not_duplicate", back
    # When it is undone, Then the decision is withdrawn: the next pass leaves it open
    assert client.delete(f"/duplicates/{back['id']}/resolution", headers=AUTH).status_code == 200
    cat.dedupe()
    assert get(client, f"/duplicates/{back['id']}").get_json()["status"] == "open"


def test_a_group_decided_twice_is_undone_one_decision_at_a_time(world) -> None:
    cat, client, _ = world
    # Given exact copies resolved (copy0 trashed), reopened by a new copy, resolved again
    d = by_path(client, "exact2/copy0.jpg", cat)
    keep = cat.path("exact2/copy1.jpg")

    def trash(path: str) -> None:
        body = {"action": "trash", "keep": [keep], "trashed": [{"path": path, "sha1": None}]}
        r = post(client, f"/duplicates/{d['id']}/resolution", body)
        assert r.status_code == 200, r.get_json()

    trash(cat.path("exact2/copy0.jpg"))
    since = datetime.now() - timedelta(seconds=1)
    cat.add("exact2/copy2.jpg", size=2000, sha=sha(2), sha1=f"{2:040x}")
    cat.dedupe(full=False, since=since)
    trash(cat.path("exact2/copy2.jpg"))
    # When the latest decision is undone
    r = client.delete(f"/duplicates/{d['id']}/resolution", headers=AUTH)
    # Then the group is open with the first decision still there to undo (what it trashed
    # would otherwise stay in Immich's trash with no record)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "open"
    assert body["previous_resolution"]["trashed"] == [
        {"path": cat.path("exact2/copy0.jpg"), "sha1": None}
    ]
    # And undoing that one too leaves nothing to withdraw
    assert client.delete(f"/duplicates/{d['id']}/resolution", headers=AUTH).status_code == 200
    assert client.delete(f"/duplicates/{d['id']}/resolution", headers=AUTH).status_code == 409


def test_no_decision_loses_its_record_when_a_group_comes_back_under_a_new_id(world) -> None:
    cat, client, _ = world
    # Given byte copies resolved (copy0 trashed)
    d = by_path(client, "exact2/copy0.jpg", cat)
    keep, first = cat.path("exact2/copy1.jpg"), cat.path("exact2/copy0.jpg")

    def trash(gid: str, path: str) -> None:
        body = {"action": "trash", "keep": [keep], "trashed": [{"path": path, "sha1": None}]}
        assert post(client, f"/duplicates/{gid}/resolution", body).status_code == 200

    trash(d["id"], first)
    # ... whose group dissolved for a pass (a copy briefly gone), and came back under a
    # new id with a new copy: open, the first decision shown as its previous one
    cat.mark_missing("exact2/copy1.jpg")
    cat.dedupe()
    with session_scope(cat.engine) as s:
        s.execute(update(File).where(File.path_key == path_key(keep)).values(status="present"))
    cat.add("exact2/copy2.jpg", size=2000, sha=sha(2), sha1=f"{2:040x}")
    cat.dedupe()
    back = by_path(client, "exact2/copy2.jpg", cat)
    assert back["id"] != d["id"] and back["status"] == "open"
    assert back["previous_resolution"]["trashed"][0]["path"] == first
    # When it is resolved again, and that is undone
    trash(back["id"], cat.path("exact2/copy2.jpg"))
    r = client.delete(f"/duplicates/{back['id']}/resolution", headers=AUTH)
    # Then only that decision is withdrawn: the first one is still there to undo
    assert r.status_code == 200 and r.get_json()["status"] == "open", r.get_json()
    assert r.get_json()["previous_resolution"]["trashed"][0]["path"] == first
    assert client.delete(f"/duplicates/{back['id']}/resolution", headers=AUTH).status_code == 200
    assert client.delete(f"/duplicates/{back['id']}/resolution", headers=AUTH).status_code == 409


def test_trash_records_keep_and_survives(world) -> None:
    cat, client, _ = world
    d = by_path(client, "exact2/copy0.jpg", cat)
    keep = [cat.path("exact2/copy1.jpg")]
    r = post(client, f"/duplicates/{d['id']}/resolution", {"action": "trash", "keep": keep})
    assert r.status_code == 200
    assert r.get_json()["status"] == "resolved"
    assert r.get_json()["resolution"]["keep"] == keep
    cat.dedupe()
    assert get(client, f"/duplicates/{d['id']}").get_json()["status"] == "resolved"
    # Withdrawing the decision opens it again, also after another pass.
    r = client.delete(f"/duplicates/{d['id']}/resolution", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["status"] == "open"
    cat.dedupe()
    assert get(client, f"/duplicates/{d['id']}").get_json()["status"] == "open"
    assert client.delete(f"/duplicates/{d['id']}/resolution", headers=AUTH).status_code == 409


@pytest.mark.parametrize(
    "body, status, word",
    [
        ({"action": "trash", "keep": ["/elsewhere/x.jpg"]}, 400, "outside"),
        ({"action": "trash", "keep": []}, 400, "at least one"),
        ({"action": "trash"}, 400, "at least one"),
        ({"action": "delete", "keep": []}, 400, "action"),
        ({"keep": []}, 400, "action"),
        ({"action": 3}, 400, "action"),
        ({"action": "trash", "keep": "a.jpg"}, 400, "keep"),
        ({"action": "trash", "keep": [1]}, 400, "keep"),
        ({"action": "trash", "keep": [], "force": True}, 400, "unknown fields"),
        (b"{not json", 400, "JSON"),
        (b"[1, 2]", 400, "object"),
        (None, 400, "body"),
    ],
)
def test_bad_resolutions_are_400(world, body: Any, status: int, word: str) -> None:
    cat, client, _ = world
    d = by_path(client, "exact1/copy0.jpg", cat)
    r = post(client, f"/duplicates/{d['id']}/resolution", body)
    assert r.status_code == status, r.get_json()
    assert word in r.get_json()["error"]
    assert get(client, f"/duplicates/{d['id']}").get_json()["status"] == "open"


def test_a_trash_that_keeps_every_copy_is_refused_not_recorded(world) -> None:
    cat, client, _ = world
    d = by_path(client, "exact1/copy0.jpg", cat)
    every = [m["path"] for m in d["members"]]
    r = post(client, f"/duplicates/{d['id']}/resolution", {"action": "trash", "keep": every})
    assert r.status_code == 400 and "every copy" in r.get_json()["error"]
    assert get(client, f"/duplicates/{d['id']}").get_json()["status"] == "open"


# --- stats and lookup ----------------------------------------------------------------------


def test_stats(world) -> None:
    cat, client, _ = world
    s = get(client, "/stats").get_json()
    assert s["groups"] == 5 and s["open"] == 5
    assert s["by_type"] == {"exact": 3, "perceptual": 2}
    assert s["by_status"] == {"open": 5, "resolved": 0, "dismissed": 0}
    assert s["reclaimable"] == {"exact_bytes": 6000, "perceptual_bytes": 700}
    assert s["reclaimable_bytes"] == 6700
    d = by_path(client, "exact1/copy0.jpg", cat)
    post(client, f"/duplicates/{d['id']}/resolution", {"action": "not_duplicate"})
    s = get(client, "/stats").get_json()
    assert s["by_status"]["dismissed"] == 1 and s["open"] == 4
    assert s["reclaimable_bytes"] == 3700
    assert s["reclaimable"] == {"exact_bytes": 3000, "perceptual_bytes": 700}


def test_lookup(world) -> None:
    cat, client, _ = world
    r = post(
        client,
        "/duplicates/lookup",
        {
            "paths": [cat.path("p1/small.jpg"), cat.path("lone.jpg"), cat.path("not/there.jpg")],
            "sha1": [f"{2:040x}".upper()],
        },
    )
    assert r.status_code == 200, r.get_json()
    files = {f["path"]: f for f in r.get_json()["files"]}
    assert set(files) == {
        cat.path("p1/small.jpg"),
        cat.path("lone.jpg"),
        cat.path("exact2/copy0.jpg"),
        cat.path("exact2/copy1.jpg"),
    }
    assert files[cat.path("lone.jpg")]["duplicate"] is None
    small = files[cat.path("p1/small.jpg")]["duplicate"]
    assert small["type"] == "perceptual" and small["keep"] == cat.path("p1/big.jpg")
    assert files[cat.path("exact2/copy1.jpg")]["duplicate"]["type"] == "exact"


def test_lookup_prefers_the_exact_group_and_lists_all(env) -> None:
    cat, client, _ = env
    rng = random.Random(3)
    h = rand_hash(rng)
    cat.add("a/one.jpg", sha=sha(1), phash=h)
    cat.add("b/one.jpg", sha=sha(1), phash=h)
    cat.add("c/one_small.jpg", size=500, sha=sha(2), phash=h ^ 3, width=200, height=150)
    cat.dedupe()
    r = post(client, "/duplicates/lookup", {"paths": [cat.path("a/one.jpg")]})
    f = r.get_json()["files"][0]
    assert f["duplicate"]["type"] == "exact" and len(f["duplicate_ids"]) == 2
    perceptual = get(client, f"/duplicates/{f['duplicate_ids'][1]}").get_json()
    rep = next(m for m in perceptual["members"] if m["path"] == cat.path("a/one.jpg"))
    assert rep["exact_group"] == f["duplicate"]["id"]


@pytest.mark.parametrize(
    "body, word",
    [
        ({}, "paths or sha1"),
        ({"paths": "x"}, "paths"),
        ({"sha1": ["xyz"]}, "40 hex"),
        ({"paths": ["a"] * 1001}, "at most"),
        ({"paths": [], "sha": []}, "unknown fields"),
        (b"nope", "JSON"),
    ],
)
def test_bad_lookups_are_400(world, body: Any, word: str) -> None:
    _cat, client, _ = world
    r = post(client, "/duplicates/lookup", body)
    assert r.status_code == 400
    assert word in r.get_json()["error"]


def test_a_lookup_of_paths_outside_the_roots_finds_nothing_there(world) -> None:
    cat, client, _ = world
    # Given a lookup that mixes library files with paths the catalog cannot hold (an
    # Immich upload folder, an escape, a name no file can have)
    d = by_path(client, "p2/a.jpg", cat)
    inside = d["members"][0]["path"]
    r = post(
        client,
        "/duplicates/lookup",
        {"paths": [inside, "/data/upload/u/ab/IMG_1.jpg", cat.path("..") + "/etc", "/x/\ud800"]},
    )
    # Then it answers for the library file and simply finds nothing for the others
    assert r.status_code == 200, r.get_json()
    files = r.get_json()["files"]
    assert [f["path"] for f in files] == [inside] and files[0]["duplicate"]["id"] == d["id"]


# --- auth, runs, OpenAPI -------------------------------------------------------------------


def test_service_token(world) -> None:
    _cat, client, _ = world
    assert client.get("/duplicates").status_code == 401
    assert client.get("/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/duplicates/lookup", json={"paths": []}).status_code == 401
    assert client.get("/healthz").status_code == 200
    assert get(client, "/stats").status_code == 200


def test_without_token_only_loopback(tmp_path: Path) -> None:
    settings = load_settings(
        {}, data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path / 'd' / 't.db'}"
    )
    migrate(settings.database_url)
    app = api.create_app("dedup", {"settings": settings, "broker": RecordingBroker()})
    client = app.test_client()
    assert client.get("/stats").status_code == 200
    r = client.get("/stats", environ_base={"REMOTE_ADDR": "10.0.0.5"})
    assert r.status_code == 401
    # A web page in a browser here cannot use it either: not by a name rebound to
    # 127.0.0.1 (DNS rebinding), not by a POST it may send cross-site without asking
    r = client.get("/stats", headers={"Host": "rebound.example:8001"})
    assert r.status_code == 403
    for body, ctype in ((b"", None), (b'{"full": true}', "text/plain")):
        headers = {"Content-Type": ctype} if ctype else {}
        r = client.post("/dedup/runs", data=body, headers=headers)
        assert r.status_code == 400 and "application/json" in r.get_json()["error"]
    assert client.post("/dedup/runs", json={}).status_code == 202
    engine_for(settings.database_url).dispose()


def test_dedup_runs(env) -> None:
    cat, client, broker = env
    r = post(client, "/dedup/runs", {})
    assert r.status_code == 202
    job = r.get_json()
    assert job["kind"] == "dedup" and job["full"] is True and job["state"] == "queued"
    assert broker.messages == [("dedup_run", (job["id"],))]
    again = post(client, "/dedup/runs", {"full": True})
    assert again.status_code == 200 and again.get_json()["id"] == job["id"]
    inc = post(client, "/dedup/runs", {"full": False})
    assert inc.status_code == 200  # the queued full pass covers it
    assert post(client, "/dedup/runs", {"full": "yes"}).status_code == 400
    assert post(client, "/dedup/runs", {"fast": True}).status_code == 400
    with session_scope(cat.engine) as s:
        assert s.scalar(select(Job.kind).where(Job.id == job["id"])) == "dedup"


def test_a_full_run_is_not_taken_by_a_queued_incremental_one(env) -> None:
    cat, client, broker = env
    # Given an incremental pass waiting in the queue
    inc = post(client, "/dedup/runs", {"full": False})
    assert inc.status_code == 202 and inc.get_json()["full"] is False
    # When a full pass is asked for
    full = post(client, "/dedup/runs", {"full": True})
    # Then a new full job is queued: the incremental one does not cover it
    assert full.status_code == 202, full.get_json()
    assert full.get_json()["full"] is True and full.get_json()["id"] != inc.get_json()["id"]
    assert len(broker.messages) == 2


def test_openapi_lists_the_endpoints(env) -> None:
    _cat, client, _ = env
    doc = get(client, "/openapi.json").get_json()
    for p in (
        "/duplicates",
        "/duplicates/{id}",
        "/duplicates/{id}/resolution",
        "/stats",
        "/duplicates/lookup",
        "/dedup/runs",
        "/scans",
        "/jobs",
    ):
        assert p in doc["paths"], p
    assert "Duplicate" in doc["components"]["schemas"]


def test_groups_vanish_when_copies_go_missing(world) -> None:
    cat, client, _ = world
    since = datetime.now() - timedelta(seconds=1)
    cat.mark_missing("exact3/copy1.jpg")
    cat.dedupe(full=False, since=since)
    assert items(client, "?type=exact")["total"] == 2
    with session_scope(cat.engine) as s:
        assert (
            s.scalar(select(DuplicateGroup.group_id).where(DuplicateGroup.group_key == sha(3)))
            is None
        )


def _status(client, group_id: str) -> str:
    return get(client, f"/duplicates/{group_id}").get_json()["status"]


def _three_near_copies(cat: Catalog, client, folder: str, seed: int) -> dict[str, Any]:
    """Three near-identical pictures in ``folder``, scanned: their look-alike group."""
    rng = random.Random(seed)
    h = rand_hash(rng)
    for n, bits in enumerate((0, 2, 3)):
        cat.add(f"{folder}/{n}.jpg", sha=sha(seed * 10 + n), phash=flip(h, bits, rng))
    cat.dedupe()
    d = by_path(client, f"{folder}/0.jpg", cat)
    assert len(d["members"]) == 3
    return d


def test_undo_holds_after_the_group_lost_a_member(env) -> None:
    cat, client, _ = env
    # Given a dismissed group of three near-identical pictures
    d = _three_near_copies(cat, client, "p", seed=21)
    r = post(client, f"/duplicates/{d['id']}/resolution", {"action": "not_duplicate"})
    assert r.status_code == 200, r.get_json()
    # ... that lost a member since (same id, another key)
    cat.mark_missing("p/2.jpg")
    cat.dedupe()
    assert _status(client, d["id"]) == "dismissed"
    # When the user withdraws the decision and a pass runs
    r = client.delete(f"/duplicates/{d['id']}/resolution", headers=AUTH)
    assert r.status_code == 200, r.get_json()
    cat.dedupe()
    # Then the group stays open: no decision is left to dismiss it again
    assert _status(client, d["id"]) == "open"
    with session_scope(cat.engine) as s:
        assert s.scalar(select(func.count()).select_from(DuplicateResolution)) == 0


def test_a_trash_decision_still_shows_after_the_group_lost_a_member(env) -> None:
    cat, client, _ = env
    # Given three near-identical pictures, one kept and two sent to the trash
    d = _three_near_copies(cat, client, "q", seed=23)
    r = post(client, f"/duplicates/{d['id']}/resolution", {"action": "trash", "keep": [d["keep"]]})
    assert r.status_code == 200, r.get_json()
    # When one of them leaves the group (same id, another key)
    gone = next(m["path"] for m in d["members"] if m["path"] != d["keep"])
    cat.mark_missing(os.path.relpath(gone, cat.lib))
    cat.dedupe()
    # Then the group still shows the decision undo restores from
    after = client.get(f"/duplicates/{d['id']}", headers=AUTH).get_json()
    assert after["status"] == "resolved" and len(after["members"]) == 2
    assert after["resolution"] is not None, after
    assert after["resolution"]["action"] == "trash"
    assert after["resolution"]["keep"] == [d["keep"]]


def test_a_trash_decision_keeps_what_it_sent_to_the_trash(env) -> None:
    cat, client, _ = env
    d = _three_near_copies(cat, client, "t", seed=24)
    keep = d["keep"]
    others = [m["path"] for m in d["members"] if m["path"] != keep]
    url = f"/duplicates/{d['id']}/resolution"
    # Refused: a file outside the group, the kept one, a bad shape, and "not duplicates"
    # (which moves nothing) with a trash list
    for body in (
        {"action": "trash", "keep": [keep], "trashed": [{"path": "/etc/passwd"}]},
        {"action": "trash", "keep": [keep], "trashed": [{"path": keep}]},
        {"action": "trash", "keep": [keep], "trashed": [{"path": others[0], "size": 1}]},
        {"action": "trash", "keep": [keep], "trashed": others},
        {"action": "not_duplicate", "trashed": [{"path": others[0]}]},
    ):
        r = post(client, url, body)
        assert r.status_code == 400, (body, r.get_json())
    assert _status(client, d["id"]) == "open"
    # When the gateway records what it sends to the trash
    gone = [{"path": others[0], "sha1": "ab" * 20}, {"path": others[1], "sha1": None}]
    r = post(client, url, {"action": "trash", "keep": [keep], "trashed": gone})
    assert r.status_code == 200, r.get_json()
    # Then the decision shows it, for undo
    assert get(client, f"/duplicates/{d['id']}").get_json()["resolution"]["trashed"] == gone
    # While a decision recorded without saying (an older gateway) says it does not know,
    # rather than "nothing": undo then reads the members not kept
    other = _three_near_copies(cat, client, "u", seed=25)
    body = {"action": "trash", "keep": [other["keep"]]}
    r = post(client, f"/duplicates/{other['id']}/resolution", body)
    assert r.status_code == 200, r.get_json()
    assert get(client, f"/duplicates/{other['id']}").get_json()["resolution"]["trashed"] is None


def _copies_and_a_reencode_judged_apart(cat: Catalog, client, seed: int) -> dict[str, Any]:
    """Two byte copies of a picture (e/a1, e/a2) and a re-encode (e/b), scanned, and the
    look-alike group judged "not duplicates"; returns that group."""
    rng = random.Random(seed)
    h = rand_hash(rng)
    cat.add("e/a1.jpg", sha=sha(1), phash=h)
    cat.add("e/a2.jpg", sha=sha(1), phash=h)
    cat.add("e/b.jpg", sha=sha(2), phash=flip(h, 2, rng))
    cat.dedupe()
    d = by_path(client, "e/b.jpg", cat)
    assert d["type"] == "perceptual"
    r = post(client, f"/duplicates/{d['id']}/resolution", {"action": "not_duplicate"})
    assert r.status_code == 200, r.get_json()
    return d


def test_not_duplicate_holds_for_a_group_holding_byte_copies(env) -> None:
    cat, client, _ = env
    # Given byte copies and a re-encode, the re-encode judged another picture
    d = _copies_and_a_reencode_judged_apart(cat, client, seed=22)
    # When a full pass runs
    cat.dedupe()
    # Then the decision still covers the group: the copies are named by their content
    assert _status(client, d["id"]) == "dismissed"
    # But not the byte copies' own group: nobody judged them against each other
    exact = by_path(client, "e/a2.jpg", cat)
    assert (exact["type"], exact["status"]) == ("exact", "open")
    with session_scope(cat.engine) as s:
        members = json.loads(s.scalars(select(DuplicateResolution.members)).one())
    assert f"sha256:{sha(1)}" in members


def test_not_duplicate_holds_after_the_byte_copies_are_down_to_one(env) -> None:
    cat, client, _ = env
    # Given byte copies and a re-encode, judged "not duplicates"
    _copies_and_a_reencode_judged_apart(cat, client, seed=23)
    # When one of the copies is gone (trashed), so that no exact group stands for them
    cat.mark_missing("e/a2.jpg")
    cat.dedupe()
    # Then the pair the user judged is still dismissed
    assert items(client, "?status=open")["total"] == 0
    assert [d["status"] for d in items(client, "?status=dismissed")["items"]] == ["dismissed"]


def test_a_member_gone_from_disk_is_flagged_before_the_next_pass(world) -> None:
    cat, client, _ = world
    d = by_path(client, "exact1/copy0.jpg", cat)
    cat.mark_missing("exact1/copy0.jpg")
    members = get(client, f"/duplicates/{d['id']}").get_json()["members"]
    assert {m["path"]: m["missing"] for m in members} == {
        cat.path("exact1/copy0.jpg"): True,
        cat.path("exact1/copy1.jpg"): False,
    }


def test_pages_of_groups_that_reclaim_as_much_neither_repeat_nor_skip(env) -> None:
    cat, client, _ = env
    rng = random.Random(24)
    for k in range(5):  # five pairs of copies of one size
        h = rand_hash(rng)
        for n in range(2):
            cat.add(f"same{k}/copy{n}.jpg", size=777, sha=sha(100 + k), phash=h)
    cat.dedupe()
    paged = [d["id"] for p in (1, 2, 3) for d in items(client, f"?size=2&page={p}")["items"]]
    assert paged == sorted(paged) and len(set(paged)) == 5


def test_undo_naming_a_decision_no_longer_shown_withdraws_nothing(world) -> None:
    cat, client, _ = world
    # Given exact copies resolved (copy0 trashed), undone, and resolved again
    d = by_path(client, "exact2/copy0.jpg", cat)
    url = f"/duplicates/{d['id']}/resolution"
    body = {
        "action": "trash",
        "keep": [cat.path("exact2/copy1.jpg")],
        "trashed": [{"path": cat.path("exact2/copy0.jpg"), "sha1": None}],
    }
    first = post(client, url, body).get_json()["resolution"]["id"]
    assert client.delete(url, headers=AUTH).status_code == 200
    second = post(client, url, body).get_json()["resolution"]["id"]
    assert second != first
    # When an undo that read the first decision arrives now
    r = client.delete(f"{url}?decision={first}", headers=AUTH)
    # Then it is refused, and the decision shown stays
    assert r.status_code == 409 and "changed" in r.get_json()["error"], r.get_json()
    now = get(client, f"/duplicates/{d['id']}").get_json()
    assert (now["status"], now["resolution"]["id"]) == ("resolved", second)
    # And naming the decision shown withdraws it
    for bad in ("x", "-1", "0", "1.5"):
        assert client.delete(f"{url}?decision={bad}", headers=AUTH).status_code == 400, bad
    r = client.delete(f"{url}?decision={second}", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["status"] == "open", r.get_json()


def test_a_decision_on_a_group_of_thousands_of_long_named_copies_is_taken(env) -> None:
    """Given 3,000 byte copies of one file under long folder names (a backup of a backup,
    copied again and again), when the gateway records keeping one of them with what it
    sends to the trash and the members it planned on, then the decision (over 2 MiB of
    JSON) is recorded, not refused as too large for the ordinary 1 MiB limit."""
    cat, client, _ = env
    folder = "Backups/" + "/".join(["Old laptop (2014) - copy of the photo folder"] * 5)
    with session_scope(cat.engine) as s:
        s.add_all(
            file_row(
                cat.root_id,
                cat.path(f"{folder}/{n:04d}/IMG_0001.JPG"),
                sha256=sha(5),
                sha1="5" * 40,
                phash="0f0f0f0f0f0f0f0f",
                kind="image",
                format="jpeg",
            )
            for n in range(3000)
        )
    cat.dedupe()
    d = by_path(client, f"{folder}/0000/IMG_0001.JPG", cat)
    paths = [m["path"] for m in get(client, f"/duplicates/{d['id']}").get_json()["members"]]
    assert len(paths) == 3000
    body = {
        "action": "trash",
        "keep": [paths[0]],
        "trashed": [{"path": p, "sha1": "5" * 40} for p in paths[1:]],
        "members": paths,
    }
    assert len(json.dumps(body)) > 2 << 20
    r = post(client, f"/duplicates/{d['id']}/resolution", body)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "resolved"
    assert len(r.get_json()["resolution"]["trashed"]) == 2999


def test_a_resolution_body_beyond_any_group_is_413(env) -> None:
    cat, client, _ = env
    r = post(client, "/duplicates/1/resolution", b'{"keep": ["' + b"a" * (33 << 20) + b'"]}')
    assert r.status_code == 413
