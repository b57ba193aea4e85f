#!/usr/bin/env bash
# The whole test command: static checks, then the suite against real SQLite and a real,
# freshly started PostgreSQL. Under CI=true a missing PostgreSQL fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
export PATH="$PWD/$VENV/bin:$PATH"

echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy --strict"; mypy
echo "== import direction (adapters -> projections -> domain -> ledger)"; lint-imports
echo "== docs/events.md up to date"; python scripts/gen_events_doc.py --check

echo "== PostgreSQL"
# shellcheck source=scripts/start-postgres.sh
. scripts/start-postgres.sh
export QUIPU_TEST_DATABASE_URL PGPASSWORD

echo "== pytest (SQLite and PostgreSQL)"
pytest -q -n 2 "$@"
