"""Stacking a whole library (or a folder of it) in Immich, for ``twinlens stack``.

A client of the gateway's own routes, with an Immich API key as its credential, as any
other client: it lists the file groups (``GET /api/twinlens/groups``), keeps those with
at least two photos Immich holds, and sends them to the bulk stack route 200 at a time.
Every safety rule is the gateway's (gateway.stacking): a group in a stack the user made
with other photos, an archived cover, a cover not in Immich are skipped with the reason;
a group already stacked is left as it is. So it can run again and again (nightly, from
cron): it only stacks what is not stacked yet.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from gateway.stacking import stackable

PAGE = 200  # the gateway's largest page, and its bulk route's limit
TIMEOUT = (10, 600)  # a bulk call asks Immich a few times per group


class StackRunError(Exception):
    """The run could not go on (the gateway refused the key, is unreachable, or is not
    the gateway); ``status`` the gateway's answer, when it gave one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class StackRun:
    """What a run did (or, dry, would do), group by group."""

    dry_run: bool
    listed: int = 0  # groups read from the gateway with two photos or more
    results: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None  # why it stopped partway (listing failed after a start)

    def counts(self) -> Counter:
        return Counter(_kind(r) for r in self.results)

    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if _kind(r) == "failed"]

    def skipped_by_reason(self) -> Counter:
        return Counter(r.get("reasonCode") or "other" for r in self.results if _kind(r) == "skip")

    @property
    def ok(self) -> bool:
        return not self.failed() and self.stopped is None


def _kind(r: dict[str, Any]) -> str:
    if r.get("status") == 200 and r.get("outcome") == "stack":
        return "stack"  # a dry run's "would stack"
    if r.get("status") == 200 and r.get("outcome") == "stacked":
        return "stacked" if r.get("created") else "already"
    if r.get("status") == 409:
        return "skip"
    return "failed"


def _session(api_key: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # the gateway is named by URL; no proxy in between
    s.headers["x-api-key"] = api_key
    return s


def _call(s: requests.Session, method: str, url: str, what: str, **kw: Any) -> Any:
    """The gateway's JSON object answer; anything else a ``StackRunError`` that names no
    credential. Redirects are not followed: requests would send the key along."""
    try:
        resp = s.request(method, url, timeout=TIMEOUT, allow_redirects=False, **kw)
    except requests.RequestException as exc:
        raise StackRunError(f"{what}: the gateway at {url.split('/api/')[0]} could not be "
                            f"reached ({type(exc).__name__})") from None  # fmt: skip
    if 300 <= resp.status_code < 400:
        raise StackRunError(f"{what}: the gateway answered a redirect ({resp.status_code}) "
                            f"to {resp.headers.get('Location')}: is TWINLENS_GATEWAY_URL "
                            "the gateway's own address?")  # fmt: skip
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code == 200 and isinstance(body, dict):
        return body
    message = body.get("message") if isinstance(body, dict) else None
    if message is None:
        raise StackRunError(f"{what}: the gateway answered {resp.status_code} without JSON: "
                            "is TWINLENS_GATEWAY_URL the gateway?")  # fmt: skip
    raise StackRunError(f"{what}: the gateway answered {resp.status_code}: {message}",
                        resp.status_code)  # fmt: skip


def candidates(
    s: requests.Session, gateway: str, folder: str | None, kind: str | None
) -> Iterator[dict[str, Any]]:
    """The groups with at least two photos to stack, page by page, each once (a scan
    that adds a group meanwhile shifts the pages). Whether Immich holds them is the bulk
    route's to find out, strictly: a refused lookup is a failure there, not a silent
    "nothing to stack"."""
    params: dict[str, Any] = {"size": PAGE}
    if folder:
        params["path_prefix"] = os.fsencode(folder)  # a name that is not UTF-8 as its bytes
    if kind:
        params["type"] = kind
    seen: set[str] = set()
    page = 1
    while True:
        body = _call(s, "GET", f"{gateway}/api/twinlens/groups", "listing the groups",
                     params={**params, "page": page})  # fmt: skip
        items = body.get("items") or []
        for g in items:
            if isinstance(g, dict) and g.get("id") not in seen and len(stackable(g)) >= 2:
                seen.add(g["id"])
                yield g
        if not items or page * PAGE >= int(body.get("total") or 0):
            return
        page += 1


def stack_library(
    gateway: str,
    api_key: str,
    *,
    folder: str | None = None,
    kind: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> StackRun:
    """Stack every group of the library (or of ``folder``, of type ``kind``) that the
    gateway would stack; ``progress(n)`` after each call with the groups asked so far.
    ``StackRunError`` when it could not start; one that comes after a start is kept in
    ``stopped`` with what was done."""
    run = StackRun(dry_run=dry_run)
    s = _session(api_key)
    gateway = gateway.rstrip("/")
    batch: list[str] = []
    try:
        for group in candidates(s, gateway, folder, kind):
            run.listed += 1
            batch.append(group["id"])
            if len(batch) == PAGE:
                _send(s, gateway, batch, run, progress)
                batch = []
        if batch:
            _send(s, gateway, batch, run, progress)
    except StackRunError as exc:
        if not run.results:
            raise  # nothing done: it could not start
        run.stopped = str(exc)
    return run


def _send(
    s: requests.Session,
    gateway: str,
    ids: list[str],
    run: StackRun,
    progress: Callable[[int], None] | None,
) -> None:
    body = {"ids": ids, "dryRun": run.dry_run}
    try:
        answer = _call(s, "POST", f"{gateway}/api/twinlens/groups/stack", "stacking", json=body)
    except StackRunError as exc:
        if exc.status in (401, 403):
            raise  # the key may not stack: every batch would be refused alike
        # This batch only: it is reported, the next batches are still sent (a timeout
        # may have stacked some of it; the next run finds those stacked already)
        run.results.extend({"id": i, "status": 0, "message": str(exc)} for i in ids)
    else:
        run.results.extend(answer.get("results") or [])
    if progress is not None:
        progress(len(run.results))


def summary(run: StackRun) -> str:
    """What a run did, in a few lines for a terminal or a cron mail."""
    c = run.counts()
    verb = "would stack" if run.dry_run else "stacked"
    done = c["stack"] if run.dry_run else c["stacked"]
    lines = [
        f"{run.listed} group(s) with two or more photos: {verb} {done}, "
        f"already stacked {c['already']}, not stacked {c['skip']}, failed {c['failed']}"
    ]
    for code, n in run.skipped_by_reason().most_common():
        lines.append(f"  not stacked ({code}): {n}")
    lines.extend(problems(run))
    return "\n".join(lines)


def problems(run: StackRun, shown: int = 20) -> list[str]:
    """The failed groups (the first ``shown``) and why the run stopped, if it did."""
    failed = run.failed()
    lines = [f"  failed: group {r.get('id')}: {r.get('message') or r.get('status')}"
             for r in failed[:shown]]  # fmt: skip
    if len(failed) > shown:
        lines.append(f"  … and {len(failed) - shown} more failed group(s) (--json lists them)")
    if run.stopped:
        lines.append(f"  stopped partway: {run.stopped}")
    return lines
