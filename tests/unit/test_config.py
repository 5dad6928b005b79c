"""Settings: defaults, parsing, masking, and the README documenting every variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import VARIABLES, ConfigError, load_settings, mask_secret

README = Path(__file__).resolve().parents[2] / "README.md"


def test_embedded_default_needs_no_server(tmp_path):
    cfg = load_settings({"TWINLENS_DATA_DIR": str(tmp_path)})
    assert cfg.database_url == f"sqlite:///{tmp_path / 'twinlens.db'}"
    assert cfg.embedded and cfg.local_mode
    assert cfg.schedule_cron == "0 3 * * *"


def test_values_are_parsed_and_validated(tmp_path):
    cfg = load_settings(
        {
            "TWINLENS_LIBRARY_ROOTS": f"{tmp_path}/a:{tmp_path}/b",
            "TWINLENS_PATH_MAP": "/mnt/photos=/photos,/mnt/photos/old=/archive",
            "TWINLENS_WATCH_POLLING": "yes",
            "TWINLENS_BROKER_URL": "redis://127.0.0.1:6379/0",
        }
    )
    assert [p.name for p in cfg.library_roots] == ["a", "b"]
    assert cfg.path_map[0] == ("/mnt/photos/old", "/archive")  # longest prefix first
    assert cfg.watch_polling and not cfg.embedded
    with pytest.raises(ConfigError, match="TWINLENS_BATCH_FILES"):
        load_settings({"TWINLENS_BATCH_FILES": "many"})
    with pytest.raises(ConfigError, match="TWINLENS_PRIMARY_POLICY"):
        load_settings({"TWINLENS_PRIMARY_POLICY": "largest"})
    with pytest.raises(ConfigError):
        load_settings({"TWINLENS_PATH_MAP": "nomapping"})


def test_admin_only_is_on_unless_plainly_turned_off(tmp_path):
    assert load_settings({}).admin_only is True
    assert load_settings({"TWINLENS_ADMIN_ONLY": ""}).admin_only is True
    for off in ("0", "false", "No", "off"):
        assert load_settings({"TWINLENS_ADMIN_ONLY": off}).admin_only is False
    # A typo must not quietly open Twinlens to every user (nor close it)
    with pytest.raises(ConfigError, match="TWINLENS_ADMIN_ONLY must be 1 or 0"):
        load_settings({"TWINLENS_ADMIN_ONLY": "flase"})


def test_settings_are_frozen():
    cfg = load_settings({})
    with pytest.raises(AttributeError):
        cfg.batch_files = 3  # type: ignore[misc]


def test_secrets_are_masked_and_never_in_repr():
    cfg = load_settings(
        {
            "TWINLENS_SERVICE_TOKEN": "s3cret-token",
            "TWINLENS_DATABASE_URL": "postgresql://tl:hunter2@db:5432/twinlens",
        }
    )
    shown = cfg.masked()
    assert shown["TWINLENS_SERVICE_TOKEN"] == "***"
    assert shown["TWINLENS_DATABASE_URL"] == "postgresql://tl:***@db:5432/twinlens"
    assert "s3cret-token" not in repr(cfg)
    assert mask_secret("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("password", ["ab/cd+ef==", "p%40ss#w?rd", "a:b", "x/y?z#w", "plain"])
def test_url_passwords_are_masked_whatever_they_hold(password):
    from urllib.parse import unquote

    from sqlalchemy.engine import make_url

    # Given a URL whose password holds what base64 or a password manager puts in one
    url = f"postgresql+psycopg2://twinlens:{password}@db:5432/twinlens"
    assert make_url(url).password == unquote(password)  # the database reads it so
    # Then none of it is shown, and the rest of the URL is
    assert mask_secret(url) == "postgresql+psycopg2://twinlens:***@db:5432/twinlens"
    assert mask_secret(f"redis://:{password}@redis:6379/1") == "redis://:***@redis:6379/1"


def test_every_variable_is_documented_in_the_readme():
    text = README.read_text()
    missing = [name for name in VARIABLES if f"`{name}`" not in text]
    assert missing == []


def test_twinlens_config_prints_masked_settings(capsys, monkeypatch):
    import twinlens

    monkeypatch.setenv("TWINLENS_SERVICE_TOKEN", "abc-very-secret")
    assert twinlens.main(["config"]) == 0
    out = capsys.readouterr().out
    assert "TWINLENS_SERVICE_TOKEN" in out and "abc-very-secret" not in out
