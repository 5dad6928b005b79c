"""The gateway as a transparent proxy: real HTTP, gateway in front of the fake Immich
(or of a tiny echo server where the test needs to see what arrived upstream)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
import tracemalloc
import uuid

import pytest
import requests
from flask import Flask, Response, request

from core.config import load_settings
from gateway import create_app
from tests.fakeimmich import ThreadedServer
from tests.fakeimmich.fixtures import *  # noqa: F403

MB = 1024 * 1024


# --- against the fake Immich ----------------------------------------------------------------


def test_login_sets_three_cookies_and_they_authenticate(gateway, alice, http):
    r = http.post(
        gateway.url + "/api/auth/login", json={"email": alice.email, "password": alice.password}
    )
    assert r.status_code == 201
    cookies = r.raw.headers.getlist("Set-Cookie")
    names = sorted(c.split("=", 1)[0] for c in cookies)
    assert names == ["immich_access_token", "immich_auth_type", "immich_is_authenticated"]
    assert any("HttpOnly" in c for c in cookies if c.startswith("immich_access_token"))
    assert not any("HttpOnly" in c for c in cookies if c.startswith("immich_is_authenticated"))
    me = http.get(gateway.url + "/api/users/me")  # cookie jar of the client only
    assert me.status_code == 200 and me.json()["email"] == alice.email


def test_behind_a_tls_proxy_the_login_cookies_stay_secure(gateway, alice):
    # Given a TLS proxy in front of the gateway that says the client came over https
    login = {"email": alice.email, "password": alice.password}
    r = requests.post(
        gateway.url + "/api/auth/login", json=login, headers={"X-Forwarded-Proto": "https"}
    )
    # Then Immich is told so, and marks every login cookie Secure
    cookies = r.raw.headers.getlist("Set-Cookie")
    assert len(cookies) == 3 and all("Secure" in c for c in cookies), cookies
    # while over plain http (no such header) they are not
    plain = requests.post(gateway.url + "/api/auth/login", json=login)
    assert not any("Secure" in c for c in plain.raw.headers.getlist("Set-Cookie"))


def test_gateway_never_remembers_a_callers_cookies(gateway, alice, http):
    http.post(
        gateway.url + "/api/auth/login", json={"email": alice.email, "password": alice.password}
    )
    anon = requests.get(gateway.url + "/api/users/me")
    assert anon.status_code == 401
    assert anon.json() == {"message": "Authentication required"}


def test_the_gateways_own_http_session_keeps_no_cookie(immich, alice):
    # The session the gateway calls Immich and the services with (identity, permissions,
    # lookups, trash) is shared by every caller: a cookie Immich sets must not stick.
    from gateway.upstream import make_session

    session = make_session()
    login = session.post(
        immich.url + "/api/auth/login", json={"email": alice.email, "password": alice.password}
    )
    assert login.status_code == 201 and "immich_access_token" in login.cookies
    assert len(session.cookies) == 0
    assert session.get(immich.url + "/api/users/me").status_code == 401


def test_the_mobile_apps_first_question_reaches_immich(gateway, immich, tmp_path, gateway_settings):
    # Given the gateway, with and without the web UI built beside it
    direct = requests.get(immich.url + "/.well-known/immich")
    assert direct.json() == {"api": {"endpoint": "/api"}}
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<html>the UI</html>")
    with_ui = ThreadedServer(create_app({"SETTINGS": gateway_settings, "UI_DIST": dist})).start()
    try:
        for url in (gateway.url, with_ui.url):
            # When Immich's mobile app asks where the API is, then Immich answers
            r = requests.get(url + "/.well-known/immich")
            assert (r.status_code, r.json()) == (200, direct.json()), url
            assert r.headers["Content-Type"].startswith("application/json")
            # ... and the health check is the gateway's own, whatever Immich does
            assert requests.get(url + "/healthz").json() == {"status": "ok"}
            # ... while the API's bare root is Immich's answer, not a redirect of ours
            bare = requests.get(url + "/api", allow_redirects=False)
            direct_bare = requests.get(immich.url + "/api", allow_redirects=False)
            assert (bare.status_code, bare.content) == (
                direct_bare.status_code,
                direct_bare.content,
            ), url
    finally:
        with_ui.stop()
    no_immich = dataclasses.replace(gateway_settings, immich_url="http://127.0.0.1:1")
    alone = ThreadedServer(create_app({"SETTINGS": no_immich})).start()
    try:
        assert requests.get(alone.url + "/api/server/ping").status_code == 502
        assert requests.get(alone.url + "/healthz").status_code == 200
    finally:
        alone.stop()


def test_methods_status_and_body_pass_through(gateway, immich, alice):
    asset = immich.state.add_asset(alice.user["id"], "/upload/a.jpg", content=b"abc")
    url = f"{gateway.url}/api/assets/{asset['id']}"
    r = requests.put(url, json={"isFavorite": True}, headers=alice.bearer)
    assert r.status_code == 200 and r.json()["isFavorite"] is True
    r = requests.patch(url, json={"description": "hello"}, headers=alice.bearer)
    assert r.status_code == 200 and r.json()["exifInfo"]["description"] == "hello"
    assert immich.state.calls[("PATCH", "/assets/{id}")] == 1
    r = requests.head(f"{url}/original", headers=alice.bearer)
    assert r.status_code == 200 and r.headers["Content-Length"] == "3" and r.content == b""
    r = requests.options(url)
    assert "PATCH" in r.headers.get("Allow", "")  # Immich's (Flask's) own answer, not ours
    r = requests.get(
        f"{gateway.url}/api/timeline/buckets", params={"isTrashed": "false"}, headers=alice.bearer
    )
    assert r.json() == [{"timeBucket": "2024-05-01", "count": 1}]
    r = requests.delete(
        gateway.url + "/api/assets", json={"ids": [asset["id"]]}, headers=alice.bearer
    )
    assert r.status_code == 204 and immich.state.assets[asset["id"]]["isTrashed"] is True
    r = requests.get(gateway.url + "/api/no/such/route", headers=alice.bearer)
    assert r.status_code == 404 and r.json()["message"].startswith("Cannot GET")


def test_range_requests_for_video_seeking(gateway, immich, alice, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(os.urandom(3 * MB))
    asset = immich.state.add_asset(alice.user["id"], "/upload/clip.mp4", file=str(video))
    url = f"{gateway.url}/api/assets/{asset['id']}/original"
    r = requests.get(url, headers={**alice.bearer, "Range": f"bytes={2 * MB}-{2 * MB + 99}"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {2 * MB}-{2 * MB + 99}/{3 * MB}"
    assert r.content == video.read_bytes()[2 * MB : 2 * MB + 100]
    etag = requests.get(url, headers=alice.bearer).headers["ETag"]
    assert requests.get(url, headers={**alice.bearer, "If-None-Match": etag}).status_code == 304


def _peak_during(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_download_streams_without_holding_the_body(gateway, immich, alice, tmp_path):
    big = tmp_path / "big.mov"
    # tracemalloc counts every thread of the process, including servers other tests left
    # running: a body twice the limit keeps that noise far from what holding it would cost.
    size = 64 * MB
    with open(big, "wb") as fh:
        for _ in range(size // MB):
            fh.write(os.urandom(MB))
    asset = immich.state.add_asset(alice.user["id"], "/upload/big.mov", file=str(big))
    digest = hashlib.sha1()

    def fetch():
        with requests.get(
            f"{gateway.url}/api/assets/{asset['id']}/original", headers=alice.bearer, stream=True
        ) as r:
            assert r.status_code == 200
            for chunk in r.iter_content(256 * 1024):
                digest.update(chunk)

    peak = _peak_during(fetch)  # client, gateway and fake Immich all run in this process
    assert digest.hexdigest() == hashlib.sha1(big.read_bytes()).hexdigest()
    # Holding the body anywhere would need >= size bytes; streaming needs a few buffers.
    # (Half of it, not a quarter: other threads' allocations reached 19 MB in a full run.)
    assert peak < size // 2, f"peak {peak / MB:.1f} MB while streaming {size / MB:.0f} MB"


def test_upload_streams_without_holding_the_body(gateway, immich, alice):
    # 64 MB, as for the download below: tracemalloc also counts what other threads of the
    # process allocate meanwhile (19 MB once in a full run, against a 16 MB limit for 32)
    size, block = 64 * MB, os.urandom(MB)
    boundary = "twinlensboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="assetData"; filename="v.mp4"\r\n'
        f"Content-Type: video/mp4\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    class Body:
        """Generated on the fly; ``len`` makes requests send Content-Length, not chunked."""

        len = len(head) + size + len(tail)

        def __iter__(self):
            yield head
            for _ in range(size // MB):
                yield block
            yield tail

    result = {}

    def upload():
        r = requests.post(
            gateway.url + "/api/assets",
            data=Body(),
            headers={**alice.bearer, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        result["r"] = r

    peak = _peak_during(upload)
    r = result["r"]
    assert r.status_code == 201, r.text
    stored = immich.state.assets[r.json()["id"]]
    expected = hashlib.sha1(block * (size // MB)).digest()
    import base64

    assert stored["checksum"] == base64.b64encode(expected).decode()
    assert peak < size // 2, f"peak {peak / MB:.1f} MB while uploading {size / MB:.0f} MB"


# --- against an echo server (what exactly arrives upstream) ----------------------------------


@pytest.fixture
def echo():
    app = Flask("echo")
    seen: list[dict] = []

    @app.route("/api/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def anything(path):
        if path == "slow":
            time.sleep(1.0)
        if path == "redirect":
            return Response(status=302, headers={"Location": "/auth/login?continue=%2Fphotos"})
        data = request.get_data()
        seen.append(
            {
                "headers": dict(request.headers),
                "query": request.query_string.decode(),
                "method": request.method,
                "body": data,
            }
        )
        resp = Response(json.dumps({"ok": True}), content_type="application/json")
        resp.headers.add("Set-Cookie", "a=1; Path=/")
        resp.headers.add("Set-Cookie", "b=2; Path=/; HttpOnly")
        resp.headers["Keep-Alive"] = "timeout=5"
        resp.headers["X-Upstream"] = "yes"
        return resp

    server = ThreadedServer(app).start()
    server.seen = seen
    yield server
    server.stop()


@pytest.fixture
def echo_gateway(echo, tmp_path):
    settings = load_settings({}, immich_url=echo.url, data_dir=tmp_path, cache_url="memory://")
    server = ThreadedServer(
        create_app({"SETTINGS": settings, "UPSTREAM_READ_TIMEOUT": 0.3})
    ).start()
    yield server
    server.stop()


def test_headers_query_and_cookies_reach_immich_minus_hop_by_hop(echo, echo_gateway):
    r = requests.post(
        echo_gateway.url + "/api/x/y?key=abc&slug=%20s&a=1&a=2",
        data=b"payload",
        headers={
            "Cookie": "immich_access_token=t1; other=2",
            "x-api-key": "k",
            "X-Custom": "c",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "private",
            "TE": "trailers",
            "Proxy-Authorization": "Basic Zm9v",
            "Accept-Encoding": "br",
            "User-Agent": "tl-test",
        },
    )
    assert r.status_code == 200
    got = echo.seen[-1]
    assert got["query"] == "key=abc&slug=%20s&a=1&a=2"
    assert got["body"] == b"payload"
    assert got["headers"]["Cookie"] == "immich_access_token=t1; other=2"
    assert got["headers"]["X-Api-Key"] == "k" and got["headers"]["X-Custom"] == "c"
    for hop in ("X-Hop", "Te", "Proxy-Authorization"):
        assert hop not in got["headers"], hop
    # The client's own values, not ones added by the gateway's HTTP library.
    assert got["headers"]["Accept-Encoding"] == "br" and got["headers"]["User-Agent"] == "tl-test"
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
    assert r.headers["X-Upstream"] == "yes" and "Keep-Alive" not in r.headers


def test_redirects_are_returned_not_followed(echo_gateway):
    r = requests.get(echo_gateway.url + "/api/redirect", allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"] == "/auth/login?continue=%2Fphotos"


def test_timeout_gives_504_and_down_gives_502(echo_gateway, tmp_path):
    r = requests.get(echo_gateway.url + "/api/slow")
    assert r.status_code == 504 and "message" in r.json()
    with socket_closed() as port:
        settings = load_settings({}, immich_url=f"http://127.0.0.1:{port}", data_dir=tmp_path)
        down = ThreadedServer(create_app({"SETTINGS": settings})).start()
        try:
            r = requests.get(down.url + "/api/server/ping")
            assert r.status_code == 502 and r.json()["message"] == "Immich is unreachable"
            r = requests.get(down.url + "/api/twinlens/groups")
            assert r.status_code == 502
        finally:
            down.stop()


class socket_closed:
    """A loopback port with nothing listening."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *exc) -> None:
        return None


def test_concurrent_streams_do_not_mix(gateway, immich, alice):
    assets = [
        immich.state.add_asset(alice.user["id"], f"/upload/{i}.jpg", content=os.urandom(300_000))
        for i in range(6)
    ]
    errors = []

    def get(a):
        body = requests.get(
            f"{gateway.url}/api/assets/{a['id']}/original", headers=alice.bearer
        ).content
        if body != immich.state.blobs[a["id"]]:
            errors.append(a["id"])

    threads = [threading.Thread(target=get, args=(a,)) for a in assets * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_an_enriched_route_answered_in_an_encoding_the_gateway_cannot_undo_goes_on_as_is(
    tmp_path,
):
    # Given a proxy between the gateway and Immich that compresses with brotli although
    # the gateway asked for no encoding (not decoded here: no brotli module)
    encoded = bytes(range(256)) * 4  # stands for brotli bytes: whatever they are

    app = Flask("brotli-upstream")

    @app.get("/api/assets/<asset_id>")
    def asset(asset_id):
        return Response(
            encoded, content_type="application/json", headers={"Content-Encoding": "br"}
        )

    upstream = ThreadedServer(app).start()
    settings = load_settings({}, immich_url=upstream.url, data_dir=tmp_path, cache_url="memory://")
    gateway = ThreadedServer(create_app({"SETTINGS": settings})).start()
    try:
        # When a client that accepts brotli opens an asset through the gateway
        r = requests.get(
            f"{gateway.url}/api/assets/{uuid.uuid4()}",
            headers={"Accept-Encoding": "br", "Authorization": "Bearer t"},
            stream=True,
        )
        # Then it gets that answer whole, still saying how it is encoded (not the
        # encoded bytes passed off as plain JSON)
        assert r.status_code == 200
        assert r.headers["Content-Encoding"] == "br"
        assert r.raw.read(decode_content=False) == encoded
    finally:
        gateway.stop()
        upstream.stop()
