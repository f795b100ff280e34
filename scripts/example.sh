#!/usr/bin/env bash
# Set up, then run the example pipeline end to end on the embedded local orchestrator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh examples
.venv/bin/stackwise run examples/breast_cancer/pipeline.py:training "$@"
