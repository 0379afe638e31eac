#!/usr/bin/env bash
# Sets up the project and runs lint + the whole test suite. The tests start their own Kafka and
# SeaweedFS on ports 21000 above the defaults, so a running local stack is never disturbed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LINEAGE_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e '.[test]'
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
exec "$VENV/bin/pytest" -q --durations=10 "$@"
