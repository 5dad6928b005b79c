"""Access to the shared sample library, read in place (never copied into the project).

One setting, ``TWINLENS_SAMPLES`` (default ``../shared/sample-library`` beside the
project), names the folder. Tests that need it skip with a clear reason when it is
absent; ``.ci/run`` sets ``TWINLENS_REQUIRE_SAMPLES=1`` so absence fails instead.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from tests.require import missing

PROJECT = Path(__file__).resolve().parent.parent
# The catalog's kind of each MANIFEST.tsv kind that has one (broken files have none).
CATALOG_KIND = {
    "jpeg": "image",
    "heic": "image",
    "png": "image",
    "tiff": "image",
    "raw": "raw",
    "video": "video",
}


def samples_dir() -> Path:
    return Path(os.environ.get("TWINLENS_SAMPLES") or PROJECT.parent / "shared" / "sample-library")


def require_samples() -> Path:
    """The sample folder, or skip (fail under TWINLENS_REQUIRE_SAMPLES=1)."""
    path = samples_dir()
    if (path / "MANIFEST.tsv").is_file():
        return path
    missing(f"sample library not found at {path} (set TWINLENS_SAMPLES)", shared=True)


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path / "MANIFEST.tsv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))
