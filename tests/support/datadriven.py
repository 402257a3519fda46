"""A small runner for data-driven test files, in the format of cockroachdb/datadriven (which
etcd's raft transcripts use).

A file is a sequence of cases. Each case is a command line, optional input lines, a `----`
separator and the expected output, which ends at a blank line:

    # comments and blank lines between cases are kept as they are
    campaign 1
    ----
    ok

An expected output that itself contains blank lines is framed by doubled separators:

    stabilize
    ----
    ----
    first part

    second part
    ----
    ----

Arguments are `word`, `key=value` or `key=(v1, v2, ...)`. `run_file` hands each case to a
handler and compares its output with the expectation; the first mismatch fails the test
with the file and line and a diff (later cases build on the state the failed one left). With
FAULTLINE_REWRITE=1 in the environment the file is rewritten with the actual outputs instead.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SEP = "----"
REWRITE_ENV = "FAULTLINE_REWRITE"


class DataDrivenError(Exception):
    """A malformed file or command; the message names the file and line."""


@dataclass(frozen=True)
class Arg:
    key: str
    vals: tuple[str, ...] = ()


@dataclass
class Case:
    path: Path
    line: int  # 1-based line of the command
    cmd: str
    args: list[Arg]
    input: str
    expected: str
    # Lines [out_start, out_end) of the file are the separator(s) and the expected output.
    out_start: int = 0
    out_end: int = 0

    @property
    def pos(self) -> str:
        return f"{self.path}:{self.line}"

    def fail(self, why: str) -> DataDrivenError:
        return DataDrivenError(f"{self.pos}: {self.cmd}: {why}")

    def positional(self) -> list[str]:
        """Bare words after the command (e.g. node ids)."""
        return [a.key for a in self.args if not a.vals]

    def get(self, key: str, default: str | None = None) -> str | None:
        for a in self.args:
            if a.key == key and a.vals:
                if len(a.vals) != 1:
                    raise self.fail(f"{key}= takes one value, got {len(a.vals)}")
                return a.vals[0]
        return default

    def get_list(self, key: str) -> list[str] | None:
        for a in self.args:
            if a.key == key and a.vals:
                return list(a.vals)
        return None

    def get_int(self, key: str, default: int) -> int:
        v = self.get(key)
        if v is None:
            return default
        try:
            return int(v)
        except ValueError:
            raise self.fail(f"{key}= wants an integer, got {v!r}") from None

    def get_bool(self, key: str, default: bool = False) -> bool:
        v = self.get(key)
        if v is None:
            return default
        if v not in ("true", "false"):
            raise self.fail(f"{key}= wants true or false, got {v!r}")
        return v == "true"


def parse_args(text: str, where: str) -> tuple[str, list[Arg]]:
    """Split a command line into the command and its arguments (parentheses group values)."""
    words: list[str] = []
    cur = ""
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise DataDrivenError(f"{where}: unbalanced ')' in {text!r}")
        if ch.isspace() and depth == 0:
            if cur:
                words.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise DataDrivenError(f"{where}: unbalanced '(' in {text!r}")
    if cur:
        words.append(cur)
    if not words:
        raise DataDrivenError(f"{where}: empty command")
    args: list[Arg] = []
    for w in words[1:]:
        if "=" not in w:
            args.append(Arg(w))
            continue
        key, val = w.split("=", 1)
        if val.startswith("(") and val.endswith(")"):
            vals = tuple(v.strip() for v in val[1:-1].split(",") if v.strip())
        else:
            vals = (val,)
        if not key or not vals:
            raise DataDrivenError(f"{where}: bad argument {w!r}")
        args.append(Arg(key, vals))
    return words[0], args


def parse(path: Path) -> tuple[list[str], list[Case]]:
    """The file's lines and its cases."""
    lines = path.read_text().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    cases: list[Case] = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        where = f"{path}:{i + 1}"
        cmd, args = parse_args(line, where)
        cmd_line = i
        i += 1
        inp: list[str] = []
        while i < n and lines[i] != SEP:
            if not lines[i].strip():
                raise DataDrivenError(f"{where}: {cmd}: no '{SEP}' before the blank line")
            inp.append(lines[i])
            i += 1
        if i >= n:
            raise DataDrivenError(f"{where}: {cmd}: no '{SEP}' separator")
        out_start = i
        i += 1
        out: list[str] = []
        if i < n and lines[i] == SEP:  # doubled separators: ends at a doubled separator
            i += 1
            while not (i + 1 < n and lines[i] == SEP and lines[i + 1] == SEP):
                if i >= n:
                    raise DataDrivenError(f"{where}: {cmd}: unterminated '{SEP}' block")
                out.append(lines[i])
                i += 1
            i += 2
        else:
            while i < n and lines[i].strip():
                out.append(lines[i])
                i += 1
        cases.append(Case(path, cmd_line + 1, cmd, args, "\n".join(inp), "\n".join(out),
                          out_start, i))
    return lines, cases


def _normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n"))


def _block(actual: str) -> list[str]:
    body = actual.split("\n")
    if any(not line.strip() for line in body):
        return [SEP, SEP, *body, SEP, SEP]
    return [SEP, *body]


def rewrite_requested() -> bool:
    return os.environ.get(REWRITE_ENV, "") not in ("", "0")


def run_file(path: Path, handle: Callable[[Case], str], rewrite: bool | None = None) -> None:
    """Run every case of `path` through `handle`; fail on the first unexpected output, or
    (rewrite) write the actual outputs back into the file."""
    if rewrite is None:
        rewrite = rewrite_requested()
    lines, cases = parse(path)
    new_lines: list[str] = []
    pos = 0
    for case in cases:
        actual = _normalize(handle(case)) or "ok"
        if rewrite:
            new_lines += lines[pos:case.out_start]
            new_lines += _block(actual)
            pos = case.out_end
            continue
        expected = _normalize(case.expected)
        if actual != expected:
            diff = "\n".join(difflib.unified_diff(
                expected.split("\n"), actual.split("\n"), "expected", "actual", lineterm=""))
            raise AssertionError(
                f"{case.pos}: output of '{lines[case.line - 1]}' differs "
                f"(set {REWRITE_ENV}=1 to rewrite the file):\n{diff}"
            )
    if rewrite:
        new_lines += lines[pos:]
        path.write_text("\n".join(new_lines) + "\n")
