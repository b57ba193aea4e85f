-- Settlement: each capture's installments and dates, daily batches per site and currency,
-- holds, and every seller's money flows per currency, UTC day and kind (summed for balances
-- as of any date). settlement_orders and settlement_payments are the state the fold looks up.
CREATE TABLE settlement_orders (
    order_id TEXT PRIMARY KEY,
    site TEXT NOT NULL
);
CREATE TABLE settlement_payments (
    payment_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    method TEXT NOT NULL,
    installments INTEGER NOT NULL
);
CREATE TABLE settlement_schedule (
    event_id TEXT NOT NULL,
    installment INTEGER NOT NULL,
    of_installments INTEGER NOT NULL,
    payment_id TEXT NOT NULL,
    seller_id TEXT NOT NULL,
    site TEXT NOT NULL,
    currency TEXT NOT NULL,
    method TEXT NOT NULL,
    captured_at_us BIGINT NOT NULL,
    settles_on TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    rule TEXT NOT NULL,
    PRIMARY KEY (event_id, installment)
);
CREATE INDEX settlement_schedule_by_seller ON settlement_schedule (seller_id, currency, settles_on);
CREATE INDEX settlement_schedule_by_date ON settlement_schedule (settles_on, site, currency);
CREATE TABLE settlement_batches (
    site TEXT NOT NULL,
    currency TEXT NOT NULL,
    settles_on TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    items BIGINT NOT NULL,
    PRIMARY KEY (site, currency, settles_on)
);
CREATE TABLE seller_flows (
    seller_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    day TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (seller_id, currency, day, kind)
);
CREATE TABLE settlement_holds (
    hold_id TEXT PRIMARY KEY,
    seller_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    reason TEXT NOT NULL,
    release_on TEXT NOT NULL,
    held_on TEXT NOT NULL,
    released_on TEXT NOT NULL
);
CREATE INDEX settlement_holds_by_seller ON settlement_holds (seller_id, currency);
