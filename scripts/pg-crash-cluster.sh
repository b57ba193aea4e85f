#!/usr/bin/env bash
# A PostgreSQL cluster of its own for the crash harness (benchmarks/crash_pg.py), which restarts it under
# load. Never the machine's main cluster: the test suite runs against that one in parallel.
#
#   scripts/pg-crash-cluster.sh [NAME]   # create once (reused afterwards), start, set the password; prints the URL
#   scripts/pg-crash-cluster.sh --drop [NAME]
#
# NAME defaults to quipu_crash (no dashes: systemd unit names). Needs root, like scripts/start-postgres.sh.
set -euo pipefail

if [ "${1:-}" = "--drop" ]; then
    NAME="${2:-quipu_crash}"
    read -r PGV _ < <(pg_lsclusters -h | head -n1)
    pg_dropcluster --stop "$PGV" "$NAME"
    exit 0
fi
NAME="${1:-quipu_crash}"
read -r PGV _ < <(pg_lsclusters -h | head -n1)

port_of() { pg_lsclusters -h | awk -v v="$PGV" -v n="$NAME" '$1 == v && $2 == n { print $3 }'; }

if [ -z "$(port_of)" ]; then
    # The first port from 5433 that no cluster claims and nothing listens on (pg_createcluster alone only
    # looks at other clusters' configurations, not at sockets).
    PORT=5433
    while pg_lsclusters -h | awk '{ print $3 }' | grep -qx "$PORT" || (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
        PORT=$((PORT + 1))
    done
    # Small: it holds one scratch ledger at a time, on a machine whose cores are shared.
    pg_createcluster "$PGV" "$NAME" -p "$PORT" --start-conf=manual \
        --pgoption shared_buffers=64MB --pgoption max_connections=60 >/dev/null
fi
PORT="$(port_of)"
pg_ctlcluster "$PGV" "$NAME" status >/dev/null 2>&1 || pg_ctlcluster "$PGV" "$NAME" start
for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.5; done
pg_isready -q -h 127.0.0.1 -p "$PORT"
(cd / && runuser -u postgres -- psql -qXw -p "$PORT" -c "ALTER ROLE postgres PASSWORD 'postgres'")
echo "postgresql://postgres:postgres@127.0.0.1:$PORT/postgres"
