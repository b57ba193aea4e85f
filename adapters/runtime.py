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
import os
import sys
from typing import Final

#: Allocations between young collections, then young collections per middle one, middle per old one.
GC_THRESHOLDS: Final = (100_000, 50, 100)


def tune_gc() -> None:
    """Freeze what is alive now and make cyclic collections rarer; idempotent."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def proc_self(file: str, field: str) -> int | None:
    """The number after ``field:`` in ``/proc/self/<file>`` (``status``, ``io``), or ``None`` (not Linux, no field)."""
    try:
        with open(f"/proc/self/{file}", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def status_mib(field: str) -> float | None:
    """A memory figure of this process from ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB, or ``None``."""
    kib = proc_self("status", field)
    return None if kib is None else kib / 1024


def reset_peak() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux >= 4.0); whether it could.

    ``ru_maxrss`` of a spawned child starts at its *parent's* peak, and imports peak above what opening a
    ledger leaves resident: either would hide what a long job itself adds.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return status_mib("VmHWM") is not None


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent ``parent`` dies (Linux ``PR_SET_PDEATHSIG``).

    For a helper process (a committer) whose work only matters while its parent can take the answer: killed with
    its parent, it leaves no half-finished group running against the ledger. The transaction in hand rolls back,
    as any crash's does. Elsewhere than Linux this does nothing. If the parent is already gone, the process exits.
    """
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(0)
