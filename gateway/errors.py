"""JSON errors in Immich's shape (``{"message": ...}``) so Immich clients show them."""

from __future__ import annotations

import uuid

from flask import Response, jsonify


def json_error(status: int, message: str) -> Response:
    resp = jsonify({"message": message, "statusCode": status})
    resp.status_code = status
    return resp


def immich_refusal(status: int, message: str) -> Response:
    """A refusal exactly as Immich v3 words its own (GlobalExceptionFilter): only
    ``message``, and an ``X-Correlation-ID`` header, as on every Immich error."""
    resp = jsonify({"message": message})
    resp.status_code = status
    resp.headers["X-Correlation-ID"] = str(uuid.uuid4())
    return resp
