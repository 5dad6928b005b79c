"""JSON errors in Immich's shape (``{"message": ...}``) so Immich clients show them."""

from __future__ import annotations

from flask import Response, jsonify


def json_error(status: int, message: str) -> Response:
    resp = jsonify({"message": message, "statusCode": status})
    resp.status_code = status
    return resp
