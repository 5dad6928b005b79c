"""Settings: one frozen object read from the environment.

Every variable is listed in ``VARIABLES`` (name, default, help) so that the README,
``twinlens config`` and this module cannot drift apart. Secrets are masked whenever
settings are printed or logged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

SECRET_FIELDS = frozenset(
    {"service_token", "database_url", "broker_url", "cache_url", "immich_api_key"}
)


def default_data_dir(env: Mapping[str, str]) -> Path:
    """Per-user data folder (XDG on Linux), used for the embedded SQLite file and caches."""
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "twinlens"


# name -> (field, default (None = computed), help). Order is the README's order.
VARIABLES: dict[str, tuple[str, str | None, str]] = {
    "TWINLENS_DATA_DIR": (
        "data_dir",
        None,
        "Folder for the embedded database, thumbnails and other local state. Default: `$XDG_DATA_HOME/twinlens` or `~/.local/share/twinlens`.",
    ),
    "TWINLENS_DATABASE_URL": (
        "database_url",
        None,
        "SQLAlchemy URL of the database. Default: SQLite file `twinlens.db` in the data folder. Production: `postgresql+psycopg2://user:pass@host:5432/twinlens`.",
    ),
    "TWINLENS_BROKER_URL": (
        "broker_url",
        "memory://",
        "Dramatiq broker. `memory://` runs an in-process broker with worker threads (embedded default); `redis://host:6379/0` for production.",
    ),
    "TWINLENS_CACHE_URL": (
        "cache_url",
        "memory://",
        "Gateway cache. `memory://` for an in-process cache (one process's: `twinlens gateway` then runs one worker, and sees changes made by other processes only as its cached answers expire); `redis://host:6379/1` in production (a different logical DB from the broker; `rediss://` and `unix://` work too).",
    ),
    "TWINLENS_LIBRARY_ROOTS": (
        "library_roots",
        "",
        "Library folders, separated by `:` (os.pathsep), none inside another. Paths in requests are confined to these.",
    ),
    "TWINLENS_BROKER_HEARTBEAT_MS": (
        "broker_heartbeat_ms",
        "60000",
        "Redis broker: a worker silent this long is presumed dead and its unacknowledged messages are redelivered.",
    ),
    "TWINLENS_BROKER_MAINTENANCE_CHANCE": (
        "broker_maintenance_chance",
        "1000",
        "Redis broker: how many broker commands in a million also run queue maintenance (redelivery of dead workers' messages).",
    ),
    "TWINLENS_WORKER_THREADS": (
        "worker_threads",
        "2",
        "Worker threads per worker process (and in the embedded process).",
    ),
    "TWINLENS_BATCH_FILES": ("batch_files", "128", "Files per scan batch message."),
    "TWINLENS_BATCH_BYTES": (
        "batch_bytes",
        "268435456",
        "Upper bound of bytes per scan batch message (256 MiB).",
    ),
    "TWINLENS_IGNORE": (
        "ignore",
        "@eaDir,#recycle,#snapshot,.@__thumb,.DS_Store,._*,Thumbs.db,.Trash-*,$RECYCLE.BIN,.stfolder,.stversions",
        "File and folder name patterns (fnmatch, `,`-separated) the scan skips: NAS thumbnails, trash, OS litter.",
    ),
    "TWINLENS_JOB_STALE_SECONDS": (
        "job_stale_seconds",
        "3600",
        "An active scan with no progress for this long is presumed lost (e.g. its messages died with a broker restart): the next scan request fails it and starts a new one; with Redis the scheduler fails any such job with no message waiting (past twice this, whatever Redis holds).",
    ),
    "TWINLENS_MAX_IMAGE_PIXELS": (
        "max_image_pixels",
        "250000000",
        "Images with more pixels are refused as decompression bombs.",
    ),
    "TWINLENS_SCHEDULE_CRON": (
        "schedule_cron",
        "0 3 * * *",
        "Cron expression (5 fields) of the nightly scan (incremental; its dedup pass is a full one), read as cron reads it: weekdays 0-7 (0 and 7 are Sunday) or names, ranges and steps; with both a day of the month and a weekday, either one fires.",
    ),
    "TWINLENS_TIMEZONE": (
        "timezone",
        "",
        "IANA time zone of the schedule. Default: the machine's local zone.",
    ),
    "TWINLENS_SERVICE_TOKEN": (
        "service_token",
        "",
        "Shared secret the gateway sends to the grouping and dedup APIs. Required by those APIs when set; when empty they accept only loopback callers.",
    ),
    "TWINLENS_GROUPING_URL": (
        "grouping_url",
        "http://127.0.0.1:8000",
        "Where the gateway finds the grouping API.",
    ),
    "TWINLENS_DEDUP_URL": (
        "dedup_url",
        "http://127.0.0.1:8001",
        "Where the gateway finds the dedup API.",
    ),
    "TWINLENS_IMMICH_URL": (
        "immich_url",
        "",
        "Immich server, e.g. `http://immich-server:2283`. Empty: local mode (gateway serves only Twinlens, on loopback, without login).",
    ),
    "TWINLENS_IMMICH_API_KEY": (
        "immich_api_key",
        "",
        "An Immich API key for `twinlens stack`: its owner's groups are stacked in Immich through the gateway. It needs the permissions `user.read`, `stack.read`, `stack.create`, `asset.read` and `asset.upload` (or `all`), and an administrator's key unless `TWINLENS_ADMIN_ONLY=0`. Never logged or printed.",
    ),
    "TWINLENS_GATEWAY_URL": (
        "gateway_url",
        "http://127.0.0.1:3000",
        "Where `twinlens stack` finds the gateway.",
    ),
    "TWINLENS_ADMIN_ONLY": (
        "admin_only",
        "1",
        "1: Twinlens's own routes under `/api/twinlens/` (all but `/me`) answer only Immich administrators, as Immich's job and library routes do, because they show and act on every file in the library roots, whoever's it is. 0: every Immich user may (one household sharing one library). Enriched Immich answers are for everyone either way; with 1, an ordinary user's enriched answers do not name the group and duplicate members their Immich does not show them.",
    ),
    "TWINLENS_PATH_MAP": (
        "path_map",
        "",
        "Immich path prefix to Twinlens path prefix, `immich=twinlens`, several separated by `,` (e.g. `/mnt/photos=/photos`).",
    ),
    "TWINLENS_PHASH_THRESHOLD": (
        "phash_threshold",
        "8",
        "Largest pHash Hamming distance (bits of 64) that counts as the same picture.",
    ),
    "TWINLENS_FORMAT_PREFERENCE": (
        "format_preference",
        "raw,heic,jpeg,png,tiff,webp",
        "Keeper format order, best first.",
    ),
    "TWINLENS_PREFERRED_FOLDERS": (
        "preferred_folders",
        "",
        "Folders whose copies are preferred as keepers, separated by `:`.",
    ),
    "TWINLENS_PRIMARY_POLICY": (
        "primary_policy",
        "rendition",
        "Primary of a RAW+JPEG group: `rendition` (JPEG/HEIC cover, as Immich shows it) or `raw`.",
    ),
    "TWINLENS_WATCH_POLLING": (
        "watch_polling",
        "0",
        "1: use a polling observer (NFS/SMB mounts deliver no inotify events).",
    ),
    "TWINLENS_WATCH_INTERVAL": (
        "watch_interval",
        "5",
        "Seconds between polls of the polling observer.",
    ),
    "TWINLENS_WATCH_SETTLE": (
        "watch_settle",
        "2",
        "Seconds a file's size must stay unchanged before the watcher enqueues it.",
    ),
    "TWINLENS_GATEWAY_SERVER": (
        "gateway_server",
        "granian",
        "HTTP server of the gateway: `granian` (lower cost per request; bench/RESULTS.md) or `gunicorn` (gthread; large originals move by splice(2)).",
    ),
    "TWINLENS_HOST": (
        "host",
        "127.0.0.1",
        "Address the HTTP servers bind to (not `twinlens up`, which serves 127.0.0.1 only).",
    ),
    "TWINLENS_LOG_LEVEL": ("log_level", "INFO", "Python log level."),
}


# The folder of TWINLENS_DATA_DIR where `twinlens up` without a library generates its demo
# (workers/embedded.py); the gateway marks that root as the demo for the UI.
DEMO_LIBRARY = "demo-library"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str = "memory://"
    cache_url: str = "memory://"
    library_roots: tuple[Path, ...] = ()
    broker_heartbeat_ms: int = 60000
    broker_maintenance_chance: int = 1000
    worker_threads: int = 2
    batch_files: int = 128
    batch_bytes: int = 256 * 1024 * 1024
    ignore: tuple[str, ...] = ()
    job_stale_seconds: int = 3600
    max_image_pixels: int = 250_000_000
    schedule_cron: str = "0 3 * * *"
    timezone: str = ""
    service_token: str = field(default="", repr=False)
    grouping_url: str = "http://127.0.0.1:8000"
    dedup_url: str = "http://127.0.0.1:8001"
    immich_url: str = ""
    immich_api_key: str = field(default="", repr=False)
    gateway_url: str = "http://127.0.0.1:3000"
    admin_only: bool = True
    path_map: tuple[tuple[str, str], ...] = ()
    phash_threshold: int = 8
    format_preference: tuple[str, ...] = ("raw", "heic", "jpeg", "png", "tiff", "webp")
    preferred_folders: tuple[Path, ...] = ()
    primary_policy: str = "rendition"
    watch_polling: bool = False
    watch_interval: float = 5.0
    watch_settle: float = 2.0
    gateway_server: str = "granian"
    host: str = "127.0.0.1"
    log_level: str = "INFO"

    @property
    def embedded(self) -> bool:
        """True when the broker runs inside this process (no Redis)."""
        return self.broker_url.startswith("memory:")

    @property
    def local_mode(self) -> bool:
        """True when no Immich server is configured (gateway without login)."""
        return not self.immich_url

    def masked(self) -> dict[str, str]:
        """Effective settings by environment variable, secrets masked, for printing."""
        out: dict[str, str] = {}
        for var, (attr, _default, _help) in VARIABLES.items():
            value = getattr(self, attr)
            text = _render(value)
            if attr in SECRET_FIELDS:
                text = mask_secret(text)
            out[var] = text
        return out


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        if value and isinstance(value[0], tuple):
            return ",".join(f"{a}={b}" for a, b in value)
        sep = ":" if value and isinstance(value[0], Path) else ","
        return sep.join(str(v) for v in value)
    return str(value)


def mask_secret(text: str) -> str:
    """Hide a secret; for URLs hide only the password so the host stays visible."""
    if not text:
        return text
    if "://" in text:
        # As SQLAlchemy reads a URL: the password runs to the last "@", so it may hold
        # "/", "?" or "#" (an `openssl rand -base64` one does), which urlsplit would
        # take for the start of the path and leave the password in plain sight.
        m = _URL_PASSWORD.match(text)
        return f"{m['head']}***{m['tail']}" if m and m["password"] else text
    return "***"


_URL_PASSWORD = re.compile(r"(?P<head>[^:/]+://[^:/@]*:)(?P<password>.*)(?P<tail>@[^@]*)\Z", re.S)


class ConfigError(ValueError):
    """A variable holds a value Twinlens cannot use."""


def _int(env: Mapping[str, str], name: str, minimum: int = 0) -> int:
    raw = env.get(name) or VARIABLES[name][1] or "0"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name) or VARIABLES[name][1] or "0"
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _str(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    return value if value is not None and value != "" else (VARIABLES[name][1] or "")


def _bool(env: Mapping[str, str], name: str) -> bool:
    # Strict on purpose: a misspelt "flase" must not quietly open or close anything.
    raw = _str(env, name).strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true or false), got {raw!r}")


def _paths(raw: str) -> tuple[Path, ...]:
    return tuple(Path(os.path.abspath(os.path.expanduser(p))) for p in raw.split(os.pathsep) if p)


def _roots(raw: str) -> tuple[Path, ...]:
    """Library roots, none inside another: a file has one root, and nested roots would
    each catalog the inner one's files (their rows moving back and forth)."""
    roots = _paths(raw)
    for a in roots:
        for b in roots:
            if a != b and b.is_relative_to(a):
                raise ConfigError(
                    f"TWINLENS_LIBRARY_ROOTS: {b} is inside {a}; list only {a} (a folder "
                    "inside a root is scanned with it)"
                )
    return roots


def _path_map(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ConfigError(f"TWINLENS_PATH_MAP entries look like immich=twinlens, got {item!r}")
        left, right = item.split("=", 1)
        pairs.append((left.rstrip("/") or "/", right.rstrip("/") or "/"))
    # Longest prefix first so that nested mappings win.
    return tuple(sorted(pairs, key=lambda p: -len(p[0])))


def _check_database_url(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("TWINLENS_DATABASE_URL is not a database URL") from None
    # Each connection to an in-memory SQLite database is a database of its own, so the
    # worker threads would each see an empty catalog.
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError(
            "TWINLENS_DATABASE_URL: an in-memory SQLite database cannot be shared by the "
            "worker threads; give a file, e.g. sqlite:////var/lib/twinlens/twinlens.db"
        )


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from ``env`` (default: os.environ); keyword overrides win (tests)."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("TWINLENS_DATA_DIR") or default_data_dir(env))
    database_url = env.get("TWINLENS_DATABASE_URL") or f"sqlite:///{data_dir / 'twinlens.db'}"
    _check_database_url(database_url)
    cache_url = _str(env, "TWINLENS_CACHE_URL")
    if not re.match(r"(memory|redis|rediss|unix)://", cache_url):
        raise ConfigError(
            "TWINLENS_CACHE_URL must be memory:// or a Redis URL (redis://, rediss://, unix://)"
        )
    gateway_server = _str(env, "TWINLENS_GATEWAY_SERVER").lower()
    if gateway_server not in ("granian", "gunicorn"):
        raise ConfigError(
            f"TWINLENS_GATEWAY_SERVER must be 'granian' or 'gunicorn', got {gateway_server!r}"
        )
    policy = _str(env, "TWINLENS_PRIMARY_POLICY")
    if policy not in ("rendition", "raw"):
        raise ConfigError(f"TWINLENS_PRIMARY_POLICY must be 'rendition' or 'raw', got {policy!r}")
    threshold = _int(env, "TWINLENS_PHASH_THRESHOLD")
    if threshold > 32:
        raise ConfigError("TWINLENS_PHASH_THRESHOLD must be between 0 and 32")
    values: dict[str, object] = dict(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=_str(env, "TWINLENS_BROKER_URL"),
        cache_url=cache_url,
        library_roots=_roots(_str(env, "TWINLENS_LIBRARY_ROOTS")),
        broker_heartbeat_ms=_int(env, "TWINLENS_BROKER_HEARTBEAT_MS", 100),
        broker_maintenance_chance=_int(env, "TWINLENS_BROKER_MAINTENANCE_CHANCE"),
        ignore=tuple(p.strip() for p in _str(env, "TWINLENS_IGNORE").split(",") if p.strip()),
        worker_threads=_int(env, "TWINLENS_WORKER_THREADS", 1),
        job_stale_seconds=_int(env, "TWINLENS_JOB_STALE_SECONDS", 60),
        batch_files=_int(env, "TWINLENS_BATCH_FILES", 1),
        batch_bytes=_int(env, "TWINLENS_BATCH_BYTES", 1),
        max_image_pixels=_int(env, "TWINLENS_MAX_IMAGE_PIXELS", 1),
        schedule_cron=_str(env, "TWINLENS_SCHEDULE_CRON"),
        timezone=_str(env, "TWINLENS_TIMEZONE"),
        service_token=_str(env, "TWINLENS_SERVICE_TOKEN"),
        grouping_url=_str(env, "TWINLENS_GROUPING_URL").rstrip("/"),
        dedup_url=_str(env, "TWINLENS_DEDUP_URL").rstrip("/"),
        immich_url=_str(env, "TWINLENS_IMMICH_URL").rstrip("/"),
        # Surrounding blanks are no part of a key (a CRLF .env leaves a \r)
        immich_api_key=_str(env, "TWINLENS_IMMICH_API_KEY").strip(),
        gateway_url=_str(env, "TWINLENS_GATEWAY_URL").rstrip("/"),
        admin_only=_bool(env, "TWINLENS_ADMIN_ONLY"),
        path_map=_path_map(_str(env, "TWINLENS_PATH_MAP")),
        phash_threshold=threshold,
        format_preference=tuple(
            f.strip().lower()
            for f in _str(env, "TWINLENS_FORMAT_PREFERENCE").split(",")
            if f.strip()
        ),
        preferred_folders=_paths(_str(env, "TWINLENS_PREFERRED_FOLDERS")),
        primary_policy=policy,
        gateway_server=gateway_server,
        watch_polling=_bool(env, "TWINLENS_WATCH_POLLING"),
        watch_interval=_float(env, "TWINLENS_WATCH_INTERVAL"),
        watch_settle=_float(env, "TWINLENS_WATCH_SETTLE"),
        host=_str(env, "TWINLENS_HOST"),
        log_level=_str(env, "TWINLENS_LOG_LEVEL").upper(),
    )
    known = {f.name for f in fields(Settings)}
    for key, value in overrides.items():
        if key not in known:
            raise TypeError(f"unknown setting {key!r}")
        values[key] = value
    return Settings(**values)  # type: ignore[arg-type]
