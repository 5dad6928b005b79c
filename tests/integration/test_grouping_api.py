"""The grouping API (port 8000) through Flask's test client on PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from sqlalchemy import select

import api
from core import jobs, report
from core.db import engine_for, session_scope
from core.grouping import service
from core.models import Job
from tests.factories import file_row, write_bytes, write_jpeg
from twinlens import run_scan

TOKEN = "test-service-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2024, 6, 1, 9, 0, 0)
KINDS = {".cr2": "raw", ".jpg": "image", ".mov": "video", ".xmp": "sidecar", ".heic": "image"}


class RecordingBroker:
    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple]] = []

    def declare_queue(self, name: str) -> None:
        pass

    def enqueue(self, message, delay=None):
        self.messages.append((message.actor_name, message.args))
        return message


@pytest.fixture
def client(pg_settings):
    app = api.create_app("grouping", {"settings": pg_settings, "broker": RecordingBroker()})
    return app.test_client()


def seed(cfg, rels: list[str], sha1: dict[str, str] | None = None) -> str:
    """Catalog rows for these library-relative paths (no files needed), then group them."""
    lib = str(cfg.library_roots[0])
    with session_scope(engine_for(cfg.database_url)) as s:
        root = jobs.get_or_create_root(s, lib)
        for i, rel in enumerate(rels):
            p = os.path.join(lib, rel)
            s.add(
                file_row(
                    root.id,
                    p,
                    size=100 + i,
                    inode=i + 1,
                    kind=KINDS[os.path.splitext(p)[1].lower()],
                    taken_at=T0,
                    sha1=(sha1 or {}).get(rel),
                    status="present",
                )
            )
        s.flush()
        service.regroup(s, None)
    return lib


def test_groups_paging_filters_and_one_group(client, pg_settings):
    rels = [
        f"{d}/IMG_{i:03d}.{ext}"
        for d in ("2023", "2024")
        for i in range(7)
        for ext in ("CR2", "JPG")
    ]
    rels += ["2024/live/IMG_9.HEIC", "2024/live/IMG_9.MOV", "2024b/IMG_1.CR2", "2024b/IMG_1.JPG"]
    lib = seed(pg_settings, rels)

    r = client.get("/groups?size=5&page=1", headers=AUTH)
    assert r.status_code == 200
    body = r.get_json()
    assert (body["page"], body["size"], body["total"], len(body["items"])) == (1, 5, 16, 5)
    pages = [
        client.get(f"/groups?size=5&page={p}", headers=AUTH).get_json()["items"]
        for p in (1, 2, 3, 4)
    ]
    ids = [g["id"] for page in pages for g in page]
    assert len(ids) == 16 and len(set(ids)) == 16  # pages neither overlap nor skip
    assert [len(p) for p in pages] == [5, 5, 5, 1]
    assert client.get("/groups?size=5&page=9", headers=AUTH).get_json()["items"] == []

    g = pages[0][0]
    assert g["type"] == "raw_jpeg" and g["source"] == "auto" and g["primary"].endswith(".JPG")
    assert g["members"][0]["is_primary"] and g["members"][0]["path"] == g["primary"]
    assert {m["role"] for m in g["members"]} == {"primary", "raw"}
    assert set(g["members"][0]) == {
        "path",
        "kind",
        "role",
        "is_primary",
        "size",
        "sha1",
        "taken_at",
    }
    assert g["members"][0]["taken_at"] == "2024-06-01T09:00:00"

    live = client.get("/groups?type=live_photo", headers=AUTH).get_json()
    assert live["total"] == 1 and live["items"][0]["members"][1]["role"] == "video"
    # path_prefix is a folder: 2024 does not match 2024b, but includes 2024/live
    sub = client.get(
        "/groups", query_string={"path_prefix": f"{lib}/2024", "size": 100}, headers=AUTH
    ).get_json()
    assert sub["total"] == 8
    assert all("/2024b/" not in g["primary"] for g in sub["items"])

    one = client.get(f"/groups/{g['id']}", headers=AUTH)
    assert one.status_code == 200 and one.get_json() == g
    fg = client.get("/files/group", query_string={"path": g["members"][1]["path"]}, headers=AUTH)
    assert fg.status_code == 200 and fg.get_json()["id"] == g["id"]


def test_lookup_by_path_and_sha1(client, pg_settings):
    sha = "a" * 40
    lib = seed(
        pg_settings,
        ["x/IMG_1.CR2", "x/IMG_1.JPG", "x/alone.jpg"],
        {"x/IMG_1.JPG": sha, "x/alone.jpg": "b" * 40},
    )
    r = client.post(
        "/files/lookup",
        json={"paths": [f"{lib}/x/alone.jpg", f"{lib}/x/nothing.jpg"], "sha1": [sha.upper()]},
        headers=AUTH,
    )
    assert r.status_code == 200
    files = r.get_json()["files"]
    assert [f["path"] for f in files] == [f"{lib}/x/alone.jpg", f"{lib}/x/IMG_1.JPG"]
    assert (
        files[0]["group"] is None and files[0]["kind"] == "image" and files[0]["sha1"] == "b" * 40
    )
    assert files[1]["group"]["type"] == "raw_jpeg" and files[1]["sha1"] == sha
    assert len(files[1]["group"]["members"]) == 2
    # A copy with that content that has since been deleted is not found by it
    with session_scope(engine_for(pg_settings.database_url)) as s:
        root = jobs.get_or_create_root(s, lib)
        s.add(
            file_row(
                root.id,
                f"{lib}/gone/IMG_1.JPG",
                size=7,
                inode=99,
                kind="image",
                sha1=sha,
                status="missing",
            )
        )
    r = client.post("/files/lookup", json={"sha1": [sha]}, headers=AUTH)
    assert [f["path"] for f in r.get_json()["files"]] == [f"{lib}/x/IMG_1.JPG"]


def test_a_split_with_a_misspelt_field_dissolves_nothing(client, pg_settings):
    seed(pg_settings, ["a/IMG_1.CR2", "a/IMG_1.JPG"])
    [group] = client.get("/groups", headers=AUTH).get_json()["items"]
    jpg = next(m["path"] for m in group["members"] if m["path"].endswith(".JPG"))
    r = client.post(f"/groups/{group['id']}/split", json={"path": [jpg]}, headers=AUTH)
    assert r.status_code == 400 and r.get_json()["error"] == "unknown fields: path"
    assert client.get(f"/groups/{group['id']}", headers=AUTH).status_code == 200


def test_bad_inputs_are_json_400_or_404(client, pg_settings, tmp_path, library):
    lib = seed(pg_settings, ["a/IMG_1.CR2", "a/IMG_1.JPG", "a/b.jpg"])
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, Path(lib) / "escape")
    (Path(lib) / "loose.jpg").write_bytes(b"a file, not a folder")
    gid = client.get("/groups", headers=AUTH).get_json()["items"][0]["id"]
    cases = [
        ("get", "/groups?page=0", None, 400, "page"),
        ("get", "/groups?page=x", None, 400, "page"),
        ("get", "/groups?size=1001", None, 400, "size"),
        ("get", "/groups?type=pair", None, 400, "type"),
        ("get", f"/groups?path_prefix={lib}/../..", None, 400, "outside"),
        ("get", f"/groups?path_prefix={lib}/escape", None, 400, "outside"),
        ("get", "/groups/nope", None, 404, "no group"),
        ("get", "/files/group", None, 400, "path"),
        ("get", "/files/group?path=/etc/passwd", None, 400, "outside"),
        ("get", f"/files/group?path={lib}/escape/x.jpg", None, 400, "outside"),
        ("get", f"/files/group?path={lib}/a/b.jpg", None, 404, "no group"),
        ("get", f"/files/group?path={lib}/a/none.jpg", None, 404, "no cataloged file"),
        ("post", "/files/lookup", b"{not json", 400, "malformed"),
        ("post", "/files/lookup", [1, 2], 400, "object"),
        ("post", "/files/lookup", {}, 400, "paths or sha1"),
        ("post", "/files/lookup", {"paths": "x"}, 400, "list"),
        ("post", "/files/lookup", {"sha1": ["xyz"]}, 400, "40 hex"),
        ("post", "/files/lookup", {"paths": [f"{lib}/a"] * 1001}, 400, "at most 1000"),
        ("post", "/files/lookup", {"path": ["x"]}, 400, "unknown fields"),
        ("post", "/groups/nope/split", {}, 404, "no group"),
        ("post", f"/groups/{gid}/split", {"paths": [f"{lib}/a/b.jpg"]}, 400, "not members"),
        ("post", f"/groups/{gid}/split", {"paths": ["/etc/passwd"]}, 400, "outside"),
        ("post", f"/groups/{gid}/split", b"[", 400, "malformed"),
        ("post", "/groups/merge", None, 400, "JSON body is required"),
        ("post", "/groups/merge", {"paths": [f"{lib}/a/b.jpg"]}, 400, "at least two"),
        (
            "post",
            "/groups/merge",
            {"paths": [f"{lib}/a/b.jpg", f"{lib}/a/zz.jpg"]},
            404,
            "not a cataloged",
        ),
        (
            "post",
            "/groups/merge",
            {"paths": [f"{lib}/a/b.jpg", f"{lib}/a/IMG_1.CR2"], "primary": f"{lib}/a/IMG_1.JPG"},
            400,
            "primary",
        ),
        ("post", "/groups/merge", {"paths": [f"{lib}/a/b.jpg", "/tmp/x"]}, 400, "outside"),
        ("post", "/scans", {"path": f"{lib}/loose.jpg"}, 400, "not a folder"),
        ("get", "/nowhere", None, 404, ""),
        ("delete", "/groups", None, 405, ""),
    ]
    for method, url, body, status, words in cases:
        kw: dict = {"headers": AUTH}
        if isinstance(body, bytes):
            kw.update(data=body, content_type="application/json")
        elif body is not None:
            kw["json"] = body
        r = getattr(client, method)(url, **kw)
        assert r.status_code == status, (url, body, r.status_code, r.get_data(as_text=True))
        assert r.is_json and isinstance(r.get_json()["error"], str), (url, r.get_data(as_text=True))
        assert words.lower() in r.get_json()["error"].lower(), (url, r.get_json())
    # nothing was changed by the refused requests
    assert client.get("/groups", headers=AUTH).get_json()["total"] == 1


def test_a_path_that_is_not_utf8_can_be_named_in_the_query(client, pg_settings):
    # Given a RAW+JPEG pair in a folder whose name holds the byte 0xFF (not UTF-8)
    lib = seed(pg_settings, ["caf\udcff/IMG_1.CR2", "caf\udcff/IMG_1.JPG"])
    folder = os.fsencode(f"{lib}/caf\udcff")
    # When the folder and a file in it are named in the query string, their bytes
    # percent-encoded as any HTTP client sends them
    jpeg = quote_from_bytes(folder + b"/IMG_1.JPG")
    r = client.get("/files/group?path=" + jpeg, headers=AUTH)
    # Then they are found, as the same names are through JSON's \udcXX escapes
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["primary"] == f"{lib}/caf\udcff/IMG_1.JPG"
    page = client.get("/groups?path_prefix=" + quote_from_bytes(folder), headers=AUTH).get_json()
    assert page["total"] == 1
    assert page["items"][0]["id"] == r.get_json()["id"]


def test_service_token_required(client, pg_settings):
    seed(pg_settings, ["a/IMG_1.CR2", "a/IMG_1.JPG"])
    assert client.get("/healthz").status_code == 200
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},  # the token, under another scheme
    ):
        r = client.get("/groups", headers=headers)
        assert r.status_code == 401 and "token" in r.get_json()["error"]
        assert client.post("/groups/merge", json={"paths": []}, headers=headers).status_code == 401
    assert client.get("/groups", headers=AUTH).status_code == 200


def test_openapi_lists_the_grouping_endpoints(client):
    doc = client.get("/openapi.json", headers=AUTH).get_json()
    for p in (
        "/groups",
        "/groups/{id}",
        "/files/group",
        "/files/lookup",
        "/files/errors",
        "/groups/{id}/split",
        "/groups/merge",
        "/roots",
        "/scans",
        "/jobs",
    ):
        assert p in doc["paths"], p
    assert {"Group", "GroupMember", "GroupPage"} <= set(doc["components"]["schemas"])


def test_the_library_roots_are_listed_before_any_scan(pg_settings, tmp_path):
    # Given two configured library roots, nothing scanned yet
    photos, phone = pg_settings.library_roots[0], tmp_path / "phone"
    phone.mkdir()
    cfg = dataclasses.replace(pg_settings, library_roots=(photos, phone))
    client = api.create_app("grouping", {"settings": cfg, "broker": RecordingBroker()})
    client = client.test_client()
    # Then both are listed, in their configured order, without an id or a file yet
    r = client.get("/roots", headers=AUTH)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {
        "items": [
            {"id": None, "path": str(photos), "files": 0},
            {"id": None, "path": str(phone), "files": 0},
        ]
    }

    # When the first root has files, one of them missing since, and a folder of the second
    # was cataloged as a root of its own (`twinlens scan` of it before), and a folder
    # outside the roots too
    seed(cfg, ["2019/Trip/IMG_1.CR2", "2019/Trip/IMG_1.JPG", "2020/IMG_2.JPG"])
    with session_scope(engine_for(cfg.database_url)) as s:
        main = jobs.get_or_create_root(s, str(photos))
        s.add(file_row(main.id, f"{photos}/gone.jpg", kind="image", status="missing"))
        inner = jobs.get_or_create_root(s, f"{phone}/2021")
        s.add(file_row(inner.id, f"{phone}/2021/PXL_1.jpg", kind="image", status="present"))
        outside = jobs.get_or_create_root(s, str(tmp_path / "elsewhere"))
        s.add(file_row(outside.id, f"{tmp_path}/elsewhere/x.jpg", kind="image", status="present"))
        main_id = main.id
    # Then each root says its own present files; the second has no catalog root of its own
    r = client.get("/roots", headers=AUTH)
    assert r.get_json()["items"] == [
        {"id": main_id, "path": str(photos), "files": 3},
        {"id": None, "path": str(phone), "files": 1},
    ]
    # And, like every route but /healthz, it needs the service token, and takes no filter
    assert client.get("/roots").status_code == 401
    r = client.get("/roots?path=x", headers=AUTH)
    assert r.status_code == 400 and "unknown query parameters" in r.get_json()["error"]
    # And with no root configured the list is empty, not an error
    bare = dataclasses.replace(cfg, library_roots=())
    none = api.create_app("grouping", {"settings": bare, "broker": RecordingBroker()})
    assert none.test_client().get("/roots", headers=AUTH).get_json() == {"items": []}


def _make_library(lib: Path) -> None:
    write_jpeg(lib / "a" / "IMG_1.JPG", 1, taken=T0)
    write_bytes(lib / "a" / "IMG_1.xmp", b"<x:xmpmeta xmlns:x='adobe:ns:meta/'></x:xmpmeta>")
    write_jpeg(lib / "a" / "IMG_2.JPG", 2, taken=T0)
    write_jpeg(lib / "b" / "scan.jpg", 3)
    write_jpeg(lib / "b" / "scan-edited.jpg", 4)


def test_overrides_survive_a_rescan(client, pg_settings, library):
    _make_library(library)
    run_scan(pg_settings, str(library))
    lib = str(library)
    groups = client.get("/groups", headers=AUTH).get_json()["items"]
    by_primary = {g["primary"]: g for g in groups}
    assert set(by_primary) == {f"{lib}/a/IMG_1.JPG", f"{lib}/b/scan.jpg"}

    # Split the sidecar group apart; merge a file of folder a with the edit pair of folder b
    r = client.post(
        f"/groups/{by_primary[f'{lib}/a/IMG_1.JPG']['id']}/split", json={}, headers=AUTH
    )
    assert r.status_code == 200 and r.get_json()["groups"] == []
    r = client.post(
        "/groups/merge",
        headers=AUTH,
        json={
            "paths": [f"{lib}/a/IMG_2.JPG", f"{lib}/b/scan.jpg"],
            "primary": f"{lib}/a/IMG_2.JPG",
        },
    )
    assert r.status_code == 201
    manual = r.get_json()
    assert manual["type"] == "manual" and manual["source"] == "manual"
    assert manual["primary"] == f"{lib}/a/IMG_2.JPG"
    assert {m["path"] for m in manual["members"]} == {f"{lib}/a/IMG_2.JPG", f"{lib}/b/scan.jpg"}

    def state() -> set[tuple[str, frozenset[str]]]:
        items = client.get("/groups", headers=AUTH).get_json()["items"]
        return {(g["type"], frozenset(m["path"] for m in g["members"])) for g in items}

    before = state()
    # scan.jpg is pinned by the merge, so its edit stays alone
    assert before == {("manual", frozenset({f"{lib}/a/IMG_2.JPG", f"{lib}/b/scan.jpg"}))}

    # A full rescan re-reads every file and regroups every folder: the corrections hold
    rep = run_scan(pg_settings, str(library), full=True)
    assert rep["job"]["state"] == "done"
    with session_scope(engine_for(pg_settings.database_url)) as s:
        states = list(s.scalars(select(Job.state).where(Job.kind == "group")))
    assert len(states) == 2 and set(states) == {"done"}  # one grouping pass per scan
    assert state() == before
    assert client.get("/groups", headers=AUTH).get_json()["items"][0]["id"] == manual["id"]


def test_files_not_what_their_name_says_are_listed_with_the_files_read_with_an_error(
    client, pg_settings, library
):
    # Given a whole JPEG named .png, a JPEG cut short named .tif, and a good JPEG
    write_jpeg(library / "good.jpg", 1)
    whole = (library / "good.jpg").read_bytes()
    write_bytes(library / "renamed.png", whole)
    write_bytes(library / "cut.tif", whole[: len(whole) // 2])
    # When the library is scanned
    rep = run_scan(pg_settings, str(library))
    assert rep["job"]["state"] == "done"
    # Then both are files with problems, each with what is wrong with it: the mis-named one
    # was read whole (it has its hashes) and only its name is wrong; the other has both
    page = client.get("/files/errors", headers=AUTH).get_json()
    lib = str(library)
    problems = {f["path"]: f["error"] for f in page["items"]}
    assert page["total"] == 2 and set(problems) == {f"{lib}/cut.tif", f"{lib}/renamed.png"}
    assert problems[f"{lib}/renamed.png"] == "extension .png but content is JPEG"
    assert problems[f"{lib}/cut.tif"].startswith("truncated JPEG")
    assert problems[f"{lib}/cut.tif"].endswith("; extension .tif but content is JPEG")
    # (both flagged mis-named, so that the UI says a rename gets them read again)
    assert all(f["misnamed"] is True for f in page["items"]), page["items"]
    # And the scan's summary counts the same files, with the same words
    with session_scope(engine_for(pg_settings.database_url)) as s:
        root_id = s.scalar(select(Job.root_id).where(Job.id == rep["job"]["id"]))
        summed = report.summary(s, root_id, rep["job"]["id"])
    assert summed["totals"]["files_with_errors"] == 2
    assert {f"{lib}/{f['path']}": f["error"] for f in summed["file_errors"]} == problems


def test_files_read_with_an_error_stay_listed_after_other_scans(client, pg_settings, library):
    # Given a library with a good picture, an empty one and a truncated one
    write_jpeg(library / "good.jpg", 1)
    write_jpeg(library / "sub" / "ok.jpg", 2)
    (library / "sub" / "empty.jpg").write_bytes(b"")
    whole = (library / "good.jpg").read_bytes()
    write_bytes(library / "cut.jpg", whole[: len(whole) // 2])
    run_scan(pg_settings, str(library))
    # When a later scan of one folder reads nothing wrong
    write_jpeg(library / "sub" / "new.jpg", 3)
    run_scan(pg_settings, str(library / "sub"))
    # Then the library's files with errors are still listed, by path, with the reason
    page = client.get("/files/errors", headers=AUTH).get_json()
    lib = str(library)
    assert page["total"] == 2
    assert [f["path"] for f in page["items"]] == [f"{lib}/cut.jpg", f"{lib}/sub/empty.jpg"]
    assert "zero-byte" in page["items"][1]["error"] and page["items"][1]["retried"] is False
    assert [f["misnamed"] for f in page["items"]] == [False, False]
    # And a folder and a page size narrow it; a path outside the library is refused
    sub = client.get("/files/errors", query_string={"path_prefix": f"{lib}/sub"}, headers=AUTH)
    assert [f["path"] for f in sub.get_json()["items"]] == [f"{lib}/sub/empty.jpg"]
    one = client.get("/files/errors", query_string={"size": 1, "page": 2}, headers=AUTH)
    assert [f["path"] for f in one.get_json()["items"]] == [f"{lib}/sub/empty.jpg"]
    assert one.get_json()["total"] == 2
    out = client.get("/files/errors", query_string={"path_prefix": "/etc"}, headers=AUTH)
    assert out.status_code == 400
    # And once the truncated file is replaced by a whole one, it leaves the list
    write_bytes(library / "cut.jpg", whole)
    run_scan(pg_settings, str(library))
    page = client.get("/files/errors", headers=AUTH).get_json()
    assert [f["path"] for f in page["items"]] == [f"{lib}/sub/empty.jpg"]
