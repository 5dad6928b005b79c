"""Labelled duplicate dataset built on disk from the shared sample library.

Used by bench/bench_threshold.py (the pHash threshold study) and by integration tests
that need a library with known duplicates. ``build_library(dest)`` writes:

* ``library/<sample path>``: every sample file, byte for byte (the real library);
* ``library/copies/...``: byte copies of some originals under other names and folders,
  one hard link (one file, two names: not a duplicate) and two empty files (not
  duplicates);
* ``library/generated/<n>/``: for every readable original that has a picture worth
  hashing, positives (same picture) and decoys (different pictures):

  ========  =============================================================  ========
  name      what                                                           label
  ========  =============================================================  ========
  q70       JPEG re-encode at quality 70, EXIF kept                        same
  half      50% resize (Lanczos), JPEG q90                                 same
  png       converted to PNG                                               same
  noexif    EXIF removed (lossless for upright JPEGs, else re-encoded)     same
  rot90     pixels rotated 90 degrees, Orientation=6 so it displays same   same
  crop      25% of the width and 20% of the height cut away                decoy
  shift     frame moved 8% right / 4% down, edge mirrored (burst-like)     decoy
  invert    colours inverted                                               decoy
  posterize 1 bit per channel                                              decoy
  sepia     grey + sepia tone, contrast x2.5                               decoy
  ========  =============================================================  ========

Ground truth is at the level of content units (distinct sha256), because byte-identical
files are reported once, as an exact group: a perceptual pair of paths counts as a pair
of their contents. Pairs are ``same`` (same picture, different bytes), ``different``
or ``ignore`` (not scored: an original that is a flat or tiny image whose pHash carries
no information, or two natural sample variants whose label is debatable, see
``AMBIGUOUS``).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

try:
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover
    pillow_heif = None

from tests.samples import read_manifest, samples_dir

RAW_EXTS = {
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".orf", ".rw2", ".raf", ".pef", ".srw",
}  # fmt: skip

POSITIVES = ("q70", "half", "png", "noexif", "rot90")
DECOYS = ("crop", "shift", "invert", "posterize", "sepia")

# Sample files that are the same picture although their bytes differ (checked by eye):
# re-encodes, resizes, EXIF variants of one image.
SAME_PICTURE: tuple[tuple[str, ...], ...] = (
    (
        "imagehash-php/forest/forest-high.jpg",
        "imagehash-php/forest/forest-low.jpg",
        "imagehash-php/forest/forest-thumb.jpg",
    ),
    (
        "exiv2/exiv2-canon-eos-20d.jpg",
        "exiv2/exiv2-canon-powershot-s40.jpg",
        "exiv2/exiv2-kodak-dc210.jpg",
        "exiv2/exiv2-panasonic-dmc-fz5.jpg",
        "exiv2/exiv2-sony-dsc-w7.jpg",
    ),
    ("libvips/sample.jpg", "libvips/sample-xyb.jpg"),  # XYB re-encode of the same photo
    ("gwenview/orient6.jpg", "gwenview/date/exif-datetimeoriginal.jpg"),
    ("pillow/pil_sample_rgb.jpg", "pillow/truncated_app14.jpg"),
)
# Natural variants whose label is debatable: a ~3% border crop and a "copyright"
# watermark of the forest picture. Pairs between them and the forest picture (or its
# transforms) are not scored; the study reports their distances separately.
AMBIGUOUS = {
    "imagehash-php/forest/forest-cropped.jpg": "imagehash-php/forest/forest-high.jpg",
    "imagehash-php/forest/forest-copyright.jpg": "imagehash-php/forest/forest-high.jpg",
}
MIN_SIDE = 32  # below this a 50% resize leaves nothing a 32x32 DCT can use
MIN_BITS = 8  # same rule as core.dedup.perceptual.informative


@dataclass
class Item:
    path: str  # relative to Truth.root, forward slashes
    role: str  # original | copy | hardlink | empty | positive | decoy
    picture: str  # same picture <=> same id
    source: str | None = None  # sample path it derives from
    transform: str | None = None
    family: str | None = None  # natural variants of one picture (AMBIGUOUS)
    hashable: bool = True  # False: flat/tiny/unreadable, pHash carries no information
    sha256: str = ""


@dataclass
class Truth:
    root: Path
    items: list[Item] = field(default_factory=list)

    def by_path(self) -> dict[str, Item]:
        return {it.path: it for it in self.items}

    def unit(self, path: str) -> str:
        return self.by_path()[path].sha256

    def exact_sets(self) -> list[frozenset[str]]:
        """Paths that must be reported as exact groups (hard link and empty files excluded)."""
        by_sha: dict[str, set[str]] = {}
        for it in self.items:
            if it.role in ("hardlink", "empty"):
                continue
            by_sha.setdefault(it.sha256, set()).add(it.path)
        return sorted((frozenset(s) for s in by_sha.values() if len(s) > 1), key=sorted)

    def units(self) -> dict[str, Item]:
        """One item per distinct content (smallest path), excluding empty files."""
        out: dict[str, Item] = {}
        for it in sorted(self.items, key=lambda i: i.path):
            if it.role != "empty":
                out.setdefault(it.sha256, it)
        return out

    def label(self, a: Item, b: Item) -> str:
        """'same', 'different' or 'ignore' for two content units."""
        if not (a.hashable and b.hashable):
            return "ignore"
        if a.picture == b.picture:
            return "same"
        if a.family and a.family == b.family:
            # Two debatable natural variants, or the same edit applied to each of them.
            if (a.role == "decoy") == (b.role == "decoy") and a.transform == b.transform:
                return "ignore"
            if a.role != "decoy" and b.role != "decoy":
                return "ignore"
        return "different"

    def labelled_pairs(self) -> tuple[set[frozenset[str]], set[frozenset[str]]]:
        """(positive unit pairs, ignored unit pairs); every other pair is negative."""
        units = list(self.units().values())
        pos: set[frozenset[str]] = set()
        ign: set[frozenset[str]] = set()
        for k, a in enumerate(units):
            for b in units[k + 1 :]:
                lab = self.label(a, b)
                if lab == "same":
                    pos.add(frozenset((a.sha256, b.sha256)))
                elif lab == "ignore":
                    ign.add(frozenset((a.sha256, b.sha256)))
        return pos, ign

    def decoy_units(self) -> set[str]:
        return {it.sha256 for it in self.items if it.role == "decoy"}


def score_pairs(reported: Iterable[tuple[str, str]], truth: Truth) -> dict[str, float | int]:
    """Precision/recall of reported perceptual pairs of paths against the truth."""
    pos, ign = truth.labelled_pairs()
    by_path = truth.by_path()
    rep = set()
    for a, b in reported:
        ua, ub = by_path[a].sha256, by_path[b].sha256
        if ua != ub:
            rep.add(frozenset((ua, ub)))
    rep -= ign
    tp = len(rep & pos)
    fp = len(rep - pos)
    decoys = truth.decoy_units()
    return {
        "tp": tp,
        "fp": fp,
        "fn": len(pos - rep),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / len(pos) if pos else 1.0,
        "decoys_reported": len({u for p in rep - pos for u in p} & decoys),
    }


# ---------------------------------------------------------------- image helpers


def load_display(path: Path) -> Image.Image:
    """The picture as a viewer shows it: RAW through its embedded preview, EXIF
    orientation applied."""
    if path.suffix.lower() in RAW_EXTS:
        import rawpy

        with rawpy.imread(str(path)) as raw:
            thumb = raw.extract_thumb()
            if thumb.format == rawpy.ThumbFormat.JPEG:
                im = Image.open(io.BytesIO(thumb.data))
            else:
                im = Image.fromarray(thumb.data)
    else:
        im = Image.open(path)
    im.load()
    return ImageOps.exif_transpose(im)


def phash_file(path: Path) -> str:
    """pHash after EXIF orientation, as the catalog computes it (core.media when present)."""
    try:
        from core.media.inspect import inspect_file  # type: ignore[import-not-found]
    except ImportError:
        return str(imagehash.phash(load_display(path)))
    return inspect_file(str(path), full_hash=False).phash


def colour_signature(im: Image.Image) -> str:
    """Mean R, G, B of a 4x4 grid of the displayed picture: 48 bytes as 96 hex digits
    (the signature core.dedup.perceptual's colour check compares)."""
    grid = _rgb(im).resize((4, 4), Image.Resampling.BOX)
    return bytes(np.asarray(grid, dtype=np.uint8).reshape(-1)).hex()


def signatures_file(path: Path) -> tuple[str, str]:
    """(pHash, colour signature) of a file, both after EXIF orientation."""
    im = load_display(path)
    return str(imagehash.phash(im)), colour_signature(im)


def _hash_bits(h: str) -> int:
    return int(h, 16).bit_count()


def _rgb(im: Image.Image) -> Image.Image:
    return im if im.mode == "RGB" else im.convert("RGB")


def _exif_of(im: Image.Image) -> Image.Exif:
    try:
        return im.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF: start from an empty one
        return Image.Exif()


def strip_app1(data: bytes) -> bytes | None:
    """JPEG bytes without APP1 (EXIF/XMP) segments, pixels untouched; None if not parsable."""
    if data[:2] != b"\xff\xd8":
        return None
    out = bytearray(b"\xff\xd8")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data
            out += data[pos:]
            return bytes(out)
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker != 0xE1:
            out += data[pos : pos + 2 + length]
        pos += 2 + length
    return None


def _jpeg(im: Image.Image, quality: int, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kw = {"exif": exif} if exif else {}
    _rgb(im).save(buf, "JPEG", quality=quality, **kw)
    return buf.getvalue()


def make_variant(name: str, src_path: Path, shown: Image.Image) -> tuple[str, bytes]:
    """(extension, bytes) of one positive or decoy derived from a displayed picture."""
    w, h = shown.size
    if name == "q70":
        return ".jpg", _jpeg(shown, 70)
    if name == "half":
        small = shown.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS)
        return ".jpg", _jpeg(small, 90)
    if name == "png":
        buf = io.BytesIO()
        _rgb(shown).save(buf, "PNG", compress_level=1)
        return ".png", buf.getvalue()
    if name == "noexif":
        raw = src_path.read_bytes()
        upright = False
        if src_path.suffix.lower() not in RAW_EXTS:
            with Image.open(src_path) as orig:
                upright = orig.format == "JPEG" and _exif_of(orig).get(0x0112, 1) in (0, 1)
        stripped = strip_app1(raw) if upright else None
        return ".jpg", stripped if stripped else _jpeg(shown, 95)
    if name == "rot90":
        # Stored pixels turned 90 degrees counter-clockwise; Orientation 6 tells viewers
        # to turn them 90 degrees clockwise, so the picture displays exactly as before.
        stored = shown.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[0x0112] = 6
        return ".jpg", _jpeg(stored, 95, exif.tobytes())
    if name == "crop":
        return ".jpg", _jpeg(shown.crop((int(w * 0.25), int(h * 0.20), w, h)), 90)
    if name == "shift":
        arr = np.asarray(_rgb(shown))
        dx, dy = max(1, int(w * 0.08)), max(1, int(h * 0.04))
        padded = np.pad(arr, ((0, dy), (0, dx), (0, 0)), mode="reflect")
        return ".jpg", _jpeg(Image.fromarray(padded[dy : dy + h, dx : dx + w]), 90)
    if name == "invert":
        return ".jpg", _jpeg(ImageOps.invert(_rgb(shown)), 90)
    if name == "posterize":
        return ".jpg", _jpeg(ImageOps.posterize(_rgb(shown), 1), 90)
    if name == "sepia":
        grey = ImageEnhance.Contrast(ImageOps.grayscale(shown)).enhance(2.5)
        return ".jpg", _jpeg(ImageOps.colorize(grey, "#2b1600", "#ffe9b0"), 90)
    raise ValueError(name)


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_library(
    dest: Path,
    samples: Path | None = None,
    *,
    positives: Iterable[str] = POSITIVES,
    decoys: Iterable[str] = DECOYS,
    max_source_side: int | None = None,
    copy_every: int = 3,
    max_sources: int | None = None,
) -> Truth:
    """Write the labelled library under ``dest/library`` and return its ground truth.

    ``max_source_side``: originals with a longer side are copied but get no generated
    variants (keeps integration tests fast; the bench uses every original).
    ``max_sources``: at most this many originals get variants (the first ones in
    manifest order); every sample file is still copied.
    """
    samples = samples or samples_dir()
    root = dest / "library"
    root.mkdir(parents=True, exist_ok=True)
    truth = Truth(root=root)
    rows = read_manifest(samples)
    same = {p: grp[0] for grp in SAME_PICTURE for p in grp}
    family = {**{p: p for p in AMBIGUOUS.values()}, **AMBIGUOUS}
    for grp in SAME_PICTURE:
        for p in grp:
            if p in family.values():
                family.update({q: p for q in grp})
    positives, decoys = tuple(positives), tuple(decoys)
    n_src = 0
    n_varied = 0
    for row in rows:
        rel = row["path"]
        src = samples / rel
        out = root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
        sha = row.get("sha256") or _sha(out)
        shown = None
        hashable = False
        if row["kind"] != "video":
            try:
                shown = load_display(src)
                ph = str(imagehash.phash(shown))
                hashable = (
                    min(shown.size) >= MIN_SIDE and MIN_BITS <= _hash_bits(ph) <= 64 - MIN_BITS
                )
            except Exception:  # noqa: BLE001 - unreadable sample: stays in the library, unlabelled
                shown = None
        picture = f"pic:{same.get(rel, sha)}" if shown is not None else f"file:{sha}"
        fam = family.get(rel)
        truth.items.append(Item(rel, "original", picture, rel, None, fam, hashable, sha))
        if shown is None or not hashable:
            continue
        n_src += 1
        if n_src % copy_every == 0:
            cp = f"copies/{n_src:03d}/{Path(rel).stem}_copy{Path(rel).suffix}"
            (root / cp).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, root / cp)
            truth.items.append(Item(cp, "copy", picture, rel, "copy", fam, True, sha))
        if max_source_side and max(shown.size) > max_source_side:
            continue
        if max_sources is not None and n_varied >= max_sources:
            continue
        n_varied += 1
        for name in (*positives, *decoys):
            ext, data = make_variant(name, src, shown)
            vp = f"generated/{n_src:03d}/{Path(rel).stem}__{name}{ext}"
            (root / vp).parent.mkdir(parents=True, exist_ok=True)
            (root / vp).write_bytes(data)
            vsha = hashlib.sha256(data).hexdigest()
            if name in positives:
                truth.items.append(Item(vp, "positive", picture, rel, name, fam, True, vsha))
            else:
                # One edit of one picture: the same edit of a same-picture twin matches it.
                pic = f"decoy:{picture}:{name}"
                truth.items.append(Item(vp, "decoy", pic, rel, name, fam, True, vsha))
    # A hard link (one file, two names) and two empty files: none of them are duplicates.
    first = next(it for it in truth.items if it.role == "original" and it.hashable)
    link = "copies/hardlink/" + Path(first.path).name
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(root / first.path, root / link)
        truth.items.append(Item(link, "hardlink", first.picture, first.path, "hardlink",
                                first.family, True, first.sha256))  # fmt: skip
    except OSError:  # filesystems without hard links: nothing to test there
        pass
    for name in ("empty/a.jpg", "empty/b.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
        truth.items.append(Item(name, "empty", f"empty:{name}", None, None, None, False,
                                hashlib.sha256(b"").hexdigest()))  # fmt: skip
    return truth
