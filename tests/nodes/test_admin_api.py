"""The admin HTTP API: every bad request is an error reply, never the node's death."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from tests.support.raftkv_cluster import Cluster


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("admin"), size=1, spare=0)
    try:
        c.start("n1")
        c.wait_leader(["n1"])
        yield c
    finally:
        c.close()


def _post(c: Cluster, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", c.members["n1"].admin, timeout=5)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _alive(c: Cluster) -> None:
    p = c.members["n1"].proc
    assert p is not None and p.poll() is None
    st = c.status("n1")
    assert st is not None and st["role"] == "leader"


@pytest.mark.parametrize("path", ["/members", "/quiesce", "/transfer-leader"])
def test_deeply_nested_body_is_400(single: Cluster, path: str) -> None:
    status, body = _post(single, path, b"[" * 30_000 + b"]" * 30_000)  # within the 64 KiB limit
    assert status == 400 and "JSON" in str(body["error"])
    _alive(single)


@pytest.mark.parametrize(
    ("length", "status"),
    [("abc", 400), ("-1", 400), ("1e3", 400), ("99999999999", 413), (str(1 << 20), 413)],
)
def test_bad_content_length_is_a_clear_error(single: Cluster, length: str, status: int) -> None:
    # int() of it raised into a 500, a negative one read until the client gave up, a huge one
    # was read in full
    got, body = _post(single, "/quiesce", b'{"on": false}', {"Content-Length": length})
    assert got == status and "error" in body
    _alive(single)
