"""docker-compose.yml and the Dockerfiles cannot run here (no Docker engine), so they
are checked by parsing them and by `docker-compose config`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

import twinlens
from core.config import VARIABLES
from tests.require import missing
from twinlens import build_parser

PROJECT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((PROJECT / "docker-compose.yml").read_text())
PROCESSES = {"worker", "watcher", "scheduler", "grouping-api", "dedup-api", "gateway", "migrate"}


def test_every_process_of_the_design_is_a_service():
    services = COMPOSE["services"]
    assert PROCESSES | {"custom-postgres", "twinlens-redis", "ui"} <= set(services)


# Each process of the design, and the CLI handler its container must run.
HANDLERS = {
    "migrate": twinlens.cmd_migrate,
    "worker": twinlens.cmd_worker,
    "watcher": twinlens.cmd_watch,
    "scheduler": twinlens.cmd_schedule,
    "grouping-api": twinlens.cmd_api,
    "dedup-api": twinlens.cmd_api,
    "gateway": twinlens.cmd_gateway,
}


def test_each_service_runs_its_own_twinlens_command():
    parser = build_parser()
    assert set(HANDLERS) == PROCESSES
    for name, handler in HANDLERS.items():
        command = COMPOSE["services"][name]["command"]
        args = parser.parse_args(command)  # raises SystemExit on an unknown command
        assert args.func is handler, name
    api_of = {
        n: parser.parse_args(COMPOSE["services"][n]["command"])
        for n in ("grouping-api", "dedup-api")
    }
    assert [a.which for a in api_of.values()] == ["grouping", "dedup"]


def test_library_is_mounted_read_only_and_settings_are_real_variables():
    for name in PROCESSES:
        svc = COMPOSE["services"][name]
        photos = [v for v in svc["volumes"] if ":/photos" in v]
        assert photos and all(v.endswith(":ro") for v in photos), name
        unknown = set(svc["environment"]) - set(VARIABLES)
        assert unknown == set(), unknown


def test_every_setting_reaches_the_containers():
    # A variable set in .env reaches a container only if compose names it: every setting
    # is either fixed by the deployment or passed through (empty means the default)
    env = dict(COMPOSE["x-twinlens"]["environment"])
    # A secret only one service uses is set on that service alone
    env.update(COMPOSE["services"]["gateway"]["environment"])
    fixed_by_the_image = {"TWINLENS_DATA_DIR"}  # the /data volume (docker/Dockerfile)
    assert set(VARIABLES) - fixed_by_the_image - set(env) == set()
    assert "TWINLENS_IMMICH_API_KEY" not in COMPOSE["services"]["worker"]["environment"]
    for name, value in env.items():
        if value.startswith("${"):
            assert value.startswith(("${" + name, "${TZ")), (name, value)


def test_dockerfiles_copy_only_what_exists():
    for dockerfile in ("docker/Dockerfile", "docker/Dockerfile.ui"):
        text = (PROJECT / dockerfile).read_text()
        for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
            for item in src.split():
                assert (PROJECT / item).exists(), f"{dockerfile}: COPY {item} does not exist"


def test_nginx_routes_websockets_straight_to_immich():
    conf = (PROJECT / "docker" / "nginx.conf").read_text()
    block = conf[conf.index("location /api/socket.io") :]
    block = block[: block.index("}") + 1]
    assert "Upgrade" in block and "proxy_http_version 1.1" in block
    assert "IMMICH_UPSTREAM" in block or "immich" in block.lower()


def test_the_services_that_call_immich_share_a_network_with_it():
    # Immich runs from its own compose project; its server is reached by name, so the
    # gateway (the Immich client) and nginx (which proxies to Immich directly: websockets,
    # offloaded reads) join Immich's network, and keep their own to reach the rest
    network = COMPOSE["networks"]["immich"]
    assert network["external"] is True and "IMMICH_NETWORK" in network["name"]
    for name in ("gateway", "ui"):
        assert set(COMPOSE["services"][name]["networks"]) == {"default", "immich"}, name
    env = COMPOSE["x-twinlens"]["environment"]
    assert "immich-server" in env["TWINLENS_IMMICH_URL"]
    assert "immich-server" in COMPOSE["services"]["ui"]["environment"]["IMMICH_UPSTREAM"]


def test_docker_compose_config_accepts_the_file():
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("TWINLENS_REQUIRE_SERVICES") == "1":
            pytest.fail("docker-compose is not installed (Debian package docker-compose)")
        missing("docker-compose is not installed (Debian package docker-compose)")
    env = dict(os.environ, TWINLENS_SERVICE_TOKEN="x" * 32, PHOTOS="/srv/photos")
    proc = subprocess.run(
        [exe, "config", "-q"], cwd=PROJECT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    # And it refuses to start without the secrets the services need
    env.pop("TWINLENS_SERVICE_TOKEN")
    proc = subprocess.run(
        [exe, "config", "-q"], cwd=PROJECT, env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "TWINLENS_SERVICE_TOKEN" in proc.stderr


# The services of Immich's own docker-compose.yml: on Immich's network these names
# resolve to Immich's containers.
IMMICH_HOSTS = {"immich-server", "immich-machine-learning", "redis", "database"}
# The settings that are meant to reach Immich.
TO_IMMICH = {"TWINLENS_IMMICH_URL", "IMMICH_UPSTREAM"}


def _defaults(value: str) -> str:
    """A compose value with each ${VAR:-default} as its default (${VAR} as empty)."""
    return re.sub(r"\$\{\w+(?::?-([^}]*)|:?\?[^}]*)?\}", lambda m: m.group(1) or "", value)


def _host(value: str) -> str | None:
    value = _defaults(str(value))
    if "://" in value:
        return urlsplit(value).hostname
    m = re.fullmatch(r"([A-Za-z0-9][\w.-]*):\d+", value)  # host:port (nginx upstreams)
    return m.group(1) if m else None


def test_no_service_on_immichs_network_names_a_host_of_immich_for_its_own():
    # The gateway and nginx join Immich's network as well as ours: a name both projects
    # define (Immich has "redis" and "database") may resolve to either's container
    services = COMPOSE["services"]
    assert not IMMICH_HOSTS & set(services)
    joined = [n for n, svc in services.items() if "immich" in (svc.get("networks") or [])]
    assert {"gateway", "ui"} <= set(joined)
    checked = 0
    for name in joined:
        for var, value in services[name].get("environment", {}).items():
            host = _host(value)
            if host is None:
                continue
            checked += 1
            if var in TO_IMMICH:
                assert host == "immich-server", (name, var, value)
            else:
                assert host not in IMMICH_HOSTS, (name, var, value)
                assert host in services, (name, var, value)  # one of ours, by its name
        for dep in services[name].get("depends_on") or []:
            assert dep not in IMMICH_HOSTS, (name, dep)
    assert checked >= 8  # the database, broker, cache, API, Immich and gateway addresses


def _nginx_conf() -> str:
    return (PROJECT / "docker" / "nginx.conf").read_text()


def test_nginx_finds_immich_and_the_gateway_at_run_time():
    # Names looked up only at nginx's start: with Immich not up yet (a NAS reboot) the ui
    # container would exit ("host not found in upstream")
    conf = _nginx_conf()
    assert re.search(r"^resolver 127\.0\.0\.11 valid=\d+s;", conf, flags=re.M)
    for name, var in (
        ("twinlens_gateway", "TWINLENS_GATEWAY"),
        ("immich_server", "IMMICH_UPSTREAM"),
    ):
        block = conf[conf.index(f"upstream {name} {{") :]
        block = block[: block.index("\n}") + 2]
        assert re.search(rf"^\s*zone {name} \d+k;", block, flags=re.M), name
        assert re.search(rf"^\s*server \$\{{{var}\}} resolve;", block, flags=re.M), name
    # ...which open-source nginx does from 1.27.3 on: the image's nginx, whatever patch
    # release its tag pulls
    ui = (PROJECT / "docker" / "Dockerfile.ui").read_text()
    (tag,) = re.findall(r"^FROM nginx:(\S+)", ui, flags=re.M)
    version = tuple(int(n) for n in re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", tag).groups() if n)
    assert version >= (1, 27, 3) if len(version) == 3 else version > (1, 27), tag


def test_nginx_forwards_the_host_with_its_port_and_waits_for_slow_clients():
    conf = _nginx_conf()
    assert "X-Forwarded-Host $host;" not in conf  # $host drops the port
    assert conf.count("X-Forwarded-Host $http_host;") >= 3
    assert re.search(r"^    send_timeout 600s;", conf, flags=re.M)


def _healthcheck(name: str, port: int) -> list[str]:
    """The service's healthcheck command, aimed at ``port`` on this machine instead."""
    test = COMPOSE["services"][name]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1:3] == ["python", "-c"], test  # no curl in the image
    code = test[3]
    own = {"grouping-api": 8000, "dedup-api": 8001, "gateway": 3000}[name]
    assert code.count(str(own)) == 1, code  # its own port...
    return [sys.executable, "-c", code.replace(str(own), str(port))]


def _serve(status: int):
    """An HTTP server on a free loopback port answering every GET with ``status``."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _healthy(cmd: list[str]) -> bool:
    return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0


def test_the_apis_and_the_gateway_have_healthchecks_and_the_ui_waits_for_the_gateway():
    from api import PORTS

    assert "FROM python:" in (PROJECT / "docker" / "Dockerfile").read_text()
    services = COMPOSE["services"]
    assert [services[n]["expose"] for n in ("grouping-api", "dedup-api")] == [
        [str(PORTS["grouping"])],
        [str(PORTS["dedup"])],
    ]
    assert services["gateway"]["ports"] == ["3000:3000"]
    assert services["ui"]["depends_on"] == {"gateway": {"condition": "service_healthy"}}
    assert services["ui"]["environment"]["TWINLENS_GATEWAY"] == "gateway:3000"
    for name in ("grouping-api", "dedup-api", "gateway"):
        down = _serve(200)
        port = down.server_address[1]
        down.shutdown()
        down.server_close()
        assert not _healthy(_healthcheck(name, port)), name  # nothing listening
        for status, expected in ((200, True), (500, False), (404, False)):
            srv = _serve(status)
            try:
                # An API's /healthz fails with its database; the gateway's answers 200
                # whatever Immich does: anything else is not a serving gateway
                assert _healthy(_healthcheck(name, srv.server_address[1])) is expected, (
                    name,
                    status,
                )
            finally:
                srv.shutdown()
                srv.server_close()


def test_the_readme_names_every_setting_compose_fixes():
    # A variable compose sets from anything but itself (a constant, or TZ) cannot be set
    # in .env: the deployment section says which
    readme = (PROJECT / "README.md").read_text()
    section = readme[readme.index("## Deploying beside Immich") :]
    section = section[: section.index("\n## ")]
    start = section.index("set by compose")
    fixed_list = section[start : section.index("by the image", start)]
    env = COMPOSE["x-twinlens"]["environment"]
    fixed = {n for n, v in env.items() if not v.startswith(("${" + n + ":", "${" + n + "}"))}
    assert {"TWINLENS_TIMEZONE", "TWINLENS_HOST"} <= fixed
    # (Not ${TWINLENS_TIMEZONE:-${TZ:-UTC}}: docker-compose 1.29 reads a nested default
    # as text, "${TZ:-UTC}", or "Europe/Berlin}" when the outer variable is set)
    assert [v for v in env.values() if v.count("${") > 1] == []
    assert [n for n in sorted(fixed) if f"`{n}" not in fixed_list] == []


def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as Docker reads it (moby's patternmatcher): paths relative to the
    context, "**" any number of folders, "*" and "?" within one name, "!" an exception."""
    rules = []
    for line in (PROJECT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((keep, re.compile(regex + r"\Z")))
    return rules


def _ignored(rules: list[tuple[bool, re.Pattern[str]]], path: str) -> bool:
    """Whether ``path`` stays out of the build context: it or a folder above it matches
    (Docker does not descend into an excluded folder); the last matching rule decides."""
    parts = path.split("/")
    ignored = False
    for keep, regex in rules:
        if any(regex.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            ignored = not keep
    return ignored


def test_dockerignore_keeps_the_hosts_junk_out_and_everything_copied_in():
    rules = _dockerignore()
    # The host's virtualenv and node modules, build output, caches, secrets
    for junk in (
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "ui/node_modules/@esbuild/linux-x64/bin/esbuild",
        "ui/node_modules/.bin/vite",
        "tests/e2e/node_modules/x/package.json",
        "ui/dist/index.html",
        "core/__pycache__/config.cpython-311.pyc",
        "gateway/__pycache__/ui.cpython-311.pyc",
        "twinlens.egg-info/PKG-INFO",
        "twinlens.db",
        "bench/_data/lib/a.jpg",
        ".pytest_cache/README.md",
    ):
        assert _ignored(rules, junk), junk
    # Every source the Dockerfiles COPY from the context, and every file of the project
    # (in git) under it
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked, "not a git checkout"
    copied = []
    for dockerfile in ("docker/Dockerfile", "docker/Dockerfile.ui"):
        text = (PROJECT / dockerfile).read_text()
        for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
            copied += src.split()
    assert {"core", "ui", "ui/package-lock.json", "docker/nginx.conf", "README.md"} <= set(copied)
    for src in copied:
        src = src.rstrip("/")
        assert not _ignored(rules, src), src
        under = [f for f in tracked if f == src or f.startswith(src + "/")]
        assert under, src
        assert [f for f in under if _ignored(rules, f)] == [], src


def test_data_is_writable_by_group_0_for_a_container_run_as_another_user():
    # user: "1026:100" with group_add: ["0"] (README) keeps its state in /data
    text = (PROJECT / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    lines = text.splitlines()
    (run,) = [n for n, line in enumerate(lines) if line.startswith("RUN ") and "/data" in line]
    user = lines.index("USER twinlens")
    assert run < user
    steps = [s.strip() for s in lines[run][4:].split("&&")]
    mkdir = next(i for i, s in enumerate(steps) if s.startswith("mkdir -p /data"))
    assert steps.index("chgrp -R 0 /data") > mkdir
    assert steps.index("chmod -R g+rwX /data") > mkdir
    assert 'VOLUME ["/data"]' in lines
    assert re.search(r"NUMBA_CACHE_DIR=/data/", text)
    deploy = (PROJECT / "README.md").read_text().split("## Deploying beside Immich")[1]
    assert 'group_add: ["0"]' in deploy.split("\n## ")[0]
