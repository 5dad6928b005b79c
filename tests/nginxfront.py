"""The deployment's nginx (docker/nginx.conf) run for real in front of a gateway, for the
tests and the gateway benchmark. The file is a template for nginx's Docker image (a
``server`` block, ``${VAR}`` filled in from the environment); this renders it with local
addresses, a loopback port and paths under a scratch directory, then wraps it in the
``http`` block the image's main configuration would provide.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.netutil import free_port

PROJECT = Path(__file__).resolve().parents[1]
TEMPLATE = PROJECT / "docker" / "nginx.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


# ``server host:port resolve;`` in an upstream: open-source nginx has the parameter since
# 1.27.3 (the image's, docker/Dockerfile.ui); Debian's 1.22 refuses it.
RESOLVE = re.compile(r"^(\s*server\s+\S+)\s+resolve;", flags=re.M)


@functools.cache
def supports_resolve(exe: str | None = None) -> bool:
    """Whether this nginx takes ``resolve`` on an upstream's server (1.27.3 or later)."""
    exe = exe or nginx_binary()
    if exe is None:
        return False
    out = subprocess.run([exe, "-v"], capture_output=True, text=True).stderr
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    return bool(m) and tuple(map(int, m.groups())) >= (1, 27, 3)


def render(
    port: int,
    gateway: str,
    immich: str,
    workdir: Path,
    workers: int = 1,
    resolve: bool | None = None,
) -> str:
    """The nginx.conf of the UI image, listening on 127.0.0.1:``port``, in front of
    ``gateway`` and ``immich`` (host:port each). The upstreams keep ``resolve`` only if
    this nginx has it (``resolve``: None asks the installed nginx); the tests give them
    IP addresses, which it would never look up anyway."""
    server = TEMPLATE.read_text()
    assert len(RESOLVE.findall(server)) == 2, "docker/nginx.conf: upstreams without resolve"
    if not (supports_resolve() if resolve is None else resolve):
        server = RESOLVE.sub(r"\1;", server)
    server = server.replace("${TWINLENS_GATEWAY}", gateway).replace("${IMMICH_UPSTREAM}", immich)
    for needle, value in (
        ("listen 8080;", f"listen 127.0.0.1:{port};"),
        ("root /usr/share/nginx/html;", f"root {workdir / 'html'};"),
        ("/var/log/nginx/access.log", str(workdir / "access.log")),
        ("/var/log/nginx/error.log", str(workdir / "server-error.log")),
    ):
        assert needle in server, f"docker/nginx.conf no longer has {needle!r}"
        server = server.replace(needle, value)
    assert "${" not in server, "docker/nginx.conf names a variable this renderer does not fill"
    temp = "\n".join(
        f"    {kind}_temp_path {workdir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would switch to "nobody", who cannot read a 0700 scratch dir.
    user = "user root;" if os.geteuid() == 0 else ""
    return (
        f"daemon off;\n{user}\nworker_processes {workers};\npid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n    default_type application/octet-stream;\n{temp}\n{server}\n}}\n"
    )


class NginxFront:
    """nginx with the deployment's configuration, started and stopped around a block."""

    def __init__(self, gateway: str, immich: str, workdir: Path, workers: int = 1) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._conf = render(self.port, gateway, immich, self.workdir, workers)
        self._proc: subprocess.Popen | None = None

    def start(self) -> NginxFront:
        exe = nginx_binary()
        if exe is None:
            raise RuntimeError("nginx is not installed (Debian package nginx)")
        (self.workdir / "html").mkdir(parents=True, exist_ok=True)
        (self.workdir / "html" / "index.html").write_text("<!doctype html><title>Twinlens</title>")
        conf = self.workdir / "nginx.conf"
        conf.write_text(self._conf)
        self._proc = subprocess.Popen(
            [exe, "-e", str(self.workdir / "error.log"), "-c", str(conf), "-p", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"nginx exited: {err}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start listening")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> NginxFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
