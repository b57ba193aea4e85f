-- Core projections: tracking, journal, account balances, trial balance.
-- Amounts are integer minor units of the row's currency; times are microseconds since
-- 1970-01-01 UTC (business time "occurred", ledger time "recorded").
CREATE TABLE projection_positions (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE journal_entries (
    position INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at_us INTEGER NOT NULL,
    recorded_at_us INTEGER NOT NULL,
    memo TEXT NOT NULL
);
CREATE TABLE journal_postings (
    position INTEGER NOT NULL,
    line INTEGER NOT NULL,
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    debit_minor INTEGER NOT NULL,
    credit_minor INTEGER NOT NULL,
    occurred_at_us INTEGER NOT NULL,
    PRIMARY KEY (position, line)
) WITHOUT ROWID;
CREATE TABLE account_balances (
    account TEXT PRIMARY KEY,
    currency TEXT NOT NULL,
    debits_minor INTEGER NOT NULL,
    credits_minor INTEGER NOT NULL,
    postings INTEGER NOT NULL
);
CREATE TABLE trial_balance (
    currency TEXT PRIMARY KEY,
    debits_minor INTEGER NOT NULL,
    credits_minor INTEGER NOT NULL
);
