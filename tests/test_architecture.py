"""Every import of every module keeps to the layout table of docs/architecture.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.env import REPO

FIRST_PARTY = ("harness", "nodes", "checkers", "workloads", "reports", "configs", "faultfs", "tests")
#: Test folders that drive the whole system end to end (may import anything).
WHOLE_SYSTEM_TESTS = ("harness", "remote", "soak", "zoo", "support")


def layout_rules() -> dict[str, tuple[str, ...]]:
    """package folder (e.g. `nodes/raft/`) -> module prefixes it may import, from the table."""
    text = (REPO / "docs" / "architecture.md").read_text()
    table = text.split("## Layout", 1)[1].split("\n\n", 2)[1]
    rules = {}
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        folder = cells[0].strip("`")
        rules[folder] = tuple(re.findall(r"`([\w.]+)`", cells[2]))
    return rules


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.lineno, node.module)]
            # `from harness import db` imports harness.db
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(n, m) for n, m in out if m.split(".")[0] in FIRST_PARTY]


def allowed(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def owner(path: Path, rules: dict[str, tuple[str, ...]]) -> str | None:
    rel = path.relative_to(REPO).as_posix()
    best = [f for f in rules if rel.startswith(f)]
    return max(best, key=len) if best else None


def test_the_table_is_read() -> None:
    rules = layout_rules()
    assert rules["nodes/raft/"] == ("nodes.raft",)
    assert "checkers" in rules["workloads/"] and "nodes.client" in rules["harness/"]


def test_packages_import_only_what_the_table_allows() -> None:
    rules = layout_rules()
    broken = []
    for folder in rules:
        for path in sorted((REPO / folder).rglob("*.py")):
            if ".venv" in path.parts:
                continue
            rule = rules[owner(path, rules) or folder]
            for line, module in imports(path):
                if not allowed(module, rule) and not allowed(module.rsplit(".", 1)[0], rule):
                    broken.append(f"{path.relative_to(REPO)}:{line}: imports {module}")
    assert broken == []


def test_tests_import_only_their_package_and_support() -> None:
    rules = layout_rules()
    broken = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        parts = path.relative_to(REPO / "tests").parts
        if len(parts) < 2 or parts[0] in WHOLE_SYSTEM_TESTS or parts[0] == "corpora":
            continue
        pkg = {"raft": "nodes/raft/", "safety": "checkers/", "reports": "reports/"}.get(parts[0], f"{parts[0]}/")
        if pkg not in rules:
            continue
        rule = (*rules[pkg], pkg.rstrip("/").replace("/", "."), "tests.support")
        for line, module in imports(path):
            if not allowed(module, rule) and not allowed(module.rsplit(".", 1)[0], rule):
                broken.append(f"{path.relative_to(REPO)}:{line}: imports {module}")
    assert broken == []
