"""Fake Immich v3 server for tests and benchmarks (not shipped).

server = FakeImmichServer().start()     # real HTTP on a random loopback port
user = server.state.add_user("a@example.com", "pw")
...  server.url  ...
server.stop()
"""

from __future__ import annotations

import threading

from werkzeug.serving import make_server

from tests.fakeimmich.app import FakeState, create_app, path_checksum

__all__ = ["FakeImmichServer", "FakeState", "create_app", "path_checksum", "ThreadedServer"]


class ThreadedServer:
    """Any WSGI app on a random loopback port, served by werkzeug in a daemon thread."""

    def __init__(
        self, app, host: str = "127.0.0.1", port: int = 0, poll_interval: float = 0.02
    ) -> None:
        self.app = app
        self._server = make_server(host, port, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
        )

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeImmichServer(ThreadedServer):
    def __init__(self, state: FakeState | None = None) -> None:
        self.state = state or FakeState()
        super().__init__(create_app(self.state))
