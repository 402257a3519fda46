#!/usr/bin/env bash
# The test command: set everything up, then lint, type-check and run the whole test suite.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh" || exit 1
cd "$here"
export PATH="$here/.venv/bin:$PATH"

echo "== ruff"
ruff check . || exit 1
echo "== mypy (the whole project: packages, tests, benchmarks, examples)"
mypy || exit 1
echo "== pytest"
pytest -q -ra "$@"
rc=$?
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
