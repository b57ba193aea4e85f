-- Every published version of every rule file (config.published events).
CREATE TABLE config_versions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    effective_from TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    published_by TEXT NOT NULL,
    published_at TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
