"""HEIF pictures hashed from their embedded thumbnail against the whole picture, same run.

libheif cannot decode at a reduced scale, so before this a 12 MP iPhone picture cost a full
decode (~300 ms) to make a 32x32 hash. ``core.media.decode.open_image`` now decodes the
picture's embedded thumbnail when it is large enough (iPhones store 320x240). This
measures what that gains and what it costs the hashes:

- the real HEIF files of the sample library (an iPhone picture among them), and
- every real photo of the sample library (JPEG, shorter side >= 600 px) encoded as HEIF
  at quality 80 with a 320-pixel thumbnail, as an iPhone stores it.

For each: ``inspect_file``'s time (best of ``--rounds``, one thread, file in the page
cache) with thumbnails and with them turned off (``pillow_heif.options.THUMBNAILS``, the
code before), the Hamming distance between the two pHashes, the largest difference of
the colour grids, and the distance of each to the pHash of the same picture saved as a
JPEG (quality 85: a HEIF and its JPEG export, the pair dedup must find at <= 8 bits).

Two HEIF files of one photo, both hashed from their thumbnails, can add their errors; so
each photo is also encoded as two more HEIFs, as another app or an export would store it:
quality 60 with a 256-pixel thumbnail, and scaled to 2048 pixels on its longer side
(quality 80, 320-pixel thumbnail). Their distances to the first HEIF, all hashed from
whole pictures and all from thumbnails, are the pairs dedup must find between HEIFs.

    .venv/bin/python bench/bench_heif.py [--rounds 3] [--limit 0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import pillow_heif
from _common import PROJECT  # noqa: F401  (puts the project on sys.path)
from PIL import Image

from core.media.inspect import inspect_file
from core.media.phash import hamming
from tests.samples import read_manifest, samples_dir


def best_inspect(path: str, rounds: int, thumbnails: bool):
    pillow_heif.options.THUMBNAILS = thumbnails
    try:
        best, facts = float("inf"), None
        for _ in range(rounds):
            t0 = time.perf_counter()
            facts = inspect_file(path, full_hash=False)
            best = min(best, time.perf_counter() - t0)
        return best, facts
    finally:
        pillow_heif.options.THUMBNAILS = True


def colour_gap(a: str | None, b: str | None) -> int | None:
    if not a or not b:
        return None
    return max(abs(x - y) for x, y in zip(bytes.fromhex(a), bytes.fromhex(b), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0, help="at most this many photos (0: all)")
    args = ap.parse_args()
    lib = samples_dir()
    rows = read_manifest(lib)
    work = Path(tempfile.mkdtemp(prefix="tl-heif-"))
    cases: list[tuple[str, str, str | None]] = []  # (label, heif path, jpeg path or None)
    others: dict[str, list[str]] = {}  # heif path -> the same photo's other HEIFs
    for row in rows:
        if row["kind"] == "heic":
            cases.append((row["path"], str(lib / row["path"]), None))
    photos = [r for r in rows if r["kind"] == "jpeg" and r["format"] == "JPEG"]
    made = 0
    for row in photos:
        try:
            with Image.open(lib / row["path"]) as src:
                src.load()
                if min(src.size) < 600:
                    continue
                img = src.convert("RGB")
        except Exception:
            continue
        # Without the EXIF (and its orientation): the HEIF and the JPEG store the same
        # pixels the same way up.
        img.info.pop("exif", None)
        base = work / f"p{made:03d}"
        img.save(f"{base}.heic", "HEIF", quality=80, thumbnails=[320])
        img.save(f"{base}.jpg", "JPEG", quality=85)
        img.save(f"{base}-q60.heic", "HEIF", quality=60, thumbnails=[256])
        others[f"{base}.heic"] = [f"{base}-q60.heic"]
        if max(img.size) > 2048:
            small = img.copy()
            small.thumbnail((2048, 2048), Image.Resampling.LANCZOS)
            small.save(f"{base}-2048.heic", "HEIF", quality=80, thumbnails=[320])
            others[f"{base}.heic"].append(f"{base}-2048.heic")
        cases.append((row["path"], f"{base}.heic", f"{base}.jpg"))
        made += 1
        if args.limit and made >= args.limit:
            break

    print(
        f"# {len(cases) - made} real HEIF files, {made} photos encoded as HEIF q80 + 320 px thumbnail"
    )
    print(
        f"{'file':48} {'size':>11} {'whole ms':>9} {'thumb ms':>9} {'x':>6} "
        f"{'pHash d':>7} {'colour':>6} {'d jpeg whole':>12} {'d jpeg thumb':>12}"
    )
    t_whole = t_thumb = 0.0
    d_same: Counter = Counter()
    d_jpeg_whole: Counter = Counter()
    d_jpeg_thumb: Counter = Counter()
    colours: Counter = Counter()
    speedups = []
    d_heif_whole: Counter = Counter()
    d_heif_thumb: Counter = Counter()
    for label, heif, jpeg in cases:
        tw, fw = best_inspect(heif, args.rounds, thumbnails=False)
        tt, ft = best_inspect(heif, args.rounds, thumbnails=True)
        if fw is None or ft is None or fw.phash is None or ft.phash is None:
            print(f"{label[:48]:48} no pHash ({fw.error if fw else '?'})")
            continue
        t_whole += tw
        t_thumb += tt
        speedups.append(tw / tt)
        d = hamming(fw.phash, ft.phash)
        d_same[d] += 1
        cg = colour_gap(fw.colour, ft.colour)
        colours[cg] += 1
        dj_w = dj_t = ""
        if jpeg is not None:
            fj = inspect_file(jpeg, full_hash=False)
            dj_w, dj_t = hamming(fj.phash, fw.phash), hamming(fj.phash, ft.phash)
            d_jpeg_whole[dj_w] += 1
            d_jpeg_thumb[dj_t] += 1
        for other in others.get(heif, []):
            _, ow = best_inspect(other, 1, thumbnails=False)
            _, ot = best_inspect(other, 1, thumbnails=True)
            d_heif_whole[hamming(fw.phash, ow.phash)] += 1
            d_heif_thumb[hamming(ft.phash, ot.phash)] += 1
        print(
            f"{label[:48]:48} {fw.width:>5}x{fw.height:<5} {tw * 1000:9.1f} {tt * 1000:9.1f} "
            f"{tw / tt:5.1f}x {d:7} {cg if cg is not None else '-':>6} {dj_w!s:>12} {dj_t!s:>12}"
        )
    n = len(speedups)
    print()
    print(
        f"inspect_file, {n} files: whole pictures {t_whole:.2f} s, thumbnails {t_thumb:.2f} s "
        f"({t_whole / t_thumb:.1f}x overall; per file median {statistics.median(speedups):.1f}x)"
    )
    print(f"pHash thumbnail vs whole picture, bits: {sorted(d_same.items())}")
    print(f"colour grid, largest difference (of 255): {sorted(colours.items())}")
    print(f"pHash vs the JPEG of the same photo, whole picture: {sorted(d_jpeg_whole.items())}")
    print(f"pHash vs the JPEG of the same photo, thumbnail:     {sorted(d_jpeg_thumb.items())}")
    within = sum(v for k, v in d_jpeg_thumb.items() if k <= 8)
    within_w = sum(v for k, v in d_jpeg_whole.items() if k <= 8)
    print(
        f"HEIF/JPEG pairs within the threshold (8 bits): whole {within_w}/{sum(d_jpeg_whole.values())}, "
        f"thumbnail {within}/{sum(d_jpeg_thumb.values())}"
    )
    print(
        f"pHash between two HEIFs of the same photo, both whole:      {sorted(d_heif_whole.items())}"
    )
    print(
        f"pHash between two HEIFs of the same photo, both thumbnails: {sorted(d_heif_thumb.items())}"
    )
    within_hw = sum(v for k, v in d_heif_whole.items() if k <= 8)
    within_ht = sum(v for k, v in d_heif_thumb.items() if k <= 8)
    print(
        f"HEIF/HEIF pairs within the threshold (8 bits): whole {within_hw}/{sum(d_heif_whole.values())}, "
        f"thumbnails {within_ht}/{sum(d_heif_thumb.values())}"
    )


if __name__ == "__main__":
    main()
