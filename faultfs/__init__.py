"""faultfs: the lose-unsynced FUSE file system that node data directories live on.

It runs as its own process on a node host (``python -m faultfs mount ...``), serving a
passthrough of a backing directory in which writes, truncates, creates, renames, unlinks
and mkdirs stay volatile until made durable by fsync / fdatasync of the file (its data and
size) or of the directory (its entries). A control socket turns the durable state into the
only state (``lose-unsynced``, the power failure), makes everything durable (``sync-all``)
or makes writes fail with ENOSPC (``disk-full on|off``). The model, and what it leaves out,
is in docs/faultfs.md.

Modules: journal (what to undo, pure), layer (the operations over the backing directory),
crash (the power loss), fs (FUSE callbacks and the mount), control (the socket), cli.

Binding: mfusepy (PyPI), chosen over pyfuse3 and llfuse:
- maintained: mfusepy is the maintained fork of fusepy (releases through 2026, by the
  ratarmount author); pyfuse3 only gets bug fixes ("no plan to add new features") and
  llfuse is no longer developed;
- libfuse 3: mfusepy loads Debian's libfuse3.so.3 through ctypes, so it installs as one
  pure-Python file with no compiler, headers or pkg-config (pyfuse3 builds from an sdist
  against libfuse3-dev);
- multithreading: mfusepy runs libfuse's multi-threaded loop, so one thread's fsync of the
  backing file (the slow part of a WAL write) does not stall other requests; pyfuse3 runs
  every handler on one Trio event loop, where a blocking fsync stalls the file system;
- speed: the high-level (path) API costs one Python call per request; a WAL-like write +
  fsync through faultfs measured within the bench's goal (docs/benchmarks.md, faultfs).
"""
