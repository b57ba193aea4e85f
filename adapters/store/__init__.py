"""Event stores: eventsourcing's recorders on SQLite and PostgreSQL, plus the hash chain.

Both extend the library's application recorder the way its own process recorder adds
tracking rows: extra rows written inside the same insert transaction (ADR 0003).
"""
