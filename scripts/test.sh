#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite against real mosquitto processes and real models.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q "$@"
