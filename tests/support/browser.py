"""Headless Chromium for report tests: dump the DOM after scripts ran, or take a screenshot.

Each call starts Chromium in its own session (process group) and kills that group on
timeout or exit, so no renderer or zygote outlives a test.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
]
TIMEOUT_S = 90.0


@dataclass
class BrowserRun:
    stdout: str
    stderr: str
    returncode: int


def run_chromium(profile: Path, args: list[str], url: str) -> BrowserRun:
    profile.mkdir(parents=True, exist_ok=True)
    argv = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        # the browser's helpers live in the session we created: end all of them
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return BrowserRun(out, err, proc.returncode)


def dump_dom(profile: Path, page: Path, fragment: str = "") -> BrowserRun:
    return run_chromium(profile, ["--dump-dom"], page.resolve().as_uri() + fragment)


def screenshot(profile: Path, page: Path, out: Path, size: tuple[int, int] = (1280, 2400)) -> BrowserRun:
    return run_chromium(profile, [f"--screenshot={out}", f"--window-size={size[0]},{size[1]}"], page.resolve().as_uri())


def console_errors(stderr: str) -> list[str]:
    """Console lines Chromium logged for uncaught errors in the page."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]
