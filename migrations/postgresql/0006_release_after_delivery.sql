-- Release after delivery: schedule rows remember their order and whether a release delay
-- applies (gated); deliveries record the day from which gated captures may be released.
ALTER TABLE settlement_payments ADD COLUMN order_id TEXT NOT NULL DEFAULT '';
ALTER TABLE settlement_schedule ADD COLUMN order_id TEXT NOT NULL DEFAULT '';
ALTER TABLE settlement_schedule ADD COLUMN gated INTEGER NOT NULL DEFAULT 0;
CREATE TABLE settlement_deliveries (
    order_id TEXT PRIMARY KEY,
    delivered_on TEXT NOT NULL,
    release_from TEXT NOT NULL
);
