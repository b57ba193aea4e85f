"""Numbered SQL migrations for the projection tables, one folder per dialect.

Files only ever grow: a new change is a new file. ``quipu db upgrade`` applies the missing
ones in order and refuses to run if an applied file was edited (its SHA-256 is recorded).
The event-store tables belong to eventsourcing's recorders, which create them.
"""
