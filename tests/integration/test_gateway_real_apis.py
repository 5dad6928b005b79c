"""The gateway in front of the fake Immich and the REAL grouping and dedup APIs, on
PostgreSQL + Redis, after a real scan by Dramatiq workers (``twinlens.run_scan``).

The other gateway tests seed the catalog directly (tests/realapis.py); these start from
a real library on disk, scanned by the workers, and check that the services' answers
(paths, sha1s, keep, status, data-version bumps by workers) line up with what the
gateway expects. The library's files are registered in the fake Immich
as external-library assets under ``/mnt/photos`` (checksum = SHA-1 of "path:" +
originalPath, as Immich computes it), and the gateway's path map sends that prefix to
the real library folder.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import ImageEnhance

from core.config import Settings
from tests.factories import picture, write_jpeg
from tests.require import missing

IMMICH_ROOT = "/mnt/photos"
LIBRARY_ID = "0b0c2a1e-5b1c-4e7f-9d2a-6f3e1c2b4a5d"
BUCKET = "2024-05-01T00:00:00.000Z"
T0 = datetime(2024, 5, 17, 10, 0, tzinfo=UTC)

# rel path -> (duplicate type, file group type) the scan must find
EXACT = ("2024/trip/IMG_0100.JPG", "backup/IMG_0100.JPG")
PERCEPTUAL = ("2024/trip/IMG_0101.JPG", "backup/IMG_0101-small.jpg")
EDITED = ("2024/edits/IMG_1234.JPG", "2024/edits/IMG_E1234.JPG")
LONER = "2024/trip/IMG_0102.JPG"


def build_library(root: Path) -> None:
    """A byte copy in another folder, a resized re-encode, an iPhone-style edit pair and
    one unrelated shot."""
    for i, rel in enumerate((EXACT[0], PERCEPTUAL[0], LONER)):
        write_jpeg(root / rel, 100 + i, size=(640, 480), taken=T0.replace(tzinfo=None))
    (root / "backup").mkdir()
    shutil.copyfile(root / EXACT[0], root / EXACT[1])
    picture(101, (640, 480)).resize((320, 240)).save(root / PERCEPTUAL[1], "JPEG", quality=70)
    write_jpeg(root / EDITED[0], 1234, size=(640, 480))
    edit = ImageEnhance.Contrast(picture(1234, (640, 480))).enhance(1.4)
    edit.save(root / EDITED[1], "JPEG", quality=88)


class Counting:
    """WSGI middleware: counts (method, path) of the requests an API receives."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self.delay = 0.0  # seconds each request waits first: a service that hangs

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        with self._lock:
            self.calls[(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))] += 1
        if self.delay:
            time.sleep(self.delay)
        return self.app(environ, start_response)

    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())


@dataclass
class Stack:
    cfg: Settings
    library: Path
    immich: Any  # FakeImmichServer
    token: str
    assets: dict[str, str]  # rel path -> Immich asset id
    grouping: Counting
    dedup: Counting
    gateway_url: str
    http: requests.Session
    servers: list[Any] = field(default_factory=list)
    gateway_app: Any = None

    def path(self, rel: str) -> str:
        return str(self.library / rel)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def gw(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("headers", self.auth)
        return self.http.request(method, self.gateway_url + path, timeout=30, **kw)

    def direct_immich(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("headers", self.auth)
        return self.http.request(method, self.immich.url + path, timeout=30, **kw)

    def direct_api(self, which: str, method: str, path: str, **kw: Any) -> requests.Response:
        url = (self.cfg.grouping_url if which == "grouping" else self.cfg.dedup_url) + path
        headers = {"Authorization": f"Bearer {self.cfg.service_token}"}
        return self.http.request(method, url, headers=headers, timeout=30, **kw)


def _redis_db(settings: Settings, which: str) -> str:
    """This session's own broker or cache database (tests/conftest.py), emptied."""
    from tests.conftest import flush_redis

    url = settings.broker_url if which == "broker" else settings.cache_url
    flush_redis(url)
    return url


def _exact_group(st: Stack) -> dict[str, Any]:
    """The byte copies' duplicate group, as the gateway lists it."""
    items = st.gw("GET", "/api/twinlens/duplicates").json()["items"]
    return next(d for d in items if d["type"] == "exact")


@pytest.fixture
def stack(pg_settings: Settings, library: Path) -> Iterator[Stack]:
    import api
    import gateway
    import twinlens
    from core.broker import make_broker
    from core.db import engine_for
    from tests.fakeimmich import FakeImmichServer, ThreadedServer
    from tests.fakeimmich.spec import spec_path

    if not spec_path().is_file():
        missing(
            f"Immich OpenAPI spec not found at {spec_path()} (the fake Immich needs it)",
            shared=True,
        )
    cfg = dataclasses.replace(
        pg_settings,
        broker_url=_redis_db(pg_settings, "broker"),
        cache_url=_redis_db(pg_settings, "cache"),
    )
    build_library(library)
    report = twinlens.run_scan(cfg, str(library))
    assert report["job"]["state"] == "done", report["job"]

    servers: list[Any] = []
    http = requests.Session()
    http.trust_env = False
    try:
        immich = FakeImmichServer().start()
        servers.append(immich)
        user = immich.state.add_user("alice@example.com", "secret-pw", name="Alice", is_admin=True)
        token = immich.state.new_session(user["id"])
        assets = {}
        for i, f in enumerate(sorted(library.rglob("*.[jJ][pP][gG]"))):
            rel = f.relative_to(library).as_posix()
            assets[rel] = immich.state.add_asset(
                user["id"],
                f"{IMMICH_ROOT}/{rel}",
                file=str(f),
                library_id=LIBRARY_ID,
                taken=T0 + timedelta(minutes=i),
            )["id"]

        broker = make_broker(cfg)  # the APIs only enqueue (POST /scans); no test here does
        counted = {}
        for which in ("grouping", "dedup"):
            counted[which] = Counting(api.create_app(which, {"settings": cfg, "broker": broker}))
            servers.append(ThreadedServer(counted[which]).start())
        cfg = dataclasses.replace(cfg, grouping_url=servers[1].url, dedup_url=servers[2].url)
        gw_cfg = dataclasses.replace(
            cfg, immich_url=immich.url, path_map=((IMMICH_ROOT, str(library)),)
        )
        # TTLs far beyond the test's length: whatever changes, changes by the data version.
        gw_app = gateway.create_app(
            {"SETTINGS": gw_cfg, "LIST_TTL": 3600, "CACHE_TTL": 3600, "MEMBER_TTL": 3600}
        )
        servers.append(ThreadedServer(gw_app).start())
        yield Stack(
            cfg,
            library,
            immich,
            token,
            assets,
            counted["grouping"],
            counted["dedup"],
            servers[-1].url,
            http,
            servers,
            gw_app,
        )
    finally:
        for s in reversed(servers):
            s.stop()
        http.close()
        engine_for(cfg.database_url).dispose()
        for which in ("broker", "cache"):
            _redis_db(pg_settings, which)


def _without_twinlens(obj: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    obj = dict(obj)
    return obj, obj.pop("twinlens")


def _expected(st: Stack) -> dict[str, tuple[str | None, str | None]]:
    """Asset id -> (duplicate type, group type) that the gateway must attach."""
    out: dict[str, tuple[str | None, str | None]] = {a: (None, None) for a in st.assets.values()}
    for rel in EXACT:
        out[st.assets[rel]] = ("exact", None)
    for rel in PERCEPTUAL:
        out[st.assets[rel]] = ("perceptual", None)
    for rel in EDITED:
        out[st.assets[rel]] = (None, "edited")
    return out


def _types(tl: dict[str, Any] | None) -> tuple[str | None, str | None]:
    assert tl is not None
    return ((tl["duplicate"] or {}).get("type"), (tl["group"] or {}).get("type"))


def test_immich_answers_enriched_from_the_real_services(stack: Stack) -> None:
    st = stack
    # One member of an exact duplicate: Immich's fields untouched, the real group attached.
    aid = st.assets[EXACT[1]]
    direct = st.direct_immich("GET", f"/api/assets/{aid}")
    via = st.gw("GET", f"/api/assets/{aid}")
    assert via.status_code == 200 and via.headers["X-Twinlens-Enrichment"] == "ok"
    immich_part, tl = _without_twinlens(via.json())
    assert immich_part == direct.json()
    assert tl["path"] == st.path(EXACT[1]) and tl["group"] is None
    dup = tl["duplicate"]
    assert dup["type"] == "exact" and dup["status"] == "open"
    assert {m["path"] for m in dup["members"]} == {st.path(r) for r in EXACT}
    assert dup["keepPath"] in {st.path(r) for r in EXACT}
    keep_rel = Path(dup["keepPath"]).relative_to(st.library).as_posix()
    assert dup["suggestedKeepAssetId"] == st.assets[keep_rel]
    assert sorted(dup["memberAssetIds"]) == sorted(st.assets[r] for r in EXACT)
    assert dup["reclaimableBytes"] == (st.library / EXACT[0]).stat().st_size

    # The resized re-encode: a perceptual duplicate of its original.
    tl = st.gw("GET", f"/api/assets/{st.assets[PERCEPTUAL[1]]}").json()["twinlens"]
    assert tl["duplicate"]["type"] == "perceptual" and 0 < tl["duplicate"]["similarity"] <= 1
    assert sorted(tl["duplicate"]["memberAssetIds"]) == sorted(st.assets[r] for r in PERCEPTUAL)

    # The edited copy: a file group (and, being a version of one shot, no duplicate).
    tl = st.gw("GET", f"/api/assets/{st.assets[EDITED[1]]}").json()["twinlens"]
    assert tl["duplicate"] is None
    grp = tl["group"]
    assert grp["type"] == "edited" and grp["primaryPath"] == st.path(EDITED[0])
    assert grp["primaryAssetId"] == st.assets[EDITED[0]]
    assert sorted(grp["memberAssetIds"]) == sorted(st.assets[r] for r in EDITED)
    roles = {m["path"]: m["role"] for m in grp["members"]}
    assert roles == {st.path(EDITED[0]): "primary", st.path(EDITED[1]): "edit"}

    tl = st.gw("GET", f"/api/assets/{st.assets[LONER]}").json()["twinlens"]
    assert tl == {"path": st.path(LONER), "group": None, "duplicate": None}

    expected = _expected(st)
    # Search: every item keeps Immich's fields and gains its own Twinlens object.
    body = {"size": 100, "withExif": True}
    direct = st.direct_immich("POST", "/api/search/metadata", json=body).json()
    via = st.gw("POST", "/api/search/metadata", json=body)
    assert via.headers["X-Twinlens-Enrichment"] == "ok"
    items = via.json()["assets"]["items"]
    assert [a["id"] for a in items] == [a["id"] for a in direct["assets"]["items"]]
    assert len(items) == len(st.assets)
    for got, want in zip(items, direct["assets"]["items"], strict=True):
        immich_part, tl = _without_twinlens(got)
        assert immich_part == want
        assert _types(tl) == expected[got["id"]], (got["originalPath"], tl)

    # Timeline bucket (columnar): Immich's columns unchanged plus one parallel array.
    direct = st.direct_immich("GET", "/api/timeline/bucket", params={"timeBucket": BUCKET}).json()
    via = st.gw("GET", "/api/timeline/bucket", params={"timeBucket": BUCKET})
    assert via.headers["X-Twinlens-Enrichment"] == "ok"
    columns, column = _without_twinlens(via.json())
    assert columns == direct and len(direct["id"]) == len(st.assets)
    assert len(column) == len(direct["id"])
    for asset_id, tl in zip(direct["id"], column, strict=True):
        assert _types(tl) == expected[asset_id], (asset_id, tl)

    # The stats page: the real services' figures, passed through.
    stats = st.gw("GET", "/api/twinlens/stats").json()
    assert stats["duplicates"] == st.direct_api("dedup", "GET", "/stats").json()
    assert stats["groups"]["total"] == 1


def test_a_phone_upload_beside_the_nas_assets_is_enriched_by_its_content(stack: Stack) -> None:
    st = stack
    # Given a copy of a NAS photo uploaded from a phone: Immich keeps it under its own
    # upload folder, which is no library path (no TWINLENS_PATH_MAP entry, outside the roots)
    owner = st.immich.state.assets[st.assets[EXACT[0]]]["ownerId"]
    upload = st.immich.state.add_asset(
        owner,
        "/data/upload/" + owner + "/ab/cd/IMG_0001.jpg",
        file=str(st.library / EXACT[0]),
        taken=T0,
    )["id"]
    # When it is shown alone and among the NAS assets
    one = st.gw("GET", f"/api/assets/{upload}")
    found = st.gw("POST", "/api/search/metadata", json={"size": 100})
    # Then both answers are enriched; the upload is found by its content SHA-1 as a member
    # of the NAS photo's exact duplicate group, and the NAS assets keep theirs
    assert one.headers["X-Twinlens-Enrichment"] == "ok", one.headers
    assert one.json()["twinlens"]["duplicate"]["type"] == "exact"
    assert found.headers["X-Twinlens-Enrichment"] == "ok"
    by_id = {a["id"]: a["twinlens"] for a in found.json()["assets"]["items"]}
    assert by_id[upload]["duplicate"]["type"] == "exact"
    assert _types(by_id[st.assets[EXACT[1]]]) == ("exact", None)


def test_resolve_dry_run_then_trash_through_immich(stack: Stack) -> None:
    st = stack
    listed = st.gw("GET", "/api/twinlens/duplicates").json()
    real = st.direct_api("dedup", "GET", "/duplicates").json()
    assert sorted(d["id"] for d in listed["items"]) == sorted(d["id"] for d in real["items"])
    assert sorted(d["type"] for d in listed["items"]) == ["exact", "perceptual"]
    exact = next(d for d in listed["items"] if d["type"] == "exact")
    assert {m["path"]: m["assetId"] for m in exact["members"]} == {
        st.path(r): st.assets[r] for r in EXACT
    }
    keep_id = exact["keepAssetId"]
    assert keep_id in {st.assets[r] for r in EXACT}
    other = next(r for r in EXACT if st.assets[r] != keep_id)
    before = st.gw("GET", f"/api/twinlens/duplicates/{exact['id']}").json()
    assert before["status"] == "open"  # now cached by the gateway

    r = st.gw(
        "POST",
        f"/api/twinlens/duplicates/{exact['id']}/resolve",
        json={"keep": [keep_id], "action": "trash", "dryRun": True},
    )
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["dryRun"] is True
    assert plan["trash"] == [{"path": st.path(other), "assetId": st.assets[other]}]
    assert [k["assetId"] for k in plan["keep"]] == [keep_id] and plan["notInImmich"] == []
    assert st.immich.state.calls[("DELETE", "/assets")] == 0
    assert not any(a["isTrashed"] for a in st.immich.state.assets.values())
    assert st.direct_api("dedup", "GET", f"/duplicates/{exact['id']}").json()["status"] == "open"
    assert st.dedup.calls[("POST", f"/duplicates/{exact['id']}/resolution")] == 0

    r = st.gw(
        "POST",
        f"/api/twinlens/duplicates/{exact['id']}/resolve",
        json={"keep": [keep_id], "action": "trash"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["recorded"]["status"] == "resolved"
    # Immich got one DELETE /api/assets with force false: the asset is in its trash,
    # not gone (the fake drops an asset for good on force true).
    assert st.immich.state.calls[("DELETE", "/assets")] == 1
    state = st.immich.state.assets
    assert state[st.assets[other]]["isTrashed"] is True
    assert state[keep_id]["isTrashed"] is False
    assert sum(a["isTrashed"] for a in state.values()) == 1
    assert (st.library / other).is_file()  # Twinlens never deletes a library file
    real_dup = st.direct_api("dedup", "GET", f"/duplicates/{exact['id']}").json()
    assert real_dup["status"] == "resolved"
    assert real_dup["resolution"] is not None
    # The gateway's cached copy of this group was invalidated by the resolution.
    after = st.gw("GET", f"/api/twinlens/duplicates/{exact['id']}")
    assert after.json()["status"] == "resolved" and "X-Twinlens-Cache" not in after.headers
    again = st.gw(
        "POST",
        f"/api/twinlens/duplicates/{exact['id']}/resolve",
        json={"keep": [keep_id], "action": "trash"},
    )
    assert again.status_code == 409
    assert st.immich.state.calls[("DELETE", "/assets")] == 1


def test_rescan_by_workers_invalidates_cached_answers(stack: Stack) -> None:
    from core import dataversion
    from twinlens import run_scan

    st = stack
    first = st.gw("GET", "/api/twinlens/groups")
    assert first.status_code == 200 and "X-Twinlens-Cache" not in first.headers
    assert [g["type"] for g in first.json()["items"]] == ["edited"]
    loner = st.gw("GET", f"/api/assets/{st.assets[LONER]}").json()["twinlens"]
    assert loner["group"] is None
    dups = st.gw("GET", "/api/twinlens/duplicates", params={"type": "exact"}).json()
    assert [len(d["members"]) for d in dups["items"]] == [2]
    calls = dict(st.grouping.calls), dict(st.dedup.calls)

    # Served from the cache: same answer, and neither API is asked again.
    second = st.gw("GET", "/api/twinlens/groups")
    assert second.headers.get("X-Twinlens-Cache") == "hit" and second.json() == first.json()
    assert st.gw("GET", f"/api/assets/{st.assets[LONER]}").json()["twinlens"] == loner
    assert st.gw("GET", "/api/twinlens/duplicates", params={"type": "exact"}).json() == dups
    assert (dict(st.grouping.calls), dict(st.dedup.calls)) == calls

    # The library changes: a sidecar for the loner and a third copy. A rescan by the
    # workers bumps the data version in Redis; the TTLs are an hour away.
    version = dataversion.current(st.cfg.cache_url)
    (st.library / f"{LONER}.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')
    (st.library / "archive").mkdir()
    shutil.copyfile(st.library / EXACT[0], st.library / "archive/IMG_0100.JPG")
    report = run_scan(st.cfg, str(st.library))
    assert report["job"]["state"] == "done", report["job"]

    third = st.gw("GET", "/api/twinlens/groups")
    assert "X-Twinlens-Cache" not in third.headers
    assert st.grouping.calls[("GET", "/groups")] == calls[0][("GET", "/groups")] + 1
    assert sorted(g["type"] for g in third.json()["items"]) == ["edited", "sidecar"]
    side = next(g for g in third.json()["items"] if g["type"] == "sidecar")
    assert side["primary"] == st.path(LONER) and side["primaryAssetId"] == st.assets[LONER]
    assert {m["path"] for m in side["members"]} == {st.path(LONER), st.path(LONER) + ".xmp"}

    grp = st.gw("GET", f"/api/assets/{st.assets[LONER]}").json()["twinlens"]["group"]
    assert grp["type"] == "sidecar" and grp["memberAssetIds"] == [st.assets[LONER]]

    dups = st.gw("GET", "/api/twinlens/duplicates", params={"type": "exact"}).json()
    members = {m["path"]: m["assetId"] for m in dups["items"][0]["members"]}
    # The new copy is not in Immich yet: listed by path, without an asset id.
    assert members == {
        **{st.path(r): st.assets[r] for r in EXACT},
        st.path("archive/IMG_0100.JPG"): None,
    }
    assert dataversion.current(st.cfg.cache_url) > version  # by the workers, not the gateway


def test_no_credentials_get_immichs_refusal_and_reach_no_service(stack: Stack) -> None:
    st = stack
    for headers in ({}, {"Authorization": "Bearer not-a-session"}):
        direct = st.direct_immich("GET", "/api/users/me", headers=headers)
        assert direct.status_code == 401
        for path in ("/api/twinlens/groups", "/api/twinlens/duplicates"):
            r = st.gw("GET", path, headers=headers)
            assert (r.status_code, r.json()) == (401, direct.json()), path
            assert r.headers["Content-Type"].startswith("application/json")
    assert st.grouping.total() == 0 and st.dedup.total() == 0


def _group_of(st: Stack, rel: str) -> dict[str, Any] | None:
    r = st.direct_api("grouping", "GET", "/files/group", params={"path": st.path(rel)})
    assert r.status_code in (200, 404), r.text
    return r.json() if r.status_code == 200 else None


def _asset_group(st: Stack, rel: str) -> dict[str, Any] | None:
    r = st.gw("GET", f"/api/assets/{st.assets[rel]}")
    assert r.status_code == 200 and r.headers["X-Twinlens-Enrichment"] == "ok", r.text
    return r.json()["twinlens"]["group"]


def test_split_and_merge_through_the_gateway(stack: Stack) -> None:
    st = stack
    # Given the edit pair, seen (and cached) by a client as one group
    edited = _group_of(st, EDITED[0])
    assert edited is not None and edited["type"] == "edited"
    assert _asset_group(st, EDITED[1])["id"] == edited["id"]

    # When the user splits the edit off, the real grouping API has no group left and
    # Immich's answers through the gateway say so at once (no stale cached group)
    r = st.gw(
        "POST", f"/api/twinlens/groups/{edited['id']}/split", json={"paths": [st.path(EDITED[1])]}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"groups": []}  # a pair less one file is no group
    assert _group_of(st, EDITED[0]) is None and _group_of(st, EDITED[1]) is None
    assert _asset_group(st, EDITED[1]) is None

    # When the user merges three files, one manual group holds them, with asset ids
    paths = [st.path(EDITED[0]), st.path(EDITED[1]), st.path(LONER)]
    r = st.gw("POST", "/api/twinlens/groups/merge", json={"paths": paths, "primary": paths[2]})
    assert r.status_code == 201, r.text
    merged = r.json()
    assert merged["type"] == "manual" and merged["primary"] == paths[2]
    assert merged["primaryAssetId"] == st.assets[LONER]
    assert {m["path"]: m["assetId"] for m in merged["members"]} == {
        st.path(rel): st.assets[rel] for rel in (*EDITED, LONER)
    }
    for rel in (*EDITED, LONER):
        assert _group_of(st, rel)["id"] == merged["id"]
    assert _asset_group(st, EDITED[0])["id"] == merged["id"]

    # Then a rescan respects both corrections
    import twinlens

    assert twinlens.run_scan(st.cfg, str(st.library))["job"]["state"] == "done"
    assert _group_of(st, LONER)["id"] == merged["id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/groups/no-such-group/split", {}, 404, "no"),
        ("POST", "/groups/merge", {"paths": ["LONER"]}, 400, "two"),
        ("POST", "/groups/merge", {"paths": "LONER"}, 400, "list"),
        ("POST", "/groups/merge", {"paths": ["LONER", "/etc/passwd"]}, 400, "outside"),
        ("POST", "/groups/merge", {"paths": ["LONER", "EXACT"], "primary": 3}, 400, "primary"),
        ("POST", "/groups/merge", {"paths": ["LONER", "EXACT"], "keep": []}, 400, "unknown"),
        ("DELETE", "/duplicates/no-such-dup/resolution", None, 404, "no"),
    ],
)
def test_corrections_refuse_bad_input(stack, method, path, body, status, words) -> None:
    st = stack
    subst = {"LONER": st.path(LONER), "EXACT": st.path(EXACT[0])}
    if isinstance(body, dict) and isinstance(body.get("paths"), list):
        body = {**body, "paths": [subst.get(p, p) for p in body["paths"]]}
    r = st.gw(method, "/api/twinlens" + path, json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["message"].lower()
    assert _group_of(st, LONER) is None  # nothing was merged


def test_undo_a_trash_decision_brings_the_files_back_from_immichs_trash(stack: Stack) -> None:
    st = stack
    exact = _exact_group(st)
    keep_id = exact["keepAssetId"]
    other = next(r for r in EXACT if st.assets[r] != keep_id)
    undo = f"/api/twinlens/duplicates/{exact['id']}/resolution"
    assert st.gw("DELETE", undo).status_code == 409  # open: nothing to undo
    r = st.gw(
        "POST",
        f"/api/twinlens/duplicates/{exact['id']}/resolve",
        json={"keep": [keep_id], "action": "trash"},
    )
    assert r.status_code == 200, r.text
    assert st.immich.state.assets[st.assets[other]]["isTrashed"] is True

    # A dry run says what would come back and changes nothing
    r = st.gw("DELETE", undo, params={"dryRun": "true"})
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["action"] == "trash" and plan["dryRun"] is True
    assert plan["restore"] == [{"path": st.path(other), "assetId": st.assets[other]}]
    assert plan["notInImmich"] == [] and plan["restored"] is None
    assert st.immich.state.calls[("POST", "/trash/restore/assets")] == 0
    assert (
        st.direct_api("dedup", "GET", f"/duplicates/{exact['id']}").json()["status"] == "resolved"
    )

    # A key that may not restore (no asset.delete) gets Immich's refusal; nothing changes:
    # the decision stays, so undo can still be done with a better key
    owner = st.immich.state.assets[keep_id]["ownerId"]
    weak = st.immich.state.add_api_key(
        owner, ["user.read", "duplicate.delete", "asset.read", "asset.upload"]
    )
    r = st.gw("DELETE", undo, headers={"x-api-key": weak})
    assert r.status_code == 403 and "asset.delete" in r.json()["message"], r.text
    assert st.immich.state.assets[st.assets[other]]["isTrashed"] is True
    assert (
        st.direct_api("dedup", "GET", f"/duplicates/{exact['id']}").json()["status"] == "resolved"
    )

    # Undo: the file is out of Immich's trash and the group is open again, at once
    r = st.gw("DELETE", undo)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["restored"] == 1 and done["dryRun"] is False
    assert done["duplicate"]["status"] == "open" and done["duplicate"]["resolution"] is None
    assert st.immich.state.assets[st.assets[other]]["isTrashed"] is False
    assert st.direct_api("dedup", "GET", f"/duplicates/{exact['id']}").json()["status"] == "open"
    assert st.gw("GET", f"/api/twinlens/duplicates/{exact['id']}").json()["status"] == "open"
    assert st.gw("DELETE", undo).status_code == 409


def test_undo_not_duplicate_touches_nothing_in_immich(stack: Stack) -> None:
    st = stack
    perceptual = next(
        d
        for d in st.gw("GET", "/api/twinlens/duplicates").json()["items"]
        if d["type"] == "perceptual"
    )
    r = st.gw(
        "POST",
        f"/api/twinlens/duplicates/{perceptual['id']}/resolve",
        json={"action": "not_duplicate"},
    )
    assert r.status_code == 200, r.text
    r = st.gw("DELETE", f"/api/twinlens/duplicates/{perceptual['id']}/resolution")
    assert r.status_code == 200, r.text
    assert r.json()["action"] == "not_duplicate"
    assert r.json()["restore"] == [] and r.json()["restored"] is None
    assert r.json()["duplicate"]["status"] == "open"
    assert st.immich.state.calls[("POST", "/trash/restore/assets")] == 0


def test_folders_named_in_other_encodings_can_be_asked_for(stack: Stack) -> None:
    # Given two folders from an old PC whose names differ only in a byte that is not
    # UTF-8 (Latin-1 "café" and "cafè"), each with a picture and its sidecar
    import os

    import twinlens

    st = stack
    base = os.fsencode(st.library) + b"/old-pc/"
    for byte, seed in ((b"\xe9", 7), (b"\xe8", 8)):
        folder = base + b"caf" + byte
        os.makedirs(folder)
        write_jpeg(Path(os.fsdecode(folder + b"/IMG_1.JPG")), seed, size=(320, 240))
        with open(folder + b"/IMG_1.JPG.xmp", "w") as fh:
            fh.write('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')
    assert twinlens.run_scan(st.cfg, str(st.library))["job"]["state"] == "done"

    # When each folder is asked for by its own bytes, Then each answer is that folder's
    # group alone (and the second is not the first one's cached answer)
    for byte in (b"\xe9", b"\xe8"):
        prefix = base + b"caf" + byte
        r = st.gw("GET", "/api/twinlens/groups", params={"path_prefix": prefix})
        assert r.status_code == 200, r.text
        primaries = [os.fsencode(g["primary"]) for g in r.json()["items"]]
        assert primaries == [prefix + b"/IMG_1.JPG"], primaries


def test_duplicates_can_be_listed_by_a_folder_holding_a_copy(stack: Stack) -> None:
    st = stack
    # When the duplicate groups with a copy in backup/ are asked for
    r = st.gw("GET", "/api/twinlens/duplicates", params={"path_prefix": f"{st.library}/backup"})
    # Then both groups come (each has a copy there), with their asset ids
    assert r.status_code == 200, r.text
    assert {d["type"] for d in r.json()["items"]} == {"exact", "perceptual"}
    # While a folder that holds only the edit pair lists none, and a folder outside the
    # library is refused by the dedup API, its reason passed on
    edits = st.gw(
        "GET", "/api/twinlens/duplicates", params={"path_prefix": f"{st.library}/2024/edits"}
    )
    assert edits.status_code == 200 and edits.json()["total"] == 0, edits.text
    outside = st.gw("GET", "/api/twinlens/duplicates", params={"path_prefix": "/etc"})
    assert outside.status_code == 400 and "outside" in outside.text


def test_an_undo_never_withdraws_a_decision_made_while_it_ran(stack: Stack) -> None:
    st = stack
    exact = _exact_group(st)
    keep_id = exact["keepAssetId"]
    other = st.assets[next(r for r in EXACT if st.assets[r] != keep_id)]
    url = f"/api/twinlens/duplicates/{exact['id']}"

    def resolve() -> int:
        r = st.gw("POST", url + "/resolve", json={"keep": [keep_id], "action": "trash"})
        assert r.status_code == 200, r.text
        return r.json()["recorded"]["resolution"]["id"]

    # Given a group resolved by trashing a copy
    first = resolve()
    second: list[int] = []

    # ... and a second reviewer who, while the first one's undo waits on Immich, undoes
    # that decision and resolves the group again (the copy goes back to the trash)
    def meanwhile() -> None:
        assert st.gw("DELETE", url + "/resolution").status_code == 200
        second.append(resolve())

    st.immich.state.while_restoring = meanwhile
    # When the first undo goes on
    r = st.gw("DELETE", url + "/resolution")
    # Then it withdraws nothing: it says the group changed, and the second decision, with
    # its record of what it trashed, stands
    assert second and second[0] != first
    assert r.status_code == 409, r.text
    assert "changed" in r.json()["message"]
    now = st.direct_api("dedup", "GET", f"/duplicates/{exact['id']}").json()
    assert now["status"] == "resolved" and now["resolution"]["id"] == second[0]
    # ... so undoing it in turn brings its copy back
    assert st.gw("DELETE", url + "/resolution").status_code == 200
    assert st.immich.state.assets[other]["isTrashed"] is False


def test_a_copy_trashed_in_immich_after_the_list_was_shown_is_never_kept(stack: Stack) -> None:
    st = stack
    # Given the duplicates list shown (what Immich holds of each member, now cached)
    exact = _exact_group(st)
    keep_id = exact["keepAssetId"]
    other = st.assets[next(r for r in EXACT if st.assets[r] != keep_id)]
    # ... and then the suggested keeper trashed in Immich itself (its own duplicate review)
    r = st.gw("DELETE", "/api/assets", json={"ids": [keep_id], "force": False})
    assert r.status_code == 204, r.text
    # When the user keeps it in Twinlens, dry run or not
    url = f"/api/twinlens/duplicates/{exact['id']}/resolve"
    for dry in (True, False):
        r = st.gw("POST", url, json={"keep": [keep_id], "action": "trash", "dryRun": dry})
        # Then it is refused: the other copy would go to the trash beside it
        assert r.status_code == 409 and "Immich's trash" in r.json()["message"], r.text
    assert st.immich.state.assets[other]["isTrashed"] is False
    now = st.direct_api("dedup", "GET", f"/duplicates/{exact['id']}").json()
    assert (now["status"], now["resolution"]) == ("open", None)


def test_a_trash_that_would_move_nothing_is_not_recorded(stack: Stack) -> None:
    st = stack
    exact = _exact_group(st)
    keep_id = exact["keepAssetId"]
    rel = next(r for r in EXACT if st.assets[r] != keep_id)
    # Given the copy to trash not in Immich (not indexed yet)
    del st.immich.state.assets[st.assets[rel]]
    url = f"/api/twinlens/duplicates/{exact['id']}/resolve"
    # When the group is resolved by keeping the other, dry run or not
    for dry in (True, False):
        r = st.gw("POST", url, json={"keep": [keep_id], "action": "trash", "dryRun": dry})
        # Then it is refused, naming the copy: recorded, the group would leave the list
        # with both copies still on disk
        assert r.status_code == 409 and st.path(rel) in r.json()["message"], r.text
    now = st.direct_api("dedup", "GET", f"/duplicates/{exact['id']}").json()
    assert (now["status"], now["resolution"]) == ("open", None)


def test_no_trash_decision_while_immichs_trash_is_turned_off(stack: Stack) -> None:
    st = stack
    exact = _exact_group(st)
    keep_id = exact["keepAssetId"]
    other = st.assets[next(r for r in EXACT if st.assets[r] != keep_id)]
    # Given an Immich whose trash is turned off: what it "trashes" it purges that night,
    # an external library's files from disk too
    st.immich.state.trash_enabled = False
    url = f"/api/twinlens/duplicates/{exact['id']}/resolve"
    # When the group is resolved by trashing, dry run or not
    for dry in (True, False):
        r = st.gw("POST", url, json={"keep": [keep_id], "action": "trash", "dryRun": dry})
        # Then it is refused, saying why, and nothing moves or is recorded
        assert r.status_code == 409 and "trash is turned off" in r.json()["message"], r.text
    assert st.immich.state.assets[other]["isTrashed"] is False
    assert st.direct_api("dedup", "GET", f"/duplicates/{exact['id']}").json()["status"] == "open"
    # And with the trash on again it goes through
    st.immich.state.trash_enabled = True
    r = st.gw("POST", url, json={"keep": [keep_id], "action": "trash"})
    assert r.status_code == 200, r.text
    assert st.immich.state.assets[other]["isTrashed"] is True


def test_a_service_that_hangs_costs_an_answer_its_budget_then_nothing(stack: Stack) -> None:
    st = stack
    aid = st.assets[EDITED[1]]
    direct = st.direct_immich("GET", f"/api/assets/{aid}").json()
    # Given the grouping API hanging (far longer than the gateway's enrichment budget)
    st.gateway_app.config["ENRICH_BUDGET"] = 1.0
    st.grouping.delay = 8.0
    # When an asset is asked for
    began = time.monotonic()
    r = st.gw("GET", f"/api/assets/{aid}")
    # Then Immich's answer comes within the budget (with slack for a slow machine, far
    # below the hang), as Immich sent it, flagged
    assert time.monotonic() - began < 6.0
    assert r.status_code == 200 and r.headers["X-Twinlens-Enrichment"] == "unavailable"
    assert r.json() == direct
    # And while it is down, the next answers do not wait for it: it is not asked at all
    asked = st.grouping.total()
    for other in (EXACT[0], LONER):
        r = st.gw("GET", f"/api/assets/{st.assets[other]}")
        assert r.headers["X-Twinlens-Enrichment"] == "unavailable"
    assert st.grouping.total() == asked


def test_an_enrichment_that_could_not_ask_immich_everything_is_not_kept(stack: Stack) -> None:
    st = stack
    aid = st.assets[EDITED[1]]
    owner = st.immich.state.assets[aid]["ownerId"]
    # Given a key that may read assets but not look them up (bulk-upload-check needs
    # asset.upload): the group's members cannot be found in Immich with it
    frame = st.immich.state.add_api_key(owner, ["user.read", "asset.read"])
    r = st.gw("GET", f"/api/assets/{aid}", headers={"x-api-key": frame})
    assert r.headers["X-Twinlens-Enrichment"] == "partial", r.headers
    assert r.json()["twinlens"]["group"]["memberAssetIds"] == [aid]  # only the one asked
    # When the same user asks with a session that can
    r = st.gw("GET", f"/api/assets/{aid}")
    # Then the answer is whole: the partial one was not kept for them
    assert r.headers["X-Twinlens-Enrichment"] == "ok"
    grp = r.json()["twinlens"]["group"]
    assert sorted(grp["memberAssetIds"]) == sorted(st.assets[e] for e in EDITED)


def test_timeline_assets_not_learnt_yet_are_null_and_not_kept(stack: Stack) -> None:
    st = stack
    ids = st.direct_immich("GET", "/api/timeline/bucket", params={"timeBucket": BUCKET}).json()
    ids = ids["id"]
    # Given a gateway that may learn one asset's file per request (no month search)
    st.gateway_app.config.update(TIMELINE_MAX_PAGES=0, TIMELINE_MAX_SINGLE=1)
    via = st.gw("GET", "/api/timeline/bucket", params={"timeBucket": BUCKET})
    # Then the others are null ("not known yet"), not the "no group" of a known asset,
    # and the answer says it is partial
    assert via.headers["X-Twinlens-Enrichment"] == "partial"
    column = via.json()["twinlens"]
    assert sum(tl is None for tl in column) == len(ids) - 1
    # And it is not kept: once the gateway may learn them all, every asset is known
    st.gateway_app.config.update(TIMELINE_MAX_PAGES=20, TIMELINE_MAX_SINGLE=200)
    via = st.gw("GET", "/api/timeline/bucket", params={"timeBucket": BUCKET})
    assert via.headers["X-Twinlens-Enrichment"] == "ok"
    expected = _expected(st)
    for asset_id, tl in zip(ids, via.json()["twinlens"], strict=True):
        assert tl is not None and _types(tl) == expected[asset_id], (asset_id, tl)


def test_timeline_lookups_one_by_one_stop_at_the_budget(stack: Stack) -> None:
    st = stack
    ids = st.direct_immich("GET", "/api/timeline/bucket", params={"timeBucket": BUCKET}).json()
    ids = ids["id"]
    # Given a gateway that learns the bucket's assets one by one (no month search), and an
    # Immich whose asset lookups hang far past the enrichment budget
    st.gateway_app.config.update(TIMELINE_MAX_PAGES=0, TIMELINE_MAX_SINGLE=200, ENRICH_BUDGET=1.0)
    st.immich.state.route_delay[("GET", "/assets/{id}")] = 6.0
    # When the bucket is asked for
    began = time.monotonic()
    via = st.gw("GET", "/api/timeline/bucket", params={"timeBucket": BUCKET})
    # Then each lookup gave up with the budget, not after the hang or a service timeout:
    # Immich's answer comes within the budget (slack for a slow machine), flagged partial,
    # every asset null (not learnt)
    assert time.monotonic() - began < 4.0
    assert via.status_code == 200 and via.headers["X-Twinlens-Enrichment"] == "partial"
    assert via.json()["id"] == ids and via.json()["twinlens"] == [None] * len(ids)


def test_a_bulk_resolve_past_its_cap_is_refused_whole(stack: Stack) -> None:
    st = stack
    exact = _exact_group(st)
    cap = st.gateway_app.config["MAX_BULK_GROUPS"]
    item = {"id": exact["id"], "keep": [exact["keepAssetId"]], "action": "trash"}
    # When one more group than the cap is sent, Then nothing is done, and the cap is named
    r = st.gw("POST", "/api/twinlens/duplicates/resolve", json={"groups": [item] * (cap + 1)})
    assert r.status_code == 413 and str(cap) in r.json()["message"], r.text
    assert not any(a["isTrashed"] for a in st.immich.state.assets.values())
    assert st.direct_api("dedup", "GET", f"/duplicates/{exact['id']}").json()["status"] == "open"
