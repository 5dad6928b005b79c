"""Host names that mean "this machine", for servers that trust loopback callers.

A server that answers loopback callers without credentials (local mode, the APIs with
no service token) must also refuse requests whose ``Host`` names some other site: a web
page can rebind its own name to 127.0.0.1 (DNS rebinding) and then read the answers as
same-origin. Browsers always send the name they resolved, so checking it closes that.
"""

from __future__ import annotations

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(host_header: str) -> str:
    """The name part of a Host header: no port, no IPv6 brackets, lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_local_host(host_header: str | None, bind_host: str | None = None) -> bool:
    """Whether a request's Host names this machine, or the address the server was told
    to bind (a wildcard one names nothing). No Host at all (HTTP/1.0, not a browser)
    passes: the browsers that rebinding attacks go through always send one."""
    if not host_header:
        return True
    name = host_name(host_header)
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    if not bind_host:
        return False
    return name == host_name(bind_host) and name not in ("0.0.0.0", "::")
