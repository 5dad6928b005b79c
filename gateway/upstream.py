"""HTTP to Immich and to the Twinlens services.

``Pool`` carries the proxy's traffic to Immich (lean keep-alive HTTP/1.1, see its
docstring); ``make_session`` is the requests session for everything else (auth, the
Twinlens services, enrichment lookups), one per process.

The session must never remember anything between callers: no cookie jar (a login
through the gateway would otherwise authenticate the next anonymous caller), no
proxy/.netrc from the environment (.netrc would add an Authorization header), no
default headers (requests adds ``Accept-Encoding: gzip`` that the client never sent).
"""

from __future__ import annotations

import fcntl
import http.client
import http.cookiejar
import io
import os
import re
import select
import socket
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH

# RFC 9110 §7.6.1 plus the proxy-only ones; also anything named in Connection.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    }
)

# Credentials Immich reads (NOTES.md §1): never logged, never part of a cache key.
CREDENTIAL_HEADERS = (
    "authorization",
    "x-api-key",
    "x-immich-user-token",
    "x-immich-session-token",
    "x-immich-share-key",
    "x-immich-share-slug",
)
CREDENTIAL_QUERY = ("key", "slug", "sessionKey", "apiKey")
# Request headers meant for the gateway itself (set by the nginx in front), never Immich's.
OFFLOAD_HEADER = "X-Twinlens-Offload"
# "proxy": no client has a reason to send it, and CGI-style servers turn it into the
# HTTP_PROXY variable (httpoxy); it is never passed on.
GATEWAY_ONLY = frozenset({OFFLOAD_HEADER.lower(), "proxy"})

# granian hands each request dict(os.environ) with the request's own keys on top, so the
# process's HTTP_* variables (HTTP_PROXY from Docker's proxy settings, with its password)
# would read as client headers. A value equal to the process's is not the client's.
PROCESS_HTTP = {k: v for k, v in os.environ.items() if k.startswith("HTTP_")}


def client_header(environ: dict[str, Any], key: str) -> Any:
    """``environ[key]`` (an HTTP_* key) if the client sent it, else None."""
    value = environ.get(key)
    if value is not None and PROCESS_HTTP.get(key) == value:
        return None
    return value


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


class UpstreamError(Exception):
    """Immich could not be reached, broke the protocol, or was too slow (``timeout``)."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


# requests' own header checks (requests/_internal_utils.py): what it refused, we refuse.
_VALID_NAME = re.compile(r"[^:\s][^:\r\n]*")
_VALID_VALUE = re.compile(r"\S[^\r\n]*|")
# Lines "name: value\r\n" whose name and value pass the two checks above.
_VALID_LINES = re.compile(r"(?:[^:\s][^:\r\n]*: (?:\S[^\r\n]*)?\r\n)*")
# A header line as http.client + email (compat32) read it, in the plain case; anything
# else (folded lines, bare LF, odd names) is handed to http.client's own parser.
_PLAIN_HEADER = re.compile(rb"([!-9;-~]+):[ \t]*([^\r\n]*)\r\n")
_PLAIN_HEADER_TEXT = re.compile(_PLAIN_HEADER.pattern.decode("ascii"))
_MAXLINE = 65536
_MAXHEADERS = 100
_USER_AGENT = f"python-urllib3/{urllib3.__version__}"
_RETRY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Pool:
    """Keep-alive HTTP/1.1 connections to one origin (Immich), for the proxy path.

    It sends the bytes the previous requests + urllib3 stack sent (same Host,
    Accept-Encoding and User-Agent defaults, same header order, same framing) and reads
    answers the way http.client does, at a fraction of the CPU: one ``sendall`` for the
    request head, headers split with one regex, body read with ``read1`` (no extra copy).
    Idle connections that Immich has closed are noticed before reuse, as urllib3 does;
    a GET/HEAD/OPTIONS without body that meets a connection closed under it is sent once
    more on a fresh one (the race urllib3 leaves to the caller).
    """

    def __init__(self, base_url: str, maxsize: int = 64, blocksize: int = 1024 * 1024) -> None:
        url = urllib3.util.parse_url(base_url)
        self.scheme = (url.scheme or "http").lower()
        self.host = (url.host or "").strip("[]")
        default = 443 if self.scheme == "https" else 80
        self.port = url.port or default
        path = url.path or ""
        self.base_url = base_url
        self.origin = (
            base_url[: len(base_url) - len(path)] if path and base_url.endswith(path) else base_url
        )
        try:
            host_enc = self.host.encode("ascii").decode("ascii")
        except UnicodeEncodeError:
            host_enc = self.host.encode("idna").decode("ascii")
        if ":" in host_enc:
            host_enc = f"[{host_enc}]"
        self.host_header = host_enc if self.port == default else f"{host_enc}:{self.port}"
        self.maxsize = maxsize
        self.blocksize = blocksize
        self._idle: list[_Conn] = []
        self._ssl: ssl.SSLContext | None = None
        if self.scheme == "https":
            from urllib3.util.ssl_ import create_urllib3_context

            ctx = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
            ctx.load_verify_locations(DEFAULT_CA_BUNDLE_PATH)
            ctx.check_hostname = True
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl = ctx

    # --- connections ---------------------------------------------------------------------
    def _connect(self, connect_timeout: float) -> _Conn:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=connect_timeout)
        except TimeoutError:
            raise UpstreamError("connect timeout", timeout=True) from None
        except OSError as exc:
            raise UpstreamError(f"connect failed: {type(exc).__name__}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ssl is not None:
            try:
                sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise UpstreamError(f"TLS failed: {type(exc).__name__}") from None
        return _Conn(sock)

    def _get(self) -> _Conn | None:
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return None
            # Readable while idle means Immich closed it (or sent garbage): not reusable.
            try:
                readable = select.select([conn.sock], (), (), 0)[0]
            except (OSError, ValueError):
                readable = True
            if not readable:
                return conn
            conn.close()

    def _put(self, conn: _Conn) -> None:
        if len(self._idle) < self.maxsize:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    # --- one exchange --------------------------------------------------------------------
    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Any = None,
        chunked: bool = False,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
    ) -> RawResponse:
        block = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        n = len(headers)
        # requests' checks of each name and value, done once over all the lines: one CR
        # and one LF per line means none inside a name or a value.
        if block.count("\n") != n or block.count("\r") != n or not _VALID_LINES.fullmatch(block):
            raise UpstreamError("invalid header")
        keys = {name.lower() for name in headers}
        pre = f"{method} {target} HTTP/1.1\r\n"
        if "host" not in keys:
            pre += f"Host: {self.host_header}\r\n"
        if "accept-encoding" not in keys:
            pre += "Accept-Encoding: identity\r\n"
        if "user-agent" not in keys:
            pre += f"User-Agent: {_USER_AGENT}\r\n"
        try:
            head = pre.encode("ascii") + block.encode("latin-1") + b"\r\n"
        except UnicodeEncodeError:
            raise UpstreamError("invalid request line or header") from None
        retry = body is None and method in _RETRY_METHODS
        while True:
            conn = self._get()
            reused = conn is not None
            if conn is None:
                conn = self._connect(connect_timeout)
            conn.sock.settimeout(read_timeout)
            try:
                self._send(conn, head, body, chunked)
                return RawResponse.read_head(self, conn, method)
            except _Stale:
                conn.close()
                if reused and retry:
                    retry = False
                    continue
                raise UpstreamError("connection closed by Immich") from None
            except BaseException:
                conn.close()
                raise

    def _send(self, conn: _Conn, head: bytes, body: Any, chunked: bool) -> None:
        """Head, then the body as read from the client (framed when chunked)."""
        sock = conn.sock
        data, last = head, body is None
        sent = 0
        while True:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                # Immich may have answered early and closed: read that answer, as urllib3 does.
                conn.send_failed = True
                return
            except OSError as exc:  # a send timeout too: urllib3 called it a protocol error
                raise UpstreamError(f"send failed: {type(exc).__name__}") from None
            if last:
                return
            try:
                block = body.read(self.blocksize)
            except OSError as exc:  # the client went away mid-upload (502, as before)
                raise UpstreamError(f"client body: {type(exc).__name__}") from None
            if not block:
                if not chunked:
                    declared = getattr(body, "len", None)
                    if declared is not None and sent < declared:
                        # The client went away mid-upload: Immich would wait for the rest
                        # (and this thread with it); the connection is not reused.
                        raise UpstreamError(f"client body ended at {sent} of {declared} bytes")
                    return
                data, last = b"0\r\n\r\n", True
            else:
                sent += len(block)
                data = b"%x\r\n%b\r\n" % (len(block), block) if chunked else block


class _Stale(Exception):
    """The connection was closed before any byte of an answer arrived."""


class _Conn:
    __slots__ = ("sock", "send_failed")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.send_failed = False

    def close(self) -> None:
        self.sock.close()


_FIRST_READ = 65536
_FRAMING = frozenset(
    {"transfer-encoding", "content-length", "connection", "keep-alive", "proxy-connection"}
)


class _Reader:
    """One answer's bytes: what the first read brought past the head, then the socket.

    Replaces a buffered socket file (``makefile``), whose set-up and Python-level reads
    cost more than the rest of a small answer. ``read1`` returns what is buffered, else
    what one ``recv`` returns (up to ``amt``, no extra copy); ``readline`` is for the
    head's odd shapes and chunked framing.
    """

    __slots__ = ("sock", "buf")

    def __init__(self, sock: socket.socket, buf: bytes = b"") -> None:
        self.sock = sock
        self.buf = buf

    def read1(self, amt: int) -> bytes:
        buf = self.buf
        if buf:
            if len(buf) <= amt:
                self.buf = b""
                return buf
            self.buf = buf[amt:]
            return buf[:amt]
        return self.sock.recv(amt)

    def take(self, n: int) -> bytes:
        """``n`` bytes known to be buffered."""
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def readline(self, limit: int) -> bytes:
        """Up to and including the next LF, at most ``limit`` bytes; b"" at the end."""
        start = 0
        while True:
            buf = self.buf
            i = buf.find(b"\n", start, limit)
            if i >= 0:
                self.buf = buf[i + 1 :]
                return buf[: i + 1]
            if len(buf) >= limit:
                self.buf = buf[limit:]
                return buf[:limit]
            more = self.sock.recv(_FIRST_READ)
            if not more:
                self.buf = b""
                return buf
            start = len(buf)
            self.buf = buf + more

    def close(self) -> int:
        """Forget what is buffered; returns how many bytes that was."""
        n, self.buf = len(self.buf), b""
        return n


def _head_read_error(exc: OSError, started: bool) -> Exception:
    """What a failed read of an answer's head means: Immich closed the connection before
    answering (``_Stale``: a GET may be retried), a timeout, or a failure."""
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return UpstreamError("connection reset") if started else _Stale()
    if isinstance(exc, TimeoutError):
        return UpstreamError("read timeout", timeout=True)
    return UpstreamError(f"read failed: {type(exc).__name__}")


class RawResponse:
    """Status, headers (as urllib3 listed them) and a body read on demand."""

    __slots__ = (
        "status",
        "reason",
        "version",
        "headers",
        "chunked",
        "length_remaining",
        "_pool",
        "_conn",
        "_rfile",
        "_will_close",
        "_chunk_left",
        "_done",
        "_whole",
    )

    def __init__(self) -> None:
        self._done = False
        self._chunk_left = 0
        self._whole: bytes | None = None

    @classmethod
    def read_head(cls, pool: Pool, conn: _Conn, method: str) -> RawResponse:
        # A reader per answer, as http.client does: bytes a misbehaving server sent past
        # the end of one answer (a body after HEAD) never become the start of the next.
        try:
            first = conn.sock.recv(_FIRST_READ)  # usually the whole head, often the body too
        except OSError as exc:
            raise _head_read_error(exc, started=False) from None
        if not first:
            raise _Stale
        plain = _plain_head(first)
        if plain is None:  # split over reads, bare LF, 1xx, odd lines: line by line
            return cls._read_head_lines(pool, conn, _Reader(conn.sock, first), method)
        # The usual answer, parsed in one pass (same result as the line-by-line reading).
        end, status, reason, version, headers = plain
        self = cls()
        self.status, self.reason, self.version = status, reason, version
        self.headers = headers
        reader = _Reader(conn.sock, first[end:])
        self._init_body(pool, conn, reader, method)
        length = self.length_remaining
        if length and not self.chunked and len(reader.buf) >= length:
            # The whole (small) body came with the head: take it, and the connection is
            # free for the next request before this answer is even relayed.
            self._whole = reader.take(length)
            self.length_remaining = 0
            self._finish()
        return self

    @classmethod
    def _read_head_lines(cls, pool: Pool, conn: _Conn, rfile: _Reader, method: str) -> RawResponse:
        started = False
        try:
            while True:
                line = rfile.readline(_MAXLINE + 1)
                if not line:
                    if started:
                        raise UpstreamError("connection closed inside the answer")
                    raise _Stale
                started = True
                if len(line) > _MAXLINE:
                    raise UpstreamError("status line too long")
                status, reason, version = _status(line)
                if status != 100:
                    break
                while True:  # skip the 100 Continue headers, as http.client does
                    skip = rfile.readline(_MAXLINE + 1)
                    if len(skip) > _MAXLINE:
                        raise UpstreamError("header line too long")
                    if not skip.strip():
                        break
            raw_lines = []
            while True:
                line = rfile.readline(_MAXLINE + 1)
                if len(line) > _MAXLINE:
                    raise UpstreamError("header line too long")
                raw_lines.append(line)
                if len(raw_lines) > _MAXHEADERS:
                    raise UpstreamError("too many headers")
                if line in (b"\r\n", b"\n", b""):
                    break
        except OSError as exc:
            raise _head_read_error(exc, started) from None
        self = cls()
        self.status, self.reason, self.version = status, reason, version
        self.headers = _header_items(raw_lines)
        self._init_body(pool, conn, rfile, method)
        return self

    def _init_body(self, pool: Pool, conn: _Conn, rfile: _Reader, method: str) -> None:
        """Framing of the body (as http.client decides it); an empty body ends at once."""
        status, version = self.status, self.version
        self._pool, self._conn, self._rfile = pool, conn, rfile
        framing = self._framing()
        te = framing.get("transfer-encoding", "").lower()
        self.chunked = "chunked" in (e.strip() for e in te.split(","))
        length = None
        cl = framing.get("content-length")
        if cl is not None and not self.chunked:
            try:
                lengths = {int(v) for v in cl.split(",")}
            except ValueError:
                lengths = set()
            if len(lengths) > 1:
                self.close()
                raise UpstreamError("Content-Length contained multiple unmatching values")
            if lengths:
                length = lengths.pop()
                if length < 0:
                    length = None
        if status in (204, 304) or 100 <= status < 200 or method == "HEAD":
            length = 0
            self.chunked = False
        self.length_remaining = length
        connection = framing.get("connection")
        if version == 11:
            will_close = bool(connection and "close" in connection.lower())
        else:
            will_close = not (
                framing.get("keep-alive")
                or (connection and "keep-alive" in connection.lower())
                or "keep-alive" in (framing.get("proxy-connection") or "").lower()
            )
        if not self.chunked and length is None:
            will_close = True  # read until the connection closes
        self._will_close = will_close
        if length == 0:
            self._finish()

    def _framing(self) -> dict[str, str]:
        """The headers that frame the body, as ``get`` would give them, in one pass."""
        found: dict[str, str] = {}
        for key, value in self.headers:
            name = key.lower()
            if name in _FRAMING:
                found[name] = f"{found[name]}, {value}" if name in found else value
        return found

    def get(self, name: str, default: Any = None) -> Any:
        """Like urllib3's ``headers.get``: every value of ``name`` joined by ", "."""
        name = name.lower()
        values = [v for k, v in self.headers if k.lower() == name]
        return ", ".join(values) if values else default

    def whole_body(self) -> bytes | None:
        """The whole body when it came with the head (then already read), else None."""
        whole, self._whole = self._whole, None
        return whole

    def read1(self, amt: int) -> bytes:
        """Up to ``amt`` bytes of the body as sent (b"" at the end); on the last byte the
        connection goes back to the pool."""
        if self._whole is not None:
            data, rest = self._whole[:amt], self._whole[amt:]
            self._whole = rest or None
            return data
        if self._done:
            return b""
        rfile = self._rfile
        try:
            if self.chunked:
                if self._chunk_left == 0:
                    size_line = rfile.readline(_MAXLINE + 1)
                    try:
                        size = int(size_line.split(b";", 1)[0], 16)
                    except ValueError:
                        raise UpstreamError("bad chunk size") from None
                    if size == 0:
                        while True:  # trailers, up to the blank line
                            trailer = rfile.readline(_MAXLINE + 1)
                            if trailer in (b"\r\n", b"\n", b""):
                                break
                        self._finish()
                        return b""
                    self._chunk_left = size
                data = rfile.read1(min(amt, self._chunk_left))
                if not data:
                    raise UpstreamError("connection closed inside a chunk")
                self._chunk_left -= len(data)
                if self._chunk_left == 0:
                    rfile.readline(_MAXLINE + 1)  # CRLF after the chunk data
                return data
            remaining = self.length_remaining
            if remaining is None:
                data = rfile.read1(amt)
                if not data:
                    self._finish()
                return data
            data = rfile.read1(min(amt, remaining))
            if not data:
                raise UpstreamError(f"connection closed with {remaining} bytes to go")
            self.length_remaining = remaining = remaining - len(data)
            if remaining == 0:
                self._finish()
            return data
        except TimeoutError:
            self.close()
            raise UpstreamError("read timeout", timeout=True) from None
        except UpstreamError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise UpstreamError(f"read failed: {type(exc).__name__}") from None

    def splice_into(self, out: socket.socket, sent: Any) -> None:
        """Move the rest of a Content-Length body to ``out`` inside the kernel (splice(2)
        through a pipe: no copy into Python), calling ``sent(n)`` as bytes go out.

        The caller has emptied this answer's read buffer (``read1`` with an ``amt`` of at
        least the buffer size does). Immich's socket has a timeout, so it is non-blocking
        underneath: waits are done with poll and the same read timeout.
        """
        remaining = self.length_remaining or 0
        src_sock = self._conn.sock
        timeout = src_sock.gettimeout()
        src, dst = src_sock.fileno(), out.fileno()
        out_timeout = out.gettimeout()
        pipe_r, pipe_w = os.pipe()
        try:
            try:
                size = fcntl.fcntl(pipe_w, _F_SETPIPE_SZ, _PIPE_SIZE)
            except OSError:
                size = 65536
            while remaining > 0:
                try:
                    n = os.splice(src, pipe_w, min(remaining, size), flags=_SPLICE_MOVE)
                except BlockingIOError:
                    if not _wait(src, select.POLLIN, timeout):
                        raise UpstreamError("read timeout", timeout=True) from None
                    continue
                if n == 0:
                    raise UpstreamError(f"connection closed with {remaining} bytes to go")
                remaining -= n
                self.length_remaining = remaining
                while n:
                    try:
                        m = os.splice(pipe_r, dst, n, flags=_SPLICE_MOVE)
                    except BlockingIOError:
                        if not _wait(dst, select.POLLOUT, out_timeout):
                            raise TimeoutError("client did not read in time") from None
                        continue
                    n -= m
                    sent(m)
            self._finish()
        except BaseException:
            self.close()
            raise
        finally:
            os.close(pipe_r)
            os.close(pipe_w)

    def read(self) -> bytes:
        parts = []
        while True:
            data = self.read1(1024 * 1024)
            if not data:
                return b"".join(parts)
            parts.append(data)

    def read_decoded(self) -> bytes:
        """The whole body, Content-Encoding undone (as requests' ``.content`` did)."""
        raw = self.read()
        if not self.get("content-encoding"):
            return raw
        decoder = urllib3.HTTPResponse(
            body=io.BytesIO(raw),
            headers=self.headers,
            status=self.status,
            preload_content=False,
            decode_content=True,
        )
        return decoder.read()

    def _finish(self) -> None:
        """The body was read to the end: the connection can serve the next request."""
        self._release(reusable=True)

    def close(self) -> None:
        """Abandon the answer: unless it was read to the end, its connection is dropped."""
        self._release(reusable=False)

    def _release(self, reusable: bool) -> None:
        if self._done:
            return
        self._done = True
        extra = self._rfile.close()  # bytes past the end of the answer: do not reuse
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if reusable and not (extra or self._will_close or conn.send_failed):
            self._pool._put(conn)
        else:
            conn.close()


_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_PIPE_SIZE = 1024 * 1024
_SPLICE_MOVE = getattr(os, "SPLICE_F_MOVE", 1)
CAN_SPLICE = hasattr(os, "splice")


def _wait(fd: int, event: int, timeout: float | None) -> bool:
    poller = select.poll()
    poller.register(fd, event | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(None if timeout is None else timeout * 1000))


def _status(line: bytes) -> tuple[int, str, int]:
    """http.client's reading of a status line."""
    text = line.decode("iso-8859-1")
    try:
        version, status, reason = text.split(None, 2)
    except ValueError:
        try:
            version, status = text.split(None, 1)
            reason = ""
        except ValueError:
            version, status, reason = "", "", ""
    if not version.startswith("HTTP/"):
        raise UpstreamError("bad status line")
    try:
        code = int(status)
    except ValueError:
        raise UpstreamError("bad status line") from None
    if code < 100 or code > 999:
        raise UpstreamError("bad status line")
    if version == "HTTP/1.0":
        vnum = 10
    elif version.startswith("HTTP/1."):
        vnum = 11
    else:
        raise UpstreamError("unknown protocol")
    return code, reason.strip(), vnum


# A whole plain head: "HTTP/1.x NNN reason" and plain header lines (see _PLAIN_HEADER),
# each ended by CRLF, then the blank line. Anything else takes the line-by-line reader.
_PLAIN_HEAD = re.compile(
    rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ([^\r\n]*))?\r\n((?:[!-9;-~]+:[ \t]*[^\r\n]*\r\n)*)\r\n"
)


def _plain_head(data: bytes) -> tuple[int, int, str, int, list[tuple[str, str]]] | None:
    """(head length, status, reason, version, header items) of an answer whose whole head
    is in ``data`` and plain, else None. Same results as ``_status`` + ``_header_items``."""
    m = _PLAIN_HEAD.match(data)
    if m is None:
        return None
    code = int(m.group(2))
    if code < 200 and code != 101:
        return None  # 1xx (100 Continue is skipped): the line-by-line reader's business
    if m.group(1) == b"0":
        vnum = 10
    else:
        vnum = 11
    reason = (m.group(3) or b"").decode("iso-8859-1").strip()
    # Decoded once: latin-1 maps each byte to the code point of the same number, so the
    # str pattern cuts the text exactly where the bytes pattern cuts the bytes.
    pairs: list[tuple[str, str]] = _PLAIN_HEADER_TEXT.findall(m.group(4).decode("iso-8859-1"))
    if len(pairs) > _MAXHEADERS:
        return None
    return m.end(), code, reason, vnum, _grouped(pairs)


def _header_items(raw_lines: list[bytes]) -> list[tuple[str, str]]:
    """Header items in the order and spelling urllib3's HTTPHeaderDict lists them: grouped
    by name (first-seen order), each group under the first spelling of the name."""
    pairs = []
    match = _PLAIN_HEADER.fullmatch
    for line in raw_lines[:-1]:
        m = match(line)
        if m is None:
            # Rare shapes: let http.client + email parse them, then urllib3 normalise them.
            msg = http.client.parse_headers(io.BytesIO(b"".join(raw_lines)))
            from urllib3.connection import _normalize_header_values

            pairs = _normalize_header_values(msg)
            break
        pairs.append((m.group(1).decode("iso-8859-1"), m.group(2).decode("iso-8859-1")))
    return _grouped(pairs)


def _grouped(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if len({k.lower() for k, _ in pairs}) == len(pairs):
        return pairs  # no name twice (the usual case): nothing to group
    groups: dict[str, list[str]] = {}
    for name, value in pairs:
        group = groups.get(name.lower())
        if group is None:
            groups[name.lower()] = [name, value]
        else:
            group.append(value)
    if len(groups) == len(pairs):
        return pairs
    return [(g[0], v) for g in groups.values() for v in g[1:]]


# Characters a request target can carry that neither urllib3's parse_url (percent-encoding
# of invalid characters, dot-segment removal) nor requests' requote_uri would change.
_PLAIN_TARGET = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")


def request_target(base_url: str, origin: str, path_and_query: str) -> str:
    """The request target requests would send for ``base_url + path_and_query``.

    ``origin`` is ``scheme://host[:port]`` of ``base_url``. Plain targets (the usual case)
    go as they are; anything else (``%``, non-ASCII, spaces, ``#``, ``/./``) is normalised
    by requests' own URL preparation so that Immich sees the same bytes as before.
    """
    target = base_url[len(origin) :] + path_and_query
    if "/." not in target and _PLAIN_TARGET.fullmatch(target):
        return target
    prepared = requests.PreparedRequest()
    prepared.prepare_url(base_url + path_and_query, None)
    return prepared.path_url


def _tokens(connection: str) -> set[str]:
    """The header names one Connection value lists (they are hop-by-hop too)."""
    return {t.strip().lower() for t in connection.split(",") if t.strip()}


def connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Header names listed in Connection headers."""
    names: set[str] = set()
    for key, value in headers:
        if len(key) == 10 and key.lower() == "connection":
            names |= _tokens(value)
    return names


_NOT_A_HEADER = ("", "")
_ENVIRON_NAMES: dict[str, tuple[str, str]] = {}  # environ key -> (Name, name), or not one
_SKIPS: dict[tuple[str, ...], frozenset[str]] = {}


def _environ_name(key: str) -> tuple[str, str]:
    """The header an environ key carries, as werkzeug's EnvironHeaders names it."""
    found = _ENVIRON_NAMES.get(key)
    if found is None:
        if key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            name = key[5:].replace("_", "-").title()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").title()
        else:
            name = ""
        found = (name, name.lower()) if name else _NOT_A_HEADER
        if len(_ENVIRON_NAMES) < 4096:  # names come from clients: keep the memo bounded
            _ENVIRON_NAMES[key] = found
    return found


def environ_headers(environ: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, str]:
    """Client headers to send upstream, from the environ as werkzeug's EnvironHeaders
    names them: end-to-end ones only (not hop-by-hop, not named in Connection), without
    Host and Content-Length (the pool sets those) and ``drop``. WSGI already folds repeated
    request headers into one, so a dict loses nothing. One pass: the proxy's hot path."""
    skip = _SKIPS.get(drop)
    if skip is None:
        skip = _SKIPS[drop] = (
            HOP_BY_HOP | GATEWAY_ONLY | {"host", "content-length"} | {d.lower() for d in drop}
        )
    connection = environ.get("HTTP_CONNECTION")
    if connection:
        skip = skip | _tokens(connection)
    out = {}
    names = _ENVIRON_NAMES
    process = PROCESS_HTTP
    for key, value in environ.items():
        name, lower = names.get(key) or _environ_name(key)
        if name and lower not in skip and (value or key[:5] == "HTTP_"):
            if process and process.get(key) == value:
                continue  # the gateway's own environment (granian), not the client's
            out[name] = value
    return out


def relay_headers(
    headers: list[tuple[str, str]], skip: frozenset[str], flag: frozenset[str]
) -> tuple[list[tuple[str, str]], bool]:
    """Upstream headers to return, without those in ``skip`` (lower case) or named in
    Connection; duplicates (several Set-Cookie) kept as separate items. Also whether any
    header named in ``flag`` is among them."""
    tokens = connection_tokens(headers)
    out = []
    flagged = False
    for key, value in headers:
        name = key.lower()
        if name in skip or name in tokens:
            continue
        if name in flag:
            flagged = True
        out.append((key, value))
    return out, flagged


def response_headers(
    headers: Iterable[tuple[str, str]], drop: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """``relay_headers`` with hop-by-hop headers and ``drop`` skipped."""
    return relay_headers(list(headers), HOP_BY_HOP | {d.lower() for d in drop}, frozenset())[0]


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
