"""Fuzz the history readers through `faultline check` and a run's linearizability checker:
generated garbage and mutated valid histories (jsonl, Jepsen EDN, etcd logs, porcupine kv)
give an exit code in {0, 1, 2, 3}; 3 is one line naming the file; never a traceback; a verdict
only for a history with operations; the file is left as it was."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.cli import main
from checkers.linear.checker import LinearizabilityChecker
from checkers.result import UNKNOWN
from checkers.rundata import StoredRun
from tests.support.env import CORPORA

#: (file name, extra arguments) for each format, and a file name that makes it guess.
FORMATS: dict[str, tuple[str, list[str]]] = {
    "jsonl": ("history.jsonl", []),
    "edn": ("history.edn", []),
    "etcd": ("etcd.log", []),
    "porcupine": ("kv.txt", ["--format", "porcupine-kv"]),
    "guess": ("history", []),
}


def _head(rel: str, lines: int) -> str:
    return "".join((CORPORA / rel).read_text(encoding="utf-8").splitlines(keepends=True)[:lines])


_JSONL = "".join(json.dumps(r) + "\n" for r in [
    {"time": 1, "process": 0, "type": "invoke", "f": "write", "key": "a", "value": 1},
    {"time": 2, "process": 1, "type": "invoke", "f": "cas", "key": "a", "value": [1, 2]},
    {"time": 3, "process": "nemesis", "type": "info", "f": "start-partition", "value": {"groups": [["n1"]]}},
    {"time": 4, "process": 0, "type": "ok", "f": "write", "key": "a", "value": 1},
    {"time": 5, "process": 1, "type": "info", "f": "cas", "key": "a", "value": [1, 2], "error": "timeout"},
    {"time": 6, "process": 2, "type": "invoke", "f": "read", "key": "a", "value": None},
    {"time": 7, "process": 2, "type": "ok", "f": "read", "key": "a", "value": 2},
])
SEEDS: dict[str, str] = {
    "jsonl": _JSONL,
    "edn": _head("knossos/cas-register/good/memstress3-0.edn", 12) + "]\n",
    "etcd": _head("porcupine/jepsen/etcd_002.log", 12),
    "porcupine": _head("porcupine/kv/c01-ok.txt", 10),
}


def _mutations(text: str) -> st.SearchStrategy[bytes]:
    """The text with a few byte ranges overwritten, cut out or duplicated."""
    data = text.encode()

    def apply(edits: list[tuple[int, int, bytes]]) -> bytes:
        out = bytearray(data)
        for at, width, chunk in edits:
            at = min(at, len(out))
            out[at:at + width] = chunk
        return bytes(out)

    edit = st.tuples(
        st.integers(0, len(data)), st.integers(0, 8),
        st.binary(max_size=4) | st.sampled_from(
            [b"", b"\n", b"\r\n", b"[", b"]", b"{", b"}", b'"', b"\\", b"NaN", b"1e400", b"9" * 30, b"\xe9",
             b"\xef\xbb\xbf", b":invoke", b'"invoke"', b"nil", b"-", b"\t", b"#", b";", b"(", b"[1 4"]),
    )
    return st.lists(edit, max_size=4).map(apply)


def _reordered(text: str) -> st.SearchStrategy[bytes]:
    """The text with whole lines dropped, repeated or swapped and digits changed: still
    parseable mostly, so the pairing and the verdicts get exercised too."""
    lines = text.splitlines(keepends=True)

    def apply(edits: list[tuple[str, int, int]]) -> bytes:
        out = list(lines)
        for kind, i, j in edits:
            i, j = i % len(out), j % len(out)
            if kind == "drop" and len(out) > 1:
                del out[i]
            elif kind == "repeat":
                out.insert(j, out[i])
            elif kind == "swap":
                out[i], out[j] = out[j], out[i]
            else:  # a digit of line i becomes j % 10
                digits = [k for k, c in enumerate(out[i]) if c.isdigit()]
                if digits:
                    k = digits[j % len(digits)]
                    out[i] = out[i][:k] + str(j % 10) + out[i][k + 1:]
        return "".join(out).encode()

    edit = st.tuples(st.sampled_from(["drop", "repeat", "swap", "digit"]), st.integers(0, 99), st.integers(0, 99))
    return st.lists(edit, min_size=1, max_size=4).map(apply)


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70), st.text(max_size=6),
    st.sampled_from(["invoke", "ok", "fail", "info", "read", "write", "cas", "nemesis", "k1"]),
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=10)
_record = st.fixed_dictionaries(
    {},
    optional={
        "time": _scalars, "process": st.integers(0, 3) | _scalars, "type": st.sampled_from(["invoke", "ok", "fail", "info"])
        | _scalars, "f": st.sampled_from(["read", "write", "cas", "delete"]) | _scalars, "key": _values,
        "value": _values,
    },
)
_records = st.lists(_record, max_size=8).map(lambda rs: "".join(json.dumps(r) + "\n" for r in rs).encode())

_garbage = st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode), _records)
#: (format, file content): garbage in any format; a history mutated a little in its own
#: format (or left to the guess), so that many cases still get a verdict.
_cases = st.one_of(
    st.tuples(st.sampled_from(sorted(FORMATS)), _garbage),
    st.tuples(st.just("jsonl"), _records),
    *(st.tuples(st.sampled_from([fmt, "guess"]), _mutations(text) | _reordered(text)) for fmt, text in SEEDS.items()),
)


def _check(path: Path, args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(["check", str(path), "--timeout", "1", *args])
    finally:
        sys.stdout, sys.stderr = real
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(case=_cases, as_json=st.booleans())
def test_fuzz_faultline_check(tmp_path_factory: pytest.TempPathFactory, case: tuple[str, bytes], as_json: bool) -> None:
    fmt, data = case
    tmp = tmp_path_factory.mktemp("fuzzcheck")
    name, args = FORMATS[fmt]
    path = tmp / name
    path.write_bytes(data)
    code, out, err = _check(path, [*args, *(["--json"] if as_json else [])])
    assert code in (0, 1, 2, 3), (code, out, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 3:
        lines = err.strip().splitlines()
        assert out == "" and len(lines) == 1 and lines[0].startswith(f"faultline check: {path}"), err
    else:  # a verdict: the history had a client invocation
        assert b"invoke" in data, (out, err)
        if as_json:
            doc = json.loads(out)
            assert doc["valid"] == {0: True, 1: False, 2: "unknown"}[code], doc
        else:
            assert out.startswith(f"{path}: "), out
    assert path.read_bytes() == data and [p.name for p in tmp.iterdir()] == [name]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.one_of(_records, _mutations(SEEDS["jsonl"]), _reordered(SEEDS["jsonl"]), _garbage))
def test_fuzz_the_linearizability_checker_of_a_run(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    """A run's analysis: a verdict only with operations, else "unknown" saying why; no crash."""
    run_dir = tmp_path_factory.mktemp("fuzzrun")
    (run_dir / "history.jsonl").write_bytes(data)
    result = LinearizabilityChecker("kv", timeout=1).check(StoredRun(run_dir, {}))
    details: dict[str, Any] = result.details
    if result.valid is UNKNOWN:
        assert details.get("error") or any(p.get("reason") for p in details.get("partitions", [])), details
        if "error" in details:
            assert "\n" not in details["error"] and "history.jsonl" in details["error"], details
    else:
        assert result.valid in (True, False) and b"invoke" in data
        assert sum(p["ops"] for p in details["partitions"]) >= 0
    assert (run_dir / "history.jsonl").read_bytes() == data
