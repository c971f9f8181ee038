#!/usr/bin/env bash
# Set up (idempotent) and run the whole system locally: broker, recognizer, notifier, demo camera.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/homesec up "$@"
