"""Client of the grouping (8000) and dedup (8001) APIs, authenticated by the service token."""

from __future__ import annotations

from typing import Any

import requests
from flask import current_app

from gateway import budget
from gateway.mapping import batched

LOOKUP_BATCH = 500


class ServiceError(Exception):
    """A Twinlens service failed or is unreachable (status is what the gateway answers)."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body


def base_url(service: str) -> str:
    settings = current_app.config["SETTINGS"]
    if service == "grouping":
        return settings.grouping_url
    if service == "dedup":
        return settings.dedup_url
    raise ValueError(service)


def call(
    service: str, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """(status, JSON body) of a service call; 4xx answers are returned, not raised."""
    cfg = current_app.config
    token = cfg["SETTINGS"].service_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = base_url(service)
    if budget.skipped(base):
        raise ServiceError(503, f"the {service} service failed a moment ago")
    limits = budget.timeout(cfg["SERVICE_TIMEOUT"])
    try:
        resp = current_app.extensions["twinlens_http"].request(
            method,
            base + path,
            json=json,
            params=params,
            headers=headers,
            timeout=limits,
        )
    except requests.Timeout as exc:
        budget.failed(base, limits[0] if isinstance(exc, requests.ConnectTimeout) else limits[1])
        raise ServiceError(504, f"the {service} service did not answer in time") from None
    except requests.RequestException:
        budget.failed(base)
        raise ServiceError(502, f"the {service} service is unreachable") from None
    try:
        body = resp.json() if resp.content else None
    except ValueError:
        if resp.status_code in _SIZE_REFUSALS:  # its server's own refusal of the request's size
            raise ServiceError(
                resp.status_code, f"the {service} service refused the request ({resp.reason})"
            ) from None
        raise ServiceError(502, f"the {service} service sent a non-JSON answer") from None
    if resp.status_code >= 500:
        msg = body.get("error") if isinstance(body, dict) else None
        # 503: busy (the embedded catalog's one writer held), to retry: passed on as such
        status = 503 if resp.status_code == 503 else 502
        raise ServiceError(status, f"the {service} service failed: {msg or resp.status_code}", body)
    return resp.status_code, body


# What a service's HTTP server (or a proxy before it) refuses without the API's JSON: a
# body, URL or header too large. Any other answer that is not JSON is a fault of the
# service's address or of what runs there (502), not the caller's.
_SIZE_REFUSALS = frozenset({413, 414, 431})


def lookup(service: str, paths: list[str], sha1s: list[str]) -> list[dict[str, Any]]:
    """Batched ``/files/lookup`` (grouping) or ``/duplicates/lookup`` (dedup)."""
    path = "/files/lookup" if service == "grouping" else "/duplicates/lookup"
    items = [("p", p) for p in paths] + [("s", s) for s in sha1s]
    found: list[dict[str, Any]] = []
    for batch in batched(items, LOOKUP_BATCH):
        body = {
            "paths": [v for k, v in batch if k == "p"],
            "sha1": [v for k, v in batch if k == "s"],
        }
        status, answer = call(service, "POST", path, json=body)
        if status != 200 or not isinstance(answer, dict):
            raise ServiceError(502, f"the {service} lookup answered {status}", answer)
        found.extend(answer.get("files") or [])
    return found
