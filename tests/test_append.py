"""Appending on SQLite and PostgreSQL: idempotency, conflicts, write-side rules, nothing half-written."""

from __future__ import annotations

import copy

from adapters.bootstrap import Ledger
from domain.service import LedgerService, Outcome
from tests.factories import adjustment, authorized, captured, chargeback, ev, fee, payout, placed, refunded, released


def outcomes(ledger: Ledger, events: list[dict[str, object]]) -> list[str]:
    return [r.outcome.value for r in ledger.service.post(events)]


def test_positions_are_gap_free_and_in_commit_order(ledger: Ledger) -> None:
    first = ledger.service.post([authorized("p1", "100.00"), captured("p1", "60.00")])
    second = ledger.service.post([fee("f1", "1.00")])
    assert [r.position for r in first + second] == [1, 2, 3]
    assert [r.position for r in ledger.store.read(0, 10)] == [1, 2, 3]
    assert ledger.store.head() == 3


def test_same_event_twice_is_recorded_once_and_reported_as_duplicate(ledger: Ledger) -> None:
    a = authorized("p1", "100.00")
    assert outcomes(ledger, [a]) == ["appended"]
    again = ledger.service.post([a])
    assert again[0].outcome is Outcome.DUPLICATE and again[0].position == 1
    # A fresh service (another process, no cache) agrees.
    from domain.service import LedgerService

    assert LedgerService(ledger.store).post([a])[0].outcome is Outcome.DUPLICATE
    assert ledger.store.head() == 1


def test_same_id_with_another_body_is_a_conflict_naming_the_id(ledger: Ledger) -> None:
    a = authorized("p1", "100.00")
    ledger.service.post([a])
    changed = copy.deepcopy(a)
    changed["payload"]["amount"]["amount"] = "100.01"
    result = ledger.service.post([changed])[0]
    assert result.outcome is Outcome.CONFLICT
    assert result.reason == f"event_id: {a['event_id']} was already recorded with a different body"
    assert ledger.store.head() == 1


def test_duplicates_and_conflicts_inside_one_batch(ledger: Ledger) -> None:
    a = authorized("p1", "100.00")
    changed = copy.deepcopy(a)
    changed["source"] = "elsewhere"
    results = ledger.service.post([a, a, changed])
    assert [r.outcome.value for r in results] == ["appended", "duplicate", "conflict"]
    assert results[1].position == results[0].position == 1


def test_a_normalised_amount_is_the_same_body(ledger: Ledger) -> None:
    a = authorized("p1", "100.5")
    b = copy.deepcopy(a)
    b["payload"]["amount"]["amount"] = "100.50"
    assert outcomes(ledger, [a, b]) == ["appended", "duplicate"]


def test_captures_never_exceed_the_authorization(ledger: Ledger) -> None:
    results = ledger.service.post([authorized("p1", "100.00"), captured("p1", "60.00"), captured("p1", "40.01")])
    assert [r.outcome.value for r in results] == ["appended", "appended", "rejected"]
    assert results[2].reason == "payload.amount: capture of 40.01 BRL exceeds the 40.00 BRL still authorized"
    assert outcomes(ledger, [captured("p1", "40.00")]) == ["appended"]


def test_refunds_and_chargebacks_never_exceed_what_was_captured(ledger: Ledger) -> None:
    ledger.service.post([authorized("p1", "100.00"), captured("p1", "80.00")])
    results = ledger.service.post(
        [
            refunded("p1", "r1", "50.00"),
            refunded("p1", "r2", "30.01"),
            chargeback("p1", "c1", "30.00"),
            refunded("p1", "r1", "0.01"),
        ]
    )
    assert [r.outcome.value for r in results] == ["appended", "rejected", "appended", "rejected"]
    assert "refund of 30.01 BRL exceeds the 30.00 BRL captured" in (results[1].reason or "")
    assert results[3].reason == "payload.refund_id: refund r1 was already issued"


def test_events_must_match_their_payment(ledger: Ledger) -> None:
    ledger.service.post([authorized("p1", "100.00")])
    wrong_seller = captured("p1", "10.00", seller="S9")
    wrong_ccy = captured("p1", "10.00", ccy="MXN")
    never = captured("p404", "10.00")
    results = ledger.service.post([wrong_seller, wrong_ccy, never])
    assert results[0].reason == "payload.seller_id: S9 is not the payment's seller S1"
    assert results[1].reason == "payload.amount.currency: MXN is not the payment's currency BRL"
    assert results[2].reason == "payload.payment_id: payment p404 was never authorized"
    assert ledger.store.head() == 1


def test_payouts_never_exceed_available_funds(ledger: Ledger) -> None:
    results = ledger.service.post(
        [released("L1", "50.00"), payout("W1", "30.00"), payout("W2", "20.01"), payout("W3", "20.00")]
    )
    assert [r.outcome.value for r in results] == ["appended", "appended", "rejected", "appended"]
    expected = "payout of 20.01 BRL exceeds seller S1's available 20.00 BRL (held funds and earlier payouts excluded)"
    assert results[2].reason == f"payload.amount: {expected}"


def test_payout_lifecycle_is_enforced(ledger: Ledger) -> None:
    ledger.service.post([released("L1", "50.00"), payout("W1", "50.00")])
    base = {"payout_id": "W1", "seller_id": "S1", "amount": {"amount": "50.00", "currency": "BRL"}}
    failed_first = ev("payout.failed", {**base, "reason": "closed"})
    sent = ev("payout.sent", {**base, "bank_reference": "B1"})
    failed = ev("payout.failed", {**base, "reason": "closed"})
    results = ledger.service.post([failed_first, sent, failed, payout("W2", "50.00")])
    assert [r.outcome.value for r in results] == ["rejected", "appended", "appended", "appended"]
    assert results[0].reason == "payload.payout_id: payout W1 is requested, not sent"


def test_an_unbalanced_adjustment_is_refused_at_append(ledger: Ledger) -> None:
    bad = adjustment("a1", [("seller:S1:available:BRL", "debit", "10.00", "BRL"),
                            ("platform:main:adjustments:MXN", "credit", "10.00", "MXN")])  # fmt: skip
    result = ledger.service.post([bad])[0]
    assert result.outcome is Outcome.REJECTED
    assert "entry does not balance" in (result.reason or "")
    assert ledger.store.head() == 0


def test_a_bad_event_writes_nothing_and_does_not_block_the_rest(ledger: Ledger) -> None:
    bad = captured("p1", "10.00")
    bad["payload"]["amount"]["amount"] = 10.0
    results = ledger.service.post([authorized("p1", "100.00"), bad, fee("f1", "1.00")])
    assert [r.outcome.value for r in results] == ["appended", "rejected", "appended"]
    assert results[1].reason is not None and "payload.amount.amount: must be a decimal string" in results[1].reason
    assert [r.topic for r in ledger.store.read(0, 10)] == ["payment.authorized", "fee.charged"]


def test_a_stale_cache_never_causes_a_wrong_rejection(ledger: Ledger) -> None:
    from domain.service import LedgerService

    a = LedgerService(ledger.store)
    b = LedgerService(ledger.store)
    a.post([authorized("p1", "100.00"), captured("p1", "60.00")])
    b.post([captured("p1", "40.00")])
    # ``a`` still caches 60 captured; the refund of 100 is valid against the store.
    assert a.post([refunded("p1", "r1", "100.00")])[0].outcome is Outcome.APPENDED
    # ``a`` cached stale state for a stream ``b`` then moved on: a write conflict, retried.
    assert b.post([refunded("p1", "r2", "0.01")])[0].outcome is Outcome.REJECTED


def test_a_shared_service_catches_its_cache_up_instead_of_colliding(ledger: Ledger) -> None:
    from domain.rules import stream_id

    for shared, conflicts in [(False, 1), (True, 0)]:
        pid = f"p-{shared}"
        store = _Counting(ledger)
        a, b = LedgerService(ledger.store), LedgerService(store, shared=shared)  # type: ignore[arg-type]
        b.post([authorized(pid, "100.00")])  # b caches the stream at version 1
        a.post([captured(pid, "60.00")])  # a moves it on to version 2
        assert b.post([captured(pid, "40.00")])[0].outcome is Outcome.APPENDED
        assert b.post([captured(pid, "0.01")])[0].outcome is Outcome.REJECTED  # decided on all three
        assert (store.appends, store.conflicts) == (2 + conflicts, conflicts)
        sid = stream_id(f"payment:{pid}")
        newer = ledger.store.stream_events([sid], [1])[sid]
        assert [(v, e.type) for v, e in newer] == [(2, "payment.captured"), (3, "payment.captured")]
        assert ledger.store.stream_events([sid], [3]) == {}


def test_a_stream_check_refuses_an_event_filed_under_another_stream_and_nothing_else(ledger: Ledger) -> None:
    batch = [authorized("p1", "100.00"), authorized("p2", "100.00"), authorized("p3", "100.00")]
    seen: list[tuple[int, str]] = []

    def check(index: int, stream: str) -> str | None:
        seen.append((index, stream))
        return f"key: not {stream}" if index == 1 else None

    results = ledger.service.post(batch, stream_check=check)
    assert seen == [(0, "payment:p1"), (1, "payment:p2"), (2, "payment:p3")]
    assert [r.outcome for r in results] == [Outcome.APPENDED, Outcome.REJECTED, Outcome.APPENDED]
    assert results[1].reason == "key: not payment:p2" and results[1].event_id == batch[1]["event_id"]
    assert ledger.store.head() == 2
    # Once routed right it is appended: the refusal wrote nothing.
    assert [r.outcome for r in ledger.service.post([batch[1]])] == [Outcome.APPENDED]


class _Counting:
    """A ledger's store, counting id lookups, appends and the appends refused as write conflicts."""

    def __init__(self, ledger: Ledger) -> None:
        self.store = ledger.store
        self.lookups, self.appends, self.conflicts = 0, 0, 0
        self.reads: list[int] = []
        """How many streams each stream read asked for."""

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def known_events(self, event_ids: object) -> object:
        self.lookups += 1
        return self.store.known_events(event_ids)  # type: ignore[arg-type]

    def stream_events(self, stream_ids: list[object], after: object = None) -> object:
        self.reads.append(len(stream_ids))
        return self.store.stream_events(stream_ids, after)  # type: ignore[arg-type]

    def append(self, records: object) -> list[int]:
        from domain.ports import WriteConflict

        self.appends += 1
        try:
            return self.store.append(records)  # type: ignore[arg-type]
        except WriteConflict:
            self.conflicts += 1
            raise


def _counted(ledger: Ledger) -> tuple[_Counting, LedgerService]:
    store = _Counting(ledger)
    return store, LedgerService(store)  # type: ignore[arg-type]


def test_new_events_are_appended_without_looking_their_ids_up(ledger: Ledger) -> None:
    store, service = _counted(ledger)
    results = service.post([authorized("p1", "100.00"), captured("p1", "60.00"), fee("f1", "1.00")])
    assert [r.outcome.value for r in results] == ["appended", "appended", "appended"]
    assert (store.lookups, store.appends, store.conflicts) == (0, 1, 0)


def test_a_refusal_looks_the_ids_up_first_so_a_repost_is_a_duplicate(ledger: Ledger) -> None:
    a, c = authorized("p1", "100.00"), captured("p1", "60.00")
    ledger.service.post([a, c])
    store, service = _counted(ledger)
    # The repost's state already holds its own effect, so the rules refuse it: the lookup names it a duplicate.
    # The batch goes on from the lookup: the refusal of the over-capture stands, the new fee is appended.
    results = service.post([c, captured("p1", "50.00"), fee("f1", "1.00")])
    assert [(r.outcome.value, r.position) for r in results] == [("duplicate", 2), ("rejected", None), ("appended", 3)]
    assert (store.lookups, store.appends, store.conflicts) == (1, 1, 0)


def test_an_event_presumed_new_but_recorded_is_caught_by_the_unique_id(ledger: Ledger) -> None:
    a = authorized("p1", "100.00")
    store, stale = _counted(ledger)
    stale.post([a])
    c = captured("p1", "60.00")
    LedgerService(ledger.store).post([c])  # another process records the capture
    # ``stale`` trusts its cached state, which lacks the capture: its rules accept it and the append is refused.
    # The next attempt looks the id up: a duplicate, and a changed body is a conflict.
    changed = copy.deepcopy(c)
    changed["source"] = "elsewhere"
    results = stale.post([c, changed])
    assert [(r.outcome.value, r.position) for r in results] == [("duplicate", 2), ("conflict", 2)]
    assert (store.lookups, store.appends, store.conflicts) == (1, 2, 1)
    assert ledger.store.head() == 2


def test_a_refusal_after_an_accepted_repost_decides_the_batch_again(ledger: Ledger) -> None:
    store, stale = _counted(ledger)
    stale.post([authorized("p1", "100.00")])
    c = captured("p1", "60.00")
    LedgerService(ledger.store).post([c])
    # The repost is accepted on the stale state, then a new event of another stream is refused: the lookup finds
    # the accepted one recorded, so the batch is decided again from the store instead of appending it.
    results = stale.post([c, refunded("p2", "r1", "1.00")])
    assert [r.outcome.value for r in results] == ["duplicate", "rejected"]
    assert (store.lookups, store.appends, store.conflicts) == (2, 1, 0)
    assert ledger.store.head() == 2


def test_a_shared_service_appending_alone_trusts_its_cache_until_someone_else_writes(ledger: Ledger) -> None:
    # ADR 0043: a shared service (the HTTP committer) whose last two appends were back to back in the log is the
    # only writer: it skips the catch-up read. A write from elsewhere shows as a write conflict, caught up.
    store = _Counting(ledger)
    b = LedgerService(store, shared=True)  # type: ignore[arg-type]
    b.post([authorized("p1", "100.00")])
    b.post([authorized("p2", "100.00")])  # back to back with its first: b is alone
    assert store.reads == []  # an authorisation opens its stream: presumed new, not read (ADR 0046)
    b.post([captured("p1", "30.00"), captured("p2", "30.00")])
    assert store.reads == []  # alone: decided on the cache, no read
    LedgerService(ledger.store).post([captured("p1", "70.00")])  # someone else moves p1 on
    assert b.post([refunded("p1", "r1", "100.00")])[0].outcome is Outcome.APPENDED  # against all 100 captured
    # On the cache the refund exceeded the 30 captured: that refusal was checked (one read: p1 had moved on), and
    # the batch decided again after catching p1 up (one more), with no write conflict.
    assert store.conflicts == 0 and store.reads == [1, 1]
    b.post([captured("p2", "10.00")])
    assert len(store.reads) == 3  # not alone any more (another writer's event lay between its appends): caught up
    # Back to back again (positions 6 and 7): alone. A refusal on the cache is checked with one read and stands.
    assert b.post([captured("p2", "60.01")])[0].outcome is Outcome.REJECTED  # 100 authorized, 40 captured
    assert store.reads == [1] * 4 and store.conflicts == 0
    assert ledger.store.head() == 7


def test_a_refusal_on_a_current_cached_stream_stands_without_deciding_the_batch_again(ledger: Ledger) -> None:
    store, service = _counted(ledger)
    service.post([authorized("p1", "100.00"), captured("p1", "60.00")])
    results = service.post([refunded("p1", "r1", "100.00"), authorized("p2", "5.00")])  # more than captured
    assert [r.outcome.value for r in results] == ["rejected", "appended"]
    assert "refund" in (results[0].reason or "")
    # The new streams were presumed new, opened by their authorisations (ADR 0046); one read of p1 alone proved
    # its cached state current. The batch was decided once and appended once.
    assert store.reads == [1] and (store.appends, store.conflicts) == (2, 0)


def test_streams_opened_by_their_first_event_are_not_read(ledger: Ledger) -> None:
    store, service = _counted(ledger)
    results = service.post([placed("O1", "BR", "100.00"), authorized("p1", "100.00"), fee("f1", "1.00")])
    assert [r.outcome.value for r in results] == ["appended"] * 3
    assert (store.reads, store.lookups, store.appends, store.conflicts) == ([], 0, 1, 0)
    # A capture needs its payment's state: a service that has not seen p1 reads it.
    store, fresh = _counted(ledger)
    assert fresh.post([captured("p1", "60.00")])[0].outcome is Outcome.APPENDED
    assert store.reads == [1]


def test_a_stream_presumed_new_that_exists_is_caught_by_its_version(ledger: Ledger) -> None:
    a = authorized("p1", "100.00")
    ledger.service.post([a, placed("O1", "BR", "100.00")])
    # A fresh service's cache is empty: both streams are presumed new. Version 1 of each is taken, so the append
    # is refused, and the batch decided again on the streams as stored: a repost is a duplicate, and a new event
    # id for an order already placed is refused as it would have been with a read.
    for event, outcome, position, reason in [
        (a, "duplicate", 1, None),
        (placed("O1", "BR", "100.00"), "rejected", None, "payload.order_id: order O1 was already placed"),
    ]:
        store, fresh = _counted(ledger)
        result = fresh.post([event])[0]
        assert (result.outcome.value, result.position, result.reason) == (outcome, position, reason)
        assert (store.appends, store.conflicts) == (1, 1)
    assert ledger.store.head() == 2


def test_an_in_batch_refusal_on_a_stream_presumed_new_is_checked_against_the_store(ledger: Ledger) -> None:
    ledger.service.post([authorized("p1", "100.00")])
    store, fresh = _counted(ledger)
    # The second authorisation is refused on the first one's in-batch state; before that refusal stands, the
    # store is asked whether p1 really was new. It was not: the batch is decided again from the store, and the
    # first is refused too, with no append tried.
    results = fresh.post([authorized("p1", "80.00"), authorized("p1", "70.00")])
    assert [r.outcome.value for r in results] == ["rejected", "rejected"]
    assert all("already authorized" in (r.reason or "") for r in results)
    assert (store.appends, store.conflicts) == (0, 0)
    assert ledger.store.head() == 1


def test_a_refusal_on_a_stream_presumed_new_is_checked_against_the_store(ledger: Ledger) -> None:
    lines = [
        ("seller:S1:available:BRL", "debit", "10.00", "BRL"),
        ("platform:main:adjustments:BRL", "credit", "10.00", "BRL"),
    ]
    assert ledger.service.post([adjustment("a1", lines)])[0].outcome is Outcome.APPENDED
    store, fresh = _counted(ledger)
    unbalanced = adjustment("a1", [lines[0], ("platform:main:adjustments:MXN", "credit", "10.00", "MXN")])
    result = fresh.post([unbalanced])[0]
    # On the presumed empty stream only the balance could refuse it; the store shows a1 booked already, and that
    # is the refusal reported, as it is without the presumption. Nothing was appended.
    assert result.outcome is Outcome.REJECTED
    assert "already booked" in (result.reason or ""), result.reason
    assert store.reads == [1, 1] and (store.appends, store.conflicts) == (0, 0)
    assert ledger.store.head() == 1


def test_the_stream_cache_evicts_the_least_recently_used(ledger: Ledger) -> None:
    store = _Counting(ledger)
    service = LedgerService(store, cache_streams=2)  # type: ignore[arg-type]
    for event in [authorized("p1", "100.00"), authorized("p2", "100.00"), captured("p1", "10.00")]:
        service.post([event])
    # p1 was used after p2, so a third stream evicts p2.
    service.post([authorized("p3", "100.00")])
    assert store.reads == []
    assert service.post([captured("p1", "10.00")])[0].outcome is Outcome.APPENDED
    assert store.reads == []  # p1 still cached
    assert service.post([captured("p2", "10.00")])[0].outcome is Outcome.APPENDED
    assert store.reads == [1]  # p2 was evicted: read again
