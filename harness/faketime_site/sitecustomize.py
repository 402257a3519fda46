"""Loaded (through PYTHONPATH) into every node process that runs under libfaketime.

It starts the node's clock agent (faultline_clock.py) before the node's own code runs, so the
node never reads a clock the provider did not mean it to have. A node whose clock cannot be
kept stops here with one line naming why: a run must not go on with clocks it cannot control.
"""

import os
import sys

_log = os.environ.get("FAULTLINE_CLOCK_LOG")
if _log:
    try:
        import faultline_clock

        faultline_clock.start(_log)
    except Exception as e:  # noqa: BLE001 -- any failure: one line, then out
        sys.stderr.write(f"faultline clock: {_log}: {e}\n")
        sys.stderr.flush()
        os._exit(3)
