"""Pure parts of the gateway: path mapping, checksums, header filtering, resolution plans,
log redaction."""

from __future__ import annotations

import base64
import hashlib
import unicodedata

import pytest

from core.config import load_settings
from gateway.logredact import redact
from gateway.mapping import (
    FileKey,
    checksum_bytes,
    file_key,
    member_checksums,
    to_immich,
    to_twinlens,
)
from gateway.resolve import PlanError, plan
from gateway.upstream import HOP_BY_HOP, connection_tokens, environ_headers, response_headers

PMAP = (("/mnt/photos/raw", "/nas/raw"), ("/mnt/photos", "/nas/photos"))


def b64sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def test_path_map_longest_prefix_and_inverse():
    assert to_twinlens("/mnt/photos/2024/a.jpg", PMAP) == "/nas/photos/2024/a.jpg"
    assert to_twinlens("/mnt/photos/raw/a.cr3", PMAP) == "/nas/raw/a.cr3"
    assert to_twinlens("/mnt/photosX/a.jpg", PMAP) == "/mnt/photosX/a.jpg"  # not a path prefix
    assert to_twinlens("/elsewhere/a.jpg", PMAP) == "/elsewhere/a.jpg"
    for p in ("/nas/photos/2024/a.jpg", "/nas/raw/a.cr3"):
        assert to_twinlens(to_immich(p, PMAP), PMAP) == p
    assert to_twinlens("/x/a.jpg", (("/", "/mnt"),)) == "/mnt/x/a.jpg"


def test_path_map_back_to_immich_takes_the_longest_twinlens_prefix():
    # Given Twinlens folders nested where Immich's are not (settings sort by Immich's side)
    pmap = load_settings({"TWINLENS_PATH_MAP": "/mnt/photos=/library,/mnt/phone=/library/phone"})
    # Then a phone picture goes back to Immich's phone folder, not under its photos
    assert to_immich("/library/phone/x.jpg", pmap.path_map) == "/mnt/phone/x.jpg"
    assert to_immich("/library/2024/x.jpg", pmap.path_map) == "/mnt/photos/2024/x.jpg"
    assert to_immich("/library/phones/x.jpg", pmap.path_map) == "/mnt/photos/phones/x.jpg"


def test_external_asset_maps_by_path_checksum():
    path = "/mnt/photos/2024/IMG_1.JPG"
    asset = {"originalPath": path, "checksum": b64sha1(b"path:" + path.encode()), "libraryId": "L"}
    assert file_key(asset, PMAP) == FileKey("/nas/photos/2024/IMG_1.JPG", None, external=True)


def test_external_asset_with_nfd_name_still_matches():
    nfc = "/mnt/photos/Café.jpg"
    nfd = unicodedata.normalize("NFD", nfc)
    asset = {"originalPath": nfc, "checksum": b64sha1(b"path:" + nfd.encode()), "libraryId": "L"}
    assert file_key(asset, PMAP).external


def test_uploaded_asset_maps_by_content_sha1_hex_or_base64():
    content = b"pixels"
    asset = {
        "originalPath": "/data/upload/u/x.jpg",
        "checksum": b64sha1(content),
        "libraryId": None,
    }
    key = file_key(asset, PMAP)
    assert key.sha1 == hashlib.sha1(content).hexdigest() and not key.external
    assert checksum_bytes(hashlib.sha1(content).hexdigest()) == hashlib.sha1(content).digest()
    assert checksum_bytes("not base64!") is None and checksum_bytes("") is None


def test_member_checksums_cover_both_ways_immich_may_know_a_file():
    sums = member_checksums("/nas/photos/a.jpg", hashlib.sha1(b"c").hexdigest(), PMAP)
    assert sums == [b64sha1(b"path:/mnt/photos/a.jpg"), b64sha1(b"c")]


def test_hop_by_hop_and_connection_tokens_are_dropped():
    sent = environ_headers(
        {
            "HTTP_HOST": "gw",
            "HTTP_CONNECTION": "close, X-Secret-Hop",
            "HTTP_X_SECRET_HOP": "1",
            "HTTP_KEEP_ALIVE": "5",
            "HTTP_TRANSFER_ENCODING": "chunked",
            "HTTP_COOKIE": "a=1",
            "CONTENT_LENGTH": "3",
            "HTTP_X_API_KEY": "k",
        }
    )
    assert sent == {"Cookie": "a=1", "X-Api-Key": "k"}
    back = response_headers(
        [
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Upgrade", "h2c"),
            ("Content-Type", "application/json"),
        ]
    )
    assert back == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Type", "application/json"),
    ]


DUP = {
    "id": "d",
    "status": "open",
    "members": [{"path": "/p/a"}, {"path": "/p/b"}, {"path": "/p/c"}],
}


def test_plan_keeps_chosen_and_trashes_only_what_immich_knows():
    ids = {"/p/a": "A", "/p/b": "B", "/p/c": None}
    out = plan(DUP, ["A"], "trash", ids)
    assert out["keep"] == [{"path": "/p/a", "assetId": "A"}]
    assert out["trash"] == [{"path": "/p/b", "assetId": "B"}]
    assert out["notInImmich"] == ["/p/c"]
    assert plan(DUP, ["/p/a", "A"], "trash", ids)["keep"] == [{"path": "/p/a", "assetId": "A"}]
    nd = plan(DUP, [], "not_duplicate", ids)
    assert nd["trash"] == [] and len(nd["keep"]) == 3


def test_plan_never_trashes_the_asset_a_kept_copy_is():
    # Given exact copies that Immich knows only as one upload X (same content SHA-1)
    ids = {"/p/a": "X", "/p/b": "X", "/p/c": "C"}
    # When the user keeps /p/a, by path or by X
    for keep in (["/p/a"], ["X"]):
        out = plan(DUP, keep, "trash", ids)
        # Then X is not trashed (it would take /p/a with it); only C goes
        assert out["trash"] == [{"path": "/p/c", "assetId": "C"}]
        assert "/p/a" in [k["path"] for k in out["keep"]]
        assert "X" not in {t["assetId"] for t in out["trash"]}
    # Keeping X names every file that X stands for
    assert [k["path"] for k in plan(DUP, ["X"], "trash", ids)["keep"]] == ["/p/a", "/p/b"]
    # Keeping /p/a alone leaves /p/b on disk, untouched, and says so
    assert plan(DUP, ["/p/a"], "trash", ids)["notInImmich"] == ["/p/b"]


def test_plan_refuses_to_keep_a_copy_that_is_already_going():
    # Given a group whose copy /p/a is only in Immich's trash (purged when it is emptied)
    ids = {"/p/a": None, "/p/b": "B", "/p/c": "C"}
    # When the user keeps it, Then nothing is planned: trashing the others would leave none
    with pytest.raises(PlanError) as refused:
        plan(DUP, ["/p/a"], "trash", ids, in_trash={"/p/a"})
    assert refused.value.status == 409 and "Immich's trash" in refused.value.message
    # Nor a copy gone from disk
    gone = {**DUP, "members": [{"path": "/p/a", "missing": True}, {"path": "/p/b"}]}
    with pytest.raises(PlanError) as refused:
        plan(gone, ["/p/a"], "trash", {"/p/a": "A", "/p/b": "B"})
    assert refused.value.status == 409 and "gone from disk" in refused.value.message
    # A copy that stays needs no such check when nothing moves
    assert len(plan(gone, [], "not_duplicate", {"/p/a": "A"})["keep"]) == 2
    # And keeping another copy names the trashed one as what it is, not "left on disk"
    out = plan(DUP, ["B"], "trash", ids, in_trash={"/p/a"})
    assert out["trash"] == [{"path": "/p/c", "assetId": "C"}]
    assert out["inImmichTrash"] == ["/p/a"] and out["notInImmich"] == []


@pytest.mark.parametrize(
    "dup,keep,action,status",
    [
        (DUP, ["/p/x"], "trash", 400),
        (DUP, [], "trash", 400),
        (DUP, ["/p/a", "/p/b", "/p/c"], "trash", 400),  # keeps every copy: nothing moves
        (DUP, ["/p/a"], "delete", 400),
        ({**DUP, "status": "resolved"}, ["/p/a"], "trash", 409),
    ],
)
def test_plan_refusals(dup, keep, action, status):
    with pytest.raises(PlanError) as err:
        plan(dup, keep, action, {})
    assert err.value.status == status


def test_hop_by_hop_headers_are_the_rfcs_and_proxies_own():
    # RFC 9110 7.6.1 and the headers every proxy treats as hop-by-hop, written out here:
    # the tests below build their expectations from HOP_BY_HOP.
    assert HOP_BY_HOP == {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection",
    }  # fmt: skip


def test_an_answers_headers_named_in_connection_stay_with_the_hop():
    headers = [
        ("Connection", "keep-alive, X-Immich-Hop"),
        ("X-Immich-Hop", "1"),
        ("Keep-Alive", "timeout=5"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Type", "application/json"),
        ("Date", "today"),
    ]
    assert response_headers(headers, drop=("date",)) == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Type", "application/json"),
    ]


def test_redaction_of_query_and_header_credentials():
    line = (
        'GET /api/users/me?apiKey=SECRET1&size=2&sessionKey=SECRET2 "Bearer SECRET3" '
        "immich_access_token=SECRET4; GET /api/shared-links/me?key=SECRET5&slug=SECRET6"
    )
    clean = redact(line)
    for s in ("SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5", "SECRET6"):
        assert s not in clean
    assert "size=2" in clean


ENVIRON_CASES = [
    {},
    {"HTTP_HOST": "gw", "HTTP_X_API_KEY": "k", "HTTP_USER_AGENT": "ua"},
    {"HTTP_CONNECTION": "close, X-Secret-Hop", "HTTP_X_SECRET_HOP": "1", "HTTP_KEEP_ALIVE": "5"},
    {"HTTP_CONNECTION": " , ", "HTTP_TE": "trailers", "HTTP_UPGRADE": "h2c", "HTTP_X_B": ""},
    {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "3", "HTTP_TRANSFER_ENCODING": "x"},
    {
        "CONTENT_TYPE": "",
        "CONTENT_LENGTH": "",
        "HTTP_CONTENT_TYPE": "t",
        "HTTP_CONTENT_LENGTH": "9",
    },
    {"HTTP_IF_NONE_MATCH": "W/1", "HTTP_IF_MODIFIED_SINCE": "d", "HTTP_COOKIE": "a=1; b=2"},
    {"HTTP_X_FORWARDED_FOR": "1.2.3.4", "HTTP_ACCEPT_ENCODING": "gzip", "HTTP_X_IMMICH_X": "y"},
]


def werkzeug_view(environ: dict, drop: tuple[str, ...]) -> dict[str, str]:
    """The rule in its first, plain form: werkzeug's view of the request headers without
    hop-by-hop ones, those Connection names, Host, Content-Length and ``drop``."""
    from werkzeug.datastructures import EnvironHeaders

    items = list(EnvironHeaders(environ).items())
    skip = HOP_BY_HOP | connection_tokens(items) | {"host", "content-length"}
    skip |= {d.lower() for d in drop}
    return {k: v for k, v in items if k.lower() not in skip}


@pytest.mark.parametrize("extra", ENVIRON_CASES)
@pytest.mark.parametrize("drop", [(), ("if-none-match", "If-Modified-Since")])
def test_environ_headers_are_request_headers_of_werkzeugs_view(extra, drop):
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/x",
        "SERVER_NAME": "gw",
        "wsgi.url_scheme": "http",
        **extra,
    }
    expected = werkzeug_view(environ, drop)
    got = environ_headers(environ, drop)
    assert got == expected
    assert list(got) == list(expected)  # the order Immich sees them in
    assert environ_headers(environ, drop) == expected  # memoised names: same answer


HEADER_CASES = [
    ("X-A", "v"),
    ("X-A", ""),
    ("X A", "v w"),
    ("X-A", " v"),
    ("X-A", "\tv"),
    ("X-A", "v\r\nX-Injected: 1"),
    ("X-A", "v\nw"),
    ("X-A", "v\rw"),
    ("X-A\r\nX-B", "v"),
    ("X:A", "v"),
    (" X-A", "v"),
    ("", "v"),
    ("X-A", "caf\u00e9"),
    ("X-A", "v\u2028w"),
]


@pytest.mark.parametrize(("name", "value"), HEADER_CASES)
def test_pool_refuses_the_headers_requests_refused(name, value):
    from gateway.upstream import _VALID_NAME, _VALID_VALUE, Pool, UpstreamError

    valid = bool(_VALID_NAME.fullmatch(name) and _VALID_VALUE.fullmatch(value))
    pool = Pool("http://127.0.0.1:9")  # nothing listens: a valid head fails to connect
    headers = {"X-Api-Key": "k", name: value, "X-Z": "z"}
    with pytest.raises(UpstreamError) as exc:
        pool.request("GET", "/api/x", headers, connect_timeout=0.5)
    assert ("invalid header" in str(exc.value)) == (not valid), str(exc.value)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("Content-Type", "application/json"), ("Date", "d"), ("Server", "s")],
        [("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "t=5"), ("A", "b")],
        [("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("Location", "/x"), ("Upgrade", "h2c")],
        [("CONNECTION", "Close"), ("Content-Location", "/y"), ("Transfer-Encoding", "chunked")],
    ],
)
def test_relay_headers_are_response_headers_in_one_pass(headers):
    from gateway.upstream import relay_headers

    drop = ("date", "server")
    flag = frozenset({"location", "content-location"})
    expected = response_headers(headers, drop=drop)
    got, flagged = relay_headers(headers, HOP_BY_HOP | frozenset(drop), flag)
    assert got == expected
    assert flagged == any(k.lower() in flag for k, _ in expected)
