"""View stores for the projections, on SQLite and PostgreSQL, and the migration runner."""
