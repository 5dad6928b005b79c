"""Bad and unusual input to the grouping and dedup APIs on PostgreSQL: every refusal is a
4xx with a JSON ``{"error": …}``, never a 500, and nothing is changed by it; concurrent
requests that start work start it once."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

import api
from core import jobs
from core.config import Settings
from core.db import engine_for, session_scope
from core.dedup import service as dedup_service
from core.grouping import service as grouping_service
from core.models import DuplicateResolution, Job, Root
from tests.factories import file_row
from tests.integration.test_grouping_api import AUTH, RecordingBroker, seed
from tests.unit.test_dedup_api import Catalog, rand_hash, sha

NUL_ID = "a%00b"
LONG_ID = "x" * 5000


@pytest.fixture
def apps(pg_settings: Settings) -> dict[str, Any]:
    """Both APIs on one PostgreSQL catalog, each with a broker that records messages."""
    brokers = {"grouping": RecordingBroker(), "dedup": RecordingBroker()}
    return {
        which: api.create_app(which, {"settings": pg_settings, "broker": brokers[which]})
        for which in brokers
    } | {"brokers": brokers}


@pytest.fixture
def grouping(apps: dict[str, Any]) -> FlaskClient:
    return apps["grouping"].test_client()


@pytest.fixture
def dedup(apps: dict[str, Any]) -> FlaskClient:
    return apps["dedup"].test_client()


def send(client: FlaskClient, method: str, url: str, body: Any = None, **kw: Any) -> Any:
    """A request with the service token; bytes bodies go as they are (JSON type unless given)."""
    if isinstance(body, bytes):
        kw.setdefault("content_type", "application/json")
        kw["data"] = body
    elif body is not None:
        kw["json"] = body
    return getattr(client, method)(url, headers=AUTH, **kw)


def assert_error(r: Any, status: int, word: str = "") -> None:
    """The documented error shape: that status, a JSON object with one string ``error``."""
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:300])
    assert r.is_json, r.get_data(as_text=True)[:300]
    body = r.get_json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    assert word.lower() in body["error"].lower(), body


def job_count(settings: Settings) -> int:
    with session_scope(engine_for(settings.database_url)) as s:
        return int(s.scalar(select(func.count()).select_from(Job)) or 0)


# --- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", [NUL_ID, LONG_ID, "%C3%A9%0A"])
def test_ids_that_cannot_exist_are_404(grouping, dedup, bad_id: str) -> None:
    # Given ids no row can have (PostgreSQL refuses a NUL in a string parameter outright)
    # When any route that takes an id is asked for one
    calls = [
        (grouping, "get", f"/jobs/{bad_id}", None),
        (grouping, "delete", f"/jobs/{bad_id}", None),
        (grouping, "get", f"/groups/{bad_id}", None),
        (grouping, "post", f"/groups/{bad_id}/split", {}),
        (dedup, "get", f"/jobs/{bad_id}", None),
        (dedup, "get", f"/duplicates/{bad_id}", None),
        (dedup, "post", f"/duplicates/{bad_id}/resolution", {"action": "not_duplicate"}),
        (dedup, "delete", f"/duplicates/{bad_id}/resolution", None),
    ]
    for client, method, url, body in calls:
        r = send(client, method, url, body)
        # Then it is an unknown id: 404 with a short reason, not a 500
        assert_error(r, 404, "no ")
        assert len(r.get_json()["error"]) < 200, url[:40]


# --- paging and query parameters -----------------------------------------------------------


@pytest.mark.parametrize("url", ["/jobs", "/groups", "/duplicates"])
@pytest.mark.parametrize("page", ["99999999999999999999", str(2**62)])
def test_a_page_past_any_offset_is_400(grouping, dedup, url: str, page: str) -> None:
    # Given a page number whose offset does not fit the database's 64-bit OFFSET
    client = dedup if url == "/duplicates" else grouping
    # When a list is asked for it, Then the answer is a 400 naming the parameter
    assert_error(send(client, "get", f"{url}?page={page}"), 400, "page")


@pytest.mark.parametrize("value", ["1_0", "５", " 5", "+5", "0x10"])
def test_page_and_size_are_plain_digits(grouping, value: str) -> None:
    # int() would read "1_0" as 10 and "５" as 5: the API documents whole numbers
    assert_error(send(grouping, "get", "/jobs", query_string={"size": value}), 400, "size")


@pytest.mark.parametrize(
    "which, url, word",
    [
        # status (dedup) and state (jobs) are easy to mix up; a typo must not widen the answer
        ("dedup", "/duplicates?state=resolved", "state"),
        ("dedup", "/duplicates?min_similarty=0.9", "min_similarty"),
        ("grouping", "/groups?typ=raw_jpeg", "typ"),
        ("grouping", "/jobs?status=done", "status"),
        ("dedup", "/jobs?kind=scan&pagesize=5", "pagesize"),
    ],
)
def test_unknown_query_parameters_are_400(apps, which: str, url: str, word: str) -> None:
    client = apps[which].test_client()
    assert_error(send(client, "get", url), 400, word)


def test_known_query_parameters_still_work(grouping, dedup, pg_settings) -> None:
    seed(pg_settings, ["a/IMG_1.CR2", "a/IMG_1.JPG"])
    lib = str(pg_settings.library_roots[0])
    assert send(grouping, "get", f"/groups?type=raw_jpeg&path_prefix={lib}&page=1&size=5").is_json
    assert send(grouping, "get", "/groups?type=raw_jpeg&page=1&size=5").get_json()["total"] == 1
    r = send(grouping, "get", "/files/group", query_string={"path": f"{lib}/a/IMG_1.JPG"})
    assert r.status_code == 200
    r = send(dedup, "get", "/duplicates?type=exact&status=open&min_similarity=0.5&page=1&size=5")
    assert r.status_code == 200
    assert send(dedup, "get", "/jobs?kind=scan&state=queued&page=1&size=5").status_code == 200


# --- paths ---------------------------------------------------------------------------------


def test_paths_no_file_name_can_have_are_400(grouping, dedup, pg_settings) -> None:
    # Given a path with a lone surrogate that is not a \udcXX byte escape: JSON can carry it,
    # but no file name is made of it (os.fsencode raises)
    lib = seed(pg_settings, ["a/IMG_1.CR2", "a/IMG_1.JPG"])
    gid = send(grouping, "get", "/groups").get_json()["items"][0]["id"]
    bad = f"{lib}/a/\ud800.jpg"
    good = f"{lib}/a/IMG_1.JPG"
    calls = [
        (grouping, "/scans", {"path": bad}),
        (grouping, "/groups/merge", {"paths": [good, bad]}),
        (grouping, "/groups/merge", {"paths": [good, f"{lib}/a/IMG_1.CR2"], "primary": bad}),
        (grouping, f"/groups/{gid}/split", {"paths": [bad]}),
    ]
    for client, url, body in calls:
        # When it is sent, Then the answer is a 400 about that path, not a 500
        assert_error(send(client, "post", url, body), 400, "path")
    assert job_count(pg_settings) == 0
    assert send(grouping, "get", f"/groups/{gid}").status_code == 200
    # A lookup only asks what the catalog knows: such a path is simply not found
    r = send(dedup, "post", "/duplicates/lookup", {"paths": [good, bad]})
    assert r.status_code == 200 and [f["path"] for f in r.get_json()["files"]] == [good]


# --- bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/scans", "/files/lookup", "/groups/merge", "/groups/nope/split", "/dedup/runs"]
)
def test_deeply_nested_json_is_400(apps, url: str) -> None:
    # Given a small body nested deeper than the JSON parser recurses (RecursionError)
    client = apps["dedup" if url == "/dedup/runs" else "grouping"].test_client()
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        assert_error(send(client, "post", url, body), 400, "JSON")


@pytest.mark.parametrize(
    "body, word", [(b"null", "object"), (b'"text"', "object"), (b"{", "malformed")]
)
def test_bodies_that_are_not_objects(dedup, body: bytes, word: str) -> None:
    assert_error(send(dedup, "post", "/dedup/runs", body), 400, word)


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"]
)
def test_a_body_not_sent_as_json_is_refused_not_ignored(
    grouping, dedup, pg_settings, content_type: str
) -> None:
    # Given a JSON text sent with another Content-Type (curl -d does this by default)
    lib = seed(pg_settings, ["a/IMG_1.CR2", "a/IMG_1.JPG", "b/x.jpg"])
    gid = send(grouping, "get", "/groups").get_json()["items"][0]["id"]
    scan = f'{{"path": "{lib}/b", "full": true}}'.encode()
    split = f'{{"paths": ["{lib}/a/IMG_1.CR2"]}}'.encode()
    calls = [
        (grouping, "/scans", scan),
        (grouping, f"/groups/{gid}/split", split),
        (dedup, "/dedup/runs", b'{"full": false}'),
    ]
    for client, url, body in calls:
        # When it is posted, Then it is a 400 that names the Content-Type...
        r = send(client, "post", url, body, content_type=content_type)
        assert_error(r, 400, "content-type")
    # ...and nothing happened: no scan of the whole root, no dissolved group, no full run
    assert job_count(pg_settings) == 0
    assert send(grouping, "get", f"/groups/{gid}").status_code == 200


def test_an_oversized_body_is_413_json(grouping) -> None:
    r = send(grouping, "post", "/files/lookup", b'{"paths": ["' + b"a" * (2 << 20) + b'"]}')
    assert_error(r, 413)


# --- service token -------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_auth_scheme_is_case_insensitive(grouping, pg_settings, scheme: str) -> None:
    # RFC 9110 11.1: the scheme is a case-insensitive token; the credential is not
    token = pg_settings.service_token
    ok = grouping.get("/jobs", headers={"Authorization": f"{scheme} {token}"})
    assert ok.status_code == 200
    wrong = grouping.get("/jobs", headers={"Authorization": f"{scheme} {token.upper()}"})
    assert_error(wrong, 401, "token")


# --- concurrent double submission ----------------------------------------------------------


def at_once(n: int, request: Callable[[], Any]) -> list[Any]:
    """Run ``request`` in ``n`` threads started together; their answers."""
    out: list[Any] = [None] * n
    gate = threading.Barrier(n)

    def run(i: int) -> None:
        gate.wait(timeout=10)
        out[i] = request()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return out


def slow_commit(monkeypatch, module: Any, name: str, seconds: float = 0.3) -> None:
    """Make ``module.name`` linger after it has written, before the request commits, so
    that a concurrent request's check runs while the first one's rows are uncommitted."""
    original = getattr(module, name)

    def lingering(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        time.sleep(seconds)
        return result

    monkeypatch.setattr(module, name, lingering)


def wait_for_a_lock_wait(engine: Any, timeout: float = 10.0) -> None:
    """Until some backend of this database waits on a lock (the request under test)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as c:
            if c.scalar(query):
                return
        time.sleep(0.02)
    raise AssertionError("the request never waited on the worker's rows")


def test_two_scans_of_a_new_root_at_once_start_one_job(apps, pg_settings, monkeypatch) -> None:
    # Given a root no scan has seen yet (no roots row) and a slow request
    slow_commit(monkeypatch, jobs, "start_job")
    app = apps["grouping"]
    # When two clients ask for a scan of it at the same moment
    answers = at_once(2, lambda: send(app.test_client(), "post", "/scans", {}))
    # Then one starts it (202) and the other is handed the same job (200), no 500
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 202], [r.get_data(as_text=True)[:200] for r in answers]
    assert len({r.get_json()["id"] for r in answers}) == 1
    assert job_count(pg_settings) == 1
    assert len(apps["brokers"]["grouping"].messages) == 1
    with session_scope(engine_for(pg_settings.database_url)) as s:
        assert s.scalar(select(func.count()).select_from(Root)) == 1


def test_two_dedup_runs_at_once_start_one_job(apps, pg_settings, monkeypatch) -> None:
    # Given a slow request
    slow_commit(monkeypatch, dedup_service, "start_run")
    app = apps["dedup"]
    # When two clients ask for a full dedup run at the same moment
    answers = at_once(2, lambda: send(app.test_client(), "post", "/dedup/runs", {"full": True}))
    # Then one job is queued and both answers name it
    assert sorted(r.status_code for r in answers) == [200, 202]
    assert len({r.get_json()["id"] for r in answers}) == 1
    assert job_count(pg_settings) == 1
    assert len(apps["brokers"]["dedup"].messages) == 1


def test_the_same_decision_twice_at_once_is_recorded_once(apps, pg_settings, monkeypatch) -> None:
    # Given an open exact duplicate group
    lib = pg_settings.library_roots[0]
    lib.mkdir(exist_ok=True)
    cat = Catalog(pg_settings, lib)
    h = rand_hash(random.Random(1))
    for n in range(2):
        cat.add(f"d/copy{n}.jpg", sha=sha(1), phash=h)
    cat.dedupe()
    slow_commit(monkeypatch, dedup_service, "record_resolution")
    app = apps["dedup"]
    gid = send(app.test_client(), "get", "/duplicates").get_json()["items"][0]["id"]
    keep = {"action": "trash", "keep": [cat.path("d/copy0.jpg")]}
    # When the same decision is posted twice at the same moment (a double click)
    answers = at_once(
        2, lambda: send(app.test_client(), "post", f"/duplicates/{gid}/resolution", keep)
    )
    # Then one records it and the other is told it is decided already
    assert sorted(r.status_code for r in answers) == [200, 409]
    assert_error(next(r for r in answers if r.status_code == 409), 409, "already")
    with session_scope(engine_for(pg_settings.database_url)) as s:
        assert s.scalar(select(func.count()).select_from(DuplicateResolution)) == 1


def test_the_same_merge_twice_at_once_makes_one_group(apps, pg_settings, monkeypatch) -> None:
    # Given two pictures in two folders and a slow request
    lib = seed(pg_settings, ["a/IMG_1.CR2", "a/IMG_1.JPG", "b/x.jpg"])
    slow_commit(monkeypatch, grouping_service, "merge_files")
    app = apps["grouping"]
    body = {"paths": [f"{lib}/a/IMG_1.JPG", f"{lib}/b/x.jpg"]}
    # When the same merge is posted twice at the same moment (a double click)
    answers = at_once(2, lambda: send(app.test_client(), "post", "/groups/merge", body))
    # Then both answer the one manual group (two regroups at once collided: a 500)
    assert [r.status_code for r in answers] == [201, 201], [r.get_json() for r in answers]
    assert len({r.get_json()["id"] for r in answers}) == 1
    manual = send(app.test_client(), "get", "/groups?type=manual").get_json()
    assert manual["total"] == 1


def test_a_correction_that_loses_a_race_with_a_worker_is_409(apps, pg_settings) -> None:
    # Given a catalog no grouping pass has seen, and a worker's pass over it that has
    # written its groups but not committed yet
    lib = str(pg_settings.library_roots[0])
    engine = engine_for(pg_settings.database_url)
    with session_scope(engine) as s:
        root = jobs.get_or_create_root(s, lib)
        for i, rel in enumerate(("a/IMG_1.CR2", "a/IMG_1.JPG")):
            kind = "raw" if rel.endswith("CR2") else "image"
            s.add(file_row(root.id, f"{lib}/{rel}", inode=i + 1, kind=kind, status="present"))
    worker = Session(engine)
    grouping_service.regroup(worker, None)
    worker.flush()
    # When a merge of the same files is asked for meanwhile (its rows wait on the worker's)
    body = {"paths": [f"{lib}/a/IMG_1.CR2", f"{lib}/a/IMG_1.JPG"]}
    answer: list[Any] = []
    thread = threading.Thread(
        target=lambda: answer.append(
            send(apps["grouping"].test_client(), "post", "/groups/merge", body)
        )
    )
    thread.start()
    wait_for_a_lock_wait(engine)
    worker.commit()
    worker.close()
    thread.join(timeout=30)
    # Then the loser is told to retry (409 with a reason), not a 500
    assert_error(answer[0], 409, "try again")
    # and a retry succeeds
    assert send(apps["grouping"].test_client(), "post", "/groups/merge", body).status_code == 201


# --- the embedded default (SQLite, one process) ---------------------------------------


@pytest.fixture
def embedded_apps(embedded_settings: Settings) -> dict[str, Any]:
    """Both APIs on the embedded SQLite catalog, as ``twinlens up`` serves them."""
    from core.db import migrate

    embedded_settings.library_roots[0].mkdir(parents=True, exist_ok=True)
    migrate(embedded_settings.database_url)
    brokers = {"grouping": RecordingBroker(), "dedup": RecordingBroker()}
    return {
        which: api.create_app(which, {"settings": embedded_settings, "broker": brokers[which]})
        for which in brokers
    } | {"brokers": brokers}


def test_embedded_two_scans_of_a_new_root_at_once_start_one_job(
    embedded_apps, embedded_settings, monkeypatch
) -> None:
    # Given the embedded catalog, a root no scan has seen and a slow request
    slow_commit(monkeypatch, jobs, "start_job")
    app = embedded_apps["grouping"]
    # When two clients ask for a scan of it at the same moment (a double click in the UI)
    answers = at_once(2, lambda: send(app.test_client(), "post", "/scans", {}))
    # Then one job, one root row, one message, and both answers name the job
    assert sorted(r.status_code for r in answers) == [200, 202], [
        r.get_data(as_text=True)[:200] for r in answers
    ]
    assert len({r.get_json()["id"] for r in answers}) == 1
    assert job_count(embedded_settings) == 1
    assert len(embedded_apps["brokers"]["grouping"].messages) == 1
    with session_scope(engine_for(embedded_settings.database_url)) as s:
        assert s.scalar(select(func.count()).select_from(Root)) == 1


def test_embedded_two_dedup_runs_at_once_start_one_job(
    embedded_apps, embedded_settings, monkeypatch
) -> None:
    slow_commit(monkeypatch, dedup_service, "start_run")
    app = embedded_apps["dedup"]
    answers = at_once(2, lambda: send(app.test_client(), "post", "/dedup/runs", {"full": True}))
    assert sorted(r.status_code for r in answers) == [200, 202]
    assert len({r.get_json()["id"] for r in answers}) == 1
    assert job_count(embedded_settings) == 1
    # And the lock is given back: a later request is not kept waiting
    later = send(app.test_client(), "post", "/dedup/runs", {"full": True})
    assert later.status_code == 200 and later.get_json()["id"] == answers[0].get_json()["id"]


def test_a_path_longer_than_any_file_name_is_refused_at_once(grouping, dedup, pg_settings) -> None:
    # Given a 1 MB path inside the library (realpath's cost grows with the square of it)
    lib = seed(pg_settings, ["a/IMG_1.CR2", "a/IMG_1.JPG"])
    huge = lib + "/a" * 500_000
    # When it is sent to scan or looked up, Then it is refused for its length, before
    # anything resolves it (or simply not found)
    assert_error(send(grouping, "post", "/scans", {"path": huge}), 400, "longer than 4096")
    r = send(dedup, "post", "/duplicates/lookup", {"paths": [huge]})
    assert r.status_code == 200 and r.get_json()["files"] == []
    assert job_count(pg_settings) == 0


def test_an_explicit_null_never_widens_an_action(grouping, pg_settings) -> None:
    # Given a group and no scan
    seed(pg_settings, ["a/IMG_1.CR2", "a/IMG_1.JPG"])
    gid = send(grouping, "get", "/groups").get_json()["items"][0]["id"]
    # When a split names its files as null, or a scan its folder, Then they are refused:
    # a missing field means "all" (dissolve, the whole root), a null is a mistake
    assert_error(send(grouping, "post", f"/groups/{gid}/split", {"paths": None}), 400, "paths")
    assert_error(send(grouping, "post", "/scans", {"path": None}), 400, "path")
    assert send(grouping, "get", f"/groups/{gid}").status_code == 200
    assert job_count(pg_settings) == 0


@pytest.mark.parametrize(
    "trashed",
    [
        [{"path": "B", "sha1": "<script>not a sha1"}],
        [{"path": "B", "sha1": ""}],
        [{"path": "B", "sha1": 1234567890123456789012345678901234567890}],
        [{"path": "B", "sha1": None}, {"path": "B", "sha1": None}],
    ],
    ids=["not hex", "empty", "a number", "twice"],
)
def test_a_decisions_trashed_list_is_checked(dedup, pg_settings, trashed) -> None:
    cat = Catalog(pg_settings, pg_settings.library_roots[0])
    cat.add("e/a.jpg", sha=sha(1))
    cat.add("e/b.jpg", sha=sha(1))
    cat.dedupe()
    [d] = send(dedup, "get", "/duplicates").get_json()["items"]
    keep, other = sorted(m["path"] for m in d["members"])
    body = {
        "action": "trash",
        "keep": [keep],
        "trashed": [{**t, "path": other} for t in trashed],
    }
    assert_error(send(dedup, "post", f"/duplicates/{d['id']}/resolution", body), 400, "trashed")
    assert send(dedup, "get", f"/duplicates/{d['id']}").get_json()["status"] == "open"


def test_a_long_folder_reaches_the_api_under_its_production_server(tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path
    from urllib.parse import quote

    import requests

    from tests.netutil import free_port, wait_answering

    # Given the grouping API as it runs in production (gunicorn), over a library
    library = tmp_path / "library"
    library.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "TWINLENS_DATA_DIR": str(tmp_path / "data"),
        "TWINLENS_LIBRARY_ROOTS": str(library),
        "TWINLENS_SERVICE_TOKEN": "long-line-token",
    }
    code = f"from api import serve; from core.config import load_settings; serve('grouping', load_settings(), port={port})"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(url + "/groups")
        # When a folder of 1,500 bytes (CJK names: 4,500 characters percent-encoded, past
        # gunicorn's default request line of 4,094) is asked for
        folder = str(library) + ("/" + "写真" * 40) * 6
        r = requests.get(
            url + "/groups?path_prefix=" + quote(folder),
            headers={"Authorization": "Bearer long-line-token"},
            timeout=10,
        )
        # Then the API itself answers it (an empty page), not the server's 414
        assert r.status_code == 200, r.text[:300]
        assert r.json()["total"] == 0
    finally:
        proc.terminate()
        proc.wait(10)
