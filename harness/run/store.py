"""The run store: `store/<test>/<YYYYmmddTHHMMSS>-<seed>/`, `store/latest`, controller.log."""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"


@dataclass
class RunDir:
    path: Path
    handler: logging.Handler | None = None

    @property
    def nodes_dir(self) -> Path:
        return self.path / "nodes"

    @property
    def history(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def work_dir(self) -> Path:
        """Scratch space of the run's nodes (data dirs, proxies' state); not part of the record."""
        return self.path / "work"

    def close_log(self) -> None:
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
            self.handler.close()
            self.handler = None


def _safe(name: str) -> str:
    """One plain path component: never `.`, `..` or hidden (the config refuses such names;
    this keeps a run folder inside the store whatever calls it)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lstrip(".")[:100] or "test"


def create_run(store: Path, test_name: str, seed: int) -> RunDir:
    """Make a fresh run folder, point store/latest at it, attach controller.log."""
    base = store / _safe(test_name)
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = base / f"{stamp}-{seed}"
    n = 1
    while path.exists():  # two runs in the same second with the same seed
        n += 1
        path = base / f"{stamp}-{seed}-{n}"
    path.mkdir()
    (path / "nodes").mkdir()
    link_latest(store, path)
    run = RunDir(path)
    run.handler = attach_log(path / "controller.log")
    return run


def link_latest(store: Path, path: Path) -> None:
    latest = store / "latest"
    tmp = store / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(path.relative_to(store))
    os.replace(tmp, latest)  # atomic switch of the symlink


def attach_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler
