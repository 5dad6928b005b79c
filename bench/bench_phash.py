"""pHash throughput per core: naive imagehash vs our catalog path vs the decoder floor.

Generates a dozen photo-like JPEGs (12 MP and 24 MP, q90) in a temp folder, then in one
run and one thread measures images/s of:

  naive      imagehash.phash(Image.open(p))                      (full decode)
  ours-scan  inspect_file(p, full_hash=False) as the catalog calls it: one read,
             SHA-256 + SHA-1 of the bytes, EXIF, draft decode, pHash
  ours-phash read bytes + open_image (draft) + phash_of, no content hashes
  floor      Image.open(p); draft('L', 1/8 scale); load()        (nothing else)

Usage: .venv/bin/python bench/bench_phash.py [--files-per-size 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.media.decode import open_image  # noqa: E402
from core.media.inspect import inspect_file  # noqa: E402
from core.media.phash import phash_of  # noqa: E402

SIZES = {"12MP": (4000, 3000), "24MP": (6000, 4000)}


def photo(width: int, height: int, seed: int) -> Image.Image:
    """Gradients, shapes and noise: compresses like a photo (not like flat colour)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 255 * (x / width) * (0.5 + 0.5 * np.sin(y / (37 + seed)))
    g = 255 * (y / height) * (0.6 + 0.4 * np.cos(x / (53 + seed)))
    b = 128 + 100 * np.sin((x + 2 * y) / (71 + 5 * seed))
    arr = np.stack([r, g, b], axis=-1)
    arr += rng.normal(0, 10, arr.shape).astype(np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = (
            int(rng.integers(width // 40, width // 5)),
            int(rng.integers(height // 40, height // 5)),
        )
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(
            (x0, y0, x0 + w, y0 + h), fill=colour
        )
    return img


def make_files(folder: Path, per_size: int) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for label, (w, h) in SIZES.items():
        files[label] = []
        for i in range(per_size):
            path = folder / f"{label}_{i}.jpg"
            photo(w, h, seed=i + (100 if label == "24MP" else 0)).save(path, "JPEG", quality=90)
            files[label].append(str(path))
    return files


def naive(path: str) -> str:
    return str(imagehash.phash(Image.open(path)))


def ours_scan(path: str) -> str:
    facts = inspect_file(path, full_hash=False)
    assert facts.error is None and facts.sha256 and facts.phash, facts.error
    return facts.phash


def ours_phash(path: str) -> str:
    with open(path, "rb", buffering=0) as fh:
        data = fh.read()
    decoded = open_image(data, "jpeg")
    return phash_of(decoded.image, decoded.orientation).hex()


def floor(path: str) -> None:
    img = Image.open(path)
    img.draft("L", (img.size[0] // 8, img.size[1] // 8))
    img.load()


def floor_rgb(path: str) -> None:
    img = Image.open(path)
    img.draft("RGB", (img.size[0] // 8, img.size[1] // 8))
    img.load()


def measure_all(
    variants: dict[str, Callable[[str], object]], paths: list[str], rounds: int
) -> dict[str, float]:
    """Images per second on one thread per variant.

    Variants are interleaved file by file and each file's time is the best of
    ``rounds``, so a burst of load from other processes on the machine hits all
    variants alike and is mostly filtered out. Files are in the page cache.
    """
    best = {k: [float("inf")] * len(paths) for k in variants}
    for _ in range(rounds):
        for i, p in enumerate(paths):
            for k, fn in variants.items():
                t0 = time.perf_counter()
                fn(p)
                best[k][i] = min(best[k][i], time.perf_counter() - t0)
    return {k: len(paths) / sum(v) for k, v in best.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files-per-size", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_phash_") as tmp:
        t0 = time.perf_counter()
        files = make_files(Path(tmp), args.files_per_size)
        all_paths = [p for ps in files.values() for p in ps]
        mb = sum(os.path.getsize(p) for p in all_paths) / len(all_paths) / 1e6
        print(
            f"generated {len(all_paths)} JPEGs (mean {mb:.1f} MB) in {time.perf_counter() - t0:.1f}s"
        )
        for p in all_paths:  # warm the page cache so every variant reads from RAM
            Path(p).read_bytes()
        # Hash quality of the draft path against the full decode.
        dists = [
            imagehash.hex_to_hash(ours_phash(p)) - imagehash.phash(Image.open(p)) for p in all_paths
        ]
        print(f"Hamming(draft pHash, full-decode pHash): {dists}")
        variants = {
            "naive": naive,
            "ours-scan": ours_scan,
            "ours-phash": ours_phash,
            "floor": floor,
            "floor-rgb": floor_rgb,
        }
        print(
            f"\nimages/s on one core (per-file best of {args.rounds} interleaved rounds), "
            f"{os.cpu_count()} cores"
        )
        header = f"{'set':6} " + " ".join(f"{k:>10}" for k in variants)
        header += f" {'scan/naive':>11} {'phash/naive':>12} {'floor/scan':>11} {'floor/phash':>12}"
        print(header)
        for label, paths in [*files.items(), ("all", all_paths)]:
            rate = measure_all(variants, paths, args.rounds)
            print(
                f"{label:6} "
                + " ".join(f"{rate[k]:10.2f}" for k in variants)
                + f" {rate['ours-scan'] / rate['naive']:10.2f}x"
                + f" {rate['ours-phash'] / rate['naive']:11.2f}x"
                + f" {rate['floor'] / rate['ours-scan']:10.2f}x"
                + f" {rate['floor'] / rate['ours-phash']:11.2f}x"
            )
        print("\ntargets: ours vs naive >= 3.5x; floor/ours <= 1.25x")


if __name__ == "__main__":
    main()
