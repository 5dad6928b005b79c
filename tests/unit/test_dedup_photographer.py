"""Dedup as a photographer meets it: real pictures (generated with Pillow), hashed the way
the catalog hashes them, with the metadata a camera writes. The dangerous mistake is a
false duplicate - two different exposures offered as copies, one of them to be trashed."""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime, timedelta

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from core.dedup import different_shots, find_duplicates, perceptual, perceptual_clusters
from core.media.colour import colour_signature
from core.media.phash import phash_of
from core.records import FileRecord
from tests.factories import picture

T0 = datetime(2024, 6, 1, 18, 30, 12, 100_000)
CAMERA = {"make": "Canon", "model": "Canon EOS R6"}


def reencode(img: Image.Image, quality: int = 90) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def handheld(img: Image.Image, frac: float) -> Image.Image:
    """The next frame of a burst: the camera drifted ``frac`` of the width."""
    w, h = img.size
    dx, dy = max(1, int(w * frac)), max(1, int(h * frac / 2))
    return img.crop((dx, dy, w, h)).resize((w, h), Image.Resampling.LANCZOS)


def shot(i: int, path: str, img: Image.Image, *, colour: bool = True, kind="image", **meta):
    fmt = "raw" if kind == "raw" else "jpeg"
    return FileRecord(
        id=i, path=path, kind=kind, size=1_000_000 + i, format=fmt,
        phash=phash_of(img, 1).hex(), colour=colour_signature(img, 1) if colour else None,
        width=img.width, height=img.height, **meta,
    )  # fmt: skip


def linked(files, threshold=8):
    colours = {f.id: f.colour for f in files if f.colour}
    return [
        sorted(m.id for m in c.members)
        for c in perceptual_clusters(files, threshold, colour_of=colours)
    ]


@pytest.fixture(scope="module")
def scene() -> Image.Image:
    return reencode(picture(11, (640, 480)))


def test_burst_frames_are_different_shots(scene):
    # Given a 10 fps burst: each frame drifts 1 % and is taken 0.1 s after the last
    frames = [handheld(scene, 0.01 * k) if k else scene for k in range(3)]
    files = [
        shot(k + 1, f"/2024/IMG_{k + 1:04d}.JPG", reencode(f), taken_at=T0 + timedelta(seconds=0.1 * k), **CAMERA)
        for k, f in enumerate(frames)
    ]  # fmt: skip
    # (the pictures alone cannot tell them apart: pHash puts them within the threshold)
    assert linked([dataclasses.replace(f, taken_at=None) for f in files]) == [[1, 2, 3]]
    # When dedup runs, then no frame is offered as a duplicate of another
    assert linked(files) == []
    assert find_duplicates(files, threshold=8) == []


def test_burst_frames_of_a_camera_without_fractions_of_a_second_are_different_shots(scene):
    # Given a 6 fps burst from a camera that writes no sub-seconds (most DSLRs): its
    # frames carry the same whole second
    second = T0.replace(microsecond=0)
    frames = [handheld(scene, 0.01 * k) if k else scene for k in range(3)]
    files = [
        shot(k + 1, f"/2024/DSC_{k + 10:04d}.JPG", reencode(f), taken_at=second, **CAMERA)
        for k, f in enumerate(frames)
    ]
    # When dedup runs, then no frame is offered as a duplicate of another
    assert linked(files) == []
    # While a re-encoded copy of one frame, named after it, still is one
    copy = shot(9, "/export/DSC_0010-1.jpg", reencode(scene, 70), taken_at=second, **CAMERA)
    assert linked([*files, copy]) == [[1, 9]]


def test_two_bodies_of_one_model_at_the_same_second_are_different_shots(scene):
    # Given the main and the second shooter on the same model, both at one second
    a = shot(1, "/a/IMG_0001.JPG", reencode(scene), taken_at=T0, serial="012345", **CAMERA)
    b = shot(2, "/b/IMG_0001.JPG", reencode(handheld(scene, 0.01)), taken_at=T0,
             serial="067890", **CAMERA)  # fmt: skip
    # Then they are two shots
    assert linked([a, b]) == []


def test_bracketed_exposures_without_colour_signature_are_different_shots(scene):
    # Given -1 EV / 0 / -2 EV taken within a second (darkening keeps the pHash)
    under = [ImageEnhance.Brightness(scene).enhance(f) for f in (1.0, 0.5, 0.25)]
    files = [
        shot(k + 1, f"/hdr/IMG_{k:04d}.JPG", reencode(im), colour=False,
             taken_at=T0 + timedelta(seconds=0.3 * k), **CAMERA)
        for k, im in enumerate(under)
    ]  # fmt: skip
    # Then they are three shots (the colour check would say so too, when it has signatures)
    assert linked(files) == []


def test_lens_cap_frames_are_different_shots():
    # Given two black frames whose only structure is the lens's vignetting: their
    # pHashes are equal and "informative", and dark pictures barely differ in colour
    h, w = 400, 600
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)

    def black(level, vignette):
        a = np.repeat((level * (1 - vignette * r2))[..., None], 3, -1)
        return reencode(Image.fromarray(a.astype(np.uint8)))

    a = shot(1, "/card/IMG_0001.JPG", black(6, 0.5), taken_at=T0, **CAMERA)
    b = shot(2, "/card/IMG_0002.JPG", black(10, 0.3), taken_at=T0 + timedelta(minutes=3), **CAMERA)
    assert a.phash == b.phash
    # Then the two exposures are not duplicates
    assert linked([a, b]) == []


def test_two_cameras_firing_at_the_same_second_are_different_shots(scene):
    a = shot(1, "/a/A_0001.JPG", scene, taken_at=T0, make="Canon", model="Canon EOS R6")
    b = shot(
        2,
        "/b/B_0001.JPG",
        reencode(scene, 80),
        taken_at=T0,
        make="NIKON CORPORATION",
        model="NIKON Z 6",
    )
    assert linked([a, b]) == []


@pytest.mark.parametrize(
    "copy_meta",
    [
        dict(taken_at=T0, **CAMERA),  # re-encode that kept its EXIF
        dict(taken_at=T0, make="Canon", model="EOS R6"),  # another reader names the model
        dict(),  # EXIF stripped: the picture alone decides
    ],
)
def test_copies_of_one_shot_are_still_duplicates(scene, copy_meta):
    original = shot(1, "/2024/IMG_0001.JPG", scene, taken_at=T0, **CAMERA)
    smaller = reencode(scene.resize((320, 240), Image.Resampling.LANCZOS), 75)
    copy = shot(2, "/phone/IMG_0001.jpg", smaller, **copy_meta)
    assert linked([original, copy]) == [[1, 2]]
    [group] = find_duplicates([original, copy], threshold=8)
    assert group.keeper_id == 1


def meta(taken=None, model=None):
    return FileRecord(id=0, path="/x", kind="image", size=1, taken_at=taken, model=model)


@pytest.mark.parametrize(
    "a, b, different",
    [
        (meta(T0), meta(T0), False),  # a copy keeps the capture time
        (meta(T0), meta(None), False),  # EXIF stripped: no objection
        (meta(T0), meta(T0 + timedelta(milliseconds=10)), True),  # burst at 100 fps
        (meta(T0), meta(T0 + timedelta(hours=6)), True),  # time-lapse, the same evening
        # a copy whose timezone was fixed is missed: the safe side
        (meta(T0), meta(T0 + timedelta(hours=2)), True),
        # a date rewritten on a copy (a camera clock set years later) is no proof
        (meta(T0), meta(T0 + timedelta(days=400)), False),
        (meta(T0, "Canon EOS R6"), meta(T0, "NIKON Z 6"), True),
        (meta(T0, "EOS R6"), meta(T0, "Canon EOS R6"), False),
        (meta(T0, "Canon EOS R6"), meta(T0), False),
    ],
)
def test_different_shots(a, b, different):
    assert different_shots(a, b) is different
    assert different_shots(b, a) is different


def test_a_raw_and_its_jpeg_in_sibling_folders_are_not_duplicates(scene):
    # Given a camera that wrote RAW to one card and JPEG to the other, imported into
    # RAW/ and JPG/ (grouping pairs only within a folder)
    raw = shot(1, "/0601/RAF/DSCF0001.RAF", reencode(scene), kind="raw", taken_at=T0, **CAMERA)
    jpg = shot(2, "/0601/JPG/DSCF0001.JPG", reencode(scene, 80), taken_at=T0, **CAMERA)
    # Then they are two versions of one shot, never offered for the trash
    assert linked([raw, jpg]) == []
    # While the JPEG's re-encoded copy elsewhere is still its duplicate
    copy = shot(3, "/backup/DSCF0001.JPG", reencode(scene, 70), taken_at=T0, **CAMERA)
    assert linked([raw, jpg, copy]) == [[2, 3]]
    # And a RAW and a JPEG of another shot that merely share the counter are not versions
    other = shot(4, "/0602/JPG/DSCF0001.JPG", reencode(scene, 75),
                 taken_at=T0 + timedelta(days=30), **CAMERA)  # fmt: skip
    assert not perceptual.raw_and_its_rendition(raw, other)


def test_an_export_renamed_and_resized_is_a_copy_though_its_second_has_no_fraction(scene):
    # Given a frame from a camera that writes no sub-seconds, and the next frame of its
    # burst at the same second
    second = T0.replace(microsecond=0)
    frame = shot(1, "/2024/DSC_0010.JPG", reencode(scene), taken_at=second, **CAMERA)
    burst = shot(2, "/2024/DSC_0011.JPG", reencode(handheld(scene, 0.01)), taken_at=second,
                 **CAMERA)  # fmt: skip
    # And Lightroom's export of the first, renamed and resized, its EXIF kept
    small = reencode(scene.resize((320, 240), Image.Resampling.LANCZOS), 80)
    export = shot(3, "/Exports/Wedding_001.jpg", small, taken_at=second, **CAMERA)
    # When dedup runs, Then the export is the frame's copy, and the burst stays apart
    assert linked([frame, burst, export]) == [[1, 3]]
    # While a crop to another shape, or an export at the frame's own size, says nothing
    square = reencode(scene.crop((80, 0, 560, 480)).resize((240, 240)), 80)
    crop = shot(4, "/Exports/Wedding_002.jpg", square, taken_at=second, **CAMERA)
    full = shot(5, "/Exports/Wedding_003.jpg", reencode(scene, 80), taken_at=second, **CAMERA)
    assert not perceptual.one_resized(frame, crop) and not perceptual.one_resized(frame, full)
    assert different_shots(frame, full) and not different_shots(frame, export)


def test_frames_of_a_raw_and_jpeg_burst_stay_apart_whatever_their_sizes(scene):
    # Given a burst from a camera that writes whole seconds, each frame as a RAW (its
    # stored size the sensor's, 6048x4024) and the camera's JPEG (6000x4000), and a
    # second card holding each frame as a small JPEG: versions of a frame are file groups
    second = T0.replace(microsecond=0)
    files, same = [], {}
    for k in range(3):
        frame = reencode(handheld(scene, 0.01 * k) if k else scene)
        stem = f"DSC_{k + 10:04d}"
        raw = dataclasses.replace(
            shot(10 * k + 1, f"/2024/{stem}.ARW", frame, kind="raw", taken_at=second, **CAMERA),
            width=6048, height=4024,
        )  # fmt: skip
        jpg = dataclasses.replace(
            shot(10 * k + 2, f"/2024/{stem}.JPG", frame, taken_at=second, **CAMERA),
            width=6000, height=4000,
        )  # fmt: skip
        small = dataclasses.replace(
            shot(10 * k + 3, f"/card2/{stem}.JPG", frame, taken_at=second, **CAMERA),
            width=1500, height=1000,
        )  # fmt: skip
        files += [raw, jpg, small]
        same.update({raw.id: stem, jpg.id: stem})
    # When dedup runs, Then no frame's file is offered as another frame's copy (the small
    # JPEG of a frame is its own frame's copy, by its name)
    groups = find_duplicates(files, threshold=8, same_group=same)
    frames = [{m.path.rsplit("/", 1)[1][:8] for m in g.members} for g in groups]
    assert all(len(names) == 1 for names in frames), frames
    # And the rule that lets a renamed export through needs a picture made smaller, not
    # a RAW's sensor size nor the next number of the counter
    raw, jpg, small = files[0], files[1], files[5]
    assert not perceptual.one_resized(raw, jpg)
    assert perceptual.one_resized(jpg, small) and perceptual.one_counter(jpg.path, small.path)
    assert different_shots(jpg, small)
