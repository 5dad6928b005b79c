"""A small generated library so that `twinlens up` shows results on a fresh machine.

Made with Pillow (and pillow-heif for HEIC): copies, re-encodes, resizes, Live
Photo stills with a video, iPhone edits, sidecars, and a couple of broken files.
"""

from __future__ import annotations

import os
import random
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image, ImageDraw


def _picture(seed: int, size: tuple[int, int] = (1200, 800)) -> Image.Image:
    rng = random.Random(seed)
    w, h = size
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(25):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(20, w // 2), y0 + rng.randrange(20, h // 2)
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)((x0, y0, x1, y1), fill=fill)
    return img


def _exif(taken: datetime) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Demo"
    exif[0x0110] = "Twinlens Camera"
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    return exif


def make_demo_library(dest: Path, shots: int = 12) -> Path:
    """Write the demo library under ``dest`` (replacing an older one)."""
    if dest.exists():
        shutil.rmtree(dest)
    start = datetime(2024, 6, 1, 9, 0, 0)
    trip = dest / "2024" / "2024-06 trip"
    phone = dest / "phone" / "DCIM"
    backup = dest / "old-laptop-backup" / "Pictures"
    for folder in (trip, phone, backup):
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(shots):
        taken = start + timedelta(minutes=7 * i)
        img = _picture(i)
        name = f"IMG_{1000 + i:04d}"
        img.save(trip / f"{name}.JPG", "JPEG", quality=90, exif=_exif(taken))
        if i % 3 == 0:  # sidecar from an editor
            (trip / f"{name}.JPG.xmp").write_text(
                f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><!-- {name} --></x:xmpmeta>\n'
            )
        if i % 4 == 1:  # byte-identical copy in an old backup
            shutil.copy2(trip / f"{name}.JPG", backup / f"{name}.JPG")
        if i % 4 == 2:  # re-encoded and resized copy (a perceptual duplicate)
            img.resize((600, 400)).save(backup / f"{name}-small.jpg", "JPEG", quality=70)
    for i in range(4):  # phone: Live Photos (still + video) and an iPhone edit
        taken = start + timedelta(days=1, minutes=3 * i)
        img = _picture(100 + i, (1008, 756))
        still = phone / f"IMG_{2000 + i:04d}.JPG"
        img.save(still, "JPEG", quality=88, exif=_exif(taken))
        (phone / f"IMG_{2000 + i:04d}.MOV").write_bytes(
            b"\x00\x00\x00\x14ftypqt  " + os.urandom(4096 + i)
        )
        if i == 0:
            img.rotate(3, expand=False).save(phone / "IMG_E2000.JPG", "JPEG", quality=88)
    (dest / "broken").mkdir()
    (dest / "broken" / "empty.jpg").write_bytes(b"")
    data = (trip / "IMG_1000.JPG").read_bytes()
    (dest / "broken" / "cut-off.jpg").write_bytes(data[: len(data) // 3])
    return dest
