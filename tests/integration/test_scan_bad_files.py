"""A scan of a hostile library: odd names, deep paths, special files, symlinks out of
the root, broken pictures, and files that change between the listing and the reading.
Every scan must finish, name each file it could not read with a reason, read nothing
outside the library and lose nothing it knew."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from tests.factories import planned_scan, run_phase, write_bytes, write_jpeg, write_png
from twinlens import run_scan

PROJECT = Path(__file__).resolve().parents[2]
SCAN_TIMEOUT = 120  # seconds: a hang (a FIFO opened for reading) fails instead of blocking


def by_path(report: dict) -> dict[str, dict]:
    return {f["path"]: f for f in report["files"]}


def errors_of(report: dict) -> dict[str, str]:
    """Every problem the report names: job errors and per-file errors."""
    out = {e["path"]: e["error"] for e in report["job"]["errors"]}
    out.update({f["path"]: f["error"] for f in report["files"] if f["error"]})
    return out


def jpeg_bytes(seed: int) -> bytes:
    from tests.factories import picture

    buf = io.BytesIO()
    picture(seed, (96, 64)).save(buf, "JPEG")
    return buf.getvalue()


def with_exif_segment(jpeg: bytes, tiff: bytes) -> bytes:
    """The JPEG with an APP1 EXIF segment holding ``tiff`` (possibly nonsense)."""
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def _heic_bytes() -> bytes:
    import pillow_heif

    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (64, 64), (10, 200, 30))).save(buf, format="HEIF")
    return buf.getvalue()


def _beyond_path_max(folder: Path) -> None:
    """A file whose full path is longer than PATH_MAX (4096), built with dir fds."""
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(22):
            os.mkdir("d" * 200, dir_fd=fd)
            nxt = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        out = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, jpeg_bytes(40))
        os.close(out)
    finally:
        os.close(fd)


def _special_files(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder.mkdir()
    os.mkfifo(folder / "fifo.jpg")
    monkeypatch.chdir(folder)  # AF_UNIX names are short: bind relative to the folder
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock.jpg")
    sock.close()
    try:
        os.mknod(folder / "null.jpg", 0o600 | 0o020000, os.makedev(1, 3))
    except OSError:  # not root: no device file, the FIFO and socket still count
        pass


@pytest.fixture
def hostile(library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A library with every kind of bad input, and the facts the checks need."""
    lib = os.fsencode(str(library))
    good = jpeg_bytes(1)
    write_bytes(library / "ok" / "good.jpg", good)
    names = {
        "names/" + os.fsdecode(b"\xff\xfe.jpg"): 2,
        "names/new\nline.jpg": 3,
        "names/tab\tname.jpg": 4,
        "names/back\\slash.jpg": 5,
        "names/-leading-dash.jpg": 6,
        "names/" + "L" * 250 + ".jpg": 7,
        "/".join(["deep"] + ["d" * 200] * 18 + ["deep.jpg"]): 8,
    }
    for rel, seed in names.items():
        write_bytes(Path(os.fsdecode(lib + b"/" + os.fsencode(rel))), jpeg_bytes(seed))
    _beyond_path_max(library / "deeper")

    write_bytes(library / "bad" / "empty.jpg", b"")
    write_bytes(library / "bad" / "truncated.jpg", good[: len(good) // 2])
    write_bytes(library / "bad" / "jpeg.CR2", jpeg_bytes(9))  # a JPEG named as RAW
    # Mis-named, and the name that says so is not UTF-8 (an old PC's Latin-1): the
    # warning quotes the extension, which no database text column took as it was
    write_bytes(library / "bad" / os.fsdecode(b"latin.j\xe9g"), jpeg_bytes(15))
    write_bytes(library / "bad" / os.fsdecode(b"K\xf6ln. 2003"), jpeg_bytes(16))
    write_bytes(library / "bad" / "raw.jpg", b"II*\x00\x10\x00\x00\x00CR\x02\x00" + b"\x00" * 64)
    write_png(library / "bad" / "bomb.png", 10, size=(2000, 1000))  # over the limit below
    heic = _heic_bytes()
    write_bytes(library / "bad" / "truncated.heic", heic[: len(heic) // 2])
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "0000:00:00 00:00:00"
    write_jpeg(library / "exif" / "zero-date.jpg", 11)
    Image.open(library / "exif" / "zero-date.jpg").save(
        library / "exif" / "zero-date.jpg", "JPEG", exif=exif
    )
    base = jpeg_bytes(12)
    huge_offset = b"II*\x00" + struct.pack("<I", 0xFFFFFFF0)
    bad_ifd = b"II*\x00\x08\x00\x00\x00\x01\x00" + struct.pack("<HHII", 0x8769, 4, 1, 0x7FFFFFFF)
    huge_count = b"II*\x00\x08\x00\x00\x00\xff\xff" + b"\x00" * 20
    for name, tiff in (("offset", huge_offset), ("ifd", bad_ifd), ("count", huge_count)):
        write_bytes(library / "exif" / f"{name}.jpg", with_exif_segment(base, tiff))

    # Dated past 2262 (a camera clock gone wrong): its time in nanoseconds is past 2^63
    future = write_jpeg(library / "dates" / "future.jpg", 17)
    os.utime(future, ns=(10**19, 10**19))

    _special_files(library / "special", monkeypatch)

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = write_jpeg(outside / "secret.jpg", 13).read_bytes()
    links = library / "links"
    links.mkdir()
    write_bytes(links / "target.jpg", jpeg_bytes(14))
    os.symlink("target.jpg", links / "same-file.jpg")  # the same file reached twice
    os.link(links / "target.jpg", links / "hardlink.jpg")
    os.symlink("..", links / "loop-up")
    os.symlink("self", links / "self")
    os.symlink("missing.jpg", links / "broken.jpg")
    os.symlink(outside / "secret.jpg", links / "secret.jpg")
    os.symlink(outside, links / "outside-dir")
    return {"good": good, "secret": secret, "names": names}


def _check_hostile_report(report: dict, facts: dict) -> None:
    import hashlib

    files, errors = by_path(report), errors_of(report)
    # The scan finished
    assert report["job"]["state"] == "done"
    # Every name, however odd, is cataloged with its hashes
    for rel in [*facts["names"], "ok/good.jpg"]:
        assert files[rel]["sha256"] and files[rel]["phash"], rel
        assert files[rel]["error"] is None, rel
    # Each broken file is named with a readable reason
    assert errors["bad/empty.jpg"] == "zero-byte file"
    assert errors["bad/truncated.jpg"].startswith("truncated JPEG")
    assert errors["bad/bomb.png"].startswith("decompression bomb refused")
    assert "HEIF" in errors["bad/truncated.heic"]
    assert errors["bad/jpeg.CR2"] == "extension .cr2 but content is JPEG"
    assert files["bad/jpeg.CR2"]["phash"]  # mis-named, still read as what it is
    latin = "bad/" + os.fsdecode(b"latin.j\xe9g")
    assert errors[latin] == "extension .j\\xe9g but content is JPEG"
    assert files[latin]["phash"] and files["bad/" + os.fsdecode(b"K\xf6ln. 2003")]["phash"]
    assert errors["bad/raw.jpg"]
    assert "symlink loop" in errors["links/self"]
    assert "broken symlink" in errors["links/broken.jpg"]
    assert any("File name too long" in e for p, e in errors.items() if p.startswith("deeper/"))
    for e in errors.values():
        assert "Traceback" not in e
    # Broken EXIF costs the date, never the picture
    for name in ("zero-date", "offset", "ifd", "count"):
        f = files[f"exif/{name}.jpg"]
        assert f["phash"] and f["error"] is None, name
    assert files["exif/zero-date.jpg"]["taken_at"] is None
    # A file dated past what 64 bits of nanoseconds hold is cataloged like any other
    assert files["dates/future.jpg"]["phash"] and files["dates/future.jpg"]["error"] is None
    # Special files are skipped, not opened (no hang), and not listed as photos
    assert not [p for p in files if p.startswith("special/")]
    assert report["job"]["summary"]["skipped_special"] >= 2
    # Symlinks are not followed: nothing outside the root is read, nothing counted twice
    secret_sha = hashlib.sha256(facts["secret"]).hexdigest()
    assert all(f["sha256"] != secret_sha for f in files.values())
    assert "links/secret.jpg" not in files and "links/same-file.jpg" not in files
    assert not [p for p in files if p.startswith(("links/outside-dir", "links/loop-up"))]
    assert files["links/hardlink.jpg"]["sha256"] == files["links/target.jpg"]["sha256"]
    # The job counts every failure it names
    assert report["job"]["failed"] >= 8


@pytest.mark.timeout(SCAN_TIMEOUT)
def test_hostile_library_on_postgres_and_redis(pg_settings, library, hostile):
    # When the hostile library is scanned by real Dramatiq workers on Redis + PostgreSQL
    cfg = replace(pg_settings, max_image_pixels=1_000_000)
    report = run_scan(cfg, str(library))
    # Then it finished and the report names every problem
    _check_hostile_report(report, hostile)
    # And a rescan of the unchanged library reads nothing and loses nothing
    again = run_scan(cfg, str(library))
    assert again["job"]["state"] == "done" and again["job"]["bytes_read"] == 0
    assert by_path(again).keys() == by_path(report).keys()


def test_hostile_library_through_the_cli(library, hostile, tmp_path):
    # When `twinlens scan --json` runs over it (embedded default), with a time limit
    out = tmp_path / "report.json"
    env = {
        "TWINLENS_DATA_DIR": str(tmp_path / "data"),
        "TWINLENS_MAX_IMAGE_PIXELS": "1000000",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, str(PROJECT / "twinlens.py"), "scan", str(library), "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=SCAN_TIMEOUT,
        cwd=PROJECT,
    )
    # Then it exits cleanly, prints the failures and writes a loadable report
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "bad/empty.jpg: zero-byte file" in proc.stdout
    # names that are not UTF-8 are printed readably, their odd bytes as \xNN
    assert "bad/latin.j\\xe9g: extension .j\\xe9g but content is JPEG" in proc.stdout
    report = json.loads(out.read_text())
    _check_hostile_report(report, hostile)
    # Non-UTF-8 names round-trip through JSON as surrogate escapes
    assert b"names/\xff\xfe.jpg" in {os.fsencode(f["path"]) for f in report["files"]}


# --- between the listing and the reading --------------------------------------------
# Batches run long after the walk (a million-file library is planned once, read over
# hours). These drive the phases by hand to change the library in between.


def _scan_with(settings, library: Path, between: dict[str, Callable[[], None]]) -> dict:
    """Plan, then run the phases; ``between[phase]`` runs just before that phase's
    batches; finish the job as the finishing actor would. Returns the report."""
    return _scan_with_planned(settings, planned_scan(settings, library), between)


def _scan_with_planned(
    settings, job_id: str, between: dict[str, Callable[[], None]] | None = None
) -> dict:
    """``_scan_with`` for a scan planned already."""
    from core import jobs, report
    from core.db import session_scope
    from core.models import Job
    from workers import runtime

    phase = "catalog"
    while phase != "finish":
        if between and phase in between:
            between[phase]()
        phase = run_phase(settings, job_id)
    with session_scope(runtime.engine()) as s:
        jobs.finish_job(s, job_id, "done")
    with session_scope(runtime.engine()) as s:
        return report.build(s, s.get(Job, job_id).root_id, job_id)


def _one_batch_scan(settings, library: Path) -> tuple[str, int]:
    """A planned scan of one photo: (job id, its one batch)."""
    from core import catalog
    from core.db import session_scope
    from workers import runtime

    write_jpeg(library / "IMG_0001.JPG", 1)
    job_id = planned_scan(settings, library)
    with session_scope(runtime.engine()) as s:
        [seq] = catalog.queued_batches(s, job_id)
    return job_id, seq


def _file_rows(settings) -> dict[str, object]:
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import File
    from workers import runtime

    with session_scope(runtime.engine()) as s:
        rows = list(s.scalars(select(File)))
        for r in rows:
            s.expunge(r)
    return {os.path.basename(r.path): r for r in rows}


def test_file_swapped_for_a_symlink_out_of_the_root_is_not_read(
    embedded_settings, library, tmp_path
):
    # Given a listed photo that is then replaced by a symlink to a file outside
    outside = write_jpeg(tmp_path / "outside" / "secret.jpg", 1)
    write_jpeg(library / "a.jpg", 2)
    write_jpeg(library / "b.jpg", 3)

    def swap() -> None:
        os.remove(library / "a.jpg")
        os.symlink(outside, library / "a.jpg")

    # When its batch runs
    report = _scan_with(embedded_settings, library, {"catalog": swap})
    # Then the outside file is not read; the report says why; the other file is fine
    assert errors_of(report)["a.jpg"] == "no longer a regular file (a symlink); not read"
    rows = _file_rows(embedded_settings)
    assert "a.jpg" not in rows or rows["a.jpg"].sha256 is None
    assert rows["b.jpg"].sha256 and report["job"]["state"] == "done"


def test_folder_swapped_for_a_symlink_out_of_the_root_is_not_read(
    embedded_settings, library, tmp_path
):
    # Given a listed folder that is then renamed and replaced by a link to a folder
    # outside holding a file of the same name
    write_jpeg(library / "album" / "x.jpg", 1)
    write_jpeg(tmp_path / "outside" / "x.jpg", 2)

    def swap() -> None:
        os.rename(library / "album", library / "album-old")
        os.symlink(tmp_path / "outside", library / "album")

    report = _scan_with(embedded_settings, library, {"catalog": swap})
    # Then nothing is read through the link
    assert errors_of(report)["album/x.jpg"] == (
        "reached through a symlink out of the library; not read"
    )
    rows = _file_rows(embedded_settings)
    assert rows["x.jpg"].sha256 is None and rows["x.jpg"].phash is None
    assert report["job"]["state"] == "done"


def test_file_swapped_for_a_fifo_is_skipped_without_hanging(embedded_settings, library):
    write_jpeg(library / "a.jpg", 1)

    def swap() -> None:
        os.remove(library / "a.jpg")
        os.mkfifo(library / "a.jpg")

    report = _scan_with(embedded_settings, library, {"catalog": swap})
    assert errors_of(report)["a.jpg"] == "no longer a regular file (a FIFO); not read"
    assert "a.jpg" not in by_path(report)  # a FIFO is not a photo of the library


def test_folder_renamed_mid_scan_loses_nothing(embedded_settings, library):
    # Given a folder renamed after the listing
    for i in range(3):
        write_jpeg(library / "album" / f"p{i}.jpg", i)

    def rename() -> None:
        os.rename(library / "album", library / "album-2024")

    report = _scan_with(embedded_settings, library, {"catalog": rename})
    # Then this scan names each file it could not find, and finishes
    errors = errors_of(report)
    assert {p for p in errors} == {f"album/p{i}.jpg" for i in range(3)}
    assert set(errors.values()) == {"file vanished before it could be read"}
    # And the next scan finds them all at their new place
    again = run_scan(embedded_settings, str(library))
    assert {p for p in by_path(again)} == {f"album-2024/p{i}.jpg" for i in range(3)}


def test_unlistable_folder_keeps_its_files(embedded_settings, library, monkeypatch):
    from core import catalog

    # Given a cataloged library
    write_jpeg(library / "nas" / "a.jpg", 1)
    write_jpeg(library / "nas" / "sub" / "b.jpg", 2)
    write_jpeg(library / "ok.jpg", 3)
    first = run_scan(embedded_settings, str(library))
    assert len(first["files"]) == 3
    # When a folder cannot be listed at the next scan (a NAS I/O error)
    real = os.scandir

    def scandir(path):
        if str(path) == str(library / "nas"):
            raise OSError(5, "Input/output error")
        return real(path)

    monkeypatch.setattr(catalog.os, "scandir", scandir)
    report = run_scan(embedded_settings, str(library))
    # Then the scan says so, and the files it could not see are kept, not marked missing
    assert errors_of(report)["nas"] == "cannot list folder: Input/output error"
    assert report["job"]["summary"]["missing"] == 0
    assert report["job"]["summary"]["kept_unlisted"] == 2
    assert set(by_path(report)) == {"nas/a.jpg", "nas/sub/b.jpg", "ok.jpg"}
    # And a file really deleted elsewhere is still noticed
    os.remove(library / "ok.jpg")
    report = run_scan(embedded_settings, str(library))
    assert report["job"]["summary"]["missing"] == 1


def test_listing_that_breaks_off_part_way_keeps_the_folders_files(
    embedded_settings, library, monkeypatch
):
    from core import catalog

    # Given a cataloged folder of three pictures
    for i in range(3):
        write_jpeg(library / "nas" / f"p{i}.jpg", i + 1)
    assert len(run_scan(embedded_settings, str(library))["files"]) == 3
    # When its listing fails after the first entry (EIO or ESTALE from the share)
    real = os.scandir

    class BrokenOff:
        def __init__(self, path):
            self.it = real(path)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.it.close()

        def __iter__(self):
            yield next(iter(self.it))
            raise OSError(116, "Stale file handle")

    monkeypatch.setattr(
        catalog.os,
        "scandir",
        lambda path: BrokenOff(path) if str(path) == str(library / "nas") else real(path),
    )
    report = run_scan(embedded_settings, str(library))
    # Then the scan finishes, says so, and marks nothing missing
    assert report["job"]["state"] == "done"
    assert errors_of(report)["nas"] == "cannot list folder: Stale file handle"
    assert report["job"]["summary"]["missing"] == 0
    assert set(by_path(report)) == {f"nas/p{i}.jpg" for i in range(3)}


def _same_size_pair(library: Path) -> None:
    """Two non-pictures of one size with equal ends: they need the full-hash phase."""
    middle = os.urandom(20_000)
    write_bytes(library / "a.mov", b"\x00" * 5000 + middle + b"\x00" * 5000)
    write_bytes(library / "b.mov", b"\x00" * 5000 + middle[::-1] + b"\x00" * 5000)


def test_changed_file_deleted_before_its_batch_is_marked_missing(embedded_settings, library):
    # Given a cataloged photo that then changes, so that the next scan lists it to re-read
    write_jpeg(library / "a.jpg", 1)
    write_jpeg(library / "b.jpg", 2)
    run_scan(embedded_settings, str(library))
    write_jpeg(library / "a.jpg", 3)
    # When it is deleted after the walk, before its batch reads it
    report = _scan_with(
        embedded_settings, library, {"catalog": lambda: os.remove(library / "a.jpg")}
    )
    # Then the scan finishes, naming it, and it is no longer listed as present
    assert report["job"]["state"] == "done"
    assert "a.jpg" in errors_of(report) and "a.jpg" not in by_path(report)
    assert by_path(report)["b.jpg"]["sha256"]


def test_file_deleted_before_its_full_hash_is_marked_missing(embedded_settings, library):
    _same_size_pair(library)
    report = _scan_with(embedded_settings, library, {"full": lambda: os.remove(library / "a.mov")})
    assert errors_of(report)["a.mov"] == "file vanished before it could be read"
    assert "a.mov" not in by_path(report)  # not listed as present any more
    assert by_path(report)["b.mov"]["sha256"] and report["job"]["state"] == "done"


def test_file_changed_while_fully_hashed_keeps_no_hash(embedded_settings, library, monkeypatch):
    from core import catalog

    _same_size_pair(library)
    real = catalog.hash_stream

    def growing(fh, prefix=b""):
        if os.readlink(f"/proc/self/fd/{fh.fileno()}").endswith("a.mov"):
            with (library / "a.mov").open("ab") as out:
                out.write(b"appended while hashing")
        return real(fh, prefix)

    monkeypatch.setattr(catalog, "hash_stream", growing)
    report = _scan_with(embedded_settings, library, {})
    files = by_path(report)
    assert errors_of(report)["a.mov"].startswith("file changed while it was being read")
    assert files["a.mov"]["sha256"] is None  # no digest of a half-old file
    assert files["b.mov"]["sha256"] is not None


def test_content_changed_with_same_size_and_mtime_needs_a_full_scan(embedded_settings, library):
    """Known limit, as rsync's: the stat diff trusts (size, mtime, inode). A file rewritten
    in place with its mtime put back is only re-read by a full scan."""
    path = write_jpeg(library / "a.jpg", 1)
    first = by_path(run_scan(embedded_settings, str(library)))
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    quick = by_path(run_scan(embedded_settings, str(library)))
    assert quick["a.jpg"]["sha256"] == first["a.jpg"]["sha256"]  # not noticed
    full = by_path(run_scan(embedded_settings, str(library), full=True))
    assert full["a.jpg"]["sha256"] != first["a.jpg"]["sha256"]


@pytest.mark.unprivileged
def test_unreadable_file_and_folder(embedded_settings, library):
    locked = write_jpeg(library / "locked.jpg", 1)
    locked.chmod(0)
    write_jpeg(library / "closed" / "x.jpg", 2)
    (library / "closed").chmod(0)
    try:
        report = run_scan(embedded_settings, str(library))
    finally:
        (library / "closed").chmod(0o755)
        locked.chmod(0o644)
    errors = errors_of(report)
    assert errors["locked.jpg"] == "permission denied"
    assert errors["closed"] == "cannot list folder: Permission denied"
    assert report["job"]["state"] == "done"


def test_a_file_swapped_for_a_symlink_before_its_full_hash_is_not_followed(
    embedded_settings, library, tmp_path
):
    # Given a file moved out of the library (size and mtime kept) and a link left in its
    # place, after the scan listed it and before its full hash
    _same_size_pair(library)
    outside = tmp_path / "elsewhere.mov"

    def swap() -> None:
        shutil.move(library / "a.mov", outside)
        os.symlink(outside, library / "a.mov")

    report = _scan_with(embedded_settings, library, {"full": swap})
    # Then what lies outside the library is not read
    assert errors_of(report)["a.mov"] == "is a symlink now; not followed"
    assert by_path(report).get("a.mov", {}).get("sha256") is None


def test_the_hash_phases_count_every_file_to_the_end(embedded_settings, library):
    import hashlib

    from core.db import session_scope
    from core.models import File
    from workers import runtime

    # Given two byte copies of a video: catalogued, then quick and full digests
    data = os.urandom(30_000)
    write_bytes(library / "a.mov", data)
    write_bytes(library / "b.mov", data)
    report = run_scan(embedded_settings, str(library))
    # Then the job's progress ends where its count does, and both hashes are stored (the
    # gateway finds Immich uploads by SHA-1)
    job = report["job"]
    assert job["done"] == job["total"] > 0 and job["failed"] == 0, job
    with session_scope(runtime.engine()) as s:
        rows = s.query(File.path, File.sha256, File.sha1).all()
        assert {(r.sha256, r.sha1) for r in rows} == {
            (hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest())
        }


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_a_row_the_database_refuses_costs_only_its_own_file(request, db, library, monkeypatch):
    from core import catalog

    cfg = request.getfixturevalue("embedded_settings" if db == "sqlite" else "pg_settings")
    # Given three photos in one batch, one of which has a value the database cannot hold
    # (a stand-in for whatever the next odd file brings: a number out of range)
    for n in (1, 2, 3):
        write_jpeg(library / f"IMG_{n}.jpg", n)
    # (and which is truncated too: one file, counted once however many ways it failed)
    data = (library / "IMG_2.jpg").read_bytes()
    (library / "IMG_2.jpg").write_bytes(data[: len(data) // 2])
    real = catalog._row_values

    def row_values(root, key, path, st, facts):  # type: ignore[no-untyped-def]
        values = real(root, key, path, st, facts)
        if path.endswith("IMG_2.jpg"):
            values["size"] = 1 << 70
        return values

    monkeypatch.setattr(catalog, "_row_values", row_values)
    # When the library is scanned
    report = run_scan(cfg, str(library))
    # Then the scan finished, the other two are cataloged, and the refused one is named
    assert report["job"]["state"] == "done", report["job"]
    assert sorted(by_path(report)) == ["IMG_1.jpg", "IMG_3.jpg"]
    assert errors_of(report)["IMG_2.jpg"].startswith("could not be cataloged")
    assert report["job"]["failed"] == 1


def _crashes(settings, job_id: str, seq: int, n: int) -> None:
    """``n`` deliveries of a batch that died with their process (the worker killed): each
    began, and its process is gone (this host and pid, another incarnation: a restart)."""
    from sqlalchemy import update

    from core import jobs, leases
    from core.models import JobBatch
    from workers import runtime

    dead = f"batch@{leases.holder_id()}/{'0' * 8}"
    for _ in range(n):
        jobs.begin_attempt(runtime.engine(), job_id, seq)
        with runtime.engine().begin() as conn:
            conn.execute(
                update(JobBatch)
                .where(JobBatch.job_id == job_id, JobBatch.seq == seq)
                .values(delivered_to=dead)
            )


def test_a_batch_that_keeps_killing_its_worker_is_skipped_named(embedded_settings, library):
    from core import catalog
    from core.db import session_scope
    from workers import runtime

    # Given a batch whose reading killed the worker three times (out of memory)
    settings = replace(embedded_settings, batch_files=2)
    for i in range(4):
        write_jpeg(library / f"IMG_000{i}.JPG", i)
    job_id = planned_scan(settings, library)
    with session_scope(runtime.engine()) as s:
        first = catalog.queued_batches(s, job_id)[0]
    _crashes(settings, job_id, first, catalog.CRASHES_BEFORE_SKIPPING)

    # When it is delivered again, Then its files are skipped, each named with the reason,
    # and the scan finishes with the others cataloged
    report = _scan_with_planned(settings, job_id)
    assert report["job"]["state"] == "done"
    skipped = {p: e for p, e in errors_of(report).items() if "stopped the worker" in e}
    assert len(skipped) == 2 and len(by_path(report)) == 2
    assert not set(skipped) & set(by_path(report))


def test_a_batch_that_failed_with_an_error_is_not_taken_for_a_crash(
    embedded_settings, library, monkeypatch
):
    from core import catalog
    from core.db import session_scope
    from workers import runtime

    job_id, seq = _one_batch_scan(embedded_settings, library)
    real = catalog._catalog_items

    # Given a batch that failed with an error (after writing) more times than a crash
    # would be allowed, each delivery by this live process
    def write_then_fail(session, *args):
        real(session, *args)
        session.flush()
        raise ConnectionError("the database went away")

    monkeypatch.setattr(catalog, "_catalog_items", write_then_fail)
    for _ in range(catalog.CRASHES_BEFORE_SKIPPING + 1):
        with session_scope(runtime.engine()) as s, pytest.raises(ConnectionError):
            catalog.process_batch(s, job_id, seq, embedded_settings)
    # When it is delivered once more and works, Then its file is read, not skipped
    monkeypatch.setattr(catalog, "_catalog_items", real)
    report = _scan_with_planned(embedded_settings, job_id)
    assert "IMG_0001.JPG" in by_path(report) and errors_of(report) == {}


def test_errors_across_worker_restarts_are_not_taken_for_crashes(
    embedded_settings, library, monkeypatch
):
    from core import catalog, leases
    from workers import actors

    job_id, seq = _one_batch_scan(embedded_settings, library)
    real = catalog._catalog_items

    def database_away(*args, **kwargs):
        raise ConnectionError("the database went away")

    # Given a batch whose deliveries failed with an error, the worker restarted (a deploy)
    # between each of them
    monkeypatch.setattr(catalog, "_catalog_items", database_away)
    for i in range(catalog.CRASHES_BEFORE_SKIPPING + 1):
        monkeypatch.setattr(leases, "INCARNATION", f"restart{i}")
        with pytest.raises(ConnectionError):
            actors.scan_batch.fn(job_id, seq)
    # When it is delivered once more and works, Then its file is read, not skipped
    monkeypatch.setattr(catalog, "_catalog_items", real)
    report = _scan_with_planned(embedded_settings, job_id)
    assert "IMG_0001.JPG" in by_path(report) and errors_of(report) == {}
