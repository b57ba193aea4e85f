"""Taxes from dated rule tables: consumption taxes per site, and import duties on small parcels.

The tables are data (``config/*.toml``), parsed into the models here; the calculations are
pure functions of a table, an amount and a date, so a replay with the tables as they were
gives the figures that were booked.
"""
