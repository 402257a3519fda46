"""`faultline check` on bad histories (issue 20, items 7 and 8): every one is a single line on
stderr naming the file (and the line to blame), exit 3; never a traceback, never a verdict."""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path

import pytest

from checkers import cli
from checkers.cli import main
from checkers.history import read_history, read_table
from checkers.linear import OperationError, make_model
from checkers.linear.checker import LinearizabilityChecker
from checkers.linear.inputs import validate
from checkers.result import UNKNOWN
from checkers.rundata import StoredRun

INV = {"time": 1, "process": 0, "type": "invoke", "f": "write", "key": "a", "value": 1}
OK = {"time": 2, "process": 0, "type": "ok", "f": "write", "key": "a", "value": 1}


def jl(*records: dict[str, object] | str) -> str:
    """JSON lines; strings are written as they are (a corrupt line)."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def with_(rec: dict[str, object], **fields: object) -> dict[str, object]:
    return {**rec, **fields}


def raw(rec: dict[str, object], field: str, text: str) -> str:
    """A record whose `field` is the literal JSON text `text` (NaN, 1e400, huge numbers)."""
    return json.dumps({**rec, field: "@@"}).replace('"@@"', text)


DEEP_JSON = "[" * 1500 + "]" * 1500
EDN_OK_WRITE = "{:process 0, :type :invoke, :f :write, :value 1}\n {:process 0, :type :ok, :f :write, :value 1}"
ETCD = "INFO  jepsen.util - 3\t:{type}\t:{f}\t{value}\n"
PKV = '{{:process 0, :type :{type}, :f :{f}, :key {key}, :value {value}}}\n'


def etcd(f: str, value: str) -> str:
    return ETCD.format(type="invoke", f=f, value=value) + ETCD.format(type="ok", f=f, value=value)


def pkv(f: str, key: str, value: str, out: str | None = None) -> str:
    return PKV.format(type="invoke", f=f, key=key, value=value) + PKV.format(
        type="ok", f=f, key=key, value=value if out is None else out)


# (id, file name, content, extra args, line to blame or None, what the message says)
BAD: list[tuple[str, str, str | bytes, list[str], int | None, str]] = [
    # no operations: an error, not a vacuous "linearizable"
    ("garbage one-liner", "g.jsonl", "hello\n", [], 1, "corrupt line: Expecting value"),
    ("garbage without extension", "g", "hello\n", ["--format", "jsonl"], 1, "corrupt line"),
    ("empty jsonl", "h.jsonl", "", [], None, "no client operations"),
    ("blank lines", "h.jsonl", "\n  \n\n", [], None, "no client operations"),
    ("nemesis only", "h.jsonl", jl({"time": 1, "process": "nemesis", "type": "info", "f": "kill"}), [], None,
     "no client operations"),
    ("nemesis then a torn line", "h.jsonl", jl({"time": 1, "process": "nemesis", "type": "info", "f": "kill"},
                                               '{"time": 2, "proc'), [], 2, "corrupt line"),
    ("empty EDN", "h.edn", "", [], None, "no client operations"),
    ("comment-only EDN", "h.edn", "; nothing here\n;; at all\n", [], None, "no client operations"),
    ("empty EDN vector", "h.edn", "[]\n", [], None, "no client operations"),
    ("etcd log without an op line", "h.log", "INFO  jepsen.core - setting up\nWARN other\n", [], None,
     "no client operations"),
    ("porcupine kv, empty", "h.txt", "\n", ["--format", "porcupine-kv"], None, "no client operations"),
    # numbers
    ("integer of 5000 digits", "h.jsonl", jl(raw(INV, "value", "9" * 5000), OK), [], 1,
     "corrupt line: an integer of more than 4300 digits"),
    ("time beyond 64 bits", "h.jsonl", jl(with_(INV, time=10**30), OK), [], 1, "field 'time' out of range"),
    ("NaN time", "h.jsonl", jl(raw(INV, "time", "NaN"), OK), [], 1, "corrupt line: NaN is not a JSON number"),
    ("Infinity time", "h.jsonl", jl(INV, raw(OK, "time", "-Infinity")), [], 2,
     "corrupt line: -Infinity is not a JSON number"),
    ("1e400 time", "h.jsonl", jl(raw(INV, "time", "1e400"), raw(OK, "time", "1e400")), [], 1,
     "corrupt line: number out of range: 1e400"),
    ("1e400 value", "h.jsonl", jl(raw(INV, "value", "-1e400"), OK), [], 1, "number out of range"),
    ("NaN as the last line", "h.jsonl", jl(INV, OK, raw(INV, "value", "NaN")), [], 3, "NaN is not a JSON number"),
    ("boolean time", "h.jsonl", jl(with_(INV, time=True), OK), [], 1, "field 'time' is not a number: true"),
    ("string time", "h.jsonl", jl(INV, with_(OK, time="2")), [], 2, "field 'time' is not a number: \"2\""),
    ("EDN integer of 5000 digits", "h.edn", "[{:process 0, :type :invoke, :f :write, :value " + "9" * 5000 + "}]",
     [], 1, "not valid EDN: an integer of more than 4300 digits"),
    ("EDN 1e400", "h.edn", "[{:process 0, :type :invoke, :f :write, :value 1}\n {:time 1e400}]", [], 2,
     "not valid EDN: number out of range: 1e400"),
    ("etcd integer of 5000 digits", "h.log", etcd("write", "9" * 5000), [], 1, "an integer of more than 4300 digits"),
    # nesting
    ("JSON nested 1500 deep", "h.jsonl", jl(raw(INV, "value", DEEP_JSON), OK), [], 1,
     "corrupt line: nested too deeply"),
    ("JSON nested 200 deep", "h.jsonl", jl(raw(INV, "value", "[" * 200 + "]" * 200), OK), [], 1,
     "value nested deeper than 100 levels"),
    ("JSON nested 1500 deep, last line", "h.jsonl", jl(INV, OK, raw(INV, "value", DEEP_JSON)), [], 3,
     "corrupt line: nested too deeply"),
    ("EDN nested 1500 deep", "h.edn", "[" + "\n" + "[" * 1500 + "]" * 1500 + "]\n", [], 2,
     "not valid EDN: nested deeper than 100 levels"),
    ("EDN key nested 1500 deep", "h.edn", "[{:process 0, :type :invoke, :f :read, :key " + "(" * 1500 + ")" * 1500 + "}]",
     [], 1, "nested deeper than 100 levels"),
    # EDN syntax
    ("EDN bad escape", "h.edn", '[{:process 0, :type :invoke, :f :write, :value "a\\qb"}]\n', [], 1,
     "not valid EDN: bad escape in a string"),
    ("EDN short unicode escape", "h.edn", '[\n{:process 0, :type :invoke, :f :write, :value "\\u12"}]\n', [], 2,
     "not valid EDN: bad escape in a string"),
    ("EDN unclosed", "h.edn", "[{:process 0, :type :invoke, :f :write, :value 1}\n {:process 0\n", [], 2,
     "not valid EDN: unclosed '{'"),
    ("EDN stray closer", "h.edn", "[{:process 0}]\n]\n", [], 2, "not valid EDN: unexpected ']'"),
    ("EDN entry not a map", "h.edn", "[{:process 0, :type :invoke, :f :write, :value 1}\n 42]\n", [], 2,
     "not a map: 42"),
    ("EDN deep entry not a map", "h.edn", "[" + "[" * 90 + "]" * 90 + "]\n", [], 1, "not a map: [[[[[["),
    ("EDN vector process", "h.edn", "[{:process [1 2], :type :invoke, :f :write, :value 1}]\n", [], 1,
     "process must be an integer or a string, got [1, 2]"),
    ("EDN bad tag", "h.edn", "[#foo/bar 1]\n", [], None, "not valid EDN"),
    # records
    ("not an object", "h.jsonl", jl("[1, 2]", INV), [], 1, "expected a JSON object"),
    ("null record", "h.jsonl", jl("null", INV), [], 1, "expected a JSON object, got null"),
    ("unknown type", "h.jsonl", jl(with_(INV, type="begin"), OK), [], 1, "missing or bad process/type/f"),
    ("f not a string", "h.jsonl", jl(with_(INV, f=5), with_(OK, f=5)), [], 1, "missing or bad process/type/f"),
    ("object process", "h.jsonl", jl(with_(INV, process={"a": 1}), with_(OK, process={"a": 1})), [], 1,
     "process must be an integer or a string"),
    ("boolean process", "h.jsonl", jl(with_(INV, process=True), with_(OK, process=True)), [], 1,
     "process must be an integer or a string, got true"),
    ("duplicate invocation", "h.jsonl", jl(INV, INV), [], 2, "process 0 invoked twice"),
    ("completion without invocation", "h.jsonl", jl(OK, INV), [], 1, "ok for process 0 with no open invocation"),
    ("completion of another f", "h.jsonl", jl(INV, with_(OK, f="read")), [], 2, "completion f='read'"),
    ("corrupt middle line", "h.jsonl", jl(INV, "{oops", OK), [], 2, "corrupt line"),
    # what the model cannot take
    ("unknown f for kv", "h.jsonl", jl(with_(INV, f="frob"), with_(OK, f="frob")), [], 1,
     "kv: unsupported operation f='frob'"),
    ("unknown f, later line", "h.jsonl", jl(INV, OK, with_(INV, f="frob", time=3)), [], 3,
     "kv: unsupported operation f='frob'"),
    ("cas with an int value (jsonl)", "h.jsonl", jl(INV, OK, with_(INV, f="cas", value=3, time=3),
                                                    with_(OK, f="cas", value=3, time=4)), [], 3,
     "kv: cas value must be [expected, new], got 3"),
    ("cas with an int value (EDN)", "h.edn",
     "[{:process 0, :type :invoke, :f :cas, :value 3}\n {:process 0, :type :ok, :f :cas, :value 3}]", [], 1,
     "cas-register: cas value must be [expected, new], got 3"),
    ("cas with one value (etcd)", "h.log", etcd("cas", "[1]"), [], 1, "cas value must be [expected, new], got [1]"),
    ("etcd unclosed vector", "h.log", etcd("cas", "[1 4"), [], 1, "bad value '[1 4'"),
    ("etcd unknown f", "h.log", etcd("frob", "1"), [], 1, "cas-register: unsupported operation f='frob'"),
    ("mutex unknown f", "h.edn", "[{:process 0, :type :invoke, :f :write, :value 1}]", ["--model", "mutex"], 1,
     "mutex: unsupported operation f='write'"),
    ("multi-register bad txn", "h.edn", "[{:process 0, :type :invoke, :f :txn, :value [[:read :x]]}]",
     ["--model", "multi-register"], 1, "txn value must be a list of [f key value]"),
    ("set read of a number", "h.edn", "[{:process 0, :type :invoke, :f :read, :value nil}\n"
     " {:process 0, :type :ok, :f :read, :value 3}]", ["--model", "set"], 1, "set: read output must be a collection"),
    # porcupine's kv logs
    ("porcupine torn map", "h.txt", pkv("append", '"0"', '"x"')[:-20] + "\n", ["--format", "porcupine-kv"], 2,
     "not an EDN map"),
    ("porcupine trailing garbage", "h.txt", pkv("append", '"0"', '"x"').replace("}\n", "} extra\n"),
     ["--format", "porcupine-kv"], 1, "not an EDN map"),
    ("porcupine bad escape", "h.txt", pkv("append", '"0"', '"x\\q"'), ["--format", "porcupine-kv"], 1,
     "not an EDN map: bad escape in a string"),
    ("porcupine int value", "h.txt", pkv("append", '"0"', "5"), ["--format", "porcupine-kv"], 1,
     "porcupine-kv: append value must be a string, got 5"),
    ("porcupine int key", "h.txt", pkv("put", "0", '"x"'), ["--format", "porcupine-kv"], 1,
     "porcupine-kv: key must be a string, got 0"),
    ("porcupine get of an int", "h.txt", pkv("get", '"0"', "nil", "7"), ["--format", "porcupine-kv"], 1,
     "porcupine-kv: get output must be a string, got 7"),
    # encodings and files
    ("binary jsonl", "h.jsonl", bytes(range(256)) * 4, [], 1, "corrupt line"),  # bytes 0-9: no JSON
    ("latin-1 jsonl", "h.jsonl", jl(INV).encode() + json.dumps(OK).replace('"a"', '"\u00e9"').encode("latin-1")
     + b"\n" + jl(INV).encode(), [], 2, "not UTF-8 text (byte 0xe9"),
    ("latin-1 EDN", "h.edn", b"[{:process 0, :type :invoke, :f :write, :value 1}\n{:value \"\xe9\"}]\n", [], 2,
     "not UTF-8 text (byte 0xe9"),
    ("latin-1 etcd log", "h.log", b"INFO  jepsen.util - 3\t:invoke\t:write\t\xe9\n", [], 1, "not UTF-8 text"),
    ("binary without extension", "h", b"\x00\x01\x02\xff\xfe" * 10, [], None, "cannot tell the format"),
]


def run_check(path: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", str(path), *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_refused(code: int, out: str, err: str, path: Path, line: int | None, message: str) -> None:
    lines = err.strip().splitlines()
    assert code == 3, (code, out, err)
    assert out == "" and len(lines) == 1, err
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert lines[0].startswith(f"faultline check: {where}"), lines[0]
    assert message in lines[0], lines[0]
    assert "Traceback" not in err and "internal error" not in err


@pytest.mark.parametrize(("name", "content", "args", "line", "message"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_history_is_one_line_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                        content: str | bytes, args: list[str], line: int | None,
                                        message: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    assert_refused(*run_check(path, args, capsys), path, line, message)


def test_files_that_are_not_history_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.jsonl"
    assert_refused(*run_check(missing, [], capsys), missing, None, "cannot read: No such file or directory")
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # a folder means its history.jsonl
    assert_refused(*run_check(run_dir, [], capsys), run_dir / "history.jsonl", None, "cannot read: No such file")
    (run_dir / "history.jsonl").mkdir()
    assert_refused(*run_check(run_dir, [], capsys), run_dir / "history.jsonl", None, "cannot read: a directory")
    dev = Path("/dev/zero")
    for args in ([], ["--format", "jsonl"], ["--format", "edn"], ["--format", "etcd"]):
        assert_refused(*run_check(dev, args, capsys), dev, None, "cannot read: not a regular file")


@pytest.mark.parametrize("name, args", [("fifo.jsonl", []), ("fifo", []), ("fifo", ["--format", "edn"])])
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         name: str, args: list[str]) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(main(["check", str(fifo), *args])), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # it waits in open(): give it a writer, so the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("faultline check waited for a writer of a FIFO")
    err = capsys.readouterr().err
    assert result == [3] and err.strip() == f"faultline check: {fifo}: cannot read: not a regular file", err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "abc"], "argument --timeout: invalid"),
        (["--timeout", "nan"], "--timeout: expected a positive number of seconds, got nan"),
        (["--timeout", "-1"], "--timeout: expected a positive number of seconds, got -1"),
        (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["--model", "nonsense"], "model 'nonsense' unknown"),
        (["--model", "cas-register(initial=0"], "expected NAME or NAME(k=v,...)"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_arguments_exit_3_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                            message: str) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(jl(INV, OK), encoding="utf-8")
    code, out, err = run_check(path, args, capsys)
    assert code == 3 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("faultline check: ") and message in err, err


def test_a_bug_is_one_line_exit_3_never_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash inside the checker must not read as "not linearizable" (a traceback's exit 1)."""
    path = tmp_path / "h.jsonl"
    path.write_text(jl(INV, OK), encoding="utf-8")

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli, "check", crash)
    code, out, err = run_check(path, [], capsys)
    assert (code, out) == (3, "") and err == f"faultline check: {path}: internal error: RuntimeError: boom second line\n"


# -- odd but good: a verdict, as for the plain file -----------------------------------------

GOOD = jl(INV, OK, with_(INV, f="read", value=None, time=3), with_(OK, f="read", value=1, time=4))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("crlf.jsonl", GOOD.replace("\n", "\r\n")),
        ("bom.jsonl", "\ufeff" + GOOD),
        ("bom.edn", "\ufeff[" + EDN_OK_WRITE + "]\n"),
        ("crlf.edn", ("[" + EDN_OK_WRITE + "]\n").replace("\n", "\r\n")),
        ("bom.log", "\ufeff" + etcd("write", "1")),
        ("crlf.log", etcd("write", "1").replace("\n", "\r\n")),
        ("bom.txt", "\ufeff" + pkv("put", '"0"', '"x"')),
    ],
)
def test_crlf_and_bom_are_read_like_plain_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                                content: str) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    args = ["--format", "porcupine-kv"] if name.endswith(".txt") else []
    code, out, err = run_check(path, args, capsys)
    assert (code, err) == (0, ""), err
    assert ": linearizable" in out and "0 ops" not in out


def test_torn_last_line_is_a_warning_with_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text(GOOD + '{"time": 5, "process": 0, "ty', encoding="utf-8")
    code, out, err = run_check(path, [], capsys)
    assert code == 0 and ": linearizable" in out
    assert err.strip() == f"faultline check: warning: {path}:5: ignoring truncated last line (Unterminated string " \
                          "starting at)"


def test_torn_last_line_then_a_bad_operation_is_still_one_line(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The warning about the torn line is not printed when the check is refused."""
    path = tmp_path / "history.jsonl"
    path.write_text(jl(with_(INV, f="cas", value=3), with_(OK, f="cas", value=3)) + '{"ti', encoding="utf-8")
    assert_refused(*run_check(path, [], capsys), path, 1, "cas value must be [expected, new]")


def test_only_failed_operations_are_operations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A history of failed operations has operations: it gets a verdict (nothing to place)."""
    path = tmp_path / "history.jsonl"
    path.write_text(jl(INV, with_(OK, type="fail")), encoding="utf-8")
    code, out, err = run_check(path, [], capsys)
    assert (code, err) == (0, "") and ": linearizable" in out


#: Per model: its functions, and values and keys, some it cannot take.
POOLS: dict[str, tuple[list[str], list[object], list[object]]] = {
    "kv": (["read", "write", "cas", "delete"], [1, [1, 2], None, 3, [1, 2, 3], "x"], ["a", "b"]),
    "cas-register": (["read", "write", "cas"], [[0, 1], 2, [2], None], [None]),
    "porcupine-kv": (["get", "put", "append"], ["x", "y", 5, None, ""], ["a", "b", 3]),
    "set": (["add", "read"], [1, 2, [1, 2], 3], [None]),
    "multi-register": (["txn"], [[["read", "x", 1]], [["write", "y", 2]], [1, 2], [["cas", "x", 1]]], [None]),
}


@pytest.mark.parametrize("model", sorted(POOLS))
@pytest.mark.parametrize("seed", range(6))
def test_columns_and_operations_name_the_same_first_bad_operation(tmp_path: Path, model: str, seed: int) -> None:
    """A long history's table is judged by distinct values and keys, an operation list op by
    op: both name the first operation in file order the model cannot take (or none)."""
    rng = random.Random(seed)
    fs, values, keys = POOLS[model]
    recs = []
    for i in range(30):
        f, key = rng.choice(fs), rng.choice(keys)
        typ = rng.choice(["ok", "ok", "info", "fail"])
        recs.append({"time": 2 * i, "process": 0, "type": "invoke", "f": f, "key": key, "value": rng.choice(values)})
        recs.append({"time": 2 * i + 1, "process": 0, "type": typ, "f": f, "key": key, "value": rng.choice(values)})
    path = tmp_path / "history.jsonl"
    path.write_text(jl(*recs), encoding="utf-8")
    table = read_table(path)
    ops = read_history(path)
    first_bad = None
    for op in ops:  # one at a time: the first the model refuses
        try:
            validate(make_model(model), [op])
        except OperationError:
            first_bad = op.id
            break
    refused: list[tuple[int, str] | None] = []
    for history in (table, ops):
        try:
            validate(make_model(model), history)
            refused.append(None)
        except OperationError as e:
            refused.append((e.op, str(e)))
    assert refused[0] == refused[1]
    assert (refused[0] and refused[0][0]) == first_bad


# -- a run's analysis: the same histories are "unknown" with the reason, never valid ---------


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "history.jsonl: no client operations"),  # no history.jsonl at all
        ("", "history.jsonl: no client operations"),
        (jl({"time": 1, "process": "nemesis", "type": "info", "f": "kill"}), "history.jsonl: no client operations"),
        ("hello\n", "history.jsonl:1: corrupt line"),
        (jl(INV, OK, raw(INV, "time", "NaN")), "history.jsonl:3: corrupt line: NaN is not a JSON number"),
        (jl(INV, OK, with_(INV, f="cas", value=3, time=3)), "history.jsonl:3: kv: cas value must be [expected, new]"),
    ],
    ids=["missing", "empty", "nemesis only", "garbage", "NaN", "cas int"],
)
def test_a_run_without_checkable_operations_is_unknown(tmp_path: Path, content: str | None, error: str) -> None:
    if content is not None:
        (tmp_path / "history.jsonl").write_text(content, encoding="utf-8")
    result = LinearizabilityChecker("kv").check(StoredRun(tmp_path, {}))
    assert result.valid == UNKNOWN and error in result.details["error"], result
    assert "\n" not in result.details["error"]
