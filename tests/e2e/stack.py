"""A whole Twinlens for the browser test: grouping and dedup APIs, the gateway (local
mode) and the built UI behind one origin, on free loopback ports.

The UI server mirrors docker/nginx.conf: ``/api/`` goes to the gateway, everything else
is a file of ``ui/dist`` (``/`` is index.html).

    python -m tests.e2e.stack LIBRARY [--port 8080]   # scan LIBRARY and serve it by hand
"""

from __future__ import annotations

import argparse
import random
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]
UI_DIR = REPO / "ui"
DIST = UI_DIR / "dist"


# --- a small generated library --------------------------------------------------------


def picture(seed: int, size: tuple[int, int] = (1200, 900)) -> Image.Image:
    """A picture of its own: shapes placed by ``seed`` on a gradient (distinct pHashes)."""
    rng = random.Random(seed)
    w, h = size
    img = (
        Image.linear_gradient("L").rotate(rng.choice((0, 90, 180, 270))).resize(size).convert("RGB")
    )
    draw = ImageDraw.Draw(img)
    for _ in range(30):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(40, w // 2), y0 + rng.randrange(40, h // 2)
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)((x0, y0, x1, y1), fill=fill)
    return img


def make_library(root: Path) -> dict[str, list[str]]:
    """Byte copies of one shot, a resized re-encode of another, unrelated shots, sidecars
    and an unreadable file. Returns the expected duplicate sets and file groups (absolute
    paths): ``exact``, ``perceptual``, ``group_102`` (a JPEG with two sidecars) and
    ``group_103`` (a JPEG with one)."""
    trip, backup = root / "2024" / "trip", root / "backup"
    trip.mkdir(parents=True, exist_ok=True)
    backup.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        picture(i).save(trip / f"IMG_{100 + i}.JPG", "JPEG", quality=90)
    shutil.copyfile(trip / "IMG_100.JPG", backup / "IMG_100.JPG")
    picture(1).resize((600, 450)).save(backup / "IMG_101-small.jpg", "JPEG", quality=75)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    # Editors' sidecars: file groups (not duplicates) for the Groups page. Their contents
    # differ so that no two of them are byte copies.
    for name in ("IMG_102.JPG.xmp", "IMG_102.xmp", "IMG_103.JPG.xmp"):
        (trip / name).write_text(
            f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><!-- {name} --></x:xmpmeta>\n'
        )
    return {
        "exact": sorted([str(trip / "IMG_100.JPG"), str(backup / "IMG_100.JPG")]),
        "perceptual": sorted([str(trip / "IMG_101.JPG"), str(backup / "IMG_101-small.jpg")]),
        "group_102": sorted(
            str(trip / n) for n in ("IMG_102.JPG", "IMG_102.JPG.xmp", "IMG_102.xmp")
        ),
        "group_103": sorted(str(trip / n) for n in ("IMG_103.JPG", "IMG_103.JPG.xmp")),
    }


# --- the UI origin -----------------------------------------------------------------------


def ui_app(gateway_app: Callable, dist: Path = DIST) -> Callable:
    """WSGI app: /api/* to the gateway, the rest from ``dist`` (like docker/nginx.conf)."""
    from werkzeug.middleware.shared_data import SharedDataMiddleware
    from werkzeug.wrappers import Response

    def not_found(environ: dict, start_response: Callable) -> Iterable[bytes]:
        return Response("not found", status=404)(environ, start_response)

    static = SharedDataMiddleware(not_found, {"/": str(dist)}, cache=False)

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/api/"):
            return gateway_app(environ, start_response)
        if path in ("", "/"):
            environ = {**environ, "PATH_INFO": "/index.html"}
        return static(environ, start_response)

    return app


@dataclass
class Stack:
    url: str
    gateway_url: str
    grouping_url: str = ""
    dedup_url: str = ""
    servers: list[Any] = field(default_factory=list)
    worker: Any = None

    def stop(self) -> None:
        for s in self.servers:
            s.shutdown()
        if self.worker is not None:
            self.worker.stop()


def _serve(app: Callable, port: int = 0) -> tuple[Any, str]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def start(
    cfg: Any,
    port: int = 0,
    dist: Path = DIST,
    immich_url: str = "",
    path_map: tuple[tuple[str, str], ...] = (),
) -> Stack:
    """Serve an already-scanned ``cfg`` library: APIs, a worker (for "Scan now"), the
    gateway (local mode unless ``immich_url``) and the UI, on free ports unless ``port``."""
    import api
    import gateway
    from workers import runtime

    broker = runtime.install_broker(cfg)
    worker = runtime.start_worker(broker, 1)
    stack = Stack(url="", gateway_url="", worker=worker)
    try:
        g, g_url = _serve(api.create_app("grouping", {"settings": cfg, "broker": broker}))
        stack.servers.append(g)
        d, d_url = _serve(api.create_app("dedup", {"settings": cfg, "broker": broker}))
        stack.servers.append(d)
        stack.grouping_url, stack.dedup_url = g_url, d_url
        gw_cfg = replace(
            cfg,
            immich_url=immich_url,
            path_map=path_map,
            cache_url="memory://",
            grouping_url=g_url,
            dedup_url=d_url,
        )
        gw_app = gateway.create_app({"SETTINGS": gw_cfg})
        gw, stack.gateway_url = _serve(gw_app)
        stack.servers.append(gw)
        ui, stack.url = _serve(ui_app(gw_app, dist), port)
        stack.servers.append(ui)
    except BaseException:
        stack.stop()
        raise
    return stack


def main(argv: list[str] | None = None) -> int:
    import tempfile
    import time

    import twinlens
    from core.config import load_settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("library", nargs="?", help="a folder (default: a generated one)")
    p.add_argument("--port", type=int, default=8080)
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="twinlens-ui-"))
    library = Path(args.library).resolve() if args.library else tmp / "library"
    if not args.library:
        make_library(library)
    cfg = load_settings(
        {},
        data_dir=tmp / "data",
        database_url=f"sqlite:///{tmp / 'data' / 'twinlens.db'}",
        library_roots=(library,),
        immich_url="",
    )
    twinlens.run_scan(cfg, str(library))
    stack = start(cfg, port=args.port)
    print(f"UI on {stack.url}/ (library {library}); Ctrl-C stops")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
