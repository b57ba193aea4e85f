-- A hold id is unique per seller, not across sellers: the settlement run names a rolling
-- reserve RSV<day>-<currency>-<released>, which two sellers released the same day share.
-- Keyed by hold id alone, the second seller's reserve overwrote the first's row and was
-- never released. The table is re-keyed by (seller, hold id); because rows may already
-- have been overwritten, the settlement projection is emptied and set back to position 0,
-- so the next `quipu project` rebuilds it from the log.
DROP VIEW analyst_settlement_holds;
DROP TABLE settlement_holds;
CREATE TABLE settlement_holds (
    hold_id TEXT NOT NULL,
    seller_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    reason TEXT NOT NULL,
    release_on TEXT NOT NULL,
    held_on TEXT NOT NULL,
    released_on TEXT NOT NULL,
    PRIMARY KEY (seller_id, hold_id)
);
CREATE INDEX settlement_holds_by_seller ON settlement_holds (seller_id, currency);
CREATE INDEX settlement_holds_by_release ON settlement_holds (release_on);
CREATE VIEW analyst_settlement_holds AS
SELECT
    t.hold_id AS hold_id,
    t.seller_id AS seller_id,
    t.currency AS currency,
    CASE WHEN cx.exponent = 0 THEN CAST(t.amount_minor AS TEXT) ELSE CASE WHEN t.amount_minor < 0 THEN '-' ELSE '' END || CAST(abs(t.amount_minor) / cx.minor_per_major AS TEXT) || '.' || substr(CAST(cx.minor_per_major + abs(t.amount_minor) % cx.minor_per_major AS TEXT), 2) END AS amount,
    t.amount_minor AS amount_minor,
    t.reason AS reason,
    NULLIF(t.held_on, '') AS held_on,
    NULLIF(t.release_on, '') AS release_on,
    NULLIF(t.released_on, '') AS released_on
FROM settlement_holds t LEFT JOIN analyst_currencies cx ON cx.currency = t.currency;
DELETE FROM settlement_orders;
DELETE FROM settlement_payments;
DELETE FROM settlement_schedule;
DELETE FROM settlement_batches;
DELETE FROM seller_flows;
DELETE FROM settlement_deliveries;
UPDATE projection_positions SET position = 0 WHERE name = 'settlement';
