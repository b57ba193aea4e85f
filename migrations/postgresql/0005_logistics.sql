-- Late deliveries and compensations: what the compensation process manager reads.
CREATE TABLE logistics_orders (
    order_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    buyer_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    total_minor BIGINT NOT NULL
);
CREATE TABLE logistics_delays (
    order_id TEXT PRIMARY KEY,
    days_late INTEGER NOT NULL,
    carrier TEXT NOT NULL,
    shipment_id TEXT NOT NULL,
    reported_at TEXT NOT NULL
);
CREATE TABLE logistics_compensations (
    order_id TEXT PRIMARY KEY,
    compensation_id TEXT NOT NULL,
    buyer_id TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    funded_by TEXT NOT NULL,
    granted_at TEXT NOT NULL
);
