"""Process-wide settings for Quipu's long-running processes (ADR 0031).

Ingest allocates a few dozen small container objects per event (models, dicts, results), and
the service keeps up to 200,000 stream states alive between batches. With CPython's default
thresholds the cyclic collector runs every 700 net allocations and keeps re-walking those
long-lived states: 10-20 % of an ingest process's CPU, measured. The ledger's objects form no
cycles worth collecting promptly, so collections are made rarer, and what exists once a process
has started (modules, configuration) is moved out of the collector's sight.
"""

from __future__ import annotations

import gc
from typing import Final

#: Allocations between young collections, then young collections per middle one, middle per old one.
GC_THRESHOLDS: Final = (100_000, 50, 100)


def tune_gc() -> None:
    """Freeze what is alive now and make cyclic collections rarer; idempotent."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
