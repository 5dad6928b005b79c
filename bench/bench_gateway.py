"""Gateway speed against the fake Immich, in one run, same load generator (wrk).

    .venv/bin/python bench/bench_gateway.py [--duration 10] [--rounds 3] [--big-mb 1024]
                                            [--workers 2] [--threads 8] [--gateway-threads N]
                                            [--server granian|gunicorn]
                                            [--fake-server gunicorn|granian]

Starts the fake Immich (python -m tests.fakeimmich, gunicorn gthread by default) and the
gateway (granian by default) with the same worker/thread counts, plus the real grouping and
dedup APIs on an SQLite catalog holding a RAW+JPEG group for every pair of the 2,000 timeline
assets (catalog rows written directly, grouped by the real grouping pass). Prints:
  1. wrk -c32 on /api/server/ping and GET /api/assets/{id}: req/s and p99, direct vs gateway
     (``--rounds`` back-to-back direct/gateway pairs; medians and the ratio of the medians),
     and the CPU each process tree spent per request (from /proc: less sensitive than req/s
     to what else runs on the machine)
  2. a 1 GB original streamed (curl, or requests without curl), ``--rounds`` pairs: median
     MB/s direct vs gateway, gateway RSS growth
  3. GET /api/timeline/bucket (2,000 assets, enriched), warm cache, one client: ms
With ``--front nginx`` (the default when nginx is installed) 1 and 2 are also measured
through the deployment's entry: docker/nginx.conf run in front of the gateway. nginx
sends the reads Twinlens adds nothing to (the ping, the original) straight to Immich, and
the rest (the enriched asset answer) to the gateway.
With ``bare`` in ``--only``, 1 is also measured through ``bench/bare_proxy.py``: the
gateway's own passthrough for every path (no routing, authentication or enrichment),
under granian with the gateway's workers and threads. On the asset route it is the
gateway as it would be if it added nothing: a yardstick, not a target.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakeimmich import ThreadedServer  # noqa: E402
from tests.fakeimmich.__main__ import bench_asset_id  # noqa: E402
from tests.netutil import free_port  # noqa: E402
from tests.nginxfront import NginxFront, nginx_binary  # noqa: E402
from tests.realapis import Catalog  # noqa: E402

API_KEY = "bench-key-0123456789"
TOKEN = "bench-service-token"
PY = sys.executable


def start_services(tmp: Path, assets: int) -> tuple[ThreadedServer, ThreadedServer]:
    """The real grouping and dedup APIs (embedded: SQLite, no broker) over a catalog of
    /photos/2024/05/IMG_nnnnn.JPG + .CR3 pairs, one RAW+JPEG group each."""
    import api
    from core.config import load_settings
    from core.db import migrate

    cfg = load_settings(
        {},
        data_dir=tmp / "services",
        database_url=f"sqlite:///{tmp / 'services' / 'catalog.db'}",
        library_roots=(Path("/photos"),),
        service_token=TOKEN,
    )
    migrate(cfg.database_url)
    catalog = Catalog(cfg, Path("/photos"))
    catalog.add_all(
        f"2024/05/IMG_{i // 2:05d}.{ext}" for i in range(0, assets, 2) for ext in ("JPG", "CR3")
    )
    catalog.regroup()
    return tuple(  # type: ignore[return-value]
        ThreadedServer(api.create_app(which, {"settings": cfg}), poll_interval=0.5).start()
        for which in ("grouping", "dedup")
    )


def wait_up(url: str, timeout: float = 30) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def tree_pids(pid: int) -> list[int]:
    """A server's master process and its workers (its direct children)."""
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                pids += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    return pids


def rss_mb(pid: int) -> float:
    """RSS of a server's master and its workers, MB."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a server's master and its workers."""
    ticks = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def wrk(
    url: str, duration: int, connections: int = 32, threads: int = 2
) -> tuple[float, float, int]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-H",
            f"x-api-key: {API_KEY}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx answers\n{out}")
    return rps, p99, total


def stream(url: str) -> tuple[float, int]:
    """MB/s and bytes of one download, by curl when installed (a C client, so that the
    client's own CPU is not what limits either side), else by requests."""
    if shutil.which("curl"):
        out = subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-H",
                f"x-api-key: {API_KEY}",
                "-w",
                "%{http_code} %{size_download} %{time_total}",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if out[0] != "200":
            raise RuntimeError(f"{url}: HTTP {out[0]}")
        n, secs = int(out[1]), float(out[2])
        return n / (1 << 20) / secs, n
    t0 = time.perf_counter()
    n = 0
    with requests.get(url, headers={"x-api-key": API_KEY}, stream=True) as r:
        r.raise_for_status()
        for chunk in r.iter_content(1 << 20):
            n += len(chunk)
    return n / (1 << 20) / (time.perf_counter() - t0), n


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the in-process stand-ins
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--big-mb", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8, help="the fake Immich's threads per worker")
    ap.add_argument(
        "--gateway-threads",
        type=int,
        default=None,
        help="the gateway's threads per worker (default: as --threads)",
    )
    ap.add_argument(
        "--server",
        default="granian",
        choices=["granian", "gunicorn"],
        help="the gateway's HTTP server",
    )
    ap.add_argument(
        "--fake-server",
        default="gunicorn",
        choices=["gunicorn", "granian"],
        help="the fake Immich's HTTP server (the baseline: a cheaper fake lowers the ratios)",
    )
    ap.add_argument(
        "--front",
        default="nginx" if nginx_binary() else "none",
        choices=["nginx", "none"],
        help="also measure through docker/nginx.conf in front of the gateway",
    )
    ap.add_argument(
        "--only",
        default="ping,asset,stream,timeline",
        help="also: fakeload, bare (not targets)",
    )
    ap.add_argument("--assets", type=int, default=2000)
    ap.add_argument("--cache-url", default="redis://127.0.0.1:6379/14")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    try:
        import redis

        redis.Redis.from_url(args.cache_url, socket_timeout=1).ping()
    except Exception:  # noqa: BLE001
        args.cache_url = "memory://"

    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-"))
    big = tmp / "big.mp4"
    block = os.urandom(1 << 20)
    with open(big, "wb") as fh:
        for _ in range(args.big_mb):
            fh.write(block)

    library_root = "/mnt/photos"
    g_srv, d_srv = start_services(tmp, args.assets)

    fake_port, gw_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FAKE_PORT": str(fake_port),
        "FAKE_WORKERS": str(args.workers),
        "FAKE_THREADS": str(args.threads),
        "FAKE_SERVER": args.fake_server,
        "FAKE_ASSETS": str(args.assets),
        "FAKE_BIG_FILE": str(big),
        "FAKE_API_KEY": API_KEY,
        "FAKE_LIBRARY_ROOT": library_root,
    }
    procs = [
        subprocess.Popen(
            [PY, "-m", "tests.fakeimmich"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    gw_env = {
        **env,
        "TWINLENS_IMMICH_URL": f"http://127.0.0.1:{fake_port}",
        "TWINLENS_GROUPING_URL": g_srv.url,
        "TWINLENS_DEDUP_URL": d_srv.url,
        "TWINLENS_SERVICE_TOKEN": TOKEN,
        "TWINLENS_CACHE_URL": args.cache_url,
        "TWINLENS_PATH_MAP": f"{library_root}=/photos",
        "TWINLENS_DATA_DIR": str(tmp / "data"),
        "TWINLENS_LOG_LEVEL": "WARNING",
    }
    gw_threads = args.gateway_threads or args.threads
    code = (
        "from gateway import serve; from core.config import load_settings; "
        f"serve(load_settings(), workers={args.workers}, threads={gw_threads}, port={gw_port}, "
        f"access_log=False, server={args.server!r})"
    )
    gw = subprocess.Popen(
        [PY, "-c", code], env=gw_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    procs.append(gw)
    direct, gateway = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{gw_port}"
    bare = None
    if "bare" in args.only.split(","):
        bare_port = free_port()
        bare = subprocess.Popen(
            [PY, "-m", "granian", "--interface", "wsgi", "--factory", "--workers",
             str(args.workers), "--blocking-threads", str(gw_threads), "--port",
             str(bare_port), "--no-ws", "--log-level", "warning", "bench.bare_proxy:app"],
            env=gw_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(bare)
    front = None
    try:
        wait_up(direct + "/api/server/ping")
        wait_up(gateway + "/api/server/ping")
        if args.front == "nginx":
            front = NginxFront(
                f"127.0.0.1:{gw_port}",
                f"127.0.0.1:{fake_port}",
                tmp / "nginx",
                workers=args.workers,
            ).start()
            wait_up(front.url + "/api/server/ping")
        if args.cache_url.startswith("redis"):
            from gateway.cache import bump_data_version

            bump_data_version(args.cache_url)  # start from a cold, fresh version
        asset = bench_asset_id(2)
        print(
            f"# machine: {os.cpu_count()} cores; fake Immich: {args.fake_server} {args.workers} workers x "
            f"{args.threads} threads; gateway: {args.server}, {args.workers} workers x "
            f"{gw_threads} threads; "
            f"wrk -t2 -c32 -d{args.duration}s; front: {args.front}; "
            f"cache {args.cache_url.split('@')[-1]}; load average before: {loadavg()}"
        )
        fake_pid = procs[0].pid
        med = statistics.median
        only = set(args.only.split(","))
        sides = {"d": direct, "g": gateway}
        if front is not None:
            sides["f"] = front.url
        if bare is not None:
            wait_up(f"http://127.0.0.1:{bare_port}/api/server/ping")
            sides["b"] = f"http://127.0.0.1:{bare_port}"
        for name, path in (("ping", "/api/server/ping"), ("asset", f"/api/assets/{asset}")):
            if name not in only:
                continue
            for base in sides.values():
                wrk(base + path, 2)  # warm-up (connections, caches)
            runs: dict[str, list] = {side: [] for side in sides}
            cpu: dict[str, float] = {}
            for _ in range(args.rounds):
                for side, base in sides.items():
                    pids = {"fake": fake_pid, "gw": gw.pid}
                    if side == "f":
                        pids["nginx"] = front.pid
                    if side == "b":
                        pids["bare"] = bare.pid
                    before = {k: tree_cpu(p) for k, p in pids.items()}
                    rps, p99, total = wrk(base + path, args.duration)
                    runs[side].append((rps, p99))
                    cpu[f"{side}_n"] = cpu.get(f"{side}_n", 0) + total
                    for k, p in pids.items():
                        cpu[f"{side}_{k}"] = cpu.get(f"{side}_{k}", 0.0) + tree_cpu(p) - before[k]
            d_rps, d_p99 = med(r[0] for r in runs["d"]), med(r[1] for r in runs["d"])

            def per_req(side: str, proc: str, cpu: dict[str, float] = cpu) -> str:
                return f"{cpu[f'{side}_{proc}'] / cpu[f'{side}_n'] * 1000:.2f} ms"

            for side, label in (("g", "gateway"), ("f", "nginx+gw"), ("b", "bare")):
                if side not in runs:
                    continue
                s_rps, s_p99 = med(r[0] for r in runs[side]), med(r[1] for r in runs[side])
                # Each direct run is followed at once by the others: the ratio within a
                # round moves less with the machine's load than the ratio of the medians.
                pair = med(x[0] / d[0] for d, x in zip(runs["d"], runs[side], strict=True))
                print(
                    f"{name:6s} direct {d_rps:8.0f} req/s p99 {d_p99:7.2f} ms | {label} "
                    f"{s_rps:8.0f} req/s p99 {s_p99:7.2f} ms | throughput {s_rps / d_rps:5.0%} "
                    f"(>=60%), p99 x{s_p99 / d_p99:.2f} (<=2)  [medians of {args.rounds}] | "
                    f"median of pair ratios {pair:5.0%}"
                )
                extra = f", nginx {per_req(side, 'nginx')}" if side == "f" else ""
                if side == "b":
                    extra = f"bare proxy {per_req(side, 'bare')} (the gateway adding nothing)"
                print(
                    "       each run (direct/"
                    + label
                    + " req/s): "
                    + ", ".join(
                        f"{d[0]:.0f}/{x[0]:.0f}" for d, x in zip(runs["d"], runs[side], strict=True)
                    )
                    + f" | CPU per request: fake {per_req('d', 'fake')} direct, "
                    f"{per_req(side, 'fake')} via {label}; "
                    + (f"gateway {per_req(side, 'gw')}" if side != "b" else "")
                    + f"{extra}"
                    f" | load {loadavg()}"
                )

        orig = f"/api/assets/{bench_asset_id(0)}/original"
        if "fakeload" in only:
            # Not a target: how the baseline's own cost per request depends on how busy
            # wrk keeps it (a proxied run reaches a lower rate, so fewer requests wait).
            for conns in (32, 16, 8, 4, 1):
                f0 = tree_cpu(fake_pid)
                rps, _p99, total = wrk(
                    direct + "/api/server/ping", args.duration, conns, min(2, conns)
                )
                print(
                    f"fake alone, wrk -c{conns}: {rps:8.0f} req/s, "
                    f"CPU {(tree_cpu(fake_pid) - f0) / total * 1000:.3f} ms per request"
                )
        if "stream" in only:
            stream_bench(args, direct, gateway, orig, gw.pid, front)
        if "timeline" in only:
            timeline_bench(args, direct, gateway)
        print(f"# load average after: {loadavg()}")
    finally:
        if front is not None:
            front.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        g_srv.stop()
        d_srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def stream_bench(
    args, direct: str, gateway: str, orig: str, gw_pid: int, front: NginxFront | None
) -> None:
    med = statistics.median
    stream(direct + orig)  # page cache warm
    before = rss_mb(gw_pid)
    peak = [before]
    ngx_before = rss_mb(front.pid) if front else 0.0
    ngx_peak = [ngx_before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(gw_pid))
            if front:
                ngx_peak[0] = max(ngx_peak[0], rss_mb(front.pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    runs: dict[str, list[float]] = {"d": [], "g": [], "f": []}
    sides = [("d", direct), ("g", gateway)] + ([("f", front.url)] if front else [])
    try:
        for _ in range(args.rounds):
            for side, base in sides:
                mbs, n = stream(base + orig)
                assert n == args.big_mb << 20, (side, n)
                runs[side].append(mbs)
    finally:
        done.set()
        t.join()
    d_mbs = med(runs["d"])
    for side, label in (("g", "gateway"), ("f", "nginx+gw")):
        if not runs[side]:
            continue
        s_mbs = med(runs[side])
        growth = (
            f"gateway RSS {before:.0f} -> peak {peak[0]:.0f} MB, growth {peak[0] - before:.1f} MB"
            " (<50)"
        )
        if side == "f":
            growth += f", nginx {ngx_before:.0f} -> {ngx_peak[0]:.0f} MB"
        print(
            f"stream {args.big_mb} MB: direct {d_mbs:7.0f} MB/s | {label} {s_mbs:7.0f} MB/s | "
            f"{s_mbs / d_mbs:5.0%} (>=80%) | {growth}  [medians of {args.rounds}; runs "
            + ", ".join(f"{d:.0f}/{g:.0f}" for d, g in zip(runs["d"], runs[side], strict=True))
            + "]"
        )


def timeline_bench(args, direct: str, gateway: str) -> None:
    s = requests.Session()
    s.headers["x-api-key"] = API_KEY
    url = gateway + "/api/timeline/bucket?timeBucket=2024-05-01"
    cold0 = time.perf_counter()
    first = s.get(url)
    cold = (time.perf_counter() - cold0) * 1000
    body = first.json()
    assert len(body["id"]) == args.assets and len(body["twinlens"]) == args.assets
    assert sum(1 for x in body["twinlens"] if x and x["group"]) == args.assets
    for _ in range(2 * args.workers * 3):  # every worker warm
        s.get(url)
    # Interleaved with the same request straight to the fake Immich, so that a stall of
    # the machine (this VM has some of 100-500 ms) shows on both sides.
    times, d_times = [], []
    direct_url = direct + "/api/timeline/bucket?timeBucket=2024-05-01"
    for _ in range(100):
        t0 = time.perf_counter()
        s.get(url).raise_for_status()
        times.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        s.get(direct_url).raise_for_status()
        d_times.append((time.perf_counter() - t0) * 1000)
    slow = sum(1 for t in times if t > 30)
    d_slow = sum(1 for t in d_times if t > 30)
    times.sort()
    d_times.sort()
    print(
        f"timeline bucket {args.assets} assets enriched: cold {cold:.0f} ms; warm median "
        f"{statistics.median(times):.1f} ms, p95 {times[94]:.1f} ms (<30), over 30 ms: {slow}/100 | "
        f"direct (not enriched) median {statistics.median(d_times):.1f} ms, p95 {d_times[94]:.1f} ms, "
        f"over 30 ms: {d_slow}/100"
    )


if __name__ == "__main__":
    main()
