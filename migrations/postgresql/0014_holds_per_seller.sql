-- A hold id is unique per seller, not across sellers: the settlement run names a rolling
-- reserve RSV<day>-<currency>-<released>, which two sellers released the same day share.
-- Keyed by hold id alone, the second seller's reserve overwrote the first's row and was
-- never released. The table is re-keyed by (seller, hold id) in place (so the analyst view
-- over it and its grants stay); because rows may already have been overwritten, the
-- settlement projection is emptied and set back to position 0, so the next `quipu project`
-- rebuilds it from the log.
DELETE FROM settlement_holds;
ALTER TABLE settlement_holds DROP CONSTRAINT settlement_holds_pkey, ADD PRIMARY KEY (seller_id, hold_id);
CREATE INDEX settlement_holds_by_release ON settlement_holds (release_on);
DELETE FROM settlement_orders;
DELETE FROM settlement_payments;
DELETE FROM settlement_schedule;
DELETE FROM settlement_batches;
DELETE FROM seller_flows;
DELETE FROM settlement_deliveries;
UPDATE projection_positions SET position = 0 WHERE name = 'settlement';
