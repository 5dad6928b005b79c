"""The proxy's own connection pool (gateway.upstream.Pool) against awkward upstreams:
chunked uploads, and an upstream that silently drops every keep-alive connection."""

from __future__ import annotations

import hashlib
import socket
import time

import pytest
import requests
from flask import Flask, request

from core.config import load_settings
from gateway import create_app
from gateway.upstream import Pool, UpstreamError
from tests.fakeimmich import ThreadedServer
from tests.fakeimmich.fixtures import *  # noqa: F403
from tests.netutil import RawServer, read_head


def _gateway(upstream_url: str, tmp_path) -> ThreadedServer:
    settings = load_settings({}, immich_url=upstream_url, data_dir=tmp_path, cache_url="memory://")
    return ThreadedServer(
        create_app({"SETTINGS": settings, "UI_DIST": str(tmp_path / "no-ui")})
    ).start()


def test_chunked_upload_reaches_immich_intact(tmp_path):
    app = Flask("sink")

    @app.post("/api/upload")
    def upload():
        data = request.get_data()
        return {
            "sha1": hashlib.sha1(data).hexdigest(),
            "n": len(data),
            "te": request.headers.get("Transfer-Encoding"),
            "cl": request.headers.get("Content-Length"),
        }

    sink = ThreadedServer(app).start()
    gw = _gateway(sink.url, tmp_path)
    try:
        parts = [bytes([i]) * (300_000 + i) for i in range(5)]
        r = requests.post(gw.url + "/api/upload", data=iter(parts))  # a generator: chunked
        body = b"".join(parts)
        assert r.status_code == 200
        assert r.json() == {
            "sha1": hashlib.sha1(body).hexdigest(),
            "n": len(body),
            "te": "chunked",
            "cl": None,
        }
        r = requests.post(gw.url + "/api/upload", data=body)  # Content-Length
        assert r.json()["n"] == len(body) and r.json()["cl"] == str(len(body))
    finally:
        gw.stop()
        sink.stop()


@pytest.fixture
def one_shot_upstream():
    """Answers one request per connection, then closes it without saying so."""
    served = []

    def handle(conn):
        with conn:
            got = read_head(conn)
            if got is None:
                return
            served.append(got[0].split(b"\r\n", 1)[0])
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b'Content-Length: 11\r\n\r\n{"ok":true}'
            )

    srv = RawServer(handle)
    yield srv.url, served
    srv.close()


def test_connections_dropped_by_immich_are_not_an_error(one_shot_upstream, tmp_path):
    url, served = one_shot_upstream
    gw = _gateway(url, tmp_path)
    try:
        s = requests.Session()
        for i in range(40):
            r = s.get(f"{gw.url}/api/server/ping?i={i}")
            assert r.status_code == 200 and r.json() == {"ok": True}, i
        assert len(served) >= 40
    finally:
        gw.stop()


def test_plain_passthrough_never_asks_immich_who_the_caller_is(gateway, immich, alice):
    asset = immich.state.add_asset(alice.user["id"], "/upload/a.jpg", content=b"abc")
    for _ in range(3):
        assert requests.get(gateway.url + "/api/server/ping", headers=alice.bearer).ok
        assert (
            requests.get(
                f"{gateway.url}/api/assets/{asset['id']}/original", headers=alice.bearer
            ).content
            == b"abc"
        )
        assert requests.get(gateway.url + "/api/users/me", headers=alice.bearer).ok
    assert immich.state.calls[("GET", "/users/me")] == 3  # only the client's own calls


@pytest.fixture
def stalling_upstream():
    """Answers ``/head`` never, and ``/body`` with a head and half its body, then holds
    the connection open without another byte: Immich hung mid-answer."""
    held = []

    def handle(conn):
        held.append(conn)
        got = read_head(conn)
        if got is not None and got[0].startswith(b"GET /body"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")

    srv = RawServer(handle)
    yield srv.url
    srv.close()
    for conn in held:
        conn.close()


def test_a_stalled_answer_times_out_before_and_after_its_head(stalling_upstream):
    """The read timeout bounds every wait for Immich's bytes, whether the head or the
    body stalls; the stalled connection is never handed to the next request."""
    pool = Pool(stalling_upstream)
    t0 = time.monotonic()
    with pytest.raises(UpstreamError) as head_stall:
        pool.request("GET", "/head", {}, read_timeout=0.3)
    assert head_stall.value.timeout
    resp = pool.request("GET", "/body", {}, read_timeout=0.3)
    assert resp.status == 200 and resp.read1(100) == b"12345"
    with pytest.raises(UpstreamError) as body_stall:
        resp.read1(100)
    assert body_stall.value.timeout
    assert time.monotonic() - t0 < 5
    assert not pool._idle  # neither connection can carry another request
    pool.close()


def test_the_read_timeout_can_change_between_requests(one_shot_upstream):
    url, _served = one_shot_upstream
    pool = Pool(url)
    for timeout in (5.0, 0.5, 30.0):
        resp = pool.request("GET", "/api/server/ping", {}, read_timeout=timeout)
        assert resp.status == 200 and resp.read() == b'{"ok":true}'
    pool.close()


def test_a_client_body_shorter_than_declared_fails_at_once(stalling_upstream):
    """A client that declared 1,000 bytes and went away after 10: Immich would wait for
    the rest, and the gateway's thread with it until the read timeout."""
    import io

    from gateway.upstream import StreamBody

    pool = Pool(stalling_upstream)
    t0 = time.monotonic()
    with pytest.raises(UpstreamError) as short:
        pool.request(
            "POST",
            "/head",
            {"Content-Length": "1000"},
            StreamBody(io.BytesIO(b"0123456789"), 1000),
            read_timeout=30,
        )
    assert "10 of 1000" in str(short.value) and not short.value.timeout
    assert time.monotonic() - t0 < 5 and not pool._idle
    pool.close()


@pytest.fixture
def header_recorder():
    """Answers every request 200 JSON, and keeps each request's head."""
    heads: list[bytes] = []

    def handle(conn):
        with conn:
            while (got := read_head(conn)) is not None:
                heads.append(got[0])
                body = b'{"id":"x","originalPath":"/nowhere/a.jpg"}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
                )

    srv = RawServer(handle)
    yield srv.url, heads
    srv.close()


def test_what_the_gateway_asks_immich_for(header_recorder, tmp_path, monkeypatch):
    from gateway import upstream

    url, heads = header_recorder
    # Given a gateway process whose environment holds an HTTP_ variable (Docker's proxy
    # settings), which granian hands to every request's environ
    monkeypatch.setattr(upstream, "PROCESS_HTTP", {"HTTP_PROXY": "http://u:secret@corp:3128"})
    gw = _gateway(url, tmp_path)
    try:
        environ_like = {"HTTP_PROXY": "http://u:secret@corp:3128", "HTTP_ACCEPT": "*/*"}
        assert upstream.environ_headers(environ_like) == {"Accept": "*/*"}
        for path in ("/api/server/ping", "/api/assets/7f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"):
            requests.get(
                gw.url + path,
                headers={"Accept-Encoding": "gzip, br, zstd", "Proxy": "http://evil:1"},
            )
    finally:
        gw.stop()
    plain = next(h for h in heads if h.startswith(b"GET /api/server/ping")).lower()
    enriched = next(h for h in heads if h.startswith(b"GET /api/assets/")).lower()
    # Then no client "Proxy" header (httpoxy) reaches Immich, nor the process's variables
    assert b"\r\nproxy:" not in plain and b"secret" not in plain + enriched
    # And an answer the gateway re-encodes is asked for uncompressed (br or zstd from a
    # proxy in front of Immich could not be decoded), while a plain one keeps the client's
    assert b"accept-encoding: gzip, br, zstd" in plain
    assert b"br" not in enriched and b"zstd" not in enriched


def _http_upstream(keep_alive: bool):
    """An upstream that reads each request whole (its body by Content-Length) and either
    keeps the connection for the next, as Immich (Node) does, or closes it after one
    answer without saying so (its keep-alive timeout ran out). ``/chunked`` answers in
    chunks; anything else with Content-Length. Records (connection number, request line)."""
    served: list[tuple[int, bytes]] = []
    conns = iter(range(1_000_000))
    chunks = [b'{"part":', b"1", b',"more":"', b"x" * 70_000, b'"}']

    def handle(conn):
        n = next(conns)
        with conn:
            while (got := read_head(conn)) is not None:
                head, rest = got
                length = int(
                    next(
                        (ln.split(b":", 1)[1] for ln in head.split(b"\r\n")[1:]
                         if ln.lower().startswith(b"content-length:")),
                        b"0",
                    )
                )  # fmt: skip
                while len(rest) < length:
                    rest += conn.recv(65536)
                served.append((n, head.split(b"\r\n", 1)[0]))
                if head.startswith(b"GET /api/chunked"):
                    framed = b"".join(b"%x;ext=1\r\n%b\r\n" % (len(c), c) for c in chunks)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
                    )
                else:
                    body = b'{"n":%d}' % length
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
                    )
                if not keep_alive:
                    return

    srv = RawServer(handle)
    return srv, served, b"".join(chunks)


@pytest.fixture
def keepalive_upstream():
    srv, served, whole = _http_upstream(keep_alive=True)
    yield srv.url, served, whole
    srv.close()


@pytest.fixture
def closing_upstream():
    srv, served, _ = _http_upstream(keep_alive=False)
    yield srv.url, served
    srv.close()


def test_a_chunked_answer_arrives_whole_and_keeps_the_connection(keepalive_upstream, tmp_path):
    url, served, whole = keepalive_upstream
    gw = _gateway(url, tmp_path)
    try:
        t0 = time.monotonic()
        bodies = [requests.get(gw.url + "/api/chunked", timeout=5).content for _ in range(2)]
        # Then each body is Immich's bytes without the chunk framing, at once (not after
        # a read timeout), and the second request came on the same kept connection
        assert bodies == [whole, whole]
        assert time.monotonic() - t0 < 5
        assert [n for n, _ in served] == [0, 0]
    finally:
        gw.stop()


def test_writes_after_immich_closed_an_idle_connection_go_through(closing_upstream, tmp_path):
    # Given Immich closes each kept connection after one answer (its keep-alive timeout)
    url, served = closing_upstream
    gw = _gateway(url, tmp_path)
    try:
        s = requests.Session()
        for i in range(3):
            # When the app then writes (no retry is safe for a write)
            r = s.post(f"{gw.url}/api/assets/x/trash?i={i}", data=b"payload" * 100)
            # Then each write goes on a live connection, once
            assert r.status_code == 200 and r.json() == {"n": 700}, i
            time.sleep(0.05)
        assert len(served) == 3
    finally:
        gw.stop()


def test_an_abandoned_body_never_goes_back_to_the_pool(stalling_upstream):
    from gateway.proxy import Body

    # Given an answer half-read when its client went away
    pool = Pool(stalling_upstream)
    resp = pool.request("GET", "/body", {}, read_timeout=5)
    assert resp.read1(100) == b"12345"
    # When the body is closed, Then its connection (the rest still on the wire) is dropped
    Body(resp, 1024).close()
    assert not pool._idle
    pool.close()


def test_tls_to_immich_checks_the_certificate_and_its_name():
    import ssl

    pool = Pool("https://immich.example")
    assert pool._ssl.check_hostname is True and pool._ssl.verify_mode == ssl.CERT_REQUIRED
    pool.close()


def test_a_client_that_asks_for_no_encoding_gets_none(header_recorder, tmp_path):

    url, heads = header_recorder
    gw = _gateway(url, tmp_path)
    try:
        # Given a client (curl, a phone's HTTP stack) that sends no Accept-Encoding
        host, port = gw.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as c:
            c.sendall(b"GET /api/server/ping HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
            while c.recv(65536):
                pass
    finally:
        gw.stop()
    # Then Immich is asked for an uncompressed answer: the client could not read gzip
    [head] = heads
    assert b"\r\naccept-encoding: identity" in head.lower()


def test_an_immich_that_does_not_answer_the_connect_times_out():

    # Given a host that drops connection attempts (a full accept queue drops SYNs, as a
    # firewall or a hung host does) rather than refusing them
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    queued = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        queued.append(c)
    time.sleep(0.2)
    pool = Pool(f"http://127.0.0.1:{port}")
    try:
        # When the gateway connects, Then it gives up after the connect timeout
        t0 = time.monotonic()
        with pytest.raises(UpstreamError) as err:
            pool.request("GET", "/api/server/ping", {}, connect_timeout=0.3, read_timeout=0.3)
        assert err.value.timeout and "connect" in str(err.value)
        assert time.monotonic() - t0 < 2
    finally:
        pool.close()
        for c in queued:
            c.close()
        srv.close()


def test_an_upload_immich_refuses_early_gets_immichs_answer():
    import io

    from gateway.upstream import StreamBody

    # Given an Immich that answers an upload 401 from its head alone and hangs up
    def refuse(conn):
        with conn:
            if read_head(conn) is None:
                return
            body = b'{"message":"Invalid user token","statusCode":401}'
            conn.sendall(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%b" % (len(body), body)
            )
            conn.shutdown(socket.SHUT_WR)
            time.sleep(0.2)
            # closing with the upload still arriving resets the connection

    srv = RawServer(refuse)
    pool = Pool(srv.url)
    size = 32 * 1024 * 1024
    try:
        # When a big upload is sent, Then the client gets Immich's refusal, not a 502
        resp = pool.request(
            "POST",
            "/api/assets",
            {"Content-Length": str(size)},
            StreamBody(io.BytesIO(bytes(size)), size),
            read_timeout=5,
        )
        assert resp.status == 401
        assert b"Invalid user token" in resp.read()
    finally:
        pool.close()
        srv.close()
