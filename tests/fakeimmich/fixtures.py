"""pytest fixtures for gateway tests: ``from tests.fakeimmich.fixtures import *``.

Immich is the fake one (the only stand-in allowed); the grouping and dedup APIs are the
real ones (``api.create_app``) on this test's PostgreSQL database (``pg_settings``),
each behind a ``tests.realapis.Recorder``: ``grouping_api`` / ``dedup_api`` (their
``url``, ``calls``, ``fail(...)``). ``catalog`` writes catalog rows and runs the real
grouping and dedup passes over them (``tests.realapis.Catalog``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from core.config import Settings, load_settings
from tests.fakeimmich import FakeImmichServer, ThreadedServer
from tests.fakeimmich.spec import spec_path
from tests.realapis import ApiPort, Catalog, Recorder, empty_catalog, recorded_api
from tests.require import missing

SERVICE_TOKEN = "svc-test-token"
LIBRARY_ID = "0b0c2a1e-5b1c-4e7f-9d2a-6f3e1c2b4a5d"


@dataclass
class Caller:
    """An Immich user and ready-made credentials for it."""

    user: dict[str, Any]
    email: str
    password: str
    token: str
    api_key: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def key_header(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}


@pytest.fixture
def immich() -> Iterator[FakeImmichServer]:
    if not spec_path().is_file():
        missing(f"Immich OpenAPI spec not found at {spec_path()}", shared=True)
    server = FakeImmichServer().start()
    yield server
    server.stop()


def make_caller(
    immich: FakeImmichServer, email: str = "alice@example.com", is_admin: bool = False
) -> Caller:
    user = immich.state.add_user(email, "secret-pw", is_admin=is_admin)
    token = immich.state.new_session(user["id"])
    key = immich.state.add_api_key(user["id"], ["all"])
    return Caller(user, email, "secret-pw", token, key)


@pytest.fixture
def alice(immich: FakeImmichServer) -> Caller:
    # Immich's first user is its administrator: the photographer who runs Twinlens.
    return make_caller(immich, "alice@example.com", is_admin=True)


@pytest.fixture
def bob(immich: FakeImmichServer) -> Caller:
    # Another member of the household: an ordinary Immich user.
    return make_caller(immich, "bob@example.com")


@pytest.fixture
def library(tmp_path) -> Any:
    root = tmp_path / "photos"
    root.mkdir()
    return root


@pytest.fixture
def api_settings(
    pg_url: str, redis_url: str, redis_cache_url: str, tmp_path, library
) -> Iterator[Settings]:
    """The APIs' settings, production-shaped as ``pg_settings`` (PostgreSQL, Redis broker
    and cache), with the gateway's library root and service token. The session's
    PostgreSQL database is emptied after the test by deleting the rows written (pg_db's
    TRUNCATE of every table costs ~0.1 s a test; most gateway tests write nothing)."""
    yield load_settings(
        {},
        data_dir=tmp_path / "data",
        database_url=pg_url,
        broker_url=redis_url,
        cache_url=redis_cache_url,
        library_roots=(library,),
        broker_heartbeat_ms=2000,
        broker_maintenance_chance=1_000_000,
        service_token=SERVICE_TOKEN,
    )
    empty_catalog(pg_url)


@pytest.fixture
def api_broker(api_settings: Settings) -> Iterator[Any]:
    """The APIs' broker (Redis): they only enqueue; no worker runs in gateway tests."""
    from core.broker import make_broker

    broker = make_broker(api_settings)
    yield broker
    broker.close()


@pytest.fixture
def catalog(api_settings: Settings, library) -> Catalog:
    return Catalog(api_settings, library)


@pytest.fixture(scope="session")
def api_ports() -> Iterator[dict[str, ApiPort]]:
    ports = {"grouping": ApiPort(), "dedup": ApiPort()}
    yield ports
    for port in ports.values():
        port.close()


def _served(which: str, ports: dict[str, ApiPort], settings: Settings) -> Iterator[Recorder]:
    from core.broker import make_broker

    brokers: list[Any] = []

    def broker() -> Any:  # the APIs only enqueue (POST /scans); no worker runs here
        brokers.append(make_broker(settings))
        return brokers[-1]

    api = recorded_api(which, settings, broker)
    ports[which].serve(api)
    yield api
    ports[which].serve(None)
    for b in brokers:
        b.close()


@pytest.fixture
def grouping_api(api_ports, api_settings: Settings) -> Iterator[Recorder]:
    """The real grouping API of this test (built on its first request), recorded."""
    yield from _served("grouping", api_ports, api_settings)


@pytest.fixture
def dedup_api(api_ports, api_settings: Settings) -> Iterator[Recorder]:
    """The real dedup API of this test (built on its first request), recorded."""
    yield from _served("dedup", api_ports, api_settings)


@pytest.fixture
def grouping_url(grouping_api: Recorder) -> str:
    return grouping_api.url


@pytest.fixture
def dedup_url(dedup_api: Recorder) -> str:
    return dedup_api.url


@pytest.fixture
def gateway_settings(immich, grouping_url, dedup_url, tmp_path, library) -> Settings:
    return load_settings(
        {},
        immich_url=immich.url,
        grouping_url=grouping_url,
        dedup_url=dedup_url,
        service_token=SERVICE_TOKEN,
        data_dir=tmp_path / "data",
        cache_url="memory://",
        library_roots=(library,),
        path_map=(("/mnt/photos", str(library)),),
    )


@pytest.fixture
def gateway_app(gateway_settings):
    from gateway import create_app

    app = create_app({"SETTINGS": gateway_settings, "TESTING": True})
    with app.app_context():
        from gateway.cache import cache

        cache.clear()
    return app


@pytest.fixture
def gateway(gateway_app) -> Iterator[ThreadedServer]:
    server = ThreadedServer(gateway_app).start()
    yield server
    server.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    s = requests.Session()
    s.trust_env = False
    yield s
    s.close()
