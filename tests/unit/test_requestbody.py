"""A request body that could not be read never passes for an empty one."""

from __future__ import annotations

import io

import pytest

from api.common import ApiError
from core.requestbody import read_body


class _Request:
    """What read_body uses of a Flask request, as a server hands a broken body over."""

    def __init__(self, body: bytes | Exception, chunked: bool) -> None:
        self.headers = {"Transfer-Encoding": "chunked"} if chunked else {}
        self._body = body

    def get_data(self, cache: bool, parse_form_data: bool) -> bytes:
        if isinstance(self._body, Exception):
            raise self._body
        return self._body

    @property
    def stream(self) -> io.BytesIO:
        if isinstance(self._body, Exception):
            raise self._body
        return io.BytesIO(self._body)


class ChunkSizeError(Exception):
    """Stands for gunicorn's InvalidChunkSize (a ParseException, not an OSError)."""


@pytest.mark.parametrize("limit", [None, 1024])
def test_a_body_the_server_could_not_read_is_a_400(limit) -> None:
    with pytest.raises(ApiError) as err:
        read_body(_Request(ChunkSizeError("b'zz'"), chunked=True), limit, ApiError)
    assert err.value.status == 400 and "could not be read" in err.value.message


@pytest.mark.parametrize("limit", [None, 1024])
def test_an_empty_chunked_body_is_a_400_as_granian_reads_a_broken_one(limit) -> None:
    with pytest.raises(ApiError) as err:
        read_body(_Request(b"", chunked=True), limit, ApiError)
    assert err.value.status == 400 and "{}" in err.value.message


@pytest.mark.parametrize("limit", [None, 1024])
def test_bodies_that_were_read_come_back_whole(limit) -> None:
    assert read_body(_Request(b"", chunked=False), limit, ApiError) == b""
    assert read_body(_Request(b'{"a": 1}', chunked=True), limit, ApiError) == b'{"a": 1}'
