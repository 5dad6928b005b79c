"""The gateway's passthrough fast path does what the Flask route did: same routing
decision as the app's URL map, same request target as requests, same header list as
http.client + urllib3."""

from __future__ import annotations

import http.client
import io

import pytest
import requests
from urllib3 import HTTPHeaderDict
from werkzeug.exceptions import HTTPException
from werkzeug.test import EnvironBuilder

from core.config import load_settings
from gateway import create_app
from gateway.proxy import FastPath
from gateway.upstream import _header_items, request_target

PATHS = [
    "/api/",
    "/api",
    "/api/server/ping",
    "/api/server/ping/",
    "/api/assets/abc",
    "/api/assets/abc/",
    "/api/assets/abc/original",
    "/api/assets",
    "/api/search/metadata",
    "/api/search/person",
    "/api/duplicates",
    "/api/duplicates/x",
    "/api/timeline/bucket",
    "/api/timeline/buckets",
    "/api/twinlens/me",
    "/api/twinlens",
    "/api/twinlensx/a",
    "/api//server/ping",
    "/api/a//b",
    "/api/caf\u00e9",
    "/api/assets/a b",
    "/api/x/../y",
    "/static/x.js",
    "/",
    "/api/twinlens/groups/g1",
    "/api/assets/0f6f8d6e-4c1b-4d7e-9a4e-1d2c3b4a5f60",
    "/api/assets/statistics",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"]


@pytest.fixture
def fast(tmp_path):
    settings = load_settings(
        {}, immich_url="http://127.0.0.1:9", data_dir=tmp_path, cache_url="memory://"
    )
    app = create_app({"SETTINGS": settings, "UI_DIST": str(tmp_path / "no-ui")})
    assert isinstance(app.wsgi_app, FastPath)
    return app, app.wsgi_app


def test_fast_path_takes_exactly_the_requests_the_proxy_route_would(fast):
    app, fp = fast
    seen = []
    fp.flask_wsgi = lambda environ, sr: seen.append(("flask", None)) or []
    fp.passthrough = lambda environ, sr: seen.append(("fast", None)) or []
    fp.asset_info = lambda environ, sr, asset_id: seen.append(("asset", asset_id)) or []
    for path in PATHS:
        for method in METHODS:
            environ = EnvironBuilder(path=path, method=method).get_environ()
            seen.clear()
            fp(environ, lambda *a: None)
            try:
                endpoint, args = app.url_map.bind("").match(
                    environ["PATH_INFO"].encode("latin-1").decode(), method
                )
                if endpoint == "proxy.proxy":
                    expected = ("fast", None)
                elif endpoint == "proxy.asset_info" and method == "GET":
                    expected = ("asset", args["asset_id"])  # enriched, also without Flask
                else:
                    expected = ("flask", None)
            except HTTPException:
                expected = ("flask", None)
            assert seen == [expected], (method, path)


@pytest.mark.parametrize(
    "tail",
    [
        "/api/server/ping",
        "/api/",
        "/api/assets/x?size=preview&key=k",
        "/api/a%20b",
        "/api/a b",
        "/api/caf\u00c3\u00a9?q=\u00c3\u00a9",
        "/api/x?a=b#frag",
        "/api/x#y",
        "/api/a/./b/../c",
        "/api/.well-known",
        "/api/x?q=a%2fb&r=%zz",
        "/api/a?b?c",
        "/api/[x]",
        '/api/x?y="z"',
        "/api/~user/(1);a=b,c@d:e!$'*+",
    ],
)
@pytest.mark.parametrize(
    "base", ["http://immich:2283", "http://Immich:2283/prefix", "https://immich.example"]
)
def test_request_target_is_what_requests_sends(base, tail):
    from gateway.upstream import Pool

    pool = Pool(base)
    prepared = requests.PreparedRequest()
    prepared.prepare_url(base + tail, None)
    assert request_target(pool.base_url, pool.origin, tail) == prepared.path_url


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n",
        b"Set-Cookie: a=1\r\nX-A: 1\r\nset-cookie: b=2\r\nSET-COOKIE: c=3\r\n\r\n",
        b"X-Spaces:   v  \r\nX-Tab:\tw\r\nX-Empty:\r\n\r\n",
        b"X-Folded: a\r\n  b\r\nX-B: c\r\n\r\n",
        b"X-Lf: a\nX-B: c\n\n",
        b"Bad Name: x\r\nX-B: c\r\n\r\n",
        b"X-Latin: caf\xe9\r\n\r\n",
    ],
)
def test_header_items_match_http_client_and_urllib3(head):
    from urllib3.connection import _normalize_header_values

    lines = io.BytesIO(head).readlines()
    msg = http.client.parse_headers(io.BytesIO(head))
    expected = list(HTTPHeaderDict(_normalize_header_values(msg)).items())
    assert _header_items(lines) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.0 404 Not  Found \r\nX-A:  v \r\n\r\n",
        b"HTTP/1.1 204\r\nSet-Cookie: a=1\r\nX-A: 1\r\nset-cookie: b=2\r\n\r\n",
        b"HTTP/1.1 302 Found\r\nLocation: /x\r\nX-Tab:\tw\r\nX-Empty:\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Latin: caf\xe9\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        # shapes the one-pass parser leaves to the line-by-line reader
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\r\n",
        b"HTTP/1.1 200 OK\nX-Lf: a\n\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.2 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Cut: a",
    ],
)
def test_one_pass_head_parse_matches_the_line_reader(head):
    from gateway.upstream import _header_items, _plain_head, _status

    body = b'{"a":1}'
    plain = _plain_head(head + body)
    lines = io.BytesIO(head).readlines()
    if plain is None:
        # Left to the line reader: only heads that are not plain, complete, final answers.
        assert (
            b"\r\n\r\n" not in head
            or lines[0].split()[1] == b"100"
            or any(not line.endswith(b"\r\n") for line in lines)
            or any(b":" not in line or b" " in line.split(b":")[0] for line in lines[1:-1])
            or not lines[0].startswith((b"HTTP/1.0 ", b"HTTP/1.1 "))
        )
        return
    end, status, reason, version, headers = plain
    assert (head + body)[end:] == body
    assert (status, reason, version) == _status(lines[0])
    assert headers == _header_items(lines[1:])
