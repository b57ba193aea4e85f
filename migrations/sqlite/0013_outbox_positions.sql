-- The journal outbox: how far each outbound Kafka topic has been published from the log (ADR 0022).
-- A position moves only after the broker acknowledged every message up to it, and never backwards.
CREATE TABLE outbox_positions (
    topic TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
