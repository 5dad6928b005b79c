"""The deployment's nginx (docker/nginx.conf, run for real) in front of the gateway and the
fake Immich: a GET/HEAD that Twinlens adds nothing to goes from nginx straight to Immich,
and one the gateway's routes take but only pass through is handed back to nginx
(X-Accel-Redirect); both stream from Immich through nginx, exactly as the client asked.
Everything else still goes through the gateway."""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter

import pytest
import requests
from flask import Flask, Response, request

from core.config import load_settings
from gateway import create_app
from gateway.proxy import POOL_KEY
from tests.fakeimmich import ThreadedServer
from tests.fakeimmich.fixtures import *  # noqa: F403
from tests.netutil import RawServer, read_head
from tests.nginxfront import NginxFront, nginx_binary
from tests.require import missing

MB = 1024 * 1024


def _need_nginx() -> None:
    if nginx_binary() is None:
        reason = "nginx is not installed (Debian package nginx; .ci/setup.sh dev installs it)"
        missing(reason)


def _hostport(url: str) -> str:
    return url.split("://", 1)[1].rstrip("/")


def _count_proxied(app) -> Counter:
    """Counts the requests the gateway itself sends to Immich (its pool), by method."""
    pool = app.extensions[POOL_KEY]
    seen: Counter = Counter()
    inner = pool.request

    def request(method, target, *args, **kwargs):
        seen[method] += 1
        return inner(method, target, *args, **kwargs)

    pool.request = request
    return seen


def _count_reached(app) -> list[tuple[str, str]]:
    """The requests that reach the gateway at all (method, path), offloaded ones too."""
    seen: list[tuple[str, str]] = []
    inner = app.wsgi_app

    def wsgi_app(environ, start_response):
        seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        return inner(environ, start_response)

    app.wsgi_app = wsgi_app
    return seen


@pytest.fixture
def front(gateway_app, gateway, immich, tmp_path):
    _need_nginx()
    proxied = _count_proxied(gateway_app)
    reached = _count_reached(gateway_app)
    with NginxFront(_hostport(gateway.url), _hostport(immich.url), tmp_path / "nginx") as nginx:
        nginx.proxied, nginx.reached = proxied, reached
        yield nginx


def test_an_original_streams_through_nginx_not_the_gateway(front, immich, alice, tmp_path):
    big = tmp_path / "clip.mp4"
    big.write_bytes(os.urandom(12 * MB))
    asset = immich.state.add_asset(alice.user["id"], "/upload/clip.mp4", file=str(big))
    url = f"{front.url}/api/assets/{asset['id']}/original"

    r = requests.get(url, headers=alice.bearer)
    assert r.status_code == 200
    assert hashlib.sha1(r.content).digest() == hashlib.sha1(big.read_bytes()).digest()
    assert r.headers["Content-Type"] == "video/mp4"
    assert "X-Accel-Redirect" not in r.headers
    # Video seeking: a Range answer passes as Immich gave it.
    r = requests.get(url, headers={**alice.bearer, "Range": f"bytes={5 * MB}-{5 * MB + 9}"})
    assert r.status_code == 206 and r.content == big.read_bytes()[5 * MB : 5 * MB + 10]
    assert r.headers["Content-Range"] == f"bytes {5 * MB}-{5 * MB + 9}/{12 * MB}"
    r = requests.head(url, headers=alice.bearer)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == 12 * MB
    # HEAD of the enriched asset route is a plain passthrough too (Flask's route).
    r = requests.head(f"{front.url}/api/assets/{asset['id']}", headers=alice.bearer)
    direct = requests.head(f"{immich.url}/api/assets/{asset['id']}", headers=alice.bearer)
    assert r.status_code == direct.status_code
    for name in ("Content-Length", "Content-Type"):
        assert r.headers[name] == direct.headers[name], name
    assert front.proxied == Counter()  # not one byte of it through the gateway
    # nginx sent the reads of the original to Immich itself; only the HEAD of the asset
    # route reached the gateway (its route), which handed it back.
    assert front.reached == [("HEAD", f"/api/assets/{asset['id']}")]


def test_immich_refusals_and_errors_pass_unchanged(front, immich, alice):
    asset = immich.state.add_asset(alice.user["id"], "/upload/a.jpg", content=b"abc")
    direct = requests.get(f"{immich.url}/api/assets/{asset['id']}/original")
    through = requests.get(f"{front.url}/api/assets/{asset['id']}/original")
    assert through.status_code == direct.status_code == 401
    assert through.json() == direct.json()
    missing = "00000000-0000-4000-8000-000000000000"
    r = requests.get(f"{front.url}/api/assets/{missing}/original", headers=alice.bearer)
    assert (
        r.status_code
        == requests.get(
            f"{immich.url}/api/assets/{missing}/original", headers=alice.bearer
        ).status_code
    )


def test_writes_and_enriched_reads_still_go_through_the_gateway(front, immich, alice):
    r = requests.post(
        f"{front.url}/api/auth/login", json={"email": alice.email, "password": alice.password}
    )
    assert r.status_code == 201
    assert len(r.raw.headers.getlist("Set-Cookie")) == 3  # Immich's three login cookies
    asset = immich.state.add_asset(alice.user["id"], "/mnt/photos/a.jpg", content=b"abc")
    r = requests.get(f"{front.url}/api/assets/{asset['id']}", headers=alice.bearer)
    assert r.status_code == 200 and "twinlens" in r.json()
    assert front.proxied == Counter({"POST": 1, "GET": 1})
    assert front.reached == [("POST", "/api/auth/login"), ("GET", f"/api/assets/{asset['id']}")]


def test_immich_down_gives_the_gateways_json_error(front, immich, alice):
    immich.stop()
    r = requests.get(f"{front.url}/api/server/ping", headers=alice.bearer)
    assert r.status_code == 502
    assert r.json()["message"] == "Immich is unreachable"


@pytest.fixture
def echo_front(tmp_path):
    """nginx + gateway in front of an echo server that records what reached it."""
    _need_nginx()
    app = Flask("echo")
    seen: list[dict] = []

    @app.route("/api/<path:path>", methods=["GET", "HEAD", "POST"])
    def anything(path):
        seen.append(
            {
                "method": request.method,
                "uri": request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI"),
                "headers": dict(request.headers),
                "size": len(request.get_data()),
            }
        )
        if path == "redirect":
            return Response(status=302, headers={"Location": "http://elsewhere/login"})
        resp = Response(b'{"ok":true}', content_type="application/json")
        resp.headers.add("Set-Cookie", "a=1; Path=/")
        resp.headers.add("Set-Cookie", "b=2; Path=/")
        return resp

    echo = ThreadedServer(app).start()
    settings = load_settings({}, immich_url=echo.url, data_dir=tmp_path, cache_url="memory://")
    gw_app = create_app({"SETTINGS": settings, "UI_DIST": str(tmp_path / "no-ui")})
    proxied = _count_proxied(gw_app)
    reached = _count_reached(gw_app)
    gw = ThreadedServer(gw_app).start()
    nginx = NginxFront(_hostport(gw.url), _hostport(echo.url), tmp_path / "nginx").start()
    nginx.seen, nginx.proxied, nginx.gateway, nginx.reached = seen, proxied, gw, reached
    nginx.app = gw_app
    try:
        yield nginx
    finally:
        nginx.stop()
        gw.stop()
        echo.stop()


@pytest.mark.parametrize(
    "target, via_gateway",
    [
        # No route of the gateway's: nginx sends it to Immich itself.
        ("/api/odd%2Fname%3F.jpg/x?size=preview&a=%20b&key=secret", False),
        # The asset route's shape, but no asset id: the gateway hands it back.
        ("/api/assets/odd%20name?size=preview&a=%20b&key=secret", True),
    ],
)
def test_offloaded_requests_reach_immich_exactly_as_sent(echo_front, target, via_gateway):
    r = requests.get(
        echo_front.url + target,
        headers={
            "x-api-key": "k",
            "Cookie": "immich_access_token=t",
            "X-Twinlens-Offload": "/elsewhere/",  # a client cannot steer the offload
            "User-Agent": "tl-test",
        },
    )
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    (got,) = echo_front.seen
    assert got["method"] == "GET" and got["uri"] == target
    assert got["headers"]["X-Api-Key"] == "k"
    assert got["headers"]["Cookie"] == "immich_access_token=t"
    assert got["headers"]["User-Agent"] == "tl-test"
    assert got["headers"]["X-Forwarded-For"] == "127.0.0.1"
    # The host the client asked for, its port included (links Immich builds point back)
    assert got["headers"]["X-Forwarded-Host"] == f"127.0.0.1:{echo_front.port}"
    assert "X-Twinlens-Offload" not in got["headers"]
    assert echo_front.proxied == Counter()
    assert len(echo_front.reached) == via_gateway
    # Redirects are returned, not followed nor rewritten.
    r = requests.get(echo_front.url + "/api/redirect", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "http://elsewhere/login"


def test_a_post_through_nginx_is_proxied_by_the_gateway_without_the_offload_header(
    echo_front,
):
    r = requests.post(echo_front.url + "/api/thing", data=b"payload")
    assert r.status_code == 200
    (got,) = echo_front.seen
    assert got["method"] == "POST" and "X-Twinlens-Offload" not in got["headers"]
    assert got["headers"]["X-Forwarded-Host"] == f"127.0.0.1:{echo_front.port}"
    assert echo_front.proxied == Counter({"POST": 1})


def test_a_big_upload_passes_nginx_whole(echo_front):
    # A phone video through the deployment's entry: nginx must not cap the body (its
    # default is 1 MB)
    body = os.urandom(8 * 1024 * 1024)
    r = requests.post(echo_front.url + "/api/assets", data=body)
    assert r.status_code == 200, r.text[:200]
    (got,) = echo_front.seen
    assert got["size"] == len(body)


def _route_paths(app) -> list[tuple[str, str]]:
    """(method, path) for every GET/HEAD route of the gateway under /api/ other than its
    catch-all proxy, with a sample value in each variable part."""
    samples = {"asset_id": "0b0c2a1e-5b1c-4e7f-9d2a-6f3e1c2b4a5d", "service": "grouping"}
    paths = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "proxy.proxy" or not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: samples.get(m.group(1), "x1"), rule.rule)
        paths += [(method, path) for method in ("GET", "HEAD") if method in rule.methods]
    return paths


def test_every_read_the_gateway_answers_itself_reaches_it_through_nginx(echo_front):
    """docker/nginx.conf names the gateway's own reads (enriched ones and /api/twinlens/)
    to send everything else straight to Immich: a route added to the gateway and not to
    that list would silently lose its answer behind nginx."""
    routes = _route_paths(echo_front.app)
    assert ("GET", "/api/timeline/bucket") in routes and len(routes) > 10
    for method, path in routes:
        echo_front.reached.clear()
        requests.request(method, echo_front.url + path)
        assert echo_front.reached == [(method, path)], (method, path)


@pytest.mark.parametrize(
    "path",
    [
        "/api/server/ping",
        "/api/users/me",
        "/api/assets/0b0c2a1e-5b1c-4e7f-9d2a-6f3e1c2b4a5d/thumbnail",
        "/api/assets/0b0c2a1e-5b1c-4e7f-9d2a-6f3e1c2b4a5d/original",
        "/api/timeline/buckets",
        "/api/duplicates/x1",
        "/api/search/suggestions",
        "/api/twinlensx",
    ],
)
def test_reads_twinlens_adds_nothing_to_skip_the_gateway(echo_front, path):
    for method in ("GET", "HEAD"):
        r = requests.request(method, echo_front.url + path + "?key=k")
        assert r.status_code == 200
    assert [(got["method"], got["uri"]) for got in echo_front.seen] == [
        ("GET", path + "?key=k"),
        ("HEAD", path + "?key=k"),
    ]
    assert echo_front.reached == []


def test_without_nginx_the_gateway_proxies_plain_gets_itself(echo_front):
    r = requests.get(echo_front.gateway.url + "/api/thing")
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert echo_front.proxied == Counter({"GET": 1})


def test_clients_cannot_reach_the_internal_location(echo_front):
    r = requests.get(echo_front.url + "/_immich/api/server/ping")
    assert r.status_code == 404
    assert echo_front.seen == [] and echo_front.proxied == Counter()


@pytest.fixture
def websocket_immich():
    """Immich's websocket endpoint as far as a proxy can tell: 101 to an upgrade request on
    /api/socket.io/, then every byte echoed back. Records the request heads."""
    heads: list[bytes] = []

    def handle(conn):
        with conn:
            got = read_head(conn)
            if got is None:
                return
            head, rest = got
            heads.append(head)
            if b"upgrade: websocket" not in head.lower():
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n" + rest
            )
            while data := conn.recv(65536):
                conn.sendall(data)

    srv = RawServer(handle)
    yield srv.addr, heads
    srv.close()


def test_the_websocket_goes_straight_to_immich(websocket_immich, tmp_path):
    """Issue #5: a WSGI app cannot carry the upgrade, so nginx sends /api/socket.io/ to
    Immich itself; the gateway (here: nothing listening) is never involved."""
    import socket

    _need_nginx()
    immich_addr, heads = websocket_immich
    with NginxFront("127.0.0.1:9", immich_addr, tmp_path / "nginx") as nginx:
        sock = socket.create_connection(("127.0.0.1", nginx.port), timeout=5)
        with sock:
            sock.sendall(
                b"GET /api/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                b"Host: photos.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Cookie: immich_access_token=t\r\n\r\n"
            )
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 101")
            sock.sendall(b"\x81\x05hello")  # both ways, byte for byte, after the upgrade
            echoed = b""
            while len(echoed) < 7:
                echoed += sock.recv(4096)
            assert echoed == b"\x81\x05hello"
    (head,) = heads
    assert head.startswith(b"GET /api/socket.io/?EIO=4&transport=websocket HTTP/1.1")
    assert b"immich_access_token=t" in head  # Immich authenticates the socket itself


def test_credentials_in_a_query_string_stay_out_of_nginxs_logs(front, immich, alice, tmp_path):
    # Given a shared-link viewer's request, its key in the query string, while Immich is down
    secret = "f00d" * 25
    immich.stop()
    r = requests.get(f"{front.url}/api/assets/some-id/thumbnail", params={"key": secret})
    assert r.status_code == 502
    # Then neither nginx log holds the key (the access log drops query strings; errors
    # about a request would name its whole URL)
    logs = [p for p in (tmp_path / "nginx").glob("*.log") if p.is_file()]
    assert logs and not [p.name for p in logs if secret in p.read_text(errors="replace")]


def test_the_mobile_apps_well_known_question_is_answered_by_immich(tmp_path):
    """The Immich mobile app first asks <server>/.well-known/immich where the API is; the
    UI's page (the SPA fallback) is no answer it can read."""
    _need_nginx()
    app = Flask("immich-well-known")
    seen: list[dict] = []

    @app.route("/.well-known/immich")
    def well_known():
        seen.append(dict(request.headers))
        return {"api": {"endpoint": "/api"}}

    immich = ThreadedServer(app).start()
    try:
        # The gateway (here: nothing listening) has no part in it
        with NginxFront("127.0.0.1:9", _hostport(immich.url), tmp_path / "nginx") as nginx:
            r = requests.get(f"{nginx.url}/.well-known/immich")
            assert r.status_code == 200, r.text[:200]
            assert r.headers["Content-Type"].startswith("application/json")
            assert r.json() == {"api": {"endpoint": "/api"}}
            (headers,) = seen
            assert headers["Host"] == _hostport(immich.url)
            assert headers["X-Forwarded-Host"] == f"127.0.0.1:{nginx.port}"
            # Anything else under /.well-known/ is still the UI's
            assert (
                requests.get(f"{nginx.url}/.well-known/other")
                .headers["Content-Type"]
                .startswith("text/html")
            )
            immich.stop()
            r = requests.get(f"{nginx.url}/.well-known/immich")
            assert r.status_code == 502 and r.json()["message"] == "Immich is unreachable"
    finally:
        immich.stop()
