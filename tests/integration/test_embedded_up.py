"""`twinlens up LIBRARY`, the README's run command, as a photographer uses it: one process
that scans the library, serves the UI and the APIs, and keeps up as photos arrive."""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

from tests.factories import embedded_worker_lease, write_jpeg
from tests.netutil import free_port

PROJECT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90


class Up:
    """A running `twinlens up` and the lines it printed."""

    def __init__(self, proc: subprocess.Popen, url: str) -> None:
        self.proc, self.url = proc, url
        self.lines: queue.Queue[str] = queue.Queue()
        self.printed: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.printed.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} never printed; got:\n{''.join(self.printed)[-4000:]}")

    def get(self, path: str) -> dict:
        answer = requests.get(self.url + path, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    lib = tmp_path / "photos"
    taken = datetime(2024, 5, 1, 10, 0, 0)
    write_jpeg(lib / "2024" / "IMG_0001.JPG", 1, taken=taken)
    write_jpeg(lib / "2024" / "IMG_0002.JPG", 2, taken=taken.replace(minute=5))
    return lib


@pytest.fixture
def up(tmp_path: Path, photos: Path) -> Iterator[Up]:
    gateway, grouping, dedup = free_port(), free_port(), free_port()
    env = {
        "TWINLENS_DATA_DIR": str(tmp_path / "data"),
        "TWINLENS_WATCH_SETTLE": "0.5",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    command = [sys.executable, "-u", str(PROJECT / "twinlens.py"), "up", str(photos)]
    ports = ["--port", str(gateway), "--grouping-port", str(grouping)]
    proc = subprocess.Popen(
        [*command, *ports, "--dedup-port", str(dedup)],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Up(proc, f"http://127.0.0.1:{gateway}")
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _until(check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.25)


def test_up_serves_the_library_and_scans_photos_as_they_arrive(up: Up, photos: Path) -> None:
    library = photos
    # Given `twinlens up` on a library of two different pictures
    # (serving before its first scan: the UI shows that scan's progress)
    up.wait_for("Twinlens is up on " + up.url, START_TIMEOUT)
    up.wait_for("Scanned ", START_TIMEOUT)
    line = up.wait_for("Twinlens is running", START_TIMEOUT)
    assert up.url.rsplit(":", 1)[1] in line and "Watching" in line, line
    assert up.get("/api/twinlens/stats")["duplicates"]["groups"] == 0

    # When a card import lands in a new folder: a copy of one picture and a sidecar
    (library / "import").mkdir()
    shutil.copy2(library / "2024" / "IMG_0001.JPG", library / "import" / "DSC_0001.JPG")
    (library / "import" / "DSC_0001.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')

    # Then, without anyone asking for a scan, the copy is a duplicate and the sidecar joined
    # its picture
    def seen() -> bool:
        stats = up.get("/api/twinlens/stats")
        return stats["duplicates"]["groups"] == 1 and stats["groups"]["total"] == 1

    _until(seen)
    [group] = up.get("/api/twinlens/duplicates")["items"]
    assert {m["path"] for m in group["members"]} == {
        str(library / "2024" / "IMG_0001.JPG"),
        str(library / "import" / "DSC_0001.JPG"),
    }
    jobs = up.get("/api/twinlens/jobs")["items"]
    assert any(j["kind"] == "scan" and j["trigger"] == "watch" for j in jobs), jobs

    # And Ctrl-C (SIGTERM here) stops it cleanly
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=30) == 0


def test_up_runs_the_nightly_scan_too(embedded_settings, library: Path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from core.db import migrate, session_scope
    from core.models import Job
    from workers import embedded, runtime, scheduler

    # Given the background work of `twinlens up` started beside its worker threads
    write_jpeg(library / "a.jpg", 1)
    migrate(embedded_settings.database_url)
    broker = runtime.install_broker(embedded_settings)
    worker = runtime.start_worker(broker, 1)
    watcher = embedded.start_watcher(embedded_settings, broker)
    nightly = embedded.start_nightly(embedded_settings, broker)
    try:
        # Then the nightly scan is scheduled at the cron's next time
        job = nightly.get_job("nightly-scan")
        trig = scheduler.trigger(embedded_settings)
        now = datetime.now(trig.timezone)
        assert job.next_run_time == trig.get_next_fire_time(None, now)
        # And when it fires, the library is scanned in this process
        job.func()

        def scanned() -> bool:
            with session_scope(runtime.engine()) as s:
                states = s.scalars(select(Job.state).where(Job.trigger == "schedule")).all()
            return states == ["done"]

        _until(scanned)
    finally:
        nightly.shutdown(wait=False)
        watcher.stop()
        worker.stop()


@pytest.mark.parametrize("other_process_alive", [True, False])
def test_stopping_up_leaves_another_live_process_its_jobs(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path, other_process_alive: bool
) -> None:
    import os
    from datetime import timedelta

    from core import jobs
    from core.db import migrate, session_scope
    from core.models import utcnow
    from workers import embedded, runtime

    # Given a scan started while `twinlens up` ran, and maybe a `twinlens scan` beside it
    migrate(embedded_settings.database_url)
    runtime.configure(embedded_settings)
    since = utcnow() - timedelta(seconds=1)
    with session_scope(runtime.engine()) as s:
        job, _ = jobs.start_job(s, "scan", root=jobs.get_or_create_root(s, str(library)))
        s.add(embedded_worker_lease(os.getppid() if other_process_alive else 999_999_999))
    # When `up` stops
    embedded._fail_unfinished(since)
    # Then the scan is failed only when no other process could be running it
    with session_scope(runtime.engine()) as s:
        state = s.get(jobs.Job, job.id).state
    assert (state in jobs.ACTIVE_STATES) is other_process_alive, state


def test_up_with_a_bad_schedule_says_so_before_scanning(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path, capsys
) -> None:
    from dataclasses import replace

    from workers import embedded

    # Given a schedule cron cannot read, and a time zone that does not exist
    for cfg, words in (
        (replace(embedded_settings, schedule_cron="0 3 * * 9"), "TWINLENS_SCHEDULE_CRON"),
        (replace(embedded_settings, timezone="Mars/Olympus"), "TWINLENS_TIMEZONE"),
    ):
        # When `twinlens up` starts, Then it stops at once with the reason, before a scan
        assert embedded.main(cfg, str(library)) == 2
        assert words in capsys.readouterr().out
    assert not (embedded_settings.data_dir / "twinlens.db").exists()


@pytest.mark.parametrize(
    "which, flag", [(0, "--port"), (1, "--grouping-port"), (2, "--dedup-port")]
)
def test_up_on_a_port_in_use_says_so_before_scanning(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path, capsys, which: int, flag: str
) -> None:
    import socket

    from workers import embedded

    # Given another program listening on one of Twinlens's ports (gateway, grouping, dedup)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    numbers = [free_port(), free_port(), free_port()]
    numbers[which] = taken.getsockname()[1]
    ports = embedded.Ports(*numbers)
    write_jpeg(library / "IMG_0001.JPG", 1)
    try:
        # When `twinlens up` starts, Then it stops at once, naming the port and the way out
        assert embedded.main(embedded_settings, str(library), ports=ports) == 2
    finally:
        taken.close()
    out = capsys.readouterr().out
    # (the option that moves that very port: --port alone would not move the APIs')
    assert f"port {numbers[which]}" in out and f'make run ARGS="{flag} N"' in out, out
    # ... before any scan, and the ports it did take are free again
    assert "Scanning" not in out
    for port in numbers[:which] + numbers[which + 1 :]:
        with socket.socket() as again:
            again.bind(("127.0.0.1", port))


def test_up_on_a_folder_of_a_library_scans_it_in_that_library(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path, capsys
) -> None:
    from sqlalchemy import select

    from core.db import engine_for, session_scope
    from core.models import File, Root
    from workers import embedded

    # Given a library scanned before
    write_jpeg(library / "2024" / "IMG_0001.JPG", 1)
    write_jpeg(library / "2023" / "IMG_0002.JPG", 2)
    assert embedded.main(embedded_settings, str(library), serve=False) == 0
    # When `twinlens up` is given one of its folders
    assert embedded.main(embedded_settings, str(library / "2024"), serve=False) == 0
    # Then the folder is scanned as a folder of that library, not as a root of its own
    # (which would take its files over, and hand them back at the library's next scan)
    assert "scanning it as a folder of it" in capsys.readouterr().out
    with session_scope(engine_for(embedded_settings.database_url)) as s:
        assert s.scalars(select(Root.path)).all() == [str(library)]
        assert len(s.scalars(select(File.id).where(File.status == "present")).all()) == 2


def test_the_demo_leaves_nothing_in_the_real_librarys_catalog(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path
) -> None:
    from sqlalchemy import select

    from core.db import engine_for, session_scope
    from core.models import Root
    from workers import embedded

    # Given the demo run first, as the README suggests
    assert embedded.main(embedded_settings, None, serve=False) == 0
    # When a real library is given
    write_jpeg(library / "IMG_0001.JPG", 1)
    assert embedded.main(embedded_settings, str(library), serve=False) == 0
    # Then its catalog holds that library only: no demo groups or duplicates in its lists
    with session_scope(engine_for(embedded_settings.database_url)) as s:
        assert s.scalars(select(Root.path)).all() == [str(library)]


def test_the_demo_run_after_a_real_library_names_that_library(  # type: ignore[no-untyped-def]
    embedded_settings, library: Path, capsys
) -> None:
    from dataclasses import replace

    from workers import embedded

    # Given a real library scanned first (given on the command line, its name with a space)
    cfg = replace(embedded_settings, library_roots=())
    real = library.parent / "My Photos"
    write_jpeg(real / "IMG_0001.JPG", 1)
    assert embedded.main(cfg, str(real), serve=False) == 0
    capsys.readouterr()
    # When Twinlens is run again without a library
    assert embedded.main(cfg, None, serve=False) == 0
    # Then it says the demo is shown, and how to get back to the library of before
    out = capsys.readouterr().out
    assert "generated a demo library" in out
    assert f"make run LIBRARY='{real}'" in out, out
