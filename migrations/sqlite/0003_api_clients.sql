-- OAuth2 clients of the HTTP API (client-credentials grant). Secrets are stored only as
-- scrypt hashes with a per-client salt; revoked clients keep their row for the audit trail.
CREATE TABLE api_clients (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
