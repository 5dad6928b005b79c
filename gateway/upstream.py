"""HTTP to Immich and to the Twinlens services: one pooled session per process.

The session must never remember anything between callers: no cookie jar (a login
through the gateway would otherwise authenticate the next anonymous caller), no
proxy/.netrc from the environment (.netrc would add an Authorization header), no
default headers (requests adds ``Accept-Encoding: gzip`` that the client never sent).
"""

from __future__ import annotations

import http.cookiejar
import re
from collections.abc import Iterable, Iterator
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util import Retry

# RFC 9110 §7.6.1 plus the proxy-only ones; also anything named in Connection.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection",
})

# Credentials Immich reads (NOTES.md §1): never logged, never part of a cache key.
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-immich-user-token",
                      "x-immich-session-token", "x-immich-share-key", "x-immich-share-slug")
CREDENTIAL_QUERY = ("key", "slug", "sessionKey", "apiKey")


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie, request):  # noqa: D102 - never store a caller's cookie
        return False

    def return_ok(self, cookie, request):  # noqa: D102
        return False


def make_session(pool_size: int = 64) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.headers = CaseInsensitiveDict()
    session.cookies.set_policy(_NoCookies())
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def make_pool(base_url: str, maxsize: int = 64, blocksize: int = 1024 * 1024) -> urllib3.HTTPConnectionPool:
    """Bare urllib3 pool for the proxy path: what a requests.Session would send, without
    its per-call preparation (hooks, cookie jar, settings merge), which cost more CPU than
    the proxying itself. Same TLS policy as requests (certifi bundle, verified), no retries,
    ``blocksize`` is how much of an upload is read from the client per send."""
    kw: dict[str, Any] = {"maxsize": maxsize, "block": False, "blocksize": blocksize,
                          "retries": Retry(0, read=False)}
    if base_url.lower().startswith("https:"):
        kw.update(cert_reqs="CERT_REQUIRED", ca_certs=DEFAULT_CA_BUNDLE_PATH)
    return urllib3.connection_from_url(base_url, **kw)


# Characters a request target can carry that neither urllib3's parse_url (percent-encoding
# of invalid characters, dot-segment removal) nor requests' requote_uri would change.
_PLAIN_TARGET = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")


def request_target(base_url: str, origin: str, path_and_query: str) -> str:
    """The request target requests would send for ``base_url + path_and_query``.

    ``origin`` is ``scheme://host[:port]`` of ``base_url``. Plain targets (the usual case)
    go as they are; anything else (``%``, non-ASCII, spaces, ``#``, ``/./``) is normalised
    by requests' own URL preparation so that Immich sees the same bytes as before.
    """
    target = base_url[len(origin):] + path_and_query
    if "/." not in target and _PLAIN_TARGET.fullmatch(target):
        return target
    prepared = requests.PreparedRequest()
    prepared.prepare_url(base_url + path_and_query, None)
    return prepared.path_url


def connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Header names listed in Connection (they are hop-by-hop too)."""
    names: set[str] = set()
    for key, value in headers:
        if key.lower() == "connection":
            names.update(t.strip().lower() for t in value.split(",") if t.strip())
    return names


def request_headers(headers: Iterable[tuple[str, str]], drop: Iterable[str] = ()) -> dict[str, str]:
    """Client headers to send upstream: end-to-end ones only, Host left to requests.

    WSGI already folds repeated request headers into one, so a dict loses nothing.
    """
    items = list(headers)
    skip = HOP_BY_HOP | connection_tokens(items) | {"host", "content-length"} | {d.lower() for d in drop}
    return {k: v for k, v in items if k.lower() not in skip}


def response_headers(headers: Iterable[tuple[str, str]], drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Upstream headers to return: duplicates (several Set-Cookie) kept as separate items."""
    items = list(headers)
    skip = HOP_BY_HOP | connection_tokens(items) | {d.lower() for d in drop}
    return [(k, v) for k, v in items if k.lower() not in skip]


class StreamBody:
    """A WSGI input stream as a request body: read in blocks, length known when declared.

    requests sees ``len`` and sends Content-Length (not chunked); http.client then
    pulls ``read(blocksize)`` so a 2 GB upload never sits in memory.
    """

    def __init__(self, stream: Any, length: int | None, block: int = 256 * 1024) -> None:
        self._stream = stream
        self._block = block
        if length is not None:
            self.len = length

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(self._block if size is None or size < 0 else size)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self._stream.read(self._block)
            if not chunk:
                return
            yield chunk


def iter_raw(resp: requests.Response, chunk: int) -> Iterator[bytes]:
    """Upstream body exactly as sent (still compressed if it was).

    Read to the end, the connection goes back to the pool for the next request (closing
    it would cost a new TCP connection per proxied call); abandoned half-way (client
    went away), it is closed, since the rest of the body is still on the wire.
    """
    try:
        yield from resp.raw.stream(chunk, decode_content=False)
        resp._content_consumed = True  # so that Response.close() releases, not closes
    finally:
        resp.close()
