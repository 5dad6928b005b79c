"""Shared fixtures. Sample-library access lives in tests/samples.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.samples import read_manifest, require_samples


@pytest.fixture(scope="session")
def samples() -> Path:
    """The shared sample library (skips, or fails in CI, when it is absent)."""
    return require_samples()


@pytest.fixture(scope="session")
def manifest(samples: Path) -> list[dict[str, str]]:
    """Rows of MANIFEST.tsv: path, kind, format, camera, datetime_original, width, height, phash, notes, ..."""
    return read_manifest(samples)
