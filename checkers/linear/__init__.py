"""Linearizability checking (porcupine's shape): models, the search, the evidence.

The harness-facing `Checker` is `checkers.linear.checker.LinearizabilityChecker` (not imported
here: it needs `checkers.history`, which needs this package's operation type).
"""

from checkers.linear.check import check, prepare
from checkers.linear.inputs import OperationError
from checkers.linear.model import Model, State
from checkers.linear.models import (
    KV,
    CasRegister,
    MultiRegister,
    Mutex,
    PorcupineKV,
    Register,
    SetModel,
)
from checkers.linear.operation import UNKNOWN, Input, Operation, freeze
from checkers.linear.registry import MODELS, ModelSpecError, make_model
from checkers.linear.result import LinearResult, PartitionResult

__all__ = [
    "KV",
    "MODELS",
    "UNKNOWN",
    "CasRegister",
    "Input",
    "LinearResult",
    "Model",
    "ModelSpecError",
    "MultiRegister",
    "Mutex",
    "Operation",
    "OperationError",
    "PartitionResult",
    "PorcupineKV",
    "Register",
    "SetModel",
    "State",
    "check",
    "freeze",
    "make_model",
    "prepare",
]
