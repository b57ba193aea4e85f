#!/usr/bin/env bash
# Start the machine's PostgreSQL cluster (stopped on a fresh machine) and export
# QUIPU_TEST_DATABASE_URL. Source it: `. scripts/start-postgres.sh`. Safe when it already runs.
read -r PGV PGC PGPORT _ < <(pg_lsclusters -h | head -n1)
pg_ctlcluster "$PGV" "$PGC" status >/dev/null 2>&1 || pg_ctlcluster "$PGV" "$PGC" start
for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p "$PGPORT" && break; sleep 0.5; done
pg_isready -h 127.0.0.1 -p "$PGPORT"
(cd / && runuser -u postgres -- psql -qXw -p "$PGPORT" -c "ALTER ROLE postgres PASSWORD 'postgres'")
export PGPASSWORD=postgres
export QUIPU_TEST_DATABASE_URL="postgresql://postgres:postgres@127.0.0.1:$PGPORT/postgres"
