#!/bin/sh
# Set up everything the tests need and run them all: lint, types, generated
# schemas, the layering rules, then the test suite in parallel.
#   scripts/test.sh [pytest args…]
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh --test

echo "== ruff" >&2
.venv/bin/ruff check schemas reconciler runtime tests scripts bench
.venv/bin/ruff format --check schemas reconciler runtime tests scripts bench
echo "== mypy --strict" >&2
.venv/bin/mypy schemas reconciler runtime
echo "== generated JSON schemas are current" >&2
.venv/bin/python -m reconciler.schemagen --check
.venv/bin/python -m reconciler.daemon.openapi --check
echo "== the CLI's end-to-end tests through a daemon (PYRECONCILE_TEST_DAEMON=1)" >&2
PYRECONCILE_TEST_DAEMON=1 .venv/bin/pytest -q -n "${PYTEST_WORKERS:-2}" -p no:cacheprovider \
    tests/integration/test_apply_e2e.py tests/integration/test_drift_e2e.py \
    tests/integration/test_saved_plans.py tests/integration/test_wait_e2e.py \
    tests/integration/test_rollback_e2e.py tests/integration/test_lifecycle_cli.py \
    tests/integration/test_compose_e2e.py tests/integration/test_update_e2e.py
echo "== pytest" >&2
exec .venv/bin/pytest -n "${PYTEST_WORKERS:-2}" -p no:cacheprovider "$@" tests
