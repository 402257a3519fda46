"""The `faultline` command: dispatches each subcommand to the module that owns it."""

from __future__ import annotations

import importlib
import logging
import sys

# subcommand -> (module, one-line help). Each module exposes main(argv) -> int.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("harness.run.cli", "run a test against a cluster and check it"),
    "analyze": ("harness.run.cli", "re-run the checkers and the report on a stored run"),
    "zoo": ("harness.campaign.zoo", "run the bug-zoo matrix: every seeded bug, and the correct builds"),
    "soak": ("harness.campaign.soak", "run tests back to back for a time budget (nightly)"),
    "check": ("checkers.cli", "check a history file for linearizability"),
    "serve": ("reports.cli", "serve the store read-only over HTTP"),
    "report": ("reports.cli", "render the report of a stored run"),
}


def usage() -> str:
    lines = ["usage: faultline COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {text}" for name, (_, text) in SUBCOMMANDS.items()]
    lines += ["", "faultline COMMAND --help for the command's options"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"faultline: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 3
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(SUBCOMMANDS[name][0])
    rc: int = module.main([name, *rest])
    return rc


if __name__ == "__main__":
    sys.exit(main())
