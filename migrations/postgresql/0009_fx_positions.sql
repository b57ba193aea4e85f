-- The platform open FX positions and their carrying value in USD (IAS 21).
CREATE TABLE fx_positions (
    currency TEXT PRIMARY KEY,
    position_minor BIGINT NOT NULL,
    carrying_cents BIGINT NOT NULL,
    untracked BIGINT NOT NULL
);
