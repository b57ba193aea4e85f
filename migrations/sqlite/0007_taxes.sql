-- Taxes: orders as the tax process manager sees them, assessments, reversals, and a
-- per-site summary of every tax line (assessed minus reversed).
CREATE TABLE tax_orders (
    order_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    seller_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    seller_country TEXT NOT NULL,
    placed_at TEXT NOT NULL
);
CREATE TABLE tax_cancelled (
    order_id TEXT PRIMARY KEY,
    cancelled_at TEXT NOT NULL
);
CREATE TABLE tax_assessments (
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    assessment_id TEXT NOT NULL,
    site TEXT NOT NULL,
    seller_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    lines TEXT NOT NULL,
    PRIMARY KEY (order_id, kind)
);
CREATE TABLE tax_reversals (
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    reversed_at TEXT NOT NULL,
    PRIMARY KEY (order_id, kind)
);
CREATE TABLE tax_summary (
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    tax TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    lines BIGINT NOT NULL,
    PRIMARY KEY (site, kind, tax, currency)
);
