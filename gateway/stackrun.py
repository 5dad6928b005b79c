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

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from gateway.stacking import stackable

PAGE = 200  # the gateway's largest page, and its bulk route's limit
TIMEOUT = (10, 600)  # a bulk call asks Immich a few times per group


class StackRunError(Exception):
    """The run could not go on (the gateway refused or is unreachable)."""


@dataclass
class StackRun:
    """What a run did (or, dry, would do), group by group."""

    dry_run: bool
    listed: int = 0  # groups read from the gateway
    results: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> Counter:
        return Counter(_kind(r) for r in self.results)

    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if _kind(r) == "failed"]

    def skipped_by_reason(self) -> Counter:
        return Counter(r.get("reasonCode") or "other" for r in self.results if _kind(r) == "skip")


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


def _json(resp: requests.Response, what: str) -> Any:
    if resp.status_code != 200:
        try:
            message = resp.json().get("message")
        except (ValueError, AttributeError):
            message = None
        raise StackRunError(f"{what}: the gateway answered {resp.status_code}: "
                            f"{message or resp.text[:200]}")  # fmt: skip
    return resp.json()


def candidates(
    s: requests.Session, gateway: str, folder: str | None, kind: str | None
) -> Iterator[dict[str, Any]]:
    """The groups with at least two photos Immich holds for the key's owner, page by
    page (one with fewer is not worth a call: the gateway would skip it)."""
    params: dict[str, Any] = {"size": PAGE}
    if folder:
        params["path_prefix"] = folder
    if kind:
        params["type"] = kind
    page = 1
    while True:
        try:
            resp = s.get(f"{gateway}/api/twinlens/groups", params={**params, "page": page},
                         timeout=TIMEOUT)  # fmt: skip
        except requests.RequestException as exc:
            raise StackRunError(f"the gateway at {gateway} could not be reached: {exc}") from None
        body = _json(resp, "listing the groups")
        items = body.get("items") or []
        yield from (g for g in items if _worth_asking(g))
        if not items or page * PAGE >= int(body.get("total") or 0):
            return
        page += 1


def _worth_asking(group: dict[str, Any]) -> bool:
    return len({m.get("assetId") for m in stackable(group) if m.get("assetId")}) >= 2


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
    gateway would stack; ``progress(n)`` after each call with the groups asked so far."""
    run = StackRun(dry_run=dry_run)
    s = _session(api_key)
    gateway = gateway.rstrip("/")
    batch: list[str] = []
    for group in candidates(s, gateway, folder, kind):
        run.listed += 1
        batch.append(group["id"])
        if len(batch) == PAGE:
            _send(s, gateway, batch, run, progress)
            batch = []
    if batch:
        _send(s, gateway, batch, run, progress)
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
        resp = s.post(f"{gateway}/api/twinlens/groups/stack", json=body, timeout=TIMEOUT)
        answer = _json(resp, "stacking")
    except (requests.RequestException, StackRunError) as exc:
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
        f"{run.listed} group(s) with two or more photos in Immich: {verb} {done}, "
        f"already stacked {c['already']}, not stacked {c['skip']}, failed {c['failed']}"
    ]
    for code, n in run.skipped_by_reason().most_common():
        lines.append(f"  not stacked ({code}): {n}")
    for r in run.failed()[:20]:
        lines.append(f"  failed: group {r.get('id')}: {r.get('message') or r.get('status')}")
    return "\n".join(lines)
