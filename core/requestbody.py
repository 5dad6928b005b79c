"""Reading a request's body for the APIs and the gateway, where a body that could not be
read must never pass for an empty one.

An empty body means "nothing asked" on several routes (``{}``: a scan of every root, a
split that dissolves the whole group). A chunked body that breaks off or holds a bad
chunk size is read by granian as no bytes at all, and makes gunicorn and werkzeug raise:
both become a 400 here, never ``{}`` nor a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def read_body(
    request: Any,
    limit: int | None,
    error: Callable[[int, str], Exception],
    answered: tuple[type[Exception], ...] = (),
) -> bytes:
    """The body of a Flask ``request`` (up to ``limit`` bytes when given), or ``error(400,
    reason)`` raised when it could not be read, or was sent chunked and came out empty.
    Exceptions of the ``answered`` types (the framework's own, a 413 among them) go on."""
    try:
        if limit is None:
            raw = request.get_data(cache=True, parse_form_data=False)
        else:
            raw = request.stream.read(limit)
    except answered:
        raise
    except Exception as exc:  # noqa: BLE001 - each server raises its own (gunicorn: ParseException)
        raise error(400, f"the request body could not be read ({type(exc).__name__})") from None
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if chunked and not raw:
        # What a broken chunked body also reads as: send {} (or a Content-Length) for none
        raise error(400, "the chunked request body was empty or malformed; send {} for none")
    return bytes(raw)
