"""What a test needs from outside the project, and what to do when it is absent.

Run by hand, a test skips with the reason. ``.ci/run`` sets ``TWINLENS_REQUIRE_SERVICES=1``
(PostgreSQL, Redis, node and npm packages, Chromium, docker-compose) and
``TWINLENS_REQUIRE_SAMPLES=1`` (``../shared``: the sample library and Immich's OpenAPI
spec), and then an absence fails the test: a green CI run never hides a missing part.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(reason: str, *, shared: bool = False) -> NoReturn:
    """Skip with ``reason``, or fail when CI requires the part (``shared``: a file of
    ``../shared``, else a service or tool)."""
    flag = "TWINLENS_REQUIRE_SAMPLES" if shared else "TWINLENS_REQUIRE_SERVICES"
    if os.environ.get(flag) == "1":
        pytest.fail(f"{reason} ({flag}=1)")
    pytest.skip(reason)
