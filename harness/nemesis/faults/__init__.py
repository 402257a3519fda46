"""One module per fault family, each defining `FAULT = Fault(...)` (see harness.nemesis.registry)."""
