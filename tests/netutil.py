"""Small network helpers for tests and benchmarks: a free loopback port, waiting for a
server started in another process, and a raw TCP server for upstreams that must
misbehave in ways no HTTP framework allows."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_answering(url: str, seconds: float = 15) -> None:
    """Until an HTTP GET of ``url`` gets any answer; AssertionError after ``seconds``."""
    import requests

    deadline = time.monotonic() + seconds
    while True:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing answered at {url} in {seconds} s") from None
            time.sleep(0.1)


class RawServer:
    """Listens on a loopback port and runs ``handle(conn)`` in a thread per connection;
    the handler owns the connection (closing it is its business)."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self._handle = handle
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.addr}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self._sock.close()


def read_head(conn: socket.socket) -> tuple[bytes, bytes] | None:
    """A request's head and whatever followed it in the same reads; None if the client
    closed first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


class Switch:
    """A TCP relay in front of ``upstream`` (host, port) that can play dead: while
    ``up`` is False what clients send is read but never passed on or answered (a hung
    server), on new and open connections alike, and ``swallowed`` counts those bytes."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.up = True
        self.swallowed = 0
        self._lock = threading.Lock()
        self._server = RawServer(self._handle)
        self.port = self._server.port

    def _handle(self, conn: socket.socket) -> None:
        far = socket.create_connection(self.upstream)
        threading.Thread(target=_pump, args=(far, conn), daemon=True).start()
        _pump(conn, far, self)

    def swallow(self, n: int) -> bool:
        """Whether ``n`` bytes from a client are swallowed (counted) rather than passed on."""
        with self._lock:
            if self.up:
                return False
            self.swallowed += n
            return True

    def close(self) -> None:
        self._server.close()


def _recv(conn: socket.socket) -> bytes:
    try:
        return conn.recv(65536)
    except OSError:
        return b""


def _pump(src: socket.socket, dst: socket.socket, switch: Switch | None = None) -> None:
    while chunk := _recv(src):
        if switch is not None and switch.swallow(len(chunk)):
            continue
        try:
            dst.sendall(chunk)
        except OSError:
            break
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
