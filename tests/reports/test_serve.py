"""`faultline serve`: read-only HTTP over loopback, nothing outside the store."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reports import render_run
from reports.serve import Refused, resolve_in_store
from tests.support.runfactory import build_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    store = root / "store"
    run = build_run(store, n_ops=60, seed=11, stamp="20261126T090000")
    render_run(run.run_dir)
    (store / "latest").symlink_to(run.run_dir.relative_to(store))
    secret = root / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    (store / "escape").symlink_to(secret)
    (store / "escape-dir").symlink_to(root)
    return store


@pytest.fixture(scope="module")
def server(store: Path) -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "serve", "--store", str(store), "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "serving STORE at http://HOST:PORT/"; blocks until up
        assert line.startswith("serving "), (line, proc.stderr.read() if proc.stderr and proc.poll() is not None else "")
        hostport = line.rsplit("http://", 1)[1].strip().rstrip("/")
        host, port = hostport.rsplit(":", 1)
        yield host, int(port)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _get(server: tuple[str, int], path: str, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection(*server, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)  # path sent as-is, no normalising
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def test_binds_loopback_and_serves_the_index_and_reports(server: tuple[str, int]) -> None:
    assert server[0] == "127.0.0.1"
    status, body, headers = _get(server, "/")
    assert status == 200 and b"faultline runs" in body and headers["content-type"].startswith("text/html")
    status, body, _ = _get(server, "/raftkv-register/20261126T090000-11/history.jsonl")
    assert status == 200 and body.startswith(b"{")
    status, body, _ = _get(server, "/latest/")  # a run folder opens on its report
    assert status == 200 and b'id="banner"' in body
    status, body, headers = _get(server, "/latest/results.json", "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/../secret.txt", 403),
        ("/%2e%2e/secret.txt", 403),
        ("/raftkv-register/..%2f..%2fsecret.txt", 403),
        ("/escape", 403),  # a symlink leading out of the store
        ("/escape-dir/secret.txt", 403),
        ("/nope.html", 404),
        ("/latest", 301),  # inside the store: allowed, redirected to the folder
    ],
)
def test_refuses_paths_outside_the_store(server: tuple[str, int], path: str, expected: int) -> None:
    status, body, _ = _get(server, path)
    assert status == expected, (path, status)
    assert b"TOP-SECRET" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_is_read_only(server: tuple[str, int], method: str) -> None:
    status, _, headers = _get(server, "/index.html", method)
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_resolve_in_store_table(store: Path) -> None:
    real = store.resolve()
    assert resolve_in_store(real, "/latest/test.yaml").name == "test.yaml"
    for bad, status in (("/../x", 403), ("/a%00b", 400), ("/escape", 403), ("/missing", 404)):
        with pytest.raises(Refused) as e:
            resolve_in_store(real, bad)
        assert e.value.status == status, bad


def test_report_subcommand_rerenders_a_run(store: Path) -> None:
    run_dir = store / "raftkv-register" / "20261126T090000-11"
    before = time.time()
    p = subprocess.run([sys.executable, "-m", "harness", "report", str(run_dir), "--index"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert (run_dir / "report.html").stat().st_mtime >= before - 1
    assert p.stdout.splitlines() == [str(run_dir / "report.html"), str(store.resolve() / "index.html")]
    p = subprocess.run([sys.executable, "-m", "harness", "report", str(store / "nope")], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 3 and "no such directory" in p.stderr
