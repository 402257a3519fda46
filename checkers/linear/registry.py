"""Models by name, as the CLI and expected.tsv spell them: `name` or `name(k=v, ...)`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from checkers.linear.model import Model
from checkers.linear.models import (
    KV,
    CasRegister,
    MultiRegister,
    Mutex,
    PorcupineKV,
    Register,
    SetModel,
)


class ModelSpecError(ValueError):
    """A model name that does not parse or is not registered."""


MODELS: dict[str, Callable[..., Model]] = {
    "register": Register,
    "cas-register": CasRegister,
    # porcupine's etcd model: a cas register initially nil (failed cas observed by the reader)
    "etcd": lambda: CasRegister(initial=None),
    "kv": KV,
    "porcupine-kv": PorcupineKV,
    "porcupine-kv-map": lambda initial="": PorcupineKV(initial, partitioned=False),
    "multi-register": MultiRegister,
    "mutex": Mutex,
    "set": SetModel,
}

# Descriptive names the corpora table uses for a registered model.
ALIASES: dict[str, str] = {
    'kv(get/put/append per key, initial "")': "porcupine-kv",
}

_SPEC = re.compile(r"^\s*([A-Za-z][\w-]*)\s*(?:\((.*)\))?\s*$")


def parse_value(text: str) -> Any:
    """An EDN/JSON-ish scalar: nil/null, integers, quoted strings, else the bare word."""
    text = text.strip()
    if text in ("nil", "null", "None"):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def make_model(spec: str) -> Model:
    """Build a model from `name` or `name(k=v,...)`; raises ModelSpecError naming the spec."""
    spec = ALIASES.get(spec.strip(), spec)
    m = _SPEC.match(spec)
    if m is None:
        raise ModelSpecError(f"model {spec!r}: expected NAME or NAME(k=v,...)")
    name, args = m.group(1), m.group(2)
    if name not in MODELS:
        raise ModelSpecError(f"model {name!r} unknown (known: {', '.join(sorted(MODELS))})")
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in (args or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ModelSpecError(f"model {spec!r}: parameter {part!r} is not k=v")
        params[key.strip()] = parse_value(value)
    try:
        return MODELS[name](**params)
    except TypeError as e:
        raise ModelSpecError(f"model {spec!r}: bad parameters ({e})") from None
