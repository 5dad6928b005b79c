"""The gateway serves the built UI outside /api/ (the embedded default has no nginx)."""

from __future__ import annotations

from core.config import load_settings
from gateway import create_app


def test_ui_is_served_beside_the_api(tmp_path):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><div id=root></div>")
    (dist / "assets" / "app-1234.js").write_text("console.log(1)")
    app = create_app({"SETTINGS": load_settings({}, data_dir=tmp_path), "UI_DIST": str(dist)})
    client = app.test_client()
    assert b"id=root" in client.get("/").data
    assert client.get("/duplicates?status=open").data == client.get("/").data  # SPA route
    js = client.get("/assets/app-1234.js")
    assert js.status_code == 200 and b"console.log" in js.data
    # /api stays the API: local mode, Twinlens endpoints answer JSON, not the page
    api = client.get("/api/twinlens/nope")
    assert (api.status_code, api.get_json()) == (
        404,
        {"message": "Cannot GET /api/twinlens/nope", "statusCode": 404},
    )
    for path in ("/api", "/api/assets/x"):  # no Immich route in local mode: still JSON
        assert client.get(path).get_json()["statusCode"] == 404, path
    wrong = client.delete("/api/twinlens/me")
    assert wrong.status_code == 405 and wrong.get_json()["statusCode"] == 405
    assert "GET" in wrong.headers["Allow"]


def test_no_ui_without_a_build(tmp_path):
    app = create_app(
        {"SETTINGS": load_settings({}, data_dir=tmp_path), "UI_DIST": str(tmp_path / "none")}
    )
    assert app.test_client().get("/").status_code == 404
