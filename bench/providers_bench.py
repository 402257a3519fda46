"""Benchmark: what the netns and ssh providers cost (needs root, iptables, sshd, etcd).

1. netns: setup and teardown of N namespaces on a bridge; one command inside a namespace;
   one partition (isolate a node both ways) and its heal.
2. ssh: connect, one command, and a 64 KiB SFTP upload, against an OpenSSH server running in
   a namespace (the same lab as tests/remote/test_ssh.py).
3. etcd on netns: from `EtcdDB.setup` to a leader known through etcdctl.

    .venv/bin/python bench/providers_bench.py [--nodes 3] [--repeat 5]

Prints a Markdown table for docs/benchmarks.md. Everything created is removed at exit.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.providers.netns import NetnsProvider  # noqa: E402


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(name: str, ms: list[float]) -> str:
    return f"| {name} | {statistics.median(ms):.1f} | {max(ms):.1f} | {len(ms)} |"


def bench_netns(nodes: list[str], repeat: int, tmp: Path) -> list[str]:
    rows = []
    setups, teardowns = [], []
    for i in range(repeat):
        p = NetnsProvider(tmp / f"s{i}")
        t = time.perf_counter()
        p.setup(nodes)
        setups.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        p.teardown()
        teardowns.append((time.perf_counter() - t) * 1000)
    rows.append(row(f"netns setup, {len(nodes)} nodes", setups))
    rows.append(row(f"netns teardown, {len(nodes)} nodes", teardowns))
    p = NetnsProvider(tmp / "run")
    try:
        remotes = p.setup(nodes)
        rows.append(row("netns: `true` in a namespace", timed(lambda: remotes[nodes[0]].run(["true"]), repeat * 4)))
        lone, rest = nodes[0], set(nodes[1:])
        grudge = {lone: rest, **{n: {lone} for n in rest}}
        cuts, heals = [], []
        for _ in range(repeat):
            cuts += timed(lambda: p.partition(grudge), 1)
            heals += timed(p.heal, 1)
        rows.append(row(f"netns: partition (isolate 1 of {len(nodes)} both ways)", cuts))
        rows.append(row("netns: heal", heals))
    finally:
        p.teardown()
    return rows


def bench_ssh(repeat: int, tmp: Path) -> list[str]:
    from harness.remotes.ssh import SSHHost, SSHRemote

    p = NetnsProvider(tmp / "ssh")
    try:
        remotes = p.setup(["n1"])
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for name in ("client", "host"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)], check=True)
        (tmp / "authorized_keys").write_text((tmp / "client.pub").read_text())
        ip = p.ip("n1")
        cfg = tmp / "sshd.conf"
        cfg.write_text(
            f"ListenAddress {ip}:22\nHostKey {tmp / 'host'}\nAuthorizedKeysFile {tmp / 'authorized_keys'}\n"
            "PasswordAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n"
            "Subsystem sftp internal-sftp\n"
        )
        remotes["n1"].start_daemon(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)],
                                   pidfile=str(tmp / "sshd.pid"), logfile=str(tmp / "sshd.log"))
        host_pub = " ".join((tmp / "host.pub").read_text().split()[:2])
        (tmp / "known_hosts").write_text(f"{ip} {host_pub}\n")
        time.sleep(0.5)
        host = SSHHost(node="n1", hostname=ip, key_file=str(tmp / "client"), known_hosts=str(tmp / "known_hosts"))
        conns = []

        def connect() -> None:
            r = SSHRemote(host)
            r.connect()
            conns.append(r)

        rows = [row("ssh: connect (ed25519, known_hosts checked)", timed(connect, repeat))]
        r = conns[0]
        rows.append(row("ssh: `true` over an open connection", timed(lambda: r.run(["true"]), repeat * 4)))
        blob = tmp / "blob"
        blob.write_bytes(b"x" * 65536)
        rows.append(row("ssh: SFTP upload 64 KiB", timed(lambda: r.upload(blob, str(tmp / "up" / "blob")), repeat)))
        for c in conns:
            c.close()
        return rows
    finally:
        p.teardown()


def bench_etcd(nodes: list[str], repeat: int, tmp: Path) -> list[str]:
    from harness.db.etcd import EtcdDB

    ms = []
    for i in range(repeat):
        p = NetnsProvider(tmp / f"etcd{i}")
        test = {"name": "bench", "seed": i, "nemesis": {"faults": []}}
        db = EtcdDB(test)
        try:
            remotes = p.setup(nodes)
            t = time.perf_counter()
            db.setup(p, remotes, test)
            db.wait_for_leader(30)
            ms.append((time.perf_counter() - t) * 1000)
        finally:
            db.teardown()
            p.teardown()
    return [row(f"etcd on netns: bootstrap to known leader, {len(nodes)} members", ms)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    nodes = [f"n{i}" for i in range(1, args.nodes + 1)]
    with tempfile.TemporaryDirectory(prefix="fl-bench-") as d:
        tmp = Path(d)
        rows = bench_netns(nodes, args.repeat, tmp)
        rows += bench_ssh(args.repeat, tmp)
        rows += bench_etcd(nodes, max(1, args.repeat // 2), tmp)
    print("| measure | median ms | max ms | samples |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
