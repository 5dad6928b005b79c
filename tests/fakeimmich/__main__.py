"""Run the fake Immich for benchmarks: ``python -m tests.fakeimmich``.

Seeded deterministically (same ids in every worker) from environment variables:
FAKE_ASSETS (assets in one month bucket, default 2000), FAKE_BIG_FILE (path of a file served
as one asset's original), FAKE_API_KEY (an `all` API key), FAKE_LIBRARY_ROOT, FAKE_PORT,
FAKE_WORKERS, FAKE_THREADS, FAKE_SERVER (gunicorn, the default, or granian).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

from tests.fakeimmich.app import FakeState, create_app

BENCH_EMAIL = "bench@example.com"
BENCH_USER_ID = "8c4b5f6e-1a2b-4c3d-9e8f-000000000001"
BENCH_LIBRARY_ID = "8c4b5f6e-1a2b-4c3d-9e8f-0000000000ff"


def bench_asset_id(i: int) -> str:
    return str(uuid.UUID(int=(0xA5 << 120) | (4 << 76) | (0x8 << 60) | i))


def seeded_state(n_assets: int, big_file: str | None, api_key: str, library_root: str) -> FakeState:
    state = FakeState()
    user = state.add_user(BENCH_EMAIL, "bench", is_admin=True)
    state.users.pop(user["id"])
    user["id"] = BENCH_USER_ID
    state.users[BENCH_USER_ID] = user
    state.api_keys[api_key] = (BENCH_USER_ID, frozenset({"all"}))
    start = datetime(2024, 5, 1, tzinfo=UTC)
    for i in range(n_assets):
        # Pairs IMG_n.JPG + IMG_n.CR3, as a RAW+JPEG library looks.
        ext = ".CR3" if i % 2 else ".JPG"
        path = f"{library_root}/2024/05/IMG_{i // 2:05d}{ext}"
        state.add_asset(
            BENCH_USER_ID,
            path,
            content=path.encode(),
            library_id=BENCH_LIBRARY_ID,
            taken=start + timedelta(minutes=i),
            asset_id=bench_asset_id(i),
        )
    if big_file:
        state.assets[bench_asset_id(0)]["originalMimeType"] = "video/mp4"
        state.blobs[bench_asset_id(0)] = big_file
        state.assets[bench_asset_id(0)]["exifInfo"]["fileSizeInByte"] = os.path.getsize(big_file)
    return state


def bench_app():  # type: ignore[no-untyped-def]
    """The seeded app, as each server worker builds it."""
    return create_app(
        seeded_state(
            int(os.environ.get("FAKE_ASSETS", "2000")),
            os.environ.get("FAKE_BIG_FILE"),
            os.environ.get("FAKE_API_KEY", "bench-key"),
            os.environ.get("FAKE_LIBRARY_ROOT", "/mnt/photos"),
        )
    )


def main() -> None:
    port, workers = (
        int(os.environ.get("FAKE_PORT", "2283")),
        int(os.environ.get("FAKE_WORKERS", "2")),
    )
    threads = int(os.environ.get("FAKE_THREADS", "8"))
    if os.environ.get("FAKE_SERVER", "gunicorn") == "granian":
        _run_granian(port, workers, threads)
    else:
        _run_gunicorn(port, workers, threads)


def _run_granian(port: int, workers: int, threads: int) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    Server(
        "tests.fakeimmich.__main__:bench_app",
        port=port,
        interface=Interfaces.WSGI,
        factory=True,
        workers=workers,
        blocking_threads=threads,
        log_level="warning",
    ).serve()


def _run_gunicorn(port: int, workers: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    app = bench_app()

    class _App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"127.0.0.1:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", os.environ.get("FAKE_WORKER_CLASS", "gthread"))
            self.cfg.set("threads", threads)
            self.cfg.set("accesslog", None)
            self.cfg.set("keepalive", 30)

        def load(self):
            return app

    _App().run()


if __name__ == "__main__":
    main()
