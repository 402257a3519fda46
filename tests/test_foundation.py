"""The project's layout and the two README commands stay true."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.env import REPO


def test_packages_import() -> None:
    for pkg in ("harness", "nodes", "nodes.raft", "workloads", "checkers", "reports", "configs", "faultfs"):
        __import__(pkg)


def test_cli_help_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for cmd in ("run", "analyze", "check", "serve"):
        assert re.search(rf"^\s+{cmd}\s", out, re.M), out


def test_cli_unknown_command_is_one_line_error() -> None:
    p = subprocess.run([sys.executable, "-m", "harness", "frobnicate"], capture_output=True, text=True)
    assert p.returncode == 3
    assert "unknown command 'frobnicate'" in p.stderr.splitlines()[0]


def test_readme_commands_exist() -> None:
    readme = (REPO / "README.md").read_text()
    cmds = re.findall(r"^\s*(bash scripts/\S+\.sh)\s*$", readme, re.M)
    assert cmds == ["bash scripts/main-job.sh", "bash scripts/test.sh"], cmds
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
