"""The gateway as it runs in production, under each server ``twinlens gateway`` can use
(granian, the default, and gunicorn gthread), in front of the fake Immich: what the
in-process tests cannot reach (the server's own HTTP handling, gunicorn's splice(2)
path for large originals) checked on both."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from core.config import load_settings
from tests.fakeimmich.fixtures import *  # noqa: F403
from tests.netutil import RawServer, free_port, wait_answering

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


@contextlib.contextmanager
def _running_gateway(immich_url: str, tmp_path: Path, server: str):
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TWINLENS_IMMICH_URL": immich_url,
        "TWINLENS_CACHE_URL": "memory://",
        "TWINLENS_DATA_DIR": str(tmp_path / "data"),
        "TWINLENS_LOG_LEVEL": "INFO",
    }
    code = (
        "from gateway import serve; from core.config import load_settings; "
        f"serve(load_settings(), workers=1, threads=4, port={port}, access_log=True, "
        f"server={server!r})"
    )
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(url + "/api/", 10)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture(params=["granian", "gunicorn"])
def server_gateway(immich, tmp_path, request):
    with _running_gateway(immich.url, tmp_path, request.param) as (url, pid):
        yield url, tmp_path / "server.log", request.param, pid


class _RecordingUpstream:
    """An HTTP server that records each request line and answers 200 {} (what Immich is
    sent, byte for byte, which a WSGI app in the fake's place would see decoded)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.server = RawServer(self._talk)
        self.url = self.server.url

    def _talk(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as f:
            while line := f.readline():
                self.lines.append(line.rstrip(b"\r\n"))
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass  # headers; these requests have no body
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")


def test_large_original_streams_exactly_and_the_pool_survives_aborts(
    server_gateway, immich, alice, tmp_path
):
    url, log_path, server, _ = server_gateway
    big = tmp_path / "big.mov"
    data = os.urandom(24 * MB + 12345)
    big.write_bytes(data)
    asset = immich.state.add_asset(alice.user["id"], "/upload/big.mov", file=str(big))
    original = f"{url}/api/assets/{asset['id']}/original"

    r = requests.get(original, headers=alice.bearer)
    assert r.status_code == 200 and hashlib.sha1(r.content).digest() == hashlib.sha1(data).digest()

    r = requests.get(original, headers={**alice.bearer, "Range": f"bytes={MB}-{9 * MB - 1}"})
    assert r.status_code == 206 and r.content == data[MB : 9 * MB]

    for _ in range(3):  # client goes away half-way: the next requests still work
        with requests.get(original, headers=alice.bearer, stream=True) as r:
            next(r.iter_content(MB))
    for _ in range(20):
        assert requests.get(url + "/api/server/ping").json() == {"res": "pong"}
    r = requests.get(original, headers=alice.bearer)
    assert r.content == data

    if server != "gunicorn":
        return
    # gunicorn's access log counts the bytes that bypassed it (splice).
    time.sleep(0.2)
    sizes = [
        line.split()[-2]
        for line in log_path.read_text().splitlines()
        if "/original" in line and '" 200 ' in line
    ]
    assert str(len(data)) in sizes, sizes


def _rss_mb(pid: int) -> float:
    """RSS of a server process and its children (the workers), MB."""
    pids, total = [pid], 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            pids += [int(p) for p in fh.read().split()]
    for p in pids:
        with open(f"/proc/{p}/status") as fh:
            total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    return total / 1024


def test_cookies_head_and_chunked_upload_pass_the_server(server_gateway, immich, alice):
    url, _, _, pid = server_gateway
    # Immich's login sets three cookies; all three reach the client.
    r = requests.post(
        url + "/api/auth/login", json={"email": alice.email, "password": alice.password}
    )
    assert r.status_code == 201
    names = sorted(c.split("=", 1)[0] for c in r.raw.headers.getlist("Set-Cookie"))
    assert names == ["immich_access_token", "immich_auth_type", "immich_is_authenticated"]

    asset = immich.state.add_asset(alice.user["id"], "/upload/h.jpg", content=b"12345")
    r = requests.head(f"{url}/api/assets/{asset['id']}/original", headers=alice.bearer)
    assert r.status_code == 200 and r.headers["Content-Length"] == "5" and r.content == b""

    # A chunked upload (no Content-Length) of 48 MB streams through: Immich gets every
    # byte, and the server does not hold the body.
    boundary, block = "tlboundary", os.urandom(MB)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="assetData"; '
        f'filename="c.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    peak = [0.0]
    before = _rss_mb(pid)

    def body():
        yield head
        for _ in range(48):
            peak[0] = max(peak[0], _rss_mb(pid))
            yield block
        yield tail

    r = requests.post(
        url + "/api/assets",
        data=body(),
        headers={**alice.bearer, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 201, r.text
    stored = immich.state.assets[r.json()["id"]]
    expected = hashlib.sha1(block * 48).digest()
    import base64

    assert base64.b64decode(stored["checksum"]) == expected
    assert peak[0] - before < 24, (before, peak[0])


def test_access_log_has_the_path_but_never_query_credentials(server_gateway, alice):
    url, log_path, _, _ = server_gateway
    secret = "sekret-api-key-in-query-0123"
    requests.get(url + f"/api/server/ping?apiKey={secret}&key={secret}")
    requests.get(url + "/api/users/me", headers=alice.bearer)
    time.sleep(0.3)
    text = log_path.read_text()
    assert "/api/server/ping" in text and "/api/users/me" in text  # access lines are written
    assert secret not in text and alice.bearer["Authorization"].split()[1] not in text


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_encoded_paths_reach_immich_as_sent(server, tmp_path):
    # Given a gateway in front of an upstream that records request lines
    upstream = _RecordingUpstream()
    with _running_gateway(upstream.url, tmp_path, server) as (url, _):
        upstream.lines.clear()  # the start-up probe
        for path in (
            "/api/assets/abc%3Fx=1",  # an encoded "?" stays in the path
            "/api/foo%23bar",  # an encoded "#" does not cut it
            "/api/foo%FF",  # a byte that is not UTF-8 stays that byte
            "/api/foo%2541",  # "%25" stays "%25"
            "/api/caf%C3%A9/x",
            "/api/view/folder?path=%2Fphotos%2F2024&x=%FF",
        ):
            # When a client sends it
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as c:
                c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                assert c.recv(65536).startswith(b"HTTP/1.1 200")
            # Then Immich is asked for the same resource, in the same encoding
            assert upstream.lines[-1] == f"GET {path} HTTP/1.1".encode(), path


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_a_local_mode_gateway_is_served_on_loopback_only(server, tmp_path, monkeypatch):
    from gateway import server as gw_server

    # Given local mode (no Immich, so no login) told to listen everywhere
    settings = load_settings({}, immich_url="", host="0.0.0.0", data_dir=tmp_path)
    bound = {}

    class Granian:
        def __init__(self, target, address, port, **kw):
            bound["granian"] = (address, port)

        def serve(self):
            pass

    import granian.server
    from gunicorn.app.base import BaseApplication

    monkeypatch.setattr(granian.server, "Server", Granian)
    monkeypatch.setattr(
        BaseApplication, "run", lambda self: bound.setdefault("gunicorn", self.cfg.bind)
    )
    # When the server is started, Then it binds the loopback address, whatever the setting
    gw_server.run(settings, port=3999, server=server)
    assert bound[server] in (("127.0.0.1", 3999), ["127.0.0.1:3999"]), bound


def test_a_broken_chunked_body_is_refused_not_read_as_empty(server_gateway, alice):
    url, _, server, _ = server_gateway
    port = int(url.rsplit(":", 1)[1])
    # Given requests to Twinlens whose chunked bodies are broken (a chunk size that is not
    # hex; a body that ends before its last chunk), where an empty body would mean
    # "nothing asked": a scan of every root, a split that dissolves the group
    token = alice.bearer["Authorization"]
    broken = {
        "bad chunk size": b"zz\r\n{}\r\n0\r\n\r\n",
        "empty chunked": b"0\r\n\r\n",
    }
    for case, body in broken.items():
        head = (
            "POST /api/twinlens/jobs HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: {token}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(head + body)
            answer = b""
            while chunk := c.recv(65536):
                answer += chunk
        # Then each is refused as a bad request, saying why, under either server
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 400"), (server, case, answer[:300])
        assert b"chunked" in rest or b"could not be read" in rest, (server, case, rest[-300:])


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_a_gateway_with_an_in_process_cache_runs_one_worker(server, tmp_path, monkeypatch):
    from gateway import server as gw_server

    started = {}

    class Granian:
        def __init__(self, target, address, port, **kw):
            started["granian"] = kw["workers"]

        def serve(self):
            pass

    import granian.server
    from gunicorn.app.base import BaseApplication

    monkeypatch.setattr(granian.server, "Server", Granian)
    monkeypatch.setattr(
        BaseApplication, "run", lambda self: started.__setitem__("gunicorn", self.cfg.workers)
    )
    # Given the in-process cache (and data version), which one process alone holds
    memory = load_settings({}, immich_url="http://immich:2283", data_dir=tmp_path)
    assert memory.cache_url.startswith("memory")
    # When the gateway is started with several workers, Then it runs one
    gw_server.run(memory, workers=4, port=3999, server=server)
    assert started[server] == 1
    # While with Redis it runs what it was asked for
    shared = load_settings(
        {},
        immich_url="http://immich:2283",
        data_dir=tmp_path,
        cache_url="redis://127.0.0.1:6379/14",
    )
    gw_server.run(shared, workers=4, port=3999, server=server)
    assert started[server] == 4
