"""Deciding on a busy seller's wallet: the write side's cost per event as the wallet's history grows.

A marketplace's largest sellers book a release per order for years, and every one of their releases, holds and
payouts is decided on their one wallet stream (ADR 0002). For each size N, a wallet is folded from N releases,
N/10 payouts (requested, then sent) and N/10 holds (placed, then released); then 1,000 more releases, 100
payouts and 100 holds are decided on it, timed apart from parsing. Reports µs of CPU per event decided at each
size and the ratio of the largest size to the smallest: flat means O(log n) per event (ADR 0039).

    python -m benchmarks.wallet                  # sizes 1,000 10,000 100,000
    python -m benchmarks.wallet --sizes 1000 50000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from benchmarks.common import DEFAULT_RESULTS_DIR, machine, print_table, write_json
from domain.catalog import parse_event, to_current
from domain.envelope import Envelope
from domain.rules import State, evolve, initial_state
from tests.factories import held, hold_released, payout, payout_sent, released

STREAM = "wallet:S1"


def history(prefix: str, releases: int) -> list[Envelope]:
    """Releases of 10.00 BRL, and per ten of them a 1.00 payout requested and sent and a 1.00 hold placed and
    released: the wallet never runs short, so every event is accepted."""
    out: list[dict[str, object]] = []
    for i in range(releases):
        out.append(released(f"{prefix}R{i}", "10.00"))
        if i % 10 == 9:
            k = f"{prefix}{i}"
            out += [payout(f"P{k}", "1.00"), payout_sent(f"P{k}", "1.00"), held(f"H{k}", "1.00"),
                    hold_released(f"H{k}", "1.00")]  # fmt: skip
    return [to_current(parse_event(orjson.dumps(e))) for e in out]


def fold(state: State, events: Sequence[Envelope]) -> State:
    for e in events:
        state = evolve(state, e)
    return state


def measure(size: int) -> dict[str, float]:
    """µs of CPU per event decided on a wallet already holding ``size`` releases (and its payouts and holds)."""
    wallet = fold(initial_state(STREAM), history("A", size))
    more = history("B", 1000)
    start = time.process_time()
    fold(wallet, more)
    seconds = time.process_time() - start
    return {"size": size, "events": len(more), "us_per_event": 1e6 * seconds / len(more)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.wallet", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = ap.parse_args(argv)
    rows = []
    for size in args.sizes:
        rows.append(measure(size))
        print(f"  wallet of {size:>9,} releases: {rows[-1]['us_per_event']:8.1f} µs per event decided", flush=True)
    ratio = rows[-1]["us_per_event"] / rows[0]["us_per_event"]
    print()
    print_table(("releases on the wallet", "events decided", "µs per event"),
                [(int(r["size"]), int(r["events"]), r["us_per_event"]) for r in rows])  # fmt: skip
    print(f"\nlargest / smallest: {ratio:.2f}× (1.0 is flat)")
    out = args.results_dir / "wallet.json"
    write_json(out, {"benchmark": "wallet", "machine": machine(None), "results": rows, "ratio": ratio})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
