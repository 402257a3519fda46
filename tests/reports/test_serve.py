"""`faultline serve`: read-only HTTP over loopback, nothing outside the store."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reports import render_run
from reports.serve import Refused, make_server, resolve_in_store
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
    # what a store may come to hold: a FIFO, symlink loops, a name that is not UTF-8
    odd = store / "odd"
    odd.mkdir()
    os.mkfifo(odd / "fifo")
    (odd / "loop").symlink_to("loop")
    (odd / "ping").symlink_to("pong")
    (odd / "pong").symlink_to("ping")
    (odd / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name\n")
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


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/odd/fifo", 403),  # answered at once: opening a FIFO does not wait for a writer
        ("/odd/loop", 404),
        ("/odd/loop/x", 404),
        ("/odd/ping", 404),
        ("/" + "a" * 300, 404),  # a component no file system takes
        ("/odd/" + "b" * 300 + "/c", 404),
        ("/" + "c/" * 3000, 404),
        ("/odd/caf%E9.txt", 200),  # a name that is not UTF-8, by its bytes
        ("/odd/", 200),  # the listing of all of the above
    ],
)
def test_odd_store_entries_get_an_answer(server: tuple[str, int], path: str, expected: int) -> None:
    status, body, _ = _get(server, path)
    assert status == expected, (path, status, body[:200])
    status, _, _ = _get(server, "/")  # and the server still answers
    assert status == 200


def test_odd_listing_shows_every_entry(server: tuple[str, int]) -> None:
    _, body, _ = _get(server, "/odd/")
    for name in (b"fifo", b"loop", b"ping", b"pong", b'href="caf%E9.txt"', "caf\ufffd.txt".encode()):
        assert name in body, name


def _threads_since(before: set[threading.Thread]) -> list[str]:
    """Live threads started after `before` was taken (other tests' threads do not count)."""
    return [t.name for t in threading.enumerate() if t not in before and t.is_alive()]


def test_idle_connections_are_closed_and_bounded(store: Path) -> None:
    """Idle clients neither hold threads beyond the idle timeout nor beyond the cap."""
    before = set(threading.enumerate())
    server = make_server(store, port=0, idle_timeout=2.0, max_connections=4)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    loop.start()
    idle: list[socket.socket] = []
    try:
        for _ in range(12):
            idle.append(socket.create_connection((host, port), timeout=5))
        answers = []
        for s in idle:
            s.settimeout(5)
            try:
                answers.append(s.recv(1024))  # a 503 at once, or "" when the idle timeout closes it
            except TimeoutError:
                answers.append(b"<no answer>")
        refused = [a for a in answers if a.startswith(b"HTTP/1.0 503")]
        closed = [a for a in answers if a == b""]
        assert len(refused) == 8 and len(closed) == 4, answers
        deadline = time.monotonic() + 5
        while len(_threads_since(before)) > 1 and time.monotonic() < deadline:  # serve_forever's own
            time.sleep(0.05)
        assert len(_threads_since(before)) <= 1, _threads_since(before)
        status, _, _ = _get((host, port), "/")  # slots were given back
        assert status == 200
    finally:
        for s in idle:
            s.close()
        server.shutdown()
        server.server_close()
        loop.join(timeout=5)


@pytest.mark.parametrize(("args", "message"), [(["--port", "99999"], "--port: expected 0-65535"),
                                               (["--port", "-1"], "--port: expected 0-65535")])
def test_serve_refuses_bad_arguments_in_one_line(store: Path, args: list[str], message: str) -> None:
    p = subprocess.run([sys.executable, "-m", "harness", "serve", "--store", str(store), "--no-index", *args],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
