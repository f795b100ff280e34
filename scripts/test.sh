#!/usr/bin/env bash
# Set up, then run lint, types and the whole test suite (PostgreSQL at 127.0.0.1:5432 is used
# by the server tests; it is started here when it is installed but not running).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/system-deps.sh  # chromium + graphviz for the dashboard tests, when missing
if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
fi
.venv/bin/ruff check src tests examples benchmarks
.venv/bin/mypy src
.venv/bin/python -m pytest "$@"
