"""The gateway as it runs in production (gunicorn, gthread) in front of the fake Immich:
large originals take the splice(2) path there, which the in-process tests cannot reach."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.fakeimmich.fixtures import *  # noqa: F403

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def gunicorn_gateway(immich, tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TWINLENS_IMMICH_URL": immich.url,
           "TWINLENS_CACHE_URL": "memory://", "TWINLENS_DATA_DIR": str(tmp_path / "data"),
           "TWINLENS_LOG_LEVEL": "INFO"}
    code = ("from gateway import serve; from core.config import load_settings; "
            f"serve(load_settings(), workers=1, threads=4, port={port}, access_log=True)")
    log = open(tmp_path / "gunicorn.log", "w+")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url + "/api/server/ping", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("gateway did not start")
    yield url, tmp_path / "gunicorn.log"
    proc.terminate()
    proc.wait(10)
    log.close()


def test_large_original_streams_exactly_and_the_pool_survives_aborts(gunicorn_gateway, immich, alice,
                                                                     tmp_path):
    url, log_path = gunicorn_gateway
    big = tmp_path / "big.mov"
    data = os.urandom(24 * MB + 12345)
    big.write_bytes(data)
    asset = immich.state.add_asset(alice.user["id"], "/upload/big.mov", file=str(big))
    original = f"{url}/api/assets/{asset['id']}/original"

    r = requests.get(original, headers=alice.bearer)
    assert r.status_code == 200 and hashlib.sha1(r.content).digest() == hashlib.sha1(data).digest()

    r = requests.get(original, headers={**alice.bearer, "Range": f"bytes={MB}-{9 * MB - 1}"})
    assert r.status_code == 206 and r.content == data[MB: 9 * MB]

    for _ in range(3):  # client goes away half-way: the next requests still work
        with requests.get(original, headers=alice.bearer, stream=True) as r:
            next(r.iter_content(MB))
    for _ in range(20):
        assert requests.get(url + "/api/server/ping").json() == {"res": "pong"}
    r = requests.get(original, headers=alice.bearer)
    assert r.content == data

    # gunicorn's access log counts the bytes that bypassed it.
    time.sleep(0.2)
    sizes = [line.split()[-2] for line in log_path.read_text().splitlines()
             if "/original" in line and '" 200 ' in line]
    assert str(len(data)) in sizes, sizes
