"""Read models folded from the event log: journal, account balances, trial balance.

Each projection is a pure fold from a batch of recorded events to view writes
(``projections.views``); ``projections.runner`` pulls the log in batches and commits each
batch's writes together with the projections' positions, so a crash can never leave a view
ahead of or behind its tracked position. Stores for the writes live in ``adapters.views``.
"""
