"""pytest fixtures for gateway tests: ``from tests.fakeimmich.fixtures import *``.

``grouping_url`` / ``dedup_url`` default to in-process stand-ins; to run the same tests
against the real APIs, override those two fixtures (and seed through the real services).
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
from tests.fakeimmich.standins import ServiceState, create_service_app
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
def grouping_state() -> ServiceState:
    return ServiceState(SERVICE_TOKEN)


@pytest.fixture
def dedup_state() -> ServiceState:
    return ServiceState(SERVICE_TOKEN)


@pytest.fixture
def grouping_url(grouping_state: ServiceState) -> Iterator[str]:
    server = ThreadedServer(create_service_app("grouping", grouping_state)).start()
    yield server.url
    server.stop()


@pytest.fixture
def dedup_url(dedup_state: ServiceState) -> Iterator[str]:
    server = ThreadedServer(create_service_app("dedup", dedup_state)).start()
    yield server.url
    server.stop()


@pytest.fixture
def library(tmp_path) -> Any:
    root = tmp_path / "photos"
    root.mkdir()
    return root


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
