#!/usr/bin/env bash
# Installs everything (scripts/setup.sh with the dev extra) and runs the whole test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh" "dev,local"
cd "$root"
.venv/bin/ruff check voicegw tests scripts examples
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
