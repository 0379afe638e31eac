#!/usr/bin/env bash
# Sets up the project and runs the whole pipeline locally: Kafka + SeaweedFS S3, the generator, and
# the Dagster UI (http://127.0.0.1:3000) with the checkpoint schedule on. Ctrl-C stops it.
# Needs Python 3.11+, Java 17+ and Maven (once, to fetch the Kafka jars). Extra args go to `lineage dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LINEAGE_VENV:-.venv}"
if [ ! -x "$VENV/bin/lineage" ]; then
  echo "Setting up $VENV (first run only)..."
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[local]'
fi
# shellcheck disable=SC2086 # LINEAGE_DEV_ARGS is a list of flags on purpose
exec "$VENV/bin/lineage" dev ${LINEAGE_DEV_ARGS:-} "$@"
