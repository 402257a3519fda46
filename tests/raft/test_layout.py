"""The core's module layout: its imports form no cycle (counting imports made only for type
checking), the role modules build on the state and never on the dispatcher, and no module
outgrows one job."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.env import REPO

CORE = REPO / "nodes" / "raft"
ROLES = ("follower", "candidate", "leader")


def _imports(path: Path) -> set[str]:
    """Sibling modules of nodes.raft that `path` imports, at run time or for typing."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import x, y
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
            "nodes.raft."
        ):
            found.add(node.module.split(".")[2])
    return found


def import_graph() -> dict[str, set[str]]:
    mods = {p.stem: p for p in CORE.glob("*.py")}
    return {m: _imports(p) & set(mods) for m, p in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (cyc := visit(n)):
                return cyc
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cyc := visit(m)):
            return cyc
    return None


def test_no_import_cycle() -> None:
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()) or [])


def test_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_roles_build_on_the_state_not_on_the_dispatcher() -> None:
    g = import_graph()
    for role in ROLES:
        assert "state" in g[role], role
        assert "raft" not in g[role], f"{role} imports raft.py: the dispatch would be circular"
    assert set(ROLES) <= g["raft"]
    assert not set(ROLES) & g["state"]


def test_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in CORE.glob("*.py")}
    assert max(sizes.values()) <= 600, sizes
