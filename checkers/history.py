"""History readers and writers: faultline jsonl, Jepsen EDN, porcupine's etcd and kv logs.

Every reader yields raw records (dicts shaped like faultline's history.jsonl lines, with the
position they had in the file); `pair` turns records into `Operation`s by matching each
invocation with the next completion of the same process, Jepsen's way.
"""

from __future__ import annotations

import bisect
import codecs
import json
import logging
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from checkers import edn
from checkers.history_text import (
    BadLine,
    loads_line,
    open_regular,
    read_bytes,
    read_text,
    warn,
)
from checkers.history_text import HistoryError as HistoryError  # raised by every reader here
from checkers.linear.operation import UNKNOWN, Operation, TooDeep, freeze, show
from checkers.linear.table import OpTable

try:  # orjson is a dependency; without it the record-by-record reader does everything
    import orjson

    from checkers.history_columns import HistoryReadError, Unusual, read_jsonl_table
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "edn", "jepsen-etcd-log", "porcupine-kv")
#: Other spellings of a format (expected.tsv says jepsen-edn).
FORMAT_ALIASES = {"jepsen-edn": "edn", "json": "jsonl", "etcd": "jepsen-etcd-log"}
NEMESIS = "nemesis"
COMPLETIONS = ("ok", "fail", "info")
_TYPES = frozenset(("invoke", *COMPLETIONS))
_MUTATIONS = frozenset({"write", "put", "append", "delete", "acquire", "release", "add"})
#: Times are kept as 64-bit integers.
_TIME_RANGE = 2**63

Record = dict[str, Any]


# ---------------------------------------------------------------- faultline history.jsonl


def read_jsonl(path: str | Path, warnings: list[str] | None = None) -> list[Record]:
    """faultline's history.jsonl. A truncated last line (a killed run) after at least one
    client record is skipped with a warning (to `warnings` if given, else logged); any other
    bad line is an error naming the file and line."""
    path = Path(path)
    # lines end at \n only: JSON allows U+2028 and friends inside strings
    lines = read_bytes(path).split(b"\n")
    last = max((n for n, line in enumerate(lines) if line.strip()), default=-1)
    records: list[Record] = []
    clients = 0
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = loads_line(line)
        except BadLine as e:
            if n == last and e.torn and clients:
                warn(warnings, f"{path}:{n + 1}: ignoring truncated last line ({e.reason})")
                continue
            raise HistoryError(f"{path}:{n + 1}: corrupt line: {e.reason}") from None
        if not isinstance(rec, dict):
            raise HistoryError(f"{path}:{n + 1}: expected a JSON object, got {_json_type(rec)}")
        rec["_line"] = n + 1
        records.append(rec)
        clients += rec.get("process") != NEMESIS
    return records


_JSON_TYPES = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
               list: "an array"}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


# ---------------------------------------------------------------- Jepsen EDN


def read_edn(path: str | Path) -> list[Record]:
    """A Jepsen history in EDN: one vector of op maps, or op maps one after another. Each
    record has `_line`, the line its map starts on, or (text only edn_format reads: tags,
    characters) `_entry`, its number."""
    path = Path(path)
    text = read_text(path)
    starts: edn.Starts = []
    lines = _LineIndex(text)
    try:
        forms = edn.loads_all(text, starts)
    except edn.EDNError as e:
        where = f"{path}:{lines.line(e.offset)}" if e.offset is not None else str(path)
        raise HistoryError(f"{where}: not valid EDN: {e}") from None
    items: list[tuple[Any, int | None]] = []
    known = len(starts) == len(forms)
    for n, form in enumerate(forms):
        if isinstance(form, Sequence) and not isinstance(form, str):
            inner = starts[n][1] if known else []
            items.extend(zip(form, inner if len(inner) == len(form) else [None] * len(form), strict=True))
        else:
            items.append((form, starts[n][0] if known else None))
    records: list[Record] = []
    for n, (rec, start) in enumerate(items):
        place: Record = {"_entry": n + 1} if start is None else {"_line": lines.line(start)}
        if not isinstance(rec, dict):
            raise HistoryError(f"{_where(str(path), place, n)}: not a map: {show(rec)}")
        rec.update(place)
        records.append(rec)
    return records


class _LineIndex:
    """Line numbers of offsets in a text."""

    def __init__(self, text: str) -> None:
        self._newlines = [m.start() for m in re.finditer("\n", text)]

    def line(self, offset: int) -> int:
        return bisect.bisect_left(self._newlines, offset) + 1


# ---------------------------------------------------------------- porcupine's logs

_ETCD_LINE = re.compile(r"^INFO\s+jepsen\.util\s+-\s+(\S+)\t:(\w+)\t:(\S+)\t?(.*)$")
_KV_LINE = re.compile(
    r'^\{:process (\d+), :type :(\w+), :f :(\w+), :key "((?:[^"\\]|\\.)*)", '
    r':value (nil|"(?:[^"\\]|\\.)*")\}\s*$'
)


_INTEGER = re.compile(r"[+-]?\d+")


def _scalar(text: str) -> Any:
    """A value as the etcd logs print it: nil, a keyword, an integer, a flat vector of those,
    else the word itself; ValueError for a vector not closed or a number too long."""
    text = text.strip()
    if text == "nil" or not text:
        return None
    if text.startswith(":"):
        return text[1:]
    if text.startswith("["):
        if not text.endswith("]") or "[" in text[1:-1] or "]" in text[1:-1]:
            raise ValueError(f"bad value {text[:40]!r}")
        return [_scalar(t) for t in text[1:-1].split()]
    if _INTEGER.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # longer than Python converts
            raise ValueError(f"an integer of more than {sys.get_int_max_str_digits()} digits") from None
    return text


def read_etcd_log(path: str | Path) -> list[Record]:
    """porcupine's Jepsen etcd logs: `INFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]`."""
    path = Path(path)
    lines = read_text(path).splitlines()
    records: list[Record] = []
    for n, line in enumerate(lines):
        m = _ETCD_LINE.match(line)
        if m is None:
            continue  # other log lines (setup, nemesis) carry no client operations
        process, type_, f, value = m.groups()
        try:
            rec: Record = {"process": _scalar(process), "type": type_, "f": f, "_line": n + 1,
                           "value": _scalar(value)}
        except ValueError as e:
            raise HistoryError(f"{path}:{n + 1}: {e}") from None
        if type_ in ("info", "fail") and isinstance(rec["value"], str):
            rec["error"], rec["value"] = rec["value"], None
        records.append(rec)
    return records


def read_porcupine_kv(path: str | Path) -> list[Record]:
    """porcupine's kv logs: one EDN map per line (fast path for the usual shape)."""
    path = Path(path)
    lines = read_text(path).splitlines()
    records: list[Record] = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        rec = _kv_fast(line)
        if rec is None:
            try:
                forms = edn.loads_all(line)
            except edn.EDNError as e:
                raise HistoryError(f"{path}:{n + 1}: not an EDN map: {e}") from None
            form = forms[0] if len(forms) == 1 else None
            if not isinstance(form, dict):
                raise HistoryError(f"{path}:{n + 1}: not an EDN map")
            rec = form
        rec["_line"] = n + 1
        records.append(rec)
    return records


def _kv_fast(line: str) -> Record | None:
    """The usual shape of a kv log line, or None (the EDN reader then reads it)."""
    m = _KV_LINE.match(line)
    if m is None:
        return None
    process, type_, f, key, value = m.groups()
    try:
        return {
            "process": int(process), "type": type_, "f": f,
            "key": _STRING.decode(f'"{key}"'),
            "value": None if value == "nil" else _STRING.decode(value),
        }
    except ValueError:  # an escape JSON does not know, a number too long: the EDN reader says
        return None


_STRING = json.JSONDecoder(strict=False)


# ---------------------------------------------------------------- pairing


def pair(
    records: Iterable[Record],
    source: str = "history",
    failed_cas_observed: bool = False,
    use_time: bool = False,
    typed_time: bool = False,
) -> list[Operation]:
    """Match invocations with completions by process; nemesis records are skipped.

    An invocation never completed stays open to the end (`info`). With `failed_cas_observed`
    (porcupine's etcd logs) a failed cas is kept as an observation that the compare did not
    match; a failed read there means "result unknown". With `use_time` the `time` field orders
    events (ties count as concurrent), otherwise the order of the records does. A numeric
    `time` must fit 64 bits; with `typed_time` (faultline's jsonl) a `time` that is there is
    a number, else it is ignored (Jepsen's EDN may have an #inst there).
    """
    open_ops: dict[Any, tuple[Record, int, float, int]] = {}
    slots: list[Operation | None] = []  # in invocation order; filled at completion
    for n, rec in enumerate(records):
        process = rec.get("process")
        if process == NEMESIS:
            continue
        type_ = rec.get("type")
        f = rec.get("f")
        if process is None or not isinstance(type_, str) or type_ not in _TYPES or not f or not isinstance(f, str):
            raise HistoryError(f"{_where(source, rec, n)}: missing or bad process/type/f in {_short(rec)}")
        if type(process) is not int and type(process) is not str:
            raise HistoryError(f"{_where(source, rec, n)}: process must be an integer or a string, got {show(process)}")
        _check_time(rec, n, source, typed_time)
        pos = _position(rec, n, use_time, source)
        if type_ == "invoke":
            if process in open_ops:
                raise HistoryError(
                    f"{_where(source, rec, n)}: process {process!r} invoked twice without completing"
                )
            open_ops[process] = (rec, len(slots), pos, n)
            slots.append(None)
            continue
        started = open_ops.pop(process, None)
        if started is None:
            raise HistoryError(
                f"{_where(source, rec, n)}: {type_} for process {process!r} with no open invocation"
            )
        inv, idx, call_pos, inv_n = started
        if f != inv.get("f"):
            raise HistoryError(
                f"{_where(source, rec, n)}: completion f={f!r} does not match invoke f={inv.get('f')!r}"
            )
        slots[idx] = _operation_at(source, (inv, inv_n), (rec, n), idx, call_pos, failed_cas_observed, pos)
    for inv, idx, call_pos, inv_n in open_ops.values():
        slots[idx] = _operation_at(source, (inv, inv_n), None, idx, call_pos, failed_cas_observed)
    return [o for o in slots if o is not None]


def _where(source: str, rec: Record, n: int) -> str:
    """`FILE:LINE`, or `FILE: entry N` for a record whose line is not known."""
    line = rec.get("_line")
    if line is not None:
        return f"{source}:{line}"
    return f"{source}: entry {rec.get('_entry', n + 1)}"


def _short(rec: Record) -> str:
    return show({k: v for k, v in rec.items() if not (isinstance(k, str) and k.startswith("_"))}, 120)


def _check_time(rec: Record, n: int, source: str, typed: bool) -> None:
    """A numeric `time` is finite and fits 64 bits; with `typed`, one that is there is numeric."""
    t = rec.get("time")
    if t is None or type(t) is int and -_TIME_RANGE <= t < _TIME_RANGE:
        return
    if type(t) is not int and type(t) is not float:
        if typed:
            raise HistoryError(f"{_where(source, rec, n)}: field 'time' is not a number: {show(t)}")
        return
    if not (math.isfinite(t) and -_TIME_RANGE <= t < _TIME_RANGE):
        raise HistoryError(f"{_where(source, rec, n)}: field 'time' out of range: {show(t)}")


def _position(rec: Record, n: int, use_time: bool, source: str) -> float:
    if not use_time:
        return float(n)
    t = rec.get("time")
    if not isinstance(t, (int, float)):
        raise HistoryError(f"{_where(source, rec, n)}: field 'time' missing or not a number")
    return float(t)


def _operation_at(
    source: str, inv: tuple[Record, int], done: tuple[Record, int] | None, idx: int, call_pos: float,
    failed_cas_observed: bool, return_pos: float | None = None,
) -> Operation:
    """`_operation` of records (each with its index), a value nested too deeply reported at
    the record that has it."""
    try:
        return _operation(idx, inv[0], done and done[0], call_pos, failed_cas_observed, return_pos)
    except TooDeep as e:
        try:
            freeze(inv[0].get("value"))
            freeze(inv[0].get("key"))
            at = done or inv
        except TooDeep:
            at = inv
        raise HistoryError(f"{_where(source, *at)}: {e}") from None


def _stamp(rec: Record | None, pos: float) -> int | None:
    if rec is None:
        return None
    t = rec.get("time")
    return int(t) if isinstance(t, (int, float)) else int(pos)


def _operation(
    idx: int,
    inv: Record,
    done: Record | None,
    call_pos: float,
    failed_cas_observed: bool,
    return_pos: float | None = None,
) -> Operation:
    f = str(inv["f"])
    value = freeze(inv.get("value"))
    type_ = "info" if done is None else str(done["type"])
    output: Any = UNKNOWN
    if type_ == "ok" and done is not None:
        # a cas that completed ok swapped; writes echo their input; everything else observed
        output = True if f == "cas" else None if f in _MUTATIONS else freeze(done.get("value"))
    elif type_ == "fail" and failed_cas_observed:
        if f == "cas":
            type_, output = "ok", False
        elif f == "read":
            type_ = "info"  # porcupine's etcd logs: a read that timed out, result unknown
    op = Operation(
        id=idx,
        process=inv.get("process"),
        f=f,
        value=value,
        output=output,
        invoke=_stamp(inv, call_pos) or 0,
        complete=_stamp(done, return_pos if return_pos is not None else call_pos),
        type=type_,  # type: ignore[arg-type]
        key=freeze(inv.get("key")),
        call_pos=call_pos,
    )
    if return_pos is not None:
        op.done_pos = return_pos
        if type_ == "ok":
            op.return_pos = return_pos
    return op


# ---------------------------------------------------------------- front door


#: How much of a file `guess_format` looks at for its first line.
_HEAD_BYTES = 1 << 16


def guess_format(path: str | Path) -> str:
    """From the extension, else from the first non-empty line."""
    path = Path(path)
    with open_regular(path) as fh:  # also for a known extension: refuse what is no file first
        try:
            chunk = fh.read(_HEAD_BYTES)
        except OSError as e:
            raise HistoryError(f"{path}: cannot read: {e.strerror or e}") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".edn":
        return "edn"
    text = chunk.decode("utf-8", errors="replace").lstrip("\ufeff")
    head = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if "jepsen.util" in head or suffix == ".log":
        return "jepsen-etcd-log"
    if head.startswith("{:process"):
        return "porcupine-kv"
    if head.startswith("{\""):
        return "jsonl"
    if head.startswith(("[", "{", ";")):
        return "edn"
    raise HistoryError(f"{path}: cannot tell the format (use --format, one of {', '.join(FORMATS)})")


def read_history(path: str | Path, fmt: str | None = None, warnings: list[str] | None = None) -> list[Operation]:
    """Read any supported history file into paired operations. Warnings (a torn last line
    skipped) go to `warnings` if given, else to the log."""
    path = Path(path)
    fmt = _format(path, fmt)
    if fmt == "jsonl":
        table = _jsonl_table(path, warnings)
        if table is not None:
            return table.operations()
        records = read_jsonl(path, warnings)
        return pair(records, str(path), use_time=_all_timed(records), typed_time=True)
    return pair(_records(path, fmt), str(path), failed_cas_observed=fmt == "jepsen-etcd-log")


def read_table(path: str | Path, fmt: str | None = None, warnings: list[str] | None = None) -> OpTable:
    """`read_history` as columns: what `faultline check` and a run's analysis use, so that a
    long history is never held as one Python object per record or operation."""
    path = Path(path)
    fmt = _format(path, fmt)
    if fmt == "jsonl":
        table = _jsonl_table(path, warnings)
        if table is not None:
            return table
    return OpTable.from_operations(read_history(path, fmt, warnings))


def _format(path: Path, fmt: str | None) -> str:
    fmt = FORMAT_ALIASES.get(fmt, fmt) if fmt else guess_format(path)
    if fmt not in FORMATS:
        raise HistoryError(f"{path}: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return fmt


def _records(path: Path, fmt: str) -> Iterable[Record]:
    """The raw records of a file in a format of FORMATS (jsonl: streamed, without parsing
    the lines that hold no invocation, which then stand for themselves with no fields)."""
    if fmt == "jsonl":
        return _jsonl_invocations(path)
    if fmt == "edn":
        return read_edn(path)
    if fmt == "jepsen-etcd-log":
        return read_etcd_log(path)
    return read_porcupine_kv(path)


def _jsonl_invocations(path: Path) -> Iterable[Record]:
    with open_regular(path) as fh:
        for n, line in enumerate(fh, start=1):
            rec: Any = None
            if b'"invoke"' in line:  # (a completion, a nemesis op need no parsing here)
                text = line.removeprefix(codecs.BOM_UTF8) if n == 1 else line
                try:
                    rec = _loads(text)
                except ValueError:  # what orjson refuses and json reads (lone surrogates)
                    try:
                        rec = loads_line(text)
                    except BadLine:
                        pass
            yield {**rec, "_line": n} if isinstance(rec, dict) else {"_line": n}


def invocation_where(path: str | Path, fmt: str | None, op: int) -> str:
    """Where operation number `op` (its row in `read_table`'s table, the position of its
    invocation among the client invocations) is in the file: `FILE:LINE`, or `FILE: entry N`
    where lines are not known; just `FILE` if the file does not have it. A jsonl history is
    streamed: a long one is not held."""
    path = Path(path)
    try:
        count = 0
        for n, rec in enumerate(_records(path, _format(path, fmt))):
            if rec.get("type") == "invoke" and rec.get("process") != NEMESIS:
                if count == op:
                    return _where(str(path), rec, n)
                count += 1
    except HistoryError:
        pass
    return str(path)


def _jsonl_table(path: Path, warnings: list[str] | None) -> OpTable | None:
    """The columnar reader's table, or None when the file needs the record-by-record reader
    (an error to report with its line, or an unusual shape)."""
    if orjson is None:  # pragma: no cover
        return None
    try:
        return read_jsonl_table(path, warnings=warnings)
    except (HistoryReadError, Unusual) as e:
        log.debug("%s: reading record by record (%s)", path, e)
        return None


def ops_from_records(records: Sequence[Record], source: str = "history.jsonl") -> list[Operation]:
    """Operations from history.jsonl records already in memory (what the harness holds)."""
    return pair(records, source, use_time=_all_timed(records), typed_time=True)


def _all_timed(records: Sequence[Record]) -> bool:
    return bool(records) and all(
        isinstance(r.get("time"), (int, float)) for r in records if r.get("process") != NEMESIS
    )


# ---------------------------------------------------------------- Jepsen EDN export

_KEYWORD_FIELDS = ("type", "f")


def to_edn_record(rec: Record) -> str:
    """One history record as a Jepsen op map (:type, :f and a nemesis :process are keywords)."""
    parts: list[str] = []
    for k, v in rec.items():
        if k.startswith("_"):
            continue
        if (k in _KEYWORD_FIELDS and isinstance(v, str)) or (k == "process" and v == NEMESIS):
            text = f":{v}"
        else:
            plain = _edn_plain(v)
            text = edn.dumps(v) if plain is None else plain
        parts.append(f":{k} {text}")
    return "{" + ", ".join(parts) + "}"


#: Strings whose EDN text is themselves in quotes (edn_format escapes anything else).
_PLAIN_STRING = re.compile(r'[ !#-\[\]-~]*')


def _edn_plain(v: Any) -> str | None:
    """The EDN text of an int, nil, boolean, plain ASCII string or vector of those, as
    edn.dumps writes it (a fast path: most fields of most records); None for anything else."""
    t = type(v)
    if t is int or v is None or t is bool:
        return "nil" if v is None else "true" if v is True else "false" if v is False else str(v)
    if t is str:
        return f'"{v}"' if _PLAIN_STRING.fullmatch(v) else None
    if t is list or t is tuple:
        items = [_edn_plain(x) for x in v]
        return None if None in items else "[" + " ".join(items) + "]"  # type: ignore[arg-type]
    return None


def write_edn(history: Sequence[Record] | Sequence[Operation], path: str | Path) -> None:
    """Export a history (jsonl records, or paired operations) as Jepsen EDN (history.edn)."""
    records = [r for op in history for r in _records_of(op)]
    if history and isinstance(history[0], Operation):
        records.sort(key=lambda r: r.pop("_pos"))
    body = "\n ".join(to_edn_record(r) for r in records)
    Path(path).write_text(f"[{body}]\n", encoding="utf-8")


def write_edn_from_jsonl(source: str | Path, path: str | Path) -> int:
    """history.jsonl exported as Jepsen EDN one record at a time (the same text as
    `write_edn(read_jsonl(source), path)`, without holding the history); returns the number of
    records. Errors as `read_jsonl`'s; nothing is left at `path` after one."""
    source, path = Path(source), Path(path)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    bad: tuple[int, str] | None = None  # a torn line: fine only if the last
    try:
        with open_regular(source) as fh, tmp.open("w", encoding="utf-8") as out:
            out.write("[")
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                if bad is not None:
                    raise HistoryError(f"{source}:{bad[0]}: corrupt line: {bad[1]}")
                if n == 1 and line.startswith(codecs.BOM_UTF8):
                    line = line[len(codecs.BOM_UTF8):]
                try:
                    rec = _loads(line)
                except ValueError:  # also what orjson refuses and json accepts (big ints)
                    try:
                        rec = loads_line(line)
                    except BadLine as e:
                        if not e.torn:
                            raise HistoryError(f"{source}:{n}: corrupt line: {e.reason}") from None
                        bad = (n, e.reason)
                        continue
                if not isinstance(rec, dict):
                    raise HistoryError(f"{source}:{n}: expected a JSON object, got {_json_type(rec)}")
                try:
                    text = to_edn_record(rec)
                except RecursionError:
                    raise HistoryError(f"{source}:{n}: corrupt line: nested too deeply") from None
                out.write(("\n " if count else "") + text)
                count += 1
            out.write("]\n")
        if bad is not None:
            log.warning("%s:%d: ignoring truncated last line (%s)", source, *bad)
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise HistoryError(f"{source}: cannot read: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def _loads(line: bytes) -> Any:
    return orjson.loads(line) if orjson is not None else loads_line(line)


def _records_of(op: Record | Operation) -> list[Record]:
    if not isinstance(op, Operation):
        return [op]
    base: Record = {"process": op.process, "f": op.f}
    if op.key is not None:
        base["key"] = op.key
    inv = {**base, "type": "invoke", "value": op.value, "time": op.invoke, "_pos": op.call_pos}
    if op.complete is None:
        return [inv]
    out = op.value if op.output is UNKNOWN or op.output is None or op.f == "cas" else op.output
    done = {**base, "type": op.type, "value": out, "time": op.complete, "_pos": op.done_pos}
    return [inv, done]
