"""Immich's OpenAPI document, read in place from ../shared/immich (never copied).

The fake takes each route's permission, shared-link eligibility and admin flag from
here, so that its authorization cannot drift from the real server's contract.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]


def spec_path() -> Path:
    env = os.environ.get("TWINLENS_IMMICH_SPEC")
    return Path(env) if env else PROJECT.parent / "shared" / "immich" / "immich-openapi-specs.json"


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    with open(spec_path(), encoding="utf-8") as fh:
        return json.load(fh)


def operation(method: str, path: str) -> dict[str, Any]:
    """The spec's operation object for ``method`` on ``path`` (spec form, e.g. /assets/{id})."""
    ops = load_spec()["paths"][path]
    method = method.lower()
    if method == "head":  # Express answers HEAD with the GET route
        method = "get"
    if method == "patch" and "patch" not in ops:
        # Since v3 every PUT update route also takes PATCH, hidden from the spec (NOTES §1).
        method = "put"
    return ops[method]


# Routes declared ``@Authenticated({ permission: false })`` in Immich's controllers: any
# API key may call them. The spec cannot say so (it shows no permission, which otherwise
# means ``all``), so they are listed here (NOTES.md §1; api-key.controller.ts getMyApiKey).
NO_PERMISSION = frozenset({("post", "/auth/validateToken"), ("get", "/api-keys/me")})


def permission(method: str, path: str) -> str | None | bool:
    """The permission an API key needs: a name, None (``all``) or False (none)."""
    if (method.lower(), path) in NO_PERMISSION:
        return False
    return operation(method, path).get("x-immich-permission")


def is_public(method: str, path: str) -> bool:
    return not operation(method, path).get("security")


def allows_shared_link(method: str, path: str) -> bool:
    # Routes Immich flags for shared links are exactly those that declare ?key= / ?slug=.
    names = {p.get("name") for p in operation(method, path).get("parameters", [])}
    return "key" in names or "slug" in names


def admin_only(method: str, path: str) -> bool:
    return bool(operation(method, path).get("x-immich-admin-only"))


def to_nullable_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` -> JSON Schema ``anyOf [..., null]`` (recursively)."""
    if isinstance(node, list):
        return [to_nullable_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_nullable_jsonschema(v) for k, v in node.items()}
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def response_schema(method: str, path: str, status: str = "200") -> dict[str, Any] | None:
    resp = operation(method, path)["responses"].get(status) or {}
    content = resp.get("content", {}).get("application/json")
    return content["schema"] if content else None


def spec_route_regex(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
