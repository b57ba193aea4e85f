"""Replays as of a position, a record time or a business time, into snapshots that can be diffed."""

from __future__ import annotations

from adapters.bootstrap import Ledger, open_ledger
from adapters.replay import diff, replay, snapshot_store
from projections.runner import ProjectionRunner
from tests.factories import authorized, captured, fee


def _snapshot_checksums(ledger: Ledger, name: str) -> dict[str, str]:
    store = snapshot_store(ledger, name)
    try:
        return ProjectionRunner(ledger.store, store, ledger.runner.projections).checksums()
    finally:
        store.close()


def test_a_replay_to_position_n_equals_the_live_view_when_the_log_had_n_events(ledger_url: str) -> None:
    events = [
        e for i in range(12) for e in (authorized(f"p{i}", "10.00"), captured(f"p{i}", "7.00"), fee(f"f{i}", "1.00"))
    ]
    with open_ledger(ledger_url) as ledger:
        ledger.service.post(events[:20])
        ledger.runner.run()
        live_at_20 = ledger.runner.checksums()
        ledger.service.post(events[20:])
        ledger.runner.run()
        try:
            replay(ledger, "at20", ledger.runner.projections, to_position=20)
            assert _snapshot_checksums(ledger, "at20") == live_at_20
            replay(ledger, "head", ledger.runner.projections, to_position=ledger.store.head())
            assert _snapshot_checksums(ledger, "head") == ledger.runner.checksums()
            changed = diff(ledger, "at20", "head", ledger.runner.projections)
            assert {row["table"] for row in changed} == {"journal_entries", "journal_postings", "account_balances",
                                                         "trial_balance", "settlement_payments",
                                                         "settlement_schedule", "seller_flows", "recon_items",
                                                         "recon_lifecycle"}  # fmt: skip
            assert diff(ledger, "head", "head", ledger.runner.projections) == []
        finally:
            _drop_snapshots(ledger, "at20", "head")


def test_a_back_dated_event_changes_the_effective_view_but_not_the_recorded_one(ledger_url: str) -> None:
    early = captured("p1", "10.00")
    early["occurred_at"] = "2026-10-10T12:00:00-03:00"
    late = captured("p2", "20.00")
    late["occurred_at"] = "2026-10-20T12:00:00-03:00"
    backdated = captured("p3", "5.00")
    backdated["occurred_at"] = "2026-10-05T12:00:00-03:00"
    import datetime as dt

    oct15 = int(dt.datetime(2026, 10, 15, tzinfo=dt.timezone(dt.timedelta(hours=-3))).timestamp()) * 1_000_000
    with open_ledger(ledger_url) as ledger:
        auths = [authorized(f"p{i}", "50.00") for i in (1, 2, 3)]
        auths[0]["occurred_at"] = auths[2]["occurred_at"] = "2026-10-01T00:00:00-03:00"
        ledger.service.post([*auths, early, late])
        known_before = ledger.store.read(4, 1)[0].recorded_at_us
        try:
            replay(ledger, "eff_before", ledger.runner.projections, as_of_effective_us=oct15)
            replay(ledger, "rec_before", ledger.runner.projections, as_of_recorded_us=known_before)
            ledger.service.post([backdated])
            replay(ledger, "eff_after", ledger.runner.projections, as_of_effective_us=oct15)
            replay(ledger, "rec_after", ledger.runner.projections, as_of_recorded_us=known_before)

            def trial(name: str) -> list[tuple[object, ...]]:
                store = snapshot_store(ledger, name)
                try:
                    return store.query("SELECT currency, debits_minor FROM trial_balance")
                finally:
                    store.close()

            assert trial("eff_before") == [("BRL", 1000)]  # only the 10 Oct capture had happened by 15 Oct
            assert trial("eff_after") == [("BRL", 1500)]  # the back-dated 5 Oct capture now counts
            assert trial("rec_before") == trial("rec_after") == [("BRL", 3000)]  # what the ledger knew then
        finally:
            _drop_snapshots(ledger, "eff_before", "rec_before", "eff_after", "rec_after")


def _drop_snapshots(ledger: Ledger, *names: str) -> None:
    if ledger.dialect != "postgresql":
        return  # SQLite snapshots live in the test's temporary directory
    import psycopg
    from psycopg.sql import SQL, Identifier

    target = ledger.views.target  # type: ignore[union-attr]
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        for name in names:
            conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(f"{target.schema}_snap_{name}")))
