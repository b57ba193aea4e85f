#!/usr/bin/env bash
# A Kafka-protocol broker for development and benchmarks: the noida-db binary (shared/KAFKA.md says why
# that one), Kafka service only, with a fresh data directory each start. The tests start their own.
#
#   scripts/start-kafka.sh start    # wipes KAFKA_DIR/data, starts, waits for a metadata round-trip
#   scripts/start-kafka.sh stop     # SIGTERM, then SIGKILL after 10 s
#
# KAFKA_PORT (9092), KAFKA_DIR (/tmp/quipu-kafka) and PY (.venv/bin/python) may be set. Prints the
# bootstrap address to use as --brokers.
set -euo pipefail
cd "$(dirname "$0")/.."
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_DIR="${KAFKA_DIR:-/tmp/quipu-kafka}"
PY="${PY:-.venv/bin/python}"
PID_FILE="$KAFKA_DIR/broker.pid"

stop() {
    [ -f "$PID_FILE" ] || return 0
    local pid
    pid="$(cat "$PID_FILE")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        # A clean stop writes the broker's data file; it takes ~2 s, longer with more data.
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
}

start() {
    local bin
    bin="$("$PY" -c 'import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))')" || {
        echo "noida-db is not installed: $PY -m pip install noida-db==0.2.3" >&2
        exit 1
    }
    chmod +x "$bin"
    stop
    rm -rf "$KAFKA_DIR/data"
    mkdir -p "$KAFKA_DIR/data"
    # The binary itself, not the noida-db console script: the script is a wrapper whose PID does not stop
    # the broker. --only kafka: otherwise it also opens PostgreSQL, MySQL and Redis lookalikes on their
    # usual ports, and 5432 is the real PostgreSQL's.
    "$bin" start --data-dir "$KAFKA_DIR/data" --only kafka --kafka-port "$KAFKA_PORT" >"$KAFKA_DIR/broker.log" 2>&1 &
    echo $! >"$PID_FILE"
    if ! "$PY" -m adapters.kafka.broker wait "127.0.0.1:$KAFKA_PORT" 30; then
        tail -n 20 "$KAFKA_DIR/broker.log" >&2
        stop
        exit 1
    fi
    echo "127.0.0.1:$KAFKA_PORT"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
