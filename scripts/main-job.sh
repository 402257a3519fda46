#!/usr/bin/env bash
# The main job: set everything up, then run the default test (configs/local.yaml): a 3-node
# raftkv cluster on local processes under faults, ending with a verdict and the report's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
cd "$here"
exec .venv/bin/faultline run configs/local.yaml "$@"
