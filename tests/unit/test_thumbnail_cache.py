"""The local thumbnail cache: a replaced picture shows at once, and leaves no litter."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from core.config import load_settings
from gateway import create_app, thumbs


def _jpeg(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG")


def _replace(path: Path, colour: tuple[int, int, int]) -> None:
    """A re-export over the file: new pixels, a later mtime."""
    before = path.stat().st_mtime_ns
    _jpeg(path, colour)
    os.utime(path, ns=(before, before + 2_000_000_000))


@pytest.fixture
def client(tmp_path: Path):
    settings = load_settings(
        {}, immich_url="", data_dir=tmp_path / "data", library_roots=(tmp_path / "lib",)
    )
    return create_app({"SETTINGS": settings}).test_client()


def test_a_replaced_picture_is_shown_at_once(client, tmp_path: Path) -> None:
    pic = tmp_path / "lib" / "IMG_0001.JPG"
    _jpeg(pic, (200, 30, 30))
    query = {"path": str(pic), "size": 64}
    first = client.get("/api/twinlens/thumbnail", query_string=query)
    assert first.status_code == 200, first.get_json()
    # The browser asks again each time; while the file is unchanged, the answer is a 304
    assert "no-cache" in first.headers["Cache-Control"]
    assert "max-age" not in first.headers["Cache-Control"]
    again = client.get(
        "/api/twinlens/thumbnail",
        query_string=query,
        headers={"If-None-Match": first.headers["ETag"]},
    )
    assert again.status_code == 304
    # When a re-export replaces it, Then the same question gets the new picture
    _replace(pic, (30, 30, 200))
    after = client.get(
        "/api/twinlens/thumbnail",
        query_string=query,
        headers={"If-None-Match": first.headers["ETag"]},
    )
    assert after.status_code == 200
    r, g, b = Image.open(io.BytesIO(after.data)).convert("RGB").getpixel((10, 10))
    assert b > 150 > r


def test_a_new_version_replaces_the_cached_one(tmp_path: Path) -> None:
    pic = tmp_path / "lib" / "IMG_0001.JPG"
    _jpeg(pic, (200, 30, 30))
    data = tmp_path / "data"
    first = thumbs.thumbnail(str(pic), 64, data)
    other_size = thumbs.thumbnail(str(pic), 128, data)
    _replace(pic, (30, 30, 200))
    second = thumbs.thumbnail(str(pic), 64, data)
    # The old version's thumbnail is gone; the other size (its own entry) stays until asked
    assert second != first and not first.exists() and second.exists()
    assert other_size.exists()
    assert sorted(p.name for p in data.rglob("*") if p.is_file()) == sorted(
        [second.name, other_size.name]
    )


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    pic = tmp_path / "lib" / "IMG_0001.JPG"
    _jpeg(pic, (200, 30, 30))

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(thumbs.os, "replace", full)
    with pytest.raises(OSError):
        thumbs.thumbnail(str(pic), 64, tmp_path / "data")
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []


def test_at_most_two_pictures_are_decoded_at_once(monkeypatch) -> None:
    import threading
    import time

    active, most = 0, 0
    lock = threading.Lock()

    def decode(path, size, max_pixels, real_root=None):
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return b"jpeg"

    monkeypatch.setattr(thumbs, "render_thumbnail", decode)
    # Given a page of big pictures asked for all at once
    threads = [threading.Thread(target=thumbs.render, args=(f"/p/{i}.tif", 320)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then they are decoded two at a time: memory for two, not eight
    assert most == 2
