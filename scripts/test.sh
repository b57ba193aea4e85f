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

echo "== Chromium for the console's browser tests"
# Debian's chromium, driven by Playwright's Python package (never `playwright install`: no second browser
# downloaded from elsewhere). CI runs as root on a fresh machine; locally, without root, the browser tests skip
# with their reason unless CI=true, where tests/test_console.py fails them.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y chromium >/dev/null
fi
if [ ! -x /usr/bin/chromium ] && [ "${CI:-}" = "true" ]; then
    echo "no /usr/bin/chromium: the console's browser tests cannot run" >&2; exit 1
fi

echo "== pytest (SQLite and PostgreSQL)"
pytest -q -n 2 "$@"
