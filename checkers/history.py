"""History readers and writers: faultline jsonl, Jepsen EDN, porcupine's etcd and kv logs.

Every reader yields raw records (dicts shaped like faultline's history.jsonl lines, with the
position they had in the file); `pair` turns records into `Operation`s by matching each
invocation with the next completion of the same process, Jepsen's way.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from checkers import edn
from checkers.linear.operation import UNKNOWN, Operation, freeze
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


class HistoryError(ValueError):
    """A history that cannot be read; the message names the file and line."""


Record = dict[str, Any]


# ---------------------------------------------------------------- faultline history.jsonl


def read_jsonl(path: str | Path) -> list[Record]:
    """faultline's history.jsonl. A truncated last line (a killed run) is skipped with a
    warning; any other bad line is an error naming the file and line."""
    path = Path(path)
    try:
        # lines end at \n only: JSON allows U+2028 and friends inside strings
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise HistoryError(f"{path}: cannot read: {e}") from None
    last = max((n for n, line in enumerate(lines) if line.strip()), default=-1)
    records: list[Record] = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if n == last:
                log.warning("%s:%d: ignoring truncated last line (%s)", path, n + 1, e.msg)
                continue
            raise HistoryError(f"{path}:{n + 1}: corrupt line: {e.msg}") from None
        if not isinstance(rec, dict):
            raise HistoryError(f"{path}:{n + 1}: expected a JSON object, got {type(rec).__name__}")
        rec["_line"] = n + 1
        records.append(rec)
    return records


# ---------------------------------------------------------------- Jepsen EDN


def read_edn(path: str | Path) -> list[Record]:
    """A Jepsen history in EDN: one vector of op maps, or op maps one after another."""
    path = Path(path)
    try:
        forms = edn.loads_all(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise HistoryError(f"{path}: cannot read: {e}") from None
    except edn.EDNError as e:
        raise HistoryError(f"{path}: not valid EDN: {e}") from None
    items: list[Any] = []
    for form in forms:
        if isinstance(form, Sequence) and not isinstance(form, str):
            items.extend(form)
        else:
            items.append(form)
    records: list[Record] = []
    for n, item in enumerate(items):
        rec = item
        if not isinstance(rec, dict):
            raise HistoryError(f"{path}: entry {n + 1} is not a map: {rec!r}")
        rec["_line"] = n + 1
        records.append(rec)
    return records


# ---------------------------------------------------------------- porcupine's logs

_ETCD_LINE = re.compile(r"^INFO\s+jepsen\.util\s+-\s+(\S+)\t:(\w+)\t:(\S+)\t?(.*)$")
_KV_LINE = re.compile(
    r'^\{:process (\d+), :type :(\w+), :f :(\w+), :key "((?:[^"\\]|\\.)*)", '
    r':value (nil|"(?:[^"\\]|\\.)*")\}\s*$'
)


def _scalar(text: str) -> Any:
    text = text.strip()
    if text == "nil" or not text:
        return None
    if text.startswith(":"):
        return text[1:]
    if text.startswith("["):
        return [_scalar(t) for t in text.strip("[]").split()]
    try:
        return int(text)
    except ValueError:
        return text


def read_etcd_log(path: str | Path) -> list[Record]:
    """porcupine's Jepsen etcd logs: `INFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise HistoryError(f"{path}: cannot read: {e}") from None
    records: list[Record] = []
    for n, line in enumerate(lines):
        m = _ETCD_LINE.match(line)
        if m is None:
            continue  # other log lines (setup, nemesis) carry no client operations
        process, type_, f, value = m.groups()
        rec: Record = {"process": _scalar(process), "type": type_, "f": f, "_line": n + 1}
        rec["value"] = _scalar(value)
        if type_ in ("info", "fail") and isinstance(rec["value"], str):
            rec["error"], rec["value"] = rec["value"], None
        records.append(rec)
    return records


def read_porcupine_kv(path: str | Path) -> list[Record]:
    """porcupine's kv logs: one EDN map per line (fast path for the usual shape)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise HistoryError(f"{path}: cannot read: {e}") from None
    records: list[Record] = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        m = _KV_LINE.match(line)
        if m is not None:
            process, type_, f, key, value = m.groups()
            rec: Record = {
                "process": int(process), "type": type_, "f": f,
                "key": json.loads(f'"{key}"'),
                "value": None if value == "nil" else json.loads(value),
            }
        else:
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


# ---------------------------------------------------------------- pairing


def pair(
    records: Iterable[Record],
    source: str = "history",
    failed_cas_observed: bool = False,
    use_time: bool = False,
) -> list[Operation]:
    """Match invocations with completions by process; nemesis records are skipped.

    An invocation never completed stays open to the end (`info`). With `failed_cas_observed`
    (porcupine's etcd logs) a failed cas is kept as an observation that the compare did not
    match; a failed read there means "result unknown". With `use_time` the `time` field orders
    events (ties count as concurrent), otherwise the order of the records does.
    """
    open_ops: dict[Any, tuple[Record, int, float]] = {}
    slots: list[Operation | None] = []  # in invocation order; filled at completion
    for n, rec in enumerate(records):
        process = rec.get("process")
        if process == NEMESIS:
            continue
        type_ = rec.get("type")
        if process is None or type_ not in _TYPES or not rec.get("f"):
            raise HistoryError(f"{_where(source, rec, n)}: missing or bad process/type/f in {_short(rec)}")
        pos = _position(rec, n, use_time, source)
        key = process if isinstance(process, (int, str)) else freeze(process)
        if type_ == "invoke":
            if key in open_ops:
                raise HistoryError(
                    f"{_where(source, rec, n)}: process {process!r} invoked twice without completing"
                )
            open_ops[key] = (rec, len(slots), pos)
            slots.append(None)
            continue
        started = open_ops.pop(key, None)
        if started is None:
            raise HistoryError(
                f"{_where(source, rec, n)}: {type_} for process {process!r} with no open invocation"
            )
        inv, idx, call_pos = started
        if rec.get("f") != inv.get("f"):
            raise HistoryError(
                f"{_where(source, rec, n)}: completion f={rec.get('f')!r} does not match "
                f"invoke f={inv.get('f')!r}"
            )
        slots[idx] = _operation(idx, inv, rec, call_pos, failed_cas_observed, pos)
    for inv, idx, call_pos in open_ops.values():
        slots[idx] = _operation(idx, inv, None, call_pos, failed_cas_observed)
    return [o for o in slots if o is not None]


def _where(source: str, rec: Record, n: int) -> str:
    return f"{source}:{rec.get('_line', n + 1)}"


def _short(rec: Record) -> str:
    text = json.dumps({k: v for k, v in rec.items() if k != "_line"}, default=str)
    return text if len(text) < 120 else text[:117] + "..."


def _position(rec: Record, n: int, use_time: bool, source: str) -> float:
    if not use_time:
        return float(n)
    t = rec.get("time")
    if not isinstance(t, (int, float)):
        raise HistoryError(f"{_where(source, rec, n)}: field 'time' missing or not a number")
    return float(t)


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


def guess_format(path: str | Path) -> str:
    """From the extension, else from the first non-empty line."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".edn":
        return "edn"
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            head = next((line.strip() for line in fh if line.strip()), "")
    except OSError as e:
        raise HistoryError(f"{path}: cannot read: {e}") from None
    if "jepsen.util" in head or suffix == ".log":
        return "jepsen-etcd-log"
    if head.startswith("{:process"):
        return "porcupine-kv"
    if head.startswith("{\""):
        return "jsonl"
    if head.startswith(("[", "{", ";")):
        return "edn"
    raise HistoryError(f"{path}: cannot tell the format (use --format, one of {', '.join(FORMATS)})")


def read_history(path: str | Path, fmt: str | None = None) -> list[Operation]:
    """Read any supported history file into paired operations."""
    path = Path(path)
    fmt = FORMAT_ALIASES.get(fmt, fmt) if fmt else guess_format(path)
    if fmt == "jsonl":
        table = _jsonl_table(path)
        if table is not None:
            return table.operations()
        records = read_jsonl(path)
        return pair(records, str(path), use_time=_all_timed(records))
    if fmt == "edn":
        return pair(read_edn(path), str(path))
    if fmt == "jepsen-etcd-log":
        return pair(read_etcd_log(path), str(path), failed_cas_observed=True)
    if fmt == "porcupine-kv":
        return pair(read_porcupine_kv(path), str(path))
    raise HistoryError(f"{path}: unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def read_table(path: str | Path, fmt: str | None = None) -> OpTable:
    """`read_history` as columns: what `faultline check` and a run's analysis use, so that a
    long history is never held as one Python object per record or operation."""
    path = Path(path)
    fmt = FORMAT_ALIASES.get(fmt, fmt) if fmt else guess_format(path)
    if fmt == "jsonl":
        table = _jsonl_table(path)
        if table is not None:
            return table
    return OpTable.from_operations(read_history(path, fmt))


def _jsonl_table(path: Path) -> OpTable | None:
    """The columnar reader's table, or None when the file needs the record-by-record reader
    (an error to report with its line, or an unusual shape)."""
    if orjson is None:  # pragma: no cover
        return None
    try:
        return read_jsonl_table(path)
    except (HistoryReadError, Unusual) as e:
        log.debug("%s: reading record by record (%s)", path, e)
        return None


def ops_from_records(records: Sequence[Record], source: str = "history.jsonl") -> list[Operation]:
    """Operations from history.jsonl records already in memory (what the harness holds)."""
    return pair(records, source, use_time=_all_timed(records))


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
    bad: tuple[int, bytes] | None = None  # a line that does not parse: fine only if the last
    try:
        with source.open("rb") as fh, tmp.open("w", encoding="utf-8") as out:
            out.write("[")
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                if bad is not None:
                    _corrupt(source, *bad)
                try:
                    rec = _loads(line)
                except ValueError:  # also what orjson refuses and json accepts (NaN, big ints)
                    try:
                        rec = json.loads(line.decode("utf-8"))
                    except json.JSONDecodeError:
                        bad = (n, line)
                        continue
                if not isinstance(rec, dict):
                    raise HistoryError(f"{source}:{n}: expected a JSON object, got {type(rec).__name__}")
                out.write(("\n " if count else "") + to_edn_record(rec))
                count += 1
            out.write("]\n")
        if bad is not None:
            _corrupt(source, *bad, last=True)
        tmp.replace(path)
    except (OSError, UnicodeDecodeError) as e:
        tmp.unlink(missing_ok=True)
        raise HistoryError(f"{source}: cannot read: {e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def _loads(line: bytes) -> Any:
    return orjson.loads(line) if orjson is not None else json.loads(line.decode("utf-8"))


def _corrupt(source: Path, n: int, line: bytes, last: bool = False) -> None:
    """A line that is not JSON: an error, or (the last one, a killed run) a warning."""
    try:
        json.loads(line.decode("utf-8"))
    except json.JSONDecodeError as e:
        if not last:
            raise HistoryError(f"{source}:{n}: corrupt line: {e.msg}") from None
        log.warning("%s:%d: ignoring truncated last line (%s)", source, n, e.msg)


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
