"""Quipu's accounting core: money, accounts, journal entries and the hash chain.

This package imports nothing else of Quipu's and does no IO. Every amount in the
system is made by :mod:`ledger.money`; every journal entry is a
:class:`ledger.journal.JournalEntry`, which refuses to exist unbalanced.
"""
