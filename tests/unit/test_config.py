"""Settings: defaults, parsing, masking, and the README documenting every variable."""

from __future__ import annotations

import re
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


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_database_is_refused(url):
    # Each connection would be a database of its own: the workers would see nothing.
    with pytest.raises(ConfigError, match="in-memory"):
        load_settings({"TWINLENS_DATABASE_URL": url})


def test_a_cache_url_that_is_no_redis_is_refused_without_echoing_it():
    with pytest.raises(ConfigError, match="TWINLENS_CACHE_URL") as e:
        load_settings({"TWINLENS_CACHE_URL": "memcached://u:s3cret@cache:11211"})
    assert "s3cret" not in str(e.value)
    for ok in ("memory://", "redis://r:6379/1", "rediss://r:6380/1", "unix:///run/redis.sock"):
        assert load_settings({"TWINLENS_CACHE_URL": ok}).cache_url == ok


def test_a_malformed_database_url_is_refused_without_echoing_it():
    with pytest.raises(ConfigError, match="TWINLENS_DATABASE_URL") as e:
        load_settings({"TWINLENS_DATABASE_URL": "postgres ql://u:s3cret@host/db"})
    assert "s3cret" not in str(e.value)


def test_admin_only_is_on_unless_plainly_turned_off(tmp_path):
    assert load_settings({}).admin_only is True
    assert load_settings({"TWINLENS_ADMIN_ONLY": ""}).admin_only is True
    for off in ("0", "false", "No", "off"):
        assert load_settings({"TWINLENS_ADMIN_ONLY": off}).admin_only is False
    # A typo must not quietly open Twinlens to every user (nor close it)
    with pytest.raises(ConfigError, match="TWINLENS_ADMIN_ONLY must be 1 or 0"):
        load_settings({"TWINLENS_ADMIN_ONLY": "flase"})


def test_watch_polling_is_parsed_strictly():
    assert load_settings({}).watch_polling is False
    assert load_settings({"TWINLENS_WATCH_POLLING": ""}).watch_polling is False
    for on in ("1", "true", "Yes", " on "):
        assert load_settings({"TWINLENS_WATCH_POLLING": on}).watch_polling is True
    for off in ("0", "false", "No", "off"):
        assert load_settings({"TWINLENS_WATCH_POLLING": off}).watch_polling is False
    # A typo on an NFS share would quietly mean inotify, which sees no change there
    for typo in ("ture", "polling", "2", "y"):
        with pytest.raises(ConfigError, match="TWINLENS_WATCH_POLLING must be 1 or 0") as e:
            load_settings({"TWINLENS_WATCH_POLLING": typo})
        assert repr(typo.strip().lower()) in str(e.value)


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


def test_every_variable_is_documented_in_the_readme_as_it_is():
    # Each variable has a row in the README's table, with the default and the meaning
    # the code has: a changed default must change what the photographer reads.
    rows = {
        m.group(1): (m.group(2).strip(), m.group(3).strip())
        for m in re.finditer(
            r"^\| `(TWINLENS_[A-Z_]+)` \| (.*?) \| (.*) \|$", README.read_text(), re.M
        )
    }
    assert set(VARIABLES) <= set(rows)
    for name, (_field, default, meaning) in VARIABLES.items():
        shown = f"`{default}`" if default else ("(empty)" if default == "" else "(computed)")
        assert rows[name] == (shown, meaning), name


def test_unset_variables_take_the_documented_defaults(tmp_path):
    documented = {name: d for name, (_f, d, _m) in VARIABLES.items() if d is not None}
    assert load_settings({"TWINLENS_DATA_DIR": str(tmp_path)}) == load_settings(
        {**documented, "TWINLENS_DATA_DIR": str(tmp_path)}
    )
    cfg = load_settings({"TWINLENS_DATA_DIR": str(tmp_path)})
    # the watcher's: long enough for a copy over SMB to settle, inotify unless told
    assert (cfg.watch_settle, cfg.watch_polling, cfg.watch_interval) == (2.0, False, 5.0)


def test_a_percent_sign_in_the_database_url_migrates(tmp_path):
    from core.db import migrate

    # alembic's ini parser reads % as interpolation: a data folder named "100%" (or a
    # percent-encoded password) must not stop every process at startup
    url = f"sqlite:///{tmp_path / '100%' / 'twinlens.db'}"
    (tmp_path / "100%").mkdir()
    migrate(url)
    assert (tmp_path / "100%" / "twinlens.db").stat().st_size > 0


def test_twinlens_config_prints_masked_settings(capsys, monkeypatch):
    import twinlens

    monkeypatch.setenv("TWINLENS_SERVICE_TOKEN", "abc-very-secret")
    monkeypatch.setenv("TWINLENS_DATABASE_URL", "postgresql://tl:db-secret@db/twinlens")
    monkeypatch.setenv("TWINLENS_BROKER_URL", "redis://:broker-secret@redis:6379/0")
    monkeypatch.setenv("TWINLENS_CACHE_URL", "redis://:cache-secret@redis:6379/1")
    assert twinlens.main(["config"]) == 0
    out = capsys.readouterr().out
    assert "TWINLENS_SERVICE_TOKEN" in out and "redis://:***@redis:6379/1" in out
    for secret in ("abc-very-secret", "db-secret", "broker-secret", "cache-secret"):
        assert secret not in out


def test_a_library_root_inside_another_is_refused(tmp_path) -> None:
    outer, inner = tmp_path / "photos", tmp_path / "photos" / "2024"
    with pytest.raises(ConfigError, match="is inside"):
        load_settings({"TWINLENS_LIBRARY_ROOTS": f"{outer}:{inner}"})
    # Siblings, and names that merely start alike, are fine
    ok = load_settings({"TWINLENS_LIBRARY_ROOTS": f"{outer}:{tmp_path / 'photos-old'}"})
    assert len(ok.library_roots) == 2
