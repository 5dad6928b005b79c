"""The enriched fast path reads credentials from the bare WSGI environ; it must find
exactly what the Flask request would (Immich's order, every place a credential hides)."""

from __future__ import annotations

import itertools

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.auth import EnvironView, extract

HEADERS = [
    {},
    {"Authorization": "Bearer tok-1"},
    {"authorization": "bearer tok-2"},
    {"x-api-key": "key-1"},
    {"X-Api-Key": "key-2", "Authorization": "Basic abc"},
    {"x-immich-user-token": "u-1"},
    {"x-immich-session-token": "s-1"},
    {"x-immich-share-key": "sk-1", "x-api-key": "key-3"},
    {"x-immich-share-slug": "slug-1"},
    {"Cookie": "immich_access_token=c-1; other=2"},
    {"Cookie": "other=only"},
    {"Cookie": "immich_access_token=c-2", "x-api-key": "key-4"},
]
QUERIES = [
    "",
    "size=preview",
    "apiKey=q-1",
    "key=sk-2&slug=x",
    "sessionKey=s-2",
    "apiKey=a&apiKey=b",
    "notakey=1",
    "slug=%E2%9C%93",
    "key=",
    "q=apiKey%3Dx",
]


def test_environ_view_finds_what_the_request_finds():
    for headers, query in itertools.product(HEADERS, QUERIES):
        environ = EnvironBuilder(
            path="/api/assets/x", headers=headers, query_string=query
        ).get_environ()
        want = extract(Request(environ))
        got = extract(EnvironView(environ))
        assert (got.kind, got.secret, got.headers, got.params) == (
            want.kind,
            want.secret,
            want.headers,
            want.params,
        ), (headers, query)
