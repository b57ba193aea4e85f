-- AML: per-seller sliding windows (one JSON row each), alerts with evidence, cases and their log.
CREATE TABLE aml_windows (
    seller_id TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE aml_alerts (
    alert_id TEXT PRIMARY KEY,
    seller_id TEXT NOT NULL,
    site TEXT NOT NULL,
    typology TEXT NOT NULL,
    severity TEXT NOT NULL,
    raised_at_us BIGINT NOT NULL,
    evidence TEXT NOT NULL,
    summary TEXT NOT NULL,
    position BIGINT NOT NULL
);
CREATE INDEX aml_alerts_by_seller ON aml_alerts (seller_id, raised_at_us);
CREATE TABLE aml_cases (
    case_id TEXT PRIMARY KEY,
    seller_id TEXT NOT NULL,
    status TEXT NOT NULL,
    alert_ids TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    assignee TEXT NOT NULL,
    report TEXT NOT NULL
);
CREATE TABLE aml_case_log (
    case_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    action TEXT NOT NULL,
    by_whom TEXT NOT NULL,
    text TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (case_id, position)
);
