"""The fake Immich answers as Immich v3.1 does: every JSON answer validates against the
response schema of the real OpenAPI document (read in place from ../shared/immich/), and
every route it serves exists in that document with the same method."""

from __future__ import annotations

import re

import pytest
import requests
from jsonschema import Draft202012Validator, FormatChecker

from tests.fakeimmich import spec
from tests.fakeimmich.app import path_checksum
from tests.fakeimmich.fixtures import *  # noqa: F403 - pytest fixtures
from tests.fakeimmich.fixtures import LIBRARY_ID
from tests.require import missing


@pytest.fixture(scope="module")
def registry_root():
    if not spec.spec_path().is_file():
        missing("Immich OpenAPI spec not available", shared=True)
    return spec.to_nullable_jsonschema(spec.load_spec())


# Immich serves it beside its web app, not in its API; checked on its own below
OUTSIDE_THE_API = "/.well-known/immich"
CHECKED: set[tuple[str, str]] = set()  # (method, spec path) that check() validated


def spec_form(rule: str) -> str:
    """A fake route's path as the spec writes it: ``/stacks/{id}`` for ``/api/stacks/<stack_id>``."""
    return re.sub(r"<(asset|stack)_id>", "{id}", rule.removeprefix("/api"))


def check(root, method: str, path: str, resp: requests.Response, status: str = "200") -> None:
    CHECKED.add((method, path))
    assert str(resp.status_code) == status, resp.text
    schema = spec.response_schema(method, path, status)
    assert schema is not None, f"spec has no JSON schema for {method} {path} {status}"
    # Resolve $ref against the whole (nullable-converted) spec document.
    validator = Draft202012Validator(
        {**root, **spec.to_nullable_jsonschema(schema)}, format_checker=FormatChecker()
    )
    errors = sorted(validator.iter_errors(resp.json()), key=lambda e: list(e.path))
    assert not errors, f"{method} {path}: " + "; ".join(
        f"{list(e.path)}: {e.message}" for e in errors[:5]
    )


@pytest.fixture
def seeded(immich, alice):
    st = immich.state
    a1 = st.add_asset(
        alice.user["id"],
        "/mnt/photos/2024/IMG_1.JPG",
        content=b"one" * 100,
        library_id=LIBRARY_ID,
        duplicate_id="5f0b3b0a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
    )
    a2 = st.add_asset(
        alice.user["id"],
        "/upload/x/IMG_1 copy.JPG",
        content=b"one" * 101,
        duplicate_id="5f0b3b0a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
    )
    return a1, a2


def test_answers_match_the_spec(immich, alice, seeded, registry_root):
    base, h = immich.url + "/api", alice.bearer
    a1, a2 = seeded
    r = requests.post(base + "/auth/login", json={"email": alice.email, "password": alice.password})
    check(registry_root, "post", "/auth/login", r, "201")
    check(registry_root, "get", "/users/me", requests.get(base + "/users/me", headers=h))
    check(
        registry_root, "get", "/assets/{id}", requests.get(f"{base}/assets/{a1['id']}", headers=h)
    )
    check(
        registry_root,
        "get",
        "/assets/statistics",
        requests.get(f"{base}/assets/statistics", headers=h),
    )
    check(
        registry_root,
        "post",
        "/search/metadata",
        requests.post(base + "/search/metadata", json={"withExif": True}, headers=h),
    )
    check(
        registry_root,
        "get",
        "/timeline/buckets",
        requests.get(base + "/timeline/buckets", headers=h),
    )
    check(
        registry_root,
        "get",
        "/timeline/bucket",
        requests.get(base + "/timeline/bucket", params={"timeBucket": "2024-05-01"}, headers=h),
    )
    check(registry_root, "get", "/duplicates", requests.get(base + "/duplicates", headers=h))
    check(
        registry_root,
        "post",
        "/assets/bulk-upload-check",
        requests.post(
            base + "/assets/bulk-upload-check",
            headers=h,
            json={
                "assets": [
                    {"id": "a", "checksum": a1["checksum"]},
                    {"id": "b", "checksum": "0" * 40},
                ]
            },
        ),
    )
    r = requests.delete(base + "/assets", json={"ids": [a2["id"]], "force": False}, headers=h)
    assert r.status_code == 204 and r.content == b"", r.text  # Immich: 204, no body
    CHECKED.add(("delete", "/assets"))
    check(
        registry_root,
        "post",
        "/trash/restore/assets",
        requests.post(base + "/trash/restore/assets", json={"ids": [a2["id"]]}, headers=h),
    )
    limited = immich.state.add_api_key(alice.user["id"], ["user.read", "stack.read"])
    check(
        registry_root,
        "get",
        "/api-keys/me",
        requests.get(base + "/api-keys/me", headers={"x-api-key": limited}),
    )
    check(registry_root, "get", "/server/ping", requests.get(base + "/server/ping"))
    check(
        registry_root,
        "get",
        "/server/statistics",
        requests.get(base + "/server/statistics", headers=h),
    )
    check(
        registry_root,
        "post",
        "/auth/validateToken",
        requests.post(base + "/auth/validateToken", headers=h),
    )
    check(registry_root, "post", "/auth/logout", requests.post(base + "/auth/logout", headers=h))
    check(registry_root, "get", "/server/version", requests.get(base + "/server/version"))
    check(registry_root, "get", "/server/features", requests.get(base + "/server/features"))
    token = immich.state.new_session(alice.user["id"])
    h = {"Authorization": f"Bearer {token}"}
    for method in ("put", "patch"):  # PATCH: hidden from the spec, mirrors PUT (NOTES §1)
        r = requests.request(
            method, f"{base}/assets/{a1['id']}", json={"isFavorite": True}, headers=h
        )
        check(registry_root, "put", "/assets/{id}", r)
        CHECKED.add((method, "/assets/{id}"))
    files = {"assetData": ("new.jpg", b"new bytes", "image/jpeg")}
    form = {"deviceAssetId": "x", "deviceId": "pytest", "fileCreatedAt": "2024-05-01T10:00:00Z",
            "fileModifiedAt": "2024-05-01T10:00:00Z"}  # fmt: skip
    r = requests.post(base + "/assets", files=files, data=form, headers=h)
    check(registry_root, "post", "/assets", r, "201")
    r = requests.post(base + "/assets", files=files, data=form, headers=h)
    check(registry_root, "post", "/assets", r, "200")  # the same bytes again: a duplicate
    # Binary answers: the content type the spec's clients expect of them
    for kind in ("thumbnail", "original"):
        r = requests.get(f"{base}/assets/{a1['id']}/{kind}", headers=h)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("image/"), r.headers
        CHECKED.add(("get", f"/assets/{{id}}/{kind}"))
    # Stacks: made (the first id its cover), read, and undone (204, no body)
    r = requests.post(base + "/stacks", json={"assetIds": [a2["id"], a1["id"]]}, headers=h)
    check(registry_root, "post", "/stacks", r, "201")
    stack = r.json()
    assert stack["primaryAssetId"] == a2["id"] and len(stack["assets"]) == 2
    got = requests.get(f"{base}/assets/{a1['id']}", headers=h).json()["stack"]
    assert got == {"id": stack["id"], "primaryAssetId": a2["id"], "assetCount": 2}
    check(registry_root, "get", "/stacks/{id}",
          requests.get(f"{base}/stacks/{stack['id']}", headers=h))  # fmt: skip
    found = requests.get(f"{base}/stacks", params={"primaryAssetId": a2["id"]}, headers=h)
    check(registry_root, "get", "/stacks", found)
    assert [x["id"] for x in found.json()] == [stack["id"]]
    r = requests.delete(f"{base}/stacks/{stack['id']}", headers=h)
    assert r.status_code == 204 and r.content == b"", r.text
    CHECKED.add(("delete", "/stacks/{id}"))
    assert requests.get(f"{base}/assets/{a1['id']}", headers=h).json()["stack"] is None
    # Outside the API and its spec: the mobile app's discovery answer, as Immich's
    r = requests.get(immich.url + "/.well-known/immich")
    assert r.json() == {"api": {"endpoint": "/api"}}
    # And every route the fake serves was checked here
    served = {
        (m.lower(), spec_form(rule.rule))
        for rule in immich.app.url_map.iter_rules()
        if rule.endpoint != "static" and rule.rule != OUTSIDE_THE_API
        for m in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served - CHECKED == set()


def test_every_fake_route_is_in_the_spec(immich):
    paths = spec.load_spec()["paths"]
    for rule in immich.app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule == OUTSIDE_THE_API:
            continue
        form = spec_form(rule.rule)
        assert form in paths, rule.rule
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method == "PATCH":  # hidden from the spec, mirrors PUT (NOTES §1)
                assert "put" in paths[form]
            else:
                assert method.lower() in paths[form], (method, rule.rule)


def test_external_asset_checksum_is_the_path_checksum(immich, alice, seeded):
    a1, a2 = seeded
    assert a1["checksum"] == path_checksum("/mnt/photos/2024/IMG_1.JPG")
    assert a2["checksum"] != path_checksum(a2["originalPath"])


def test_auth_answers_as_notes_say(immich, alice):
    base = immich.url + "/api"
    assert requests.get(base + "/users/me").json() == {"message": "Authentication required"}
    r = requests.get(base + "/users/me", headers={"Authorization": "Bearer nope"})
    assert (r.status_code, r.json()) == (401, {"message": "Invalid user token"})
    r = requests.get(base + "/users/me", headers={"x-api-key": "nope"})
    assert (r.status_code, r.json()) == (401, {"message": "Invalid API key"})
    r = requests.get(base + "/users/me", params={"key": "nope"})
    assert (r.status_code, r.json()) == (401, {"message": "Invalid share key"})
    limited = immich.state.add_api_key(alice.user["id"], ["asset.read"])
    r = requests.get(base + "/users/me", headers={"x-api-key": limited})
    assert (r.status_code, r.json()) == (403, {"message": "Missing required permission: user.read"})
    # The session token wins over a bad API key (Immich's validate() order).
    r = requests.get(base + "/users/me", headers={**alice.bearer, "x-api-key": "nope"})
    assert r.status_code == 200
    # getBearerToken splits on single spaces: "Bearer  x" has an empty token.
    r = requests.get(base + "/users/me", headers={"Authorization": "Bearer  " + alice.token})
    assert (r.status_code, r.json()) == (401, {"message": "Authentication required"})
    r = requests.get(base + "/users/me", headers={"Authorization": "bearer " + alice.token})
    assert r.status_code == 200
    # Routes with permission: false (NOTES §1): any key, even one without user.read.
    r = requests.get(base + "/api-keys/me", headers={"x-api-key": limited})
    assert r.status_code == 200 and r.json()["permissions"] == ["asset.read"]
    r = requests.post(base + "/auth/validateToken", headers={"x-api-key": limited})
    assert r.status_code == 200
    r = requests.get(base + "/api-keys/me", headers=alice.bearer)
    assert (r.status_code, r.json()) == (403, {"message": "Not authenticated with an API Key"})


def test_admin_routes_refuse_in_immichs_order(immich, alice, bob):
    # AuthService.authenticate(): who you are, then admin-only, then shared-link routes,
    # then the API key's permission.
    url = immich.url + "/api/server/statistics"
    assert requests.get(url, headers=alice.bearer).status_code == 200
    r = requests.get(url, headers=bob.bearer)
    assert (r.status_code, r.json()) == (403, {"message": "Forbidden"})
    # A non-admin's key without the permission hears "Forbidden", not about the permission
    bare = immich.state.add_api_key(bob.user["id"], ["user.read"])
    r = requests.get(url, headers={"x-api-key": bare})
    assert (r.status_code, r.json()) == (403, {"message": "Forbidden"})
    bare = immich.state.add_api_key(alice.user["id"], ["user.read"])
    r = requests.get(url, headers={"x-api-key": bare})
    assert r.json() == {"message": "Missing required permission: server.statistics"}
    held = immich.state.add_api_key(alice.user["id"], ["server.statistics"])
    assert requests.get(url, headers={"x-api-key": held}).status_code == 200
    # A shared link works only where Immich flags the route for shared links
    link = immich.state.add_shared_link(alice.user["id"], [])
    r = requests.get(immich.url + "/api/users/me", params={"key": link})
    assert (r.status_code, r.json()) == (403, {"message": "Forbidden"})


def test_original_supports_range(immich, alice):
    asset = immich.state.add_asset(alice.user["id"], "/upload/v.mp4", content=bytes(range(256)) * 4)
    r = requests.get(
        f"{immich.url}/api/assets/{asset['id']}/original",
        headers={**alice.bearer, "Range": "bytes=256-259"},
    )
    assert r.status_code == 206
    assert r.content == bytes([0, 1, 2, 3])
    assert r.headers["Content-Range"] == "bytes 256-259/1024"


def test_restore_from_trash_counts_what_came_back_and_checks_access(immich, alice, bob, seeded):
    base = immich.url + "/api"
    a1, a2 = seeded
    # Given a1 in the trash and a2 not
    r = requests.delete(base + "/assets", json={"ids": [a1["id"]]}, headers=alice.bearer)
    assert r.status_code == 204 and immich.state.assets[a1["id"]]["isTrashed"]
    # When bob asks for alice's asset, nothing changes (Immich checks every id first)
    r = requests.post(base + "/trash/restore/assets", json={"ids": [a1["id"]]}, headers=bob.bearer)
    assert r.status_code == 400 and immich.state.assets[a1["id"]]["isTrashed"]
    # When alice restores both, only the trashed one counts
    r = requests.post(
        base + "/trash/restore/assets", json={"ids": [a1["id"], a2["id"]]}, headers=alice.bearer
    )
    assert r.status_code == 200 and r.json() == {"count": 1}
    assert not immich.state.assets[a1["id"]]["isTrashed"]
    r = requests.post(base + "/trash/restore/assets", json={}, headers=alice.bearer)
    assert r.status_code == 400


def test_stacks_merge_and_move_as_immichs_repository_does(immich, alice, bob):
    st, h, base = immich.state, alice.bearer, immich.url + "/api"
    a, b, c, d = (
        st.add_asset(alice.user["id"], f"/mnt/photos/{n}.JPG", content=n.encode())["id"]
        for n in "abcd"
    )
    theirs = st.add_asset(bob.user["id"], "/mnt/photos/bob.JPG", content=b"bob")["id"]

    def stack(*ids: str) -> requests.Response:
        return requests.post(base + "/stacks", json={"assetIds": list(ids)}, headers=h)

    first = stack(a, b).json()
    # A stack whose primary is listed is merged in whole, its unlisted members too
    merged = stack(c, a).json()
    assert merged["primaryAssetId"] == c
    assert sorted(x["id"] for x in merged["assets"]) == sorted([a, b, c])
    assert requests.get(f"{base}/stacks/{first['id']}", headers=h).status_code == 400
    # A listed member that is not its stack's primary moves alone
    moved = stack(d, b).json()
    assert sorted(x["id"] for x in moved["assets"]) == sorted([b, d])
    left = requests.get(f"{base}/assets/{a}", headers=h).json()["stack"]
    assert left == {"id": merged["id"], "primaryAssetId": c, "assetCount": 2}
    # Another user's asset, or fewer than two: refused, nothing changes
    # An archived member still moves with its stack, but only timeline members count,
    # and a cover left with none shows no stack at all (getById)
    requests.put(f"{base}/assets/{b}", json={"visibility": "archive"}, headers=h)
    assert requests.get(f"{base}/assets/{d}", headers=h).json()["stack"] is None
    listed = requests.get(f"{base}/stacks", params={"primaryAssetId": d}, headers=h).json()
    assert [x["id"] for x in listed[0]["assets"]] == [d, b]  # archived ones listed, cover first
    refused = stack(a, theirs)
    assert (refused.status_code, refused.json()["message"]) == (
        400,
        "Not found or no asset.update access",
    )
    short = stack(a)
    assert short.status_code == 400 and short.json()["errors"][0]["code"] == "too_small"
    assert stack(a, "not-a-uuid").json()["message"] == "Validation failed"
    assert requests.get(f"{base}/assets/{a}", headers=h).json()["stack"]["id"] == merged["id"]
