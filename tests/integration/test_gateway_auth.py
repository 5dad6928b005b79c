"""Authentication is Immich's: every gateway route, enumerated from app.url_map, answers
exactly what Immich answers to missing, bad or insufficient credentials, and no Twinlens
data or action is reached without an authenticated user."""

from __future__ import annotations

import dataclasses
import logging
import re

import pytest
import requests

from core.config import load_settings
from gateway import create_app
from gateway.server import bind_address
from tests.fakeimmich import ThreadedServer
from tests.fakeimmich.fixtures import *  # noqa: F403 - pytest fixtures
from tests.fakeimmich.fixtures import SERVICE_TOKEN
from tests.fakeimmich.spec import load_spec

FILL = {
    "asset_id": "3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b",
    "path": "users/me",
    "group_id": "g1",
    "dup_id": "d1",
    "service": "grouping",
    "job_id": "j1",
}


def gateway_routes(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, concrete URL) for every rule of the app."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: FILL[m.group(1)], rule.rule)
        for method in sorted(rule.methods):
            out.append((rule.endpoint, method, url))
    return out


def bad_credentials(immich, alice) -> dict[str, dict]:
    limited = immich.state.add_api_key(alice.user["id"], ["asset.read"])
    return {
        "none": {},
        "bad bearer": {"headers": {"Authorization": "Bearer not-a-session"}},
        "bad cookie": {"cookies": {"immich_access_token": "nope"}},
        "bad session header": {"headers": {"x-immich-user-token": "nope"}},
        "bad api key": {"headers": {"x-api-key": "nope"}},
        "bad api key query": {"params": {"apiKey": "nope"}},
        "bad share key": {"params": {"key": "ab" * 50}},
        "bad share slug": {"headers": {"x-immich-share-slug": "nope"}},
        "key without user.read": {"headers": {"x-api-key": limited}},
    }


def test_every_twinlens_route_requires_immich_auth(
    gateway, gateway_app, immich, alice, grouping_api, dedup_api
):
    routes = gateway_routes(gateway_app)
    twinlens = [r for r in routes if r[0].startswith("twinlens.")]
    assert len({r[0] for r in twinlens}) >= 15
    for endpoint, _m, _u in routes:
        view = gateway_app.view_functions[endpoint]
        # Anything not protected here must be a proxy route (Immich authenticates those),
        # or the health check, which says only that the gateway is serving
        if endpoint == "healthz":
            assert requests.get(gateway.url + "/healthz").json() == {"status": "ok"}
            continue
        assert getattr(view, "requires_user", False) or endpoint.startswith("proxy."), endpoint
    for label, kwargs in bad_credentials(immich, alice).items():
        kw = {k: dict(v) for k, v in kwargs.items()}
        direct = requests.get(immich.url + "/api/users/me", **kw)
        assert direct.status_code in (401, 403)
        for _endpoint, method, url in twinlens:
            r = requests.request(method, gateway.url + url, json={}, **kw)
            if method == "OPTIONS":  # Flask's automatic answer: an Allow header, no data
                assert r.content == b"" and "Allow" in r.headers
                continue
            assert r.status_code == direct.status_code, (label, method, url)
            if method != "HEAD":
                assert r.json() == direct.json(), (label, method, url)
    assert grouping_api.total() == 0
    assert dedup_api.total() == 0


# The Immich permission an API key needs for each Twinlens route, written out here rather
# than read from the routes: what a key may do is the contract.
PERMISSIONS = {
    "twinlens.me": "user.read",
    "twinlens.groups": "stack.read",
    "twinlens.file_errors": "asset.read",
    "twinlens.roots": "library.read",
    "twinlens.group": "stack.read",
    "twinlens.split_group": "stack.update",
    "twinlens.merge_groups": "stack.create",
    "twinlens.stack_group": "stack.create",
    "twinlens.stack_groups": "stack.create",
    "twinlens.duplicates": "duplicate.read",
    "twinlens.duplicate": "duplicate.read",
    "twinlens.stats": "duplicate.read",
    "twinlens.resolve_duplicate": "duplicate.delete",
    "twinlens.resolve_bulk": "duplicate.delete",
    "twinlens.undo_resolution": "duplicate.delete",
    "twinlens.start_scan": "job.create",
    "twinlens.list_jobs": "job.read",
    "twinlens.job": "job.read",
    "twinlens.cancel_job": "job.create",
    "twinlens.thumbnail": "asset.view",
}


def test_api_key_permissions_hold_on_twinlens_routes(
    gateway, gateway_app, immich, alice, grouping_api, dedup_api
):
    # Given every Twinlens route and the permission it names
    names = set(load_spec()["components"]["schemas"]["Permission"]["enum"])
    routes = [
        (endpoint, method, url)
        for endpoint, method, url in gateway_routes(gateway_app)
        if endpoint.startswith("twinlens.") and method not in ("HEAD", "OPTIONS")
    ]
    bare = immich.state.add_api_key(alice.user["id"], ["user.read"])
    assert {e for e, _, _ in routes} == set(PERMISSIONS)  # a new route needs a line there
    for endpoint, method, url in routes:
        permission = PERMISSIONS[endpoint]
        assert permission in names, endpoint  # one of Immich's own permissions
        assert gateway_app.view_functions[endpoint].permission == permission, endpoint
        if permission == "user.read":
            continue
        # When a key without it calls the route (as a header or, as Immich also reads it,
        # in the query), Then Immich's refusal, and no service call
        before = grouping_api.total() + dedup_api.total()
        for where in ({"headers": {"x-api-key": bare}}, {"params": {"apiKey": bare}}):
            r = requests.request(method, gateway.url + url, json={}, **where)
            assert (r.status_code, r.json()) == (
                403,
                {"message": f"Missing required permission: {permission}"},
            ), (method, url, where)
            assert r.headers["X-Correlation-ID"], (method, url)
        assert grouping_api.total() + dedup_api.total() == before
        # When a key with just that permission calls it, Then it gets past the check
        key = immich.state.add_api_key(alice.user["id"], ["user.read", permission])
        r = requests.request(method, gateway.url + url, json={}, headers={"x-api-key": key})
        assert r.status_code != 403, (method, url, r.text)


def test_twinlens_routes_answer_only_immich_admins(
    gateway, gateway_app, immich, alice, bob, grouping_api, dedup_api
):
    # Given bob, an ordinary Immich user, and what Immich tells him on its own admin routes
    direct = requests.get(immich.url + "/api/server/statistics", headers=bob.bearer)
    assert direct.status_code == 403
    bare_key = immich.state.add_api_key(bob.user["id"], ["user.read"])
    routes = [
        (endpoint, method, url)
        for endpoint, method, url in gateway_routes(gateway_app)
        if endpoint.startswith("twinlens.") and method not in ("HEAD", "OPTIONS")
    ]
    for endpoint, method, url in routes:
        if endpoint == "twinlens.me":
            continue
        assert gateway_app.view_functions[endpoint].admin, endpoint
        # When he calls a Twinlens route with his session or with a key lacking its
        # permission, Then Immich's own admin refusal (checked before the permission)
        for headers in (bob.bearer, {"x-api-key": bare_key}):
            r = requests.request(method, gateway.url + url, json={}, headers=headers)
            assert (r.status_code, r.json()) == (direct.status_code, direct.json()), (method, url)
            assert r.headers["X-Correlation-ID"] != direct.headers["X-Correlation-ID"]
    assert grouping_api.total() + dedup_api.total() == 0
    # He can still ask who he is, and learns that review is not for him
    me = requests.get(gateway.url + "/api/twinlens/me", headers=bob.bearer).json()
    assert (me["user"]["id"], me["canReview"]) == (bob.user["id"], False)
    # And the administrator gets through
    me = requests.get(gateway.url + "/api/twinlens/me", headers=alice.bearer).json()
    assert me["canReview"] is True
    r = requests.get(gateway.url + "/api/twinlens/groups", headers=alice.bearer)
    assert r.status_code == 200
    assert grouping_api.total() == 1


def test_admin_only_can_be_turned_off(gateway_settings, immich, bob, grouping_api):
    # Given TWINLENS_ADMIN_ONLY=0 (one household, one library)
    settings = dataclasses.replace(gateway_settings, admin_only=False)
    server = ThreadedServer(create_app({"SETTINGS": settings, "TESTING": True})).start()
    try:
        # When an ordinary user asks, Then he is served
        me = requests.get(server.url + "/api/twinlens/me", headers=bob.bearer).json()
        assert me["canReview"] is True
        r = requests.get(server.url + "/api/twinlens/groups", headers=bob.bearer)
        assert r.status_code == 200 and "items" in r.json()
        assert grouping_api.total() == 1
    finally:
        server.stop()


def test_bearer_token_is_read_as_immich_reads_it(gateway, immich, alice):
    # Immich splits Authorization on single spaces and takes the second piece: with two
    # spaces the token is empty and the cookie decides.
    cookie = {"immich_access_token": alice.token}
    cases = [
        ({"Authorization": "Bearer  forged"}, cookie),
        ({"Authorization": "Bearer  forged"}, {}),
        ({"Authorization": "bearer " + alice.token}, {}),
        ({"Authorization": f"Bearer {alice.token} trailing"}, {}),
        ({"Authorization": "Bearer"}, cookie),
        ({"Authorization": "Basic abc"}, cookie),
    ]
    for headers, cookies in cases:
        direct = requests.get(immich.url + "/api/users/me", headers=headers, cookies=cookies)
        via = requests.get(gateway.url + "/api/twinlens/me", headers=headers, cookies=cookies)
        assert via.status_code == direct.status_code, (headers, cookies)
        if direct.status_code == 200:
            assert via.json()["user"]["id"] == direct.json()["id"]
        else:
            assert via.json() == direct.json()


def test_proxied_and_enriched_routes_answer_exactly_like_immich(
    gateway, gateway_app, immich, alice
):
    asset = immich.state.add_asset(alice.user["id"], "/upload/a.jpg", content=b"a")
    for label, kwargs in bad_credentials(immich, alice).items():
        for _endpoint, method, url in gateway_routes(gateway_app):
            if not url.startswith("/api/") or url.startswith("/api/twinlens"):
                continue
            url = url.replace(FILL["asset_id"], asset["id"])
            body = {"ids": [asset["id"]]} if method in ("POST", "PUT", "PATCH", "DELETE") else None
            direct = requests.request(method, immich.url + url, json=body, **kwargs)
            via = requests.request(method, gateway.url + url, json=body, **kwargs)
            assert via.status_code == direct.status_code, (label, method, url)
            assert via.content == direct.content, (label, method, url)
            assert via.headers.get("Allow") == direct.headers.get("Allow")
    assert immich.state.assets[asset["id"]]["isTrashed"] is False


def test_authenticated_callers_reach_twinlens(gateway, immich, alice):
    cookie = {"immich_access_token": alice.token}
    for kwargs in (
        {"headers": alice.bearer},
        {"headers": alice.key_header},
        {"cookies": cookie},
        {"headers": {"x-immich-session-token": alice.token}},
        {"params": {"sessionKey": alice.token}},
        {"params": {"apiKey": alice.api_key}},
    ):
        r = requests.get(gateway.url + "/api/twinlens/me", **kwargs)
        assert r.status_code == 200, kwargs
        assert r.json()["user"]["id"] == alice.user["id"]


def test_identity_is_cached_and_refusals_are_not(gateway, immich, alice):
    for _ in range(3):
        assert (
            requests.get(gateway.url + "/api/twinlens/me", headers=alice.bearer).status_code == 200
        )
    assert immich.state.calls[("GET", "/users/me")] == 1
    for _ in range(3):
        requests.get(gateway.url + "/api/twinlens/me", headers={"Authorization": "Bearer bad"})
    assert immich.state.calls[("GET", "/users/me")] == 4


def test_identities_cached_from_the_query_string_are_per_credential(gateway, immich, alice, bob):
    url = gateway.url + "/api/twinlens/me"
    # Given Alice known to the gateway by an API key in the query string
    assert (
        requests.get(url, params={"apiKey": alice.api_key}).json()["user"]["id"] == alice.user["id"]
    )
    # When others call with another key, or a bad one, in the same place
    bob_key = immich.state.add_api_key(bob.user["id"], ["all"])
    theirs = requests.get(url, params={"apiKey": bob_key})
    junk = requests.get(url, params={"apiKey": "nope"})
    # Then each is who Immich says they are
    assert theirs.status_code == 200 and theirs.json()["user"]["id"] == bob.user["id"]
    direct = requests.get(immich.url + "/api/users/me", params={"apiKey": "nope"})
    assert (
        (junk.status_code, junk.json())
        == (direct.status_code, direct.json())
        == (401, direct.json())
    )


def test_revoked_session_stops_working_after_the_ttl(immich, alice, gateway_settings):
    app = create_app({"SETTINGS": gateway_settings, "AUTH_TTL": 1})
    server = ThreadedServer(app).start()
    try:
        assert (
            requests.get(server.url + "/api/twinlens/me", headers=alice.bearer).status_code == 200
        )
        immich.state.sessions.pop(alice.token)
        import time

        time.sleep(1.2)
        r = requests.get(server.url + "/api/twinlens/me", headers=alice.bearer)
        assert (r.status_code, r.json()) == (401, {"message": "Invalid user token"})
    finally:
        server.stop()


def test_a_logout_through_the_gateway_ends_twinlens_access_at_once(gateway, alice):
    # Given a session the gateway has seen (and remembers) on Twinlens's routes
    me = gateway.url + "/api/twinlens/me"
    assert requests.get(me, headers=alice.bearer).status_code == 200
    # When the user logs out through the gateway
    out = requests.post(gateway.url + "/api/auth/logout", headers=alice.bearer)
    assert out.status_code == 200 and out.json()["successful"] is True
    # Then the next call is refused as Immich refuses it, not served from memory
    r = requests.get(me, headers=alice.bearer)
    assert (r.status_code, r.json()) == (401, {"message": "Invalid user token"})


def test_a_logout_ends_twinlens_reads_in_every_gateway_process(
    immich, alice, bob, gateway_settings, redis_cache_url
):
    # Given two gateway processes sharing one Redis (granian's workers), each of which has
    # seen, and remembers, Alice's and Bob's sessions
    settings = dataclasses.replace(gateway_settings, cache_url=redis_cache_url)
    one, two = (ThreadedServer(create_app({"SETTINGS": settings})).start() for _ in range(2))
    try:
        for server in (one, two):
            for who in (alice, bob):
                assert requests.get(server.url + "/api/twinlens/me", headers=who.bearer).ok
        asked = immich.state.calls[("GET", "/users/me")]
        # When Alice logs out through the first
        assert requests.post(one.url + "/api/auth/logout", headers=alice.bearer).ok
        # Then the second refuses her at once, as Immich does
        r = requests.get(two.url + "/api/twinlens/me", headers=alice.bearer)
        assert (r.status_code, r.json()) == (401, {"message": "Invalid user token"})
        # ... while Bob's session goes on (each process asks Immich about him once more)
        for server in (one, two):
            assert requests.get(server.url + "/api/twinlens/me", headers=bob.bearer).ok
            assert requests.get(server.url + "/api/twinlens/me", headers=bob.bearer).ok
        # (the second takes him from Redis: the first wrote him there with the new epoch)
        assert immich.state.calls[("GET", "/users/me")] == asked + 2
    finally:
        one.stop()
        two.stop()


def test_a_session_ended_elsewhere_cannot_change_anything(gateway, immich, alice, library):
    # Given a session the gateway remembers, ended in Immich directly (another client,
    # an administrator revoking it), within AUTH_TTL
    assert requests.get(gateway.url + "/api/twinlens/me", headers=alice.bearer).ok
    immich.state.sessions.pop(alice.token)
    # When it asks for a change (a scan)
    r = requests.post(gateway.url + "/api/twinlens/jobs", json={}, headers=alice.bearer)
    # Then Immich is asked who it is, and its refusal is the answer
    assert (r.status_code, r.json()) == (401, {"message": "Invalid user token"})


def test_credentials_never_in_logs_or_cache_keys(gateway, gateway_app, immich, alice, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = [alice.token, alice.api_key]
    requests.get(gateway.url + "/api/twinlens/me", headers=alice.bearer)
    requests.get(gateway.url + "/api/twinlens/groups", params={"apiKey": alice.api_key})
    requests.get(gateway.url + f"/api/users/me?sessionKey={alice.token}")
    requests.get(gateway.url + "/api/twinlens/me", cookies={"immich_access_token": alice.token})
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in text
    with gateway_app.app_context():
        from gateway.cache import cache

        keys = list(cache.cache._cache.keys())  # SimpleCache internals: the stored keys
    assert keys, "identity should have been cached"
    for key in keys:
        for secret in secrets:
            assert secret not in key


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/jobs", b"", None),  # an empty POST: what a form without fields sends
        ("/jobs", b'{"full": true}', "text/plain"),  # JSON smuggled in as text
        ("/groups/g1/split", b"", "application/x-www-form-urlencoded"),
        ("/duplicates/resolve", b'{"groups": []}', "text/plain;charset=UTF-8"),
    ],
)
def test_a_post_a_browser_could_send_cross_site_is_refused(
    gateway, alice, grouping_api, dedup_api, path, body, content_type
):
    # Given a request as another page's form or no-cors fetch sends it: no preflight,
    # and Immich's cookie (SameSite=Lax) comes along from a page on the same NAS
    headers = {"Cookie": f"immich_access_token={alice.token}"}
    if content_type:
        headers["Content-Type"] = content_type
    r = requests.post(f"{gateway.url}/api/twinlens{path}", data=body, headers=headers)
    # Then it is refused with a reason, and no service was asked to act
    assert r.status_code == 400 and "application/json" in r.json()["message"], r.text
    assert grouping_api.writes() == [] and dedup_api.writes() == []


def test_oversized_and_malformed_bodies(gateway, alice, gateway_app):
    url = gateway.url + "/api/twinlens/duplicates/d1/resolve"
    r = requests.post(
        url, data=b"{not json", headers={**alice.bearer, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    as_json = {**alice.bearer, "Content-Type": "application/json"}
    r = requests.post(url, data=b"[1,2]", headers=as_json)
    assert r.status_code == 400 and "object" in r.json()["message"]
    big = b'{"keep": ["' + b"x" * (gateway_app.config["MAX_JSON_BODY"] + 10) + b'"]}'
    r = requests.post(url, data=big, headers=as_json)
    assert r.status_code == 413 and "larger" in r.json()["message"]
    r = requests.post(
        gateway.url + "/api/twinlens/jobs", json={"path": "/etc"}, headers=alice.bearer
    )
    assert r.status_code == 400 and "outside" in r.json()["message"]
    r = requests.post(
        gateway.url + "/api/twinlens/jobs", json={"full": "yes"}, headers=alice.bearer
    )
    assert r.status_code == 400
    # a misspelt field is refused, not taken as "scan everything"
    r = requests.post(
        gateway.url + "/api/twinlens/jobs", json={"pth": "/photos/2024"}, headers=alice.bearer
    )
    assert r.status_code == 400 and r.json()["message"] == "unknown fields: pth"
    r = requests.get(
        gateway.url + "/api/twinlens/groups", params={"page": "-1"}, headers=alice.bearer
    )
    assert r.status_code == 400
    r = requests.post(
        gateway.url + "/api/twinlens/duplicates/resolve", json={"groups": "x"}, headers=alice.bearer
    )
    assert r.status_code == 400
    # Nested past Python's recursion limit: a reason, not a crash.
    deep = b'{"keep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = requests.post(url, data=deep, headers=as_json)
    assert r.status_code == 400 and "nested" in r.json()["message"]
    # Digits str.isdigit() takes and int() refuses.
    for where, params in (
        ("thumbnail", {"path": "/x", "size": "\u00b2"}),
        ("groups", {"size": "\u00b2"}),
    ):
        r = requests.get(f"{gateway.url}/api/twinlens/{where}", params=params, headers=alice.bearer)
        assert r.status_code == 400, (where, r.text)
    # A misspelt or non-boolean dryRun must not make a real run.
    for body in ({"keep": ["x"], "dry_run": True}, {"keep": ["x"], "dryRun": "false"}):
        r = requests.post(url, json=body, headers=alice.bearer)
        assert r.status_code == 400, body
    r = requests.post(
        gateway.url + "/api/twinlens/duplicates/resolve",
        json={"groups": [{"id": "d1", "keep": ["x"]}], "dryrun": True},
        headers=alice.bearer,
    )
    assert r.status_code == 400 and "dryrun" in r.json()["message"]
    # Inside one group of a bulk call: that group is refused, on its own
    r = requests.post(
        gateway.url + "/api/twinlens/duplicates/resolve",
        json={"groups": [{"id": "d1", "keep": ["x"], "dryrun": True}]},
        headers=alice.bearer,
    )
    assert r.status_code == 200 and r.json()["results"] == [
        {"id": "d1", "status": 400, "message": "unknown fields: dryrun"}
    ]
    r = requests.post(
        gateway.url + "/api/twinlens/groups/g1/split", json={"paths": []}, headers=alice.bearer
    )
    assert r.status_code == 400 and "empty" in r.json()["message"]


def test_local_mode_needs_no_login_serves_only_twinlens_and_binds_loopback(
    tmp_path, grouping_url, dedup_url
):
    settings = load_settings(
        {},
        immich_url="",
        host="0.0.0.0",
        data_dir=tmp_path,
        grouping_url=grouping_url,
        dedup_url=dedup_url,
        service_token=SERVICE_TOKEN,
    )
    app = create_app({"SETTINGS": settings})
    client = app.test_client()
    assert client.get("/api/twinlens/me").get_json()["localMode"] is True
    assert client.get("/api/twinlens/groups").status_code == 200
    assert client.get("/api/users/me").status_code == 404
    assert all(
        r.rule.startswith("/api/twinlens") or r.endpoint in ("static", "healthz")
        for r in app.url_map.iter_rules()
    )
    assert bind_address(settings) == "127.0.0.1:3000"
    immich_mode = load_settings(
        {}, immich_url="http://immich:2283", host="0.0.0.0", data_dir=tmp_path
    )
    assert bind_address(immich_mode) == "0.0.0.0:3000"


@pytest.mark.parametrize("header", ["x-immich-share-key", "key"])
def test_valid_shared_link_gets_immichs_answer_not_twinlens_data(
    gateway, immich, alice, header, grouping_api
):
    asset = immich.state.add_asset(alice.user["id"], "/upload/s.jpg", content=b"s")
    key = immich.state.add_shared_link(alice.user["id"], [asset["id"]])
    kw = {"headers": {header: key}} if header.startswith("x-") else {"params": {header: key}}
    # The shared link opens the asset (Immich allows it there), as Immich answers it:
    # a link's visitor is no Twinlens user, so nothing is added, and Immich is not asked
    # who they are (it could only refuse, on every photo the visitor opens) ...
    before = immich.state.calls[("GET", "/users/me")]
    r = requests.get(f"{gateway.url}/api/assets/{asset['id']}", **kw)
    direct = requests.get(f"{immich.url}/api/assets/{asset['id']}", **kw)
    assert r.status_code == direct.status_code == 200
    assert r.json() == direct.json() and "twinlens" not in r.json()
    assert immich.state.calls[("GET", "/users/me")] == before
    # ... and Twinlens does not open: /users/me is not a shared-link route, Immich says 403.
    r = requests.get(gateway.url + "/api/twinlens/groups", **kw)
    direct = requests.get(immich.url + "/api/users/me", **kw)
    assert (r.status_code, r.json()) == (direct.status_code, direct.json())
    assert r.status_code == 403
    assert grouping_api.total() == 0
