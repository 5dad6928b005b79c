"""The REAL grouping and dedup APIs for gateway tests, on PostgreSQL, and what tests need
around them.

* ``start_api(which, settings, broker)``: ``api.create_app`` behind a ``Recorder``,
  served on a loopback port (``tests.fakeimmich.ThreadedServer``). ``ApiPort``: a port
  that a test session keeps, serving each test's own recorded API in turn (the app is
  built on its first request: a test that never asks pays nothing).
* ``Recorder``: WSGI middleware in front of a real API. It records the requests the API
  receives (method and path, Authorization header, lookup batch sizes) and can make the
  service misbehave as a real one does when it crashes or lags: answer 5xx to some
  requests (``fail``), or answer a duplicate group's reads with the state first read
  (``stale_reads``: a reviewer's read that came before another's decision). It never
  answers for the API otherwise: what the gateway gets is the real service's answer.
* ``Catalog``: catalog rows (``core.models.File``) written straight into the database
  (no image decoding), then the real grouping and dedup passes
  (``core.grouping.service.regroup``, ``core.dedup.service.dedupe``) make the groups and
  duplicate groups the APIs serve; plus reads of what the APIs stored (decisions,
  statuses, jobs).
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from core.config import Settings

# --- the APIs, recorded --------------------------------------------------------------------


@dataclass
class _Failure:
    method: str
    path: re.Pattern[str]
    status: int
    body: bytes
    content_type: str


class Recorder:
    """WSGI middleware around a real API (see module doc); ``app`` may be a function
    that builds it, called on the first request."""

    def __init__(self, app: Callable | None = None, build: Callable[[], Callable] | None = None):
        self._app, self._build = app, build
        self.calls: Counter[tuple[str, str]] = Counter()
        self.auth_seen: list[str] = []
        self.lookup_batches: list[int] = []  # paths + sha1s of each POST .../lookup
        self.stale_reads = False
        self._first_reads: dict[str, tuple[str, list[tuple[str, str]], bytes]] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self.url = ""  # set by start_api or an ApiPort
        self.stop: Callable[[], None] = lambda: None

    @property
    def app(self) -> Callable:
        with self._lock:
            if self._app is None:
                assert self._build is not None
                self._app = self._build()
            return self._app

    # -- misbehaviour

    def fail(self, method: str, path: str, status: int = 500, error: str | None = None) -> None:
        """Answer ``status`` to ``method`` on paths matching the regex ``path`` (whole),
        with ``{"error": error}`` as the APIs word their errors, or, without ``error``,
        a bare text page as a crashed server's front answers."""
        if error is None:
            body, ctype = b"Internal Server Error", "text/plain"
        else:
            body, ctype = json.dumps({"error": error}).encode(), "application/json"
        self._failures.append(_Failure(method, re.compile(path), status, body, ctype))

    def heal(self) -> None:
        self._failures.clear()

    # -- what was asked

    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return self.calls[(method, path)]

    def writes(self) -> list[tuple[str, str]]:
        """(method, path) of every request that was no read."""
        with self._lock:
            return [k for k in self.calls if k[0] not in ("GET", "HEAD")]

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        with self._lock:
            self.calls[(method, path)] += 1
            self.auth_seen.append(environ.get("HTTP_AUTHORIZATION", ""))
        if method == "POST" and path.endswith("/lookup"):
            raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(raw)
            try:
                body = json.loads(raw)
                size = len(body.get("paths") or []) + len(body.get("sha1") or [])
            except (ValueError, AttributeError):
                size = -1
            with self._lock:
                self.lookup_batches.append(size)
        for f in self._failures:
            if f.method == method and f.path.fullmatch(path):
                start_response(
                    f"{f.status} ERROR",
                    [("Content-Type", f.content_type), ("Content-Length", str(len(f.body)))],
                )
                return [f.body]
        if method == "GET" and path.startswith("/duplicates/"):
            return self._read(environ, start_response, path)
        return self.app(environ, start_response)

    def _read(self, environ: dict[str, Any], start_response: Callable, path: str) -> list[bytes]:
        with self._lock:
            first = self._first_reads.get(path) if self.stale_reads else None
        if first is None:
            seen: list[Any] = []

            def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                seen[:] = [status, headers]
                return start_response(status, headers, exc_info)

            answer = self.app(environ, keep)
            try:
                body = b"".join(answer)
            finally:
                if hasattr(answer, "close"):
                    answer.close()
            with self._lock:
                if seen and seen[0].startswith("200"):
                    self._first_reads.setdefault(path, (seen[0], list(seen[1]), body))
            return [body]
        status, headers, body = first
        start_response(status, headers)
        return [body]


def recorded_api(which: str, settings: Settings, broker: Callable[[], Any]) -> Recorder:
    """The real ``which`` API ("grouping" | "dedup") on ``settings``, recorded, built on
    its first request (``broker()`` then gives its broker)."""
    import api

    return Recorder(build=lambda: api.create_app(which, {"settings": settings, "broker": broker()}))


def start_api(which: str, settings: Settings, broker: Any) -> Recorder:
    """The real ``which`` API on ``settings``, recorded, served on a loopback port of its
    own: the recorder's ``url``; ``stop()`` when done."""
    from tests.fakeimmich import ThreadedServer

    recorder = recorded_api(which, settings, lambda: broker)
    server = ThreadedServer(recorder, poll_interval=0.005).start()
    recorder.url, recorder.stop = server.url, server.stop
    return recorder


class ApiPort:
    """A loopback port kept for a test session, serving the current test's API
    (``serve(recorder)``); between tests it answers 503."""

    def __init__(self) -> None:
        from tests.fakeimmich import ThreadedServer

        self.current: Recorder | None = None
        self._server = ThreadedServer(self, poll_interval=0.05).start()
        self.url = self._server.url

    def serve(self, recorder: Recorder | None) -> None:
        self.current = recorder
        if recorder is not None:
            recorder.url = self.url

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        current = self.current
        if current is None:
            body = b'{"error": "no API on this port between tests"}'
            start_response("503 SERVICE UNAVAILABLE", [("Content-Type", "application/json")])
            return [body]
        return current(environ, start_response)

    def close(self) -> None:
        self._server.stop()


# Children first: the order rows can be deleted in (foreign keys).
TABLES = (
    "duplicate_resolutions", "duplicate_members", "duplicate_groups", "group_overrides",
    "group_members", "file_groups", "job_errors", "job_batches", "jobs", "leases", "files",
    "roots",
)  # fmt: skip


def empty_catalog(url: str) -> None:
    """Delete every row the APIs and the catalog wrote (a few: far quicker than TRUNCATE)."""
    from sqlalchemy import text

    from core.db import engine_for

    with engine_for(url).begin() as c:
        c.execute(text("UPDATE jobs SET parent_id = NULL"))
        for table in TABLES:
            c.execute(text(f"DELETE FROM {table}"))


# --- the catalog ---------------------------------------------------------------------------

_KINDS = {
    ".cr3": ("raw", "cr3"),
    ".dng": ("raw", "dng"),
    ".xmp": ("sidecar", "xmp"),
    ".mov": ("video", "mov"),
    ".png": ("image", "png"),
}


def sha256_of(label: str) -> str:
    """A content hash for files meant to be byte copies of each other (same label)."""
    import hashlib

    return hashlib.sha256(label.encode()).hexdigest()


def phash(seed: int, flips: int = 0) -> str:
    """An informative 64-bit pHash (32 bits set) for ``seed``, with ``flips`` of its bits
    changed: ``flips`` is the distance to ``phash(seed)``."""
    import random

    rng = random.Random(seed)
    h = sum(1 << b for b in rng.sample(range(64), 32))
    for b in random.Random(seed + 1_000_003).sample(range(64), flips):
        h ^= 1 << b
    return f"{h:016x}"


class Catalog:
    """Catalog rows for a library root in the APIs' database, and the real passes."""

    def __init__(self, settings: Settings, root: Path) -> None:
        from core.db import engine_for, session_scope
        from core.models import Root
        from core.paths import path_key

        self.settings = settings
        self.root = Path(root)
        self.engine = engine_for(settings.database_url)
        with session_scope(self.engine) as s:
            row = Root(path=str(self.root), path_key=path_key(str(self.root)))
            s.add(row)
            s.flush()
            self.root_id = row.id

    def session(self) -> Any:
        from core.db import session_scope

        return session_scope(self.engine)

    def path(self, rel: str) -> str:
        return rel if rel.startswith("/") else str(self.root / rel)

    # -- files

    def add(
        self,
        rel: str,
        *,
        sha256: str | None = None,
        sha1: str | None = None,
        phash: str | None = None,
        size: int = 1000,
        width: int | None = 4000,
        height: int | None = 3000,
        taken: datetime | None = None,
        error: str | None = None,
    ) -> int:
        """A present file (kind and format from its extension), its catalog row id."""
        from tests.factories import file_row

        path = self.path(rel)
        kind, fmt = _KINDS.get(Path(path).suffix.lower(), ("image", "jpeg"))
        with self.session() as s:
            f = file_row(
                self.root_id,
                path,
                size=size,
                kind=kind,
                format=fmt,
                sha256=sha256,
                sha1=sha1,
                phash=phash if kind == "image" else None,
                width=width if kind in ("image", "raw") else None,
                height=height if kind in ("image", "raw") else None,
                taken_at=taken,
                make="Canon",
                model="EOS R5",
                error=error,
            )
            s.add(f)
            s.flush()
            return f.id

    def add_all(self, rels: Iterable[str], **fields: Any) -> None:
        """Many files at once (one transaction), each as ``add`` makes it."""
        from tests.factories import file_row

        with self.session() as s:
            for rel in rels:
                path = self.path(rel)
                kind, fmt = _KINDS.get(Path(path).suffix.lower(), ("image", "jpeg"))
                s.add(file_row(self.root_id, path, kind=kind, format=fmt, **fields))

    def change(self, rel: str, **values: Any) -> None:
        """Update a file's row as a rescan would record it (``status="missing"`` for a
        file gone from disk, new hashes for one edited in place)."""
        from core.models import File
        from core.models import utcnow as now
        from core.paths import path_key

        with self.session() as s:
            s.execute(
                update(File)
                .where(File.path_key == path_key(self.path(rel)))
                .values(**values, updated_at=now())
            )

    # -- the real passes

    def regroup(self, policy: str | None = None) -> None:
        from core.grouping.service import regroup

        with self.session() as s:
            regroup(s, None, policy=policy or self.settings.primary_policy)

    def dedupe(self) -> None:
        from core.dedup.service import dedupe

        with self.session() as s:
            dedupe(s, self.settings, since=None)

    def passes(self) -> None:
        """Grouping, then a full dedup pass, as a scan's finish runs them."""
        self.regroup()
        self.dedupe()

    # -- what the APIs serve and stored

    def group_of(self, rel: str) -> dict[str, Any] | None:
        """The grouping API's JSON of the group holding ``rel`` (None: no group)."""
        from api.grouping import group_json
        from core.grouping import queries as GQ
        from core.grouping.service import group_of_path

        with self.session() as s:
            gid = group_of_path(s, self.path(rel))
            return group_json(GQ.group_views(s, [gid])[0]) if gid else None

    def duplicate_of(self, rel: str, type_: str | None = None) -> dict[str, Any] | None:
        """The dedup API's JSON of the duplicate group holding ``rel`` (of ``type_``)."""
        from api.dedup import dup_json
        from core.dedup import queries as Q
        from core.models import DuplicateMember, File
        from core.paths import path_key

        with self.session() as s:
            gids = s.scalars(
                select(DuplicateMember.group_id)
                .join(File, File.id == DuplicateMember.file_id)
                .where(File.path_key == path_key(self.path(rel)))
            ).all()
            views = [v for v in Q.dup_views(s, list(gids)) if type_ in (None, v.type)]
            assert len(views) <= 1, f"{rel} is in {len(views)} duplicate groups"
            return dup_json(views[0]) if views else None

    def duplicate(self, group_id: str) -> dict[str, Any] | None:
        """The dedup API's JSON of a duplicate group (None: there is none by that id)."""
        from api.dedup import dup_json
        from core.dedup import queries as Q

        with self.session() as s:
            views = Q.dup_views(s, [group_id])
            return dup_json(views[0]) if views else None

    def status(self, group_id: str) -> str:
        from core.models import DuplicateGroup

        with self.session() as s:
            return s.get(DuplicateGroup, group_id).status

    def decisions(self, group_id: str | None = None) -> list[dict[str, Any]]:
        """The decisions the dedup API holds (of one group), oldest first: group id,
        action, keep, trashed, as recorded."""
        from core.models import DuplicateResolution as R

        q = select(R.id, R.group_id, R.action, R.keep, R.trashed).order_by(R.id)
        if group_id is not None:
            q = q.where(R.group_id == group_id)
        with self.session() as s:
            return [
                {
                    "id": rid,
                    "group": gid,
                    "action": action,
                    "keep": json.loads(keep),
                    "trashed": None if trashed is None else json.loads(trashed),
                }
                for rid, gid, action, keep, trashed in s.execute(q)
            ]

    def decide(self, group_id: str, action: str, keep: list[str] | None = None) -> None:
        """A decision recorded as the dedup API records one (its own function)."""
        from core.dedup.service import record_resolution

        with self.session() as s:
            record_resolution(s, group_id, keep or [], action)

    def forget_trashed(self, group_id: str) -> None:
        """Make the group's decisions look recorded before ``trashed`` was kept (null)."""
        from core.models import DuplicateResolution as R

        with self.session() as s:
            s.execute(update(R).where(R.group_id == group_id).values(trashed=None))

    def add_job(self, job_id: str, state: str, created_at: str, kind: str = "scan") -> None:
        from core.models import Job

        with self.session() as s:
            s.add(
                Job(
                    id=job_id,
                    kind=kind,
                    state=state,
                    root_id=self.root_id,
                    created_at=datetime.fromisoformat(created_at),
                )
            )

    def jobs(self) -> list[tuple[str, str]]:
        """(id, state) of every job in the database."""
        from core.models import Job

        with self.session() as s:
            return [(j, st) for j, st in s.execute(select(Job.id, Job.state).order_by(Job.id))]

    def end_jobs(self) -> None:
        """Every active job finished (the scans ran)."""
        from core.models import Job

        with self.session() as s:
            s.execute(update(Job).where(Job.state.in_(("queued", "running"))).values(state="done"))
