"""`faultline check FILE`: read a history, check it for linearizability, print the verdict.

Exit codes: 0 linearizable, 1 not, 2 unknown (time limit), 3 bad input: bad arguments, a file
that cannot be read, a history with no client operations, an operation the model cannot take.
Bad input is one line on stderr naming the file (and the line to blame), never a verdict.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

from checkers.history import (
    FORMAT_ALIASES,
    FORMATS,
    HistoryError,
    guess_format,
    invocation_where,
    read_table,
)
from checkers.linear import LinearResult, ModelSpecError, OperationError, check, make_model
from checkers.linear.registry import MODELS

log = logging.getLogger(__name__)

#: The model a format implies when --model is not given.
DEFAULT_MODELS = {
    "jsonl": "kv",
    "edn": "cas-register(initial=0)",
    "jepsen-etcd-log": "cas-register(initial=nil)",
    "porcupine-kv": "porcupine-kv",
}


#: Partitions listed by name before the rest are only counted.
MAX_SHOWN = 10


class _UsageError(Exception):
    """Bad arguments: exit 3 with one line (argparse's own exit status 2 means "unknown")."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


class _Refused(Exception):
    """Bad input: the one line to print."""


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="faultline check", description="Check a history file for linearizability."
    )
    p.add_argument(
        "file", help="history file (history.jsonl, Jepsen EDN, porcupine logs) or a run folder"
    )
    p.add_argument("--format", choices=[*FORMATS, *FORMAT_ALIASES], help="default: guessed")
    p.add_argument(
        "--model", help=f"model name, e.g. kv, cas-register(initial=0) ({', '.join(sorted(MODELS))})"
    )
    p.add_argument("--timeout", type=float, default=None, help="seconds before giving up (unknown)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def render(result: LinearResult, source: str) -> str:
    """The verdict and a readable counterexample."""
    verdict = "linearizable" if result.valid is True else "NOT linearizable" if result.valid is False else "unknown"
    lines = [f"{source}: {verdict} (model {result.model}, {len(result.partitions)} partition(s), "
             f"{sum(p.ops for p in result.partitions)} ops, {result.elapsed:.3f}s)"]
    failed = [p for p in result.partitions if p.valid is False]
    unknown = [p for p in result.partitions if p.valid is not True and p.valid is not False]
    for p in failed[:MAX_SHOWN]:
        lines.append(f"  partition {p.key!r}: not linearizable ({p.ops} ops)")
    if len(failed) > MAX_SHOWN:
        lines.append(f"  ... and {len(failed) - MAX_SHOWN} more partitions not linearizable")
    reasons: dict[str, list[Any]] = {}
    for p in unknown:
        reasons.setdefault(p.reason or "unknown", []).append(p.key)
    for reason, keys in reasons.items():
        shown = ", ".join(repr(k) for k in keys[:MAX_SHOWN]) + (", ..." if len(keys) > MAX_SHOWN else "")
        lines.append(f"  {len(keys)} partition(s) unknown ({reason}): {shown}")
    ce = result.counterexample
    if ce:
        lines.append(f"  counterexample (key {ce['key']!r}): {ce['message']}")
        ops: dict[int, dict[str, Any]] = {o["id"]: o for o in ce["ops"]}
        if ce["longest"]:
            lines.append("  longest linearization found (op: state after it):")
            for op_id, state in zip(ce["longest"][0], ce["states"][0], strict=True):
                lines.append(f"    {_describe(ops[op_id])}  => {state!r}")
        lines.append("  could not be placed next:")
        for op_id in ce["unplaceable"]:
            lines.append(f"    {_describe(ops[op_id])}")
    return "\n".join(lines)


def _describe(op: dict[str, Any]) -> str:
    out = "" if op["output"] is None else f" -> {op['output']!r}"
    return (f"op {op['id']} p{op['process']} {op['type']} {op['f']}({op['value']!r}){out} "
            f"[{op['invoke']}, {'∞' if op['complete'] is None else op['complete']}]")


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv[1:])
        if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
            raise _UsageError(f"--timeout: expected a positive number of seconds, got {args.timeout}")
    except _UsageError as e:
        print(f"faultline check: {_one_line(e)}", file=sys.stderr)
        return 3
    logging.getLogger("edn_format").setLevel(logging.WARNING)  # its lexer logs its tables
    if Path(args.file).is_dir():  # a run folder: its history.jsonl
        args.file = str(Path(args.file) / "history.jsonl")
    try:
        result, warnings = _check(args)
        text = json.dumps(result.to_json(), default=str) if args.json else render(result, args.file)
    except _Refused as e:
        print(f"faultline check: {_one_line(e)}", file=sys.stderr)
        return 3
    except Exception as e:  # a bug: still one line and exit 3, never exit 1 ("not linearizable")
        log.debug("faultline check %s", args.file, exc_info=True)
        print(f"faultline check: {args.file}: internal error: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 3
    for warning in warnings:
        print(f"faultline check: warning: {warning}", file=sys.stderr)
    print(text)
    return 0 if result.valid is True else 1 if result.valid is False else 2


def _check(args: argparse.Namespace) -> tuple[LinearResult, list[str]]:
    """The verdict and the reader's warnings; _Refused for bad input."""
    warnings: list[str] = []
    try:
        fmt = args.format or guess_format(args.file)
        fmt = FORMAT_ALIASES.get(fmt, fmt)
        model = make_model(args.model or DEFAULT_MODELS[fmt])
        history = read_table(args.file, fmt, warnings)
    except (HistoryError, ModelSpecError) as e:
        raise _Refused(str(e)) from None
    if not len(history):
        raise _Refused(f"{args.file}: no client operations")
    try:
        return check(model, history, timeout=args.timeout), warnings
    except OperationError as e:
        raise _Refused(f"{invocation_where(args.file, fmt, e.op)}: {e}") from None
    except ValueError as e:  # a model of one's own refusing an operation in its step
        raise _Refused(f"{args.file}: {e}") from None


def _one_line(e: object, limit: int = 500) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
