"""The official client, @immich/sdk (npm), works through the gateway exactly as against
Immich itself: login, users/me, asset info, metadata search, thumbnail, original, delete."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fakeimmich.fixtures import *  # noqa: F403 - pytest fixtures
from tests.fakeimmich.fixtures import LIBRARY_ID
from tests.require import missing

SDK_DIR = Path(__file__).resolve().parents[1] / "sdk"


def run_sdk(base_url: str, email: str, password: str, asset_id: str, trash_id: str) -> dict:
    proc = subprocess.run(
        ["node", "check.mjs", base_url, email, password, asset_id, trash_id],
        cwd=SDK_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture
def sdk_ready():
    if shutil.which("node") is None:
        missing("node is not installed")
    if not (SDK_DIR / "node_modules" / "@immich" / "sdk").is_dir():
        missing("run `npm ci --prefix tests/sdk` first")


def test_sdk_through_gateway_matches_direct(sdk_ready, immich, gateway, alice):
    st = immich.state
    asset = st.add_asset(
        alice.user["id"], "/mnt/photos/2024/SDK_1.JPG", content=b"sdk" * 1000, library_id=LIBRARY_ID
    )
    victim = st.add_asset(alice.user["id"], "/data/upload/u/victim.jpg", content=b"victim")

    direct = run_sdk(immich.url, alice.email, alice.password, asset["id"], victim["id"])
    assert direct["afterDelete"]["isTrashed"] is True
    st.assets[victim["id"]]["isTrashed"] = False

    via = run_sdk(gateway.url, alice.email, alice.password, asset["id"], victim["id"])
    assert st.assets[victim["id"]]["isTrashed"] is True
    assert via.pop("assetInfoHasTwinlens") is True
    assert direct.pop("assetInfoHasTwinlens") is False
    assert via == direct
    assert via["anonymous"] == {"status": 401, "data": {"message": "Authentication required"}}
    assert via["me"]["email"] == alice.email
    assert via["search"][0]["id"] == asset["id"]
    assert via["missing"]["status"] == 400
