-- Core projections: tracking, journal, account balances, trial balance.
-- Amounts are integer minor units of the row's currency; times are microseconds since
-- 1970-01-01 UTC (business time "occurred", ledger time "recorded").
CREATE TABLE projection_positions (
    name text PRIMARY KEY,
    position bigint NOT NULL
);
CREATE TABLE journal_entries (
    position bigint PRIMARY KEY,
    event_id text NOT NULL,
    event_type text NOT NULL,
    occurred_at_us bigint NOT NULL,
    recorded_at_us bigint NOT NULL,
    memo text NOT NULL
);
CREATE TABLE journal_postings (
    position bigint NOT NULL,
    line integer NOT NULL,
    account text NOT NULL,
    currency text NOT NULL,
    debit_minor bigint NOT NULL,
    credit_minor bigint NOT NULL,
    occurred_at_us bigint NOT NULL,
    PRIMARY KEY (position, line)
);
CREATE TABLE account_balances (
    account text PRIMARY KEY,
    currency text NOT NULL,
    debits_minor bigint NOT NULL,
    credits_minor bigint NOT NULL,
    postings bigint NOT NULL
);
CREATE TABLE trial_balance (
    currency text PRIMARY KEY,
    debits_minor bigint NOT NULL,
    credits_minor bigint NOT NULL
);
