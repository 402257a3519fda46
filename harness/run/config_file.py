"""Reading a config file: strict YAML, `extends:` chains, and where each field came from.

A config file is UTF-8 YAML whose top level is a mapping. Reading is strict where PyYAML is
lenient: a key given twice is an error (not "the last one wins"), dates stay strings, and a
file that is binary, not UTF-8, too large, nested too deeply or not a regular file is refused.
Every error is one line naming the file (and the line, where there is one).

`extends: other.yaml` (a path relative to the extending file) makes a file say only what
differs from another: the other file is read first (it may itself extend a third), then this
file is merged over it: mappings merge key by key, anything else (lists included) is
replaced. The merged mapping remembers which file set each field, so that a validation error
names the file that has the bad field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from checkers.history_text import open_regular
from harness.protocols import HarnessError


class ConfigError(HarnessError):
    """A config file or flag is invalid; the message is one line naming file and field."""


#: Larger files are not configs (and reading them whole is not free).
MAX_BYTES = 1 << 20
#: Mappings and lists nested deeper than this are refused (the schema is 2 levels deep; the
#: free-form provider_opts / db_opts need a few more).
MAX_DEPTH = 16
#: Values in one file, counted with aliases expanded (YAML anchors can multiply a document).
MAX_VALUES = 100_000
#: Files in one `extends:` chain.
MAX_CHAIN = 16

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"


class _DuplicateKey(Exception):
    def __init__(self, line: int, key: Any) -> None:
        super().__init__(f"line {line}: duplicate key {key!r}")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without implicit dates (an impossible date would be a traceback, and no
    field is a date) and refusing duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue  # `<<: *anchor` keys may be overridden by the mapping's own keys
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise _DuplicateKey(key_node.start_mark.line + 1, key)
                seen.add(key)
            except TypeError:
                pass  # an unhashable key: construct_mapping below says so
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def read_text(path: Path) -> str:
    """The file's text; ConfigError for anything that is not a small UTF-8 regular file."""
    source = str(path)
    with open_regular(path, ConfigError) as f:
        try:
            data = f.read(MAX_BYTES + 1)
        except OSError as e:
            raise ConfigError(f"{source}: cannot read: {e.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_BYTES} bytes: not a config file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(
            f"{source}: line {line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in `text`; ConfigError naming the line for anything malformed."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as e:
        raise ConfigError(f"{source}: {e}") from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        raise ConfigError(f"{source}: line {line}: invalid YAML: {one_line(e.reason)} "
                          f"(character {e.character!r})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{source}: {where}invalid YAML: {one_line(getattr(e, 'problem', None) or e)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read (at most {MAX_DEPTH} levels)") from None
    except (ValueError, OverflowError) as e:  # e.g. an explicit !!timestamp that is no date, a huge number
        raise ConfigError(f"{source}: invalid value: {one_line(e)}") from None


def check_shape(data: Any, source: str) -> None:
    """Refuse documents nested deeper than MAX_DEPTH or with more than MAX_VALUES values."""
    count = 0
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(f"{source}: more than {MAX_VALUES} values (anchors expanded): not a config")
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise ConfigError(f"{source}: {where or '(top level)'}: nested deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                stack.append((v, f"{where}.{k}" if where else str(k), depth + 1))


@dataclass
class RawConfig:
    """A config file's mapping with its `extends:` chain merged in, and each field's file."""

    data: dict[str, Any]
    top: str  # the file that was asked for
    origin: dict[str, str] = field(default_factory=dict)  # dotted field -> file that set it
    files: list[str] = field(default_factory=list)  # the chain, the asked-for file first

    def source(self, dotted: str) -> str:
        """The file that set `dotted` (or its nearest enclosing field); else the top file."""
        parts = dotted.split(".")
        for n in range(len(parts), 0, -1):
            hit = self.origin.get(".".join(parts[:n]))
            if hit is not None:
                return hit
        return self.top


def _paths(data: dict[Any, Any], prefix: str = "") -> Iterator[str]:
    for k, v in data.items():
        path = f"{prefix}{k}"
        yield path
        if isinstance(v, dict):
            yield from _paths(v, f"{path}.")


def _merge(base: RawConfig, over: dict[str, Any], over_file: str) -> None:
    """Merge `over` (from `over_file`) into `base` in place: mappings key by key, the rest
    replaced; the origin of replaced fields moves to `over_file`."""

    def into(dst: dict[Any, Any], src: dict[Any, Any], prefix: str) -> None:
        for k, v in src.items():
            path = f"{prefix}{k}"
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                base.origin[path] = over_file
                into(dst[k], v, f"{path}.")
                continue
            for old in [p for p in base.origin if p.startswith(f"{path}.")]:
                del base.origin[old]
            dst[k] = v
            base.origin[path] = over_file
            if isinstance(v, dict):
                for sub in _paths(v, f"{path}."):
                    base.origin[sub] = over_file

    into(base.data, over, "")


def _read_one(path: Path) -> dict[str, Any]:
    source = str(path)
    data = parse_yaml(read_text(path), source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        shown = repr(data) if isinstance(data, str) else f"{type(data).__name__} {data!r}"
        raise ConfigError(f"{source}: (top level): expected a mapping, got {one_line(shown)[:80]}")
    check_shape(data, source)
    return data


def read(path: str | Path) -> RawConfig:
    """Read `path` and the files it extends into one raw mapping (not yet validated)."""
    return _read_chain(Path(path), [])


def _read_chain(path: Path, below: list[tuple[Path, str]]) -> RawConfig:
    """`below`: the files that extend this one (real path, as named), nearest last."""
    source = str(path)
    real = path.resolve()
    if any(r == real for r, _ in below):
        cycle = " -> ".join([*(name for _, name in below), source])
        raise ConfigError(f"{below[-1][1]}: extends: a cycle: {cycle}")
    if len(below) >= MAX_CHAIN:
        raise ConfigError(f"{source}: extends: a chain of more than {MAX_CHAIN} files")
    data = _read_one(path)
    parent_name = data.pop("extends", None) if "extends" in data else None
    if parent_name is None:
        raw = RawConfig(data={}, top=source)
    else:
        if not isinstance(parent_name, str) or not parent_name.strip():
            raise ConfigError(f"{source}: extends: expected a file name, got {parent_name!r}")
        parent = path.parent / parent_name
        if not parent.exists():
            raise ConfigError(f"{source}: extends: {parent}: no such file")
        raw = _read_chain(parent, [*below, (real, source)])
    _merge(raw, data, source)
    raw.top = source
    raw.files = [source, *raw.files]
    return raw
