-- FX rates as published (fx.rate_published events), looked up as of a time by pair.
CREATE TABLE fx_rates (
    base TEXT NOT NULL,
    quote TEXT NOT NULL,
    source TEXT NOT NULL,
    as_of_us BIGINT NOT NULL,
    rate TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (base, quote, source, as_of_us)
);
CREATE INDEX fx_rates_by_pair ON fx_rates (base, quote, as_of_us);
