"""Several processes appending at once lose nothing, duplicate nothing and never overdraw."""

from __future__ import annotations

import multiprocessing as mp
import random
from typing import Any

import orjson
import pytest

from adapters.bootstrap import open_ledger
from domain.integrity import verify_chain
from tests.factories import authorized, captured, payout, released

WRITERS = 4


def _writer(url: str, events: list[bytes], seed: int, out: Any, shared: bool) -> None:
    rng = random.Random(seed)
    counts = {"appended": 0, "duplicate": 0, "rejected": 0, "conflict": 0}
    with open_ledger(url) as ledger:
        ledger.service.shared = shared
        i = 0
        while i < len(events):
            size = rng.randint(1, 40)
            for r in ledger.service.post(events[i : i + size]):
                counts[r.outcome.value] += 1
            i += size
    out.put(counts)


@pytest.mark.parametrize("shared", [False, True], ids=["cache-trusted", "cache-caught-up"])
def test_concurrent_writers_lose_and_duplicate_nothing(ledger_url: str, shared: bool) -> None:
    with open_ledger(ledger_url):
        pass  # create the schema once, before the writers race
    shared_events = [authorized(f"p{i}", "100.00") for i in range(60)] + [released(f"L{i}", "10.00") for i in range(30)]
    per_writer: list[list[dict[str, Any]]] = []
    for w in range(WRITERS):
        own = [captured(f"p{i}", "60.00") for i in range(60)]  # each writer races for the same captures
        own += [payout(f"W{w}-{i}", "40.00") for i in range(5)]  # and for the same wallet
        per_writer.append(own)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = []
    for w in range(WRITERS):
        rng = random.Random(w)
        # Each writer posts every shared event (in its own order) before its racing ones, so
        # when it races, the authorizations and releases are in the store.
        mine, racing = shared_events[:], per_writer[w][:]
        rng.shuffle(mine)
        rng.shuffle(racing)
        raw = [orjson.dumps(e) for e in mine + racing]
        procs.append(ctx.Process(target=_writer, args=(ledger_url, raw, w, queue, shared)))
    for p in procs:
        p.start()
    totals = {"appended": 0, "duplicate": 0, "rejected": 0, "conflict": 0}
    for _ in procs:
        for k, v in queue.get(timeout=300).items():
            totals[k] += v
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    with open_ledger(ledger_url) as ledger:
        records = ledger.store.read(0, 100_000)
        ids = [r.event_id for r in records]
        assert len(ids) == len(set(ids)), "an event was recorded twice"
        assert totals["appended"] == len(records) == ledger.store.head()
        assert totals["conflict"] == 0
        # Every shared event is stored exactly once; the other copies were duplicates.
        assert {str(e["event_id"]) for e in shared_events} <= {str(i) for i in ids}
        assert totals["duplicate"] == (WRITERS - 1) * len(shared_events)
        # No payment was captured beyond its authorization: exactly one 60.00 capture each.
        captures = [r for r in records if r.topic == "payment.captured"]
        assert len(captures) == 60
        # No wallet overdraw: 300.00 released, payouts of 40.00 → at most 7 accepted.
        payouts = [r for r in records if r.topic == "payout.requested"]
        assert len(payouts) == 7
        assert verify_chain(ledger.store).broken is None
        ledger.runner.run()
        trial = ledger.views.query("SELECT currency, debits_minor, credits_minor FROM trial_balance")
        assert trial and all(d == c for _, d, c in trial)
