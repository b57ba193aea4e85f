-- Reconciliation: the ledger's items, imported lines, files, processor settlements, lifecycles
-- (completeness) and the exceptions found with their resolution. Dates are ISO text.
CREATE TABLE recon_items (
    reference TEXT NOT NULL,
    kind TEXT NOT NULL,
    psp TEXT NOT NULL,
    seller_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    gross_minor BIGINT NOT NULL,
    fee_minor BIGINT NOT NULL,
    item_date TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    settlement_id TEXT,
    PRIMARY KEY (reference, kind)
);
CREATE TABLE recon_lines (
    reference TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    line_no BIGINT NOT NULL,
    file_name TEXT NOT NULL,
    source TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    record_type TEXT NOT NULL,
    batch_id TEXT,
    direction TEXT NOT NULL,
    currency TEXT NOT NULL,
    gross_minor BIGINT,
    fee_minor BIGINT,
    net_minor BIGINT NOT NULL,
    booked_on TEXT NOT NULL,
    value_date TEXT,
    exchange_rate TEXT,
    event_id TEXT NOT NULL,
    PRIMARY KEY (reference, file_sha256, line_no)
);
-- Processor lines are read in key (reference) order and filtered as they stream: a full index
-- on source_kind would make SQLite sort the whole table in memory for the ORDER BY. Bank lines
-- are few and found through this partial index.
CREATE INDEX recon_lines_bank ON recon_lines (source_kind) WHERE source_kind = 'bank';
CREATE TABLE recon_files (
    file_sha256 TEXT PRIMARY KEY,
    file_name TEXT NOT NULL,
    source TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    format TEXT NOT NULL,
    lines BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    position BIGINT NOT NULL
);
CREATE TABLE recon_settlements (
    psp TEXT NOT NULL,
    settlement_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    net_minor BIGINT NOT NULL,
    fee_minor BIGINT NOT NULL,
    value_date TEXT NOT NULL,
    items BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (psp, settlement_id)
);
CREATE TABLE recon_lifecycle (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    stage TEXT NOT NULL,
    since TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seller_id TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE recon_freezes (
    seller_id TEXT NOT NULL,
    freeze_id TEXT NOT NULL,
    case_id TEXT NOT NULL,
    active BIGINT NOT NULL,
    PRIMARY KEY (seller_id, freeze_id)
);
CREATE INDEX recon_lifecycle_by_stage ON recon_lifecycle (stage, since);
CREATE TABLE recon_exceptions (
    exception_id TEXT PRIMARY KEY,
    level BIGINT NOT NULL,
    category TEXT NOT NULL,
    reference TEXT NOT NULL,
    source TEXT,
    currency TEXT,
    ledger_minor BIGINT,
    external_minor BIGINT,
    difference_minor BIGINT,
    item_date TEXT NOT NULL,
    found_on TEXT NOT NULL,
    detail TEXT NOT NULL,
    evidence TEXT NOT NULL,
    status TEXT NOT NULL,
    closed_on TEXT,
    decided_by TEXT,
    approved_by TEXT,
    adjustment_id TEXT,
    note TEXT,
    raised_event_id TEXT NOT NULL,
    closed_event_id TEXT
);
CREATE INDEX recon_exceptions_by_status ON recon_exceptions (status, category);
