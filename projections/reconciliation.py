"""What reconciliation reads and what it found, as a fold of the log.

* ``recon_items``: the ledger's side of level 2 — each capture (with the processing fees charged
  on it), refund, chargeback and won chargeback, keyed by (reference, kind), with the processor
  settlement that paid it once one did;
* ``recon_lines``: every imported line, keyed by (reference, file, line) so a run reads both
  sides already sorted by reference;
* ``recon_files``, ``recon_settlements``: imported files and booked processor settlements;
* ``recon_lifecycle``: the latest stage of every order, payment and payout (completeness);
* ``recon_exceptions``: each exception raised, and its state after clears and resolutions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from domain.posting_rules import minor_units
from projections.views import Event, Put, Table, ViewReader, Write

ITEMS: Final = Table(
    "recon_items",
    ("reference", "kind", "psp", "seller_id", "currency", "gross_minor", "fee_minor", "item_date", "event_ids",
     "settlement_id"),
    ("reference", "kind"),
)  # fmt: skip
LINES: Final = Table(
    "recon_lines",
    ("reference", "file_sha256", "line_no", "file_name", "source", "source_kind", "record_type", "batch_id",
     "direction", "currency", "gross_minor", "fee_minor", "net_minor", "booked_on", "value_date", "exchange_rate",
     "event_id"),
    ("reference", "file_sha256", "line_no"),
)  # fmt: skip
FILES: Final = Table(
    "recon_files",
    ("file_sha256", "file_name", "source", "source_kind", "format", "lines", "event_id", "position"),
    ("file_sha256",),
)
SETTLEMENTS: Final = Table(
    "recon_settlements",
    ("psp", "settlement_id", "currency", "net_minor", "fee_minor", "value_date", "items", "event_id"),
    ("psp", "settlement_id"),
)
LIFECYCLE: Final = Table(
    "recon_lifecycle", ("kind", "id", "stage", "since", "event_id", "seller_id"), ("kind", "id")
)  # fmt: skip
FREEZES: Final = Table("recon_freezes", ("seller_id", "freeze_id", "case_id", "active"), ("seller_id", "freeze_id"))
EXCEPTIONS: Final = Table(
    "recon_exceptions",
    ("exception_id", "level", "category", "reference", "source", "currency", "ledger_minor", "external_minor",
     "difference_minor", "item_date", "found_on", "detail", "evidence", "status", "closed_on", "decided_by",
     "approved_by", "adjustment_id", "note", "raised_event_id", "closed_event_id"),
    ("exception_id",),
)  # fmt: skip

ITEM_KINDS: Final = {
    "payment.captured": "capture",
    "refund.issued": "refund",
    "chargeback.opened": "chargeback",
}
ITEM_IDS: Final = {"capture": "payment_id", "refund": "refund_id", "chargeback": "chargeback_id"}
#: Event type → (lifecycle kind, id field, stage).
STAGES: Final = {
    "order.placed": (("order", "order_id", "placed"),),
    "order.cancelled": (("order", "order_id", "cancelled"),),
    "payment.authorized": (("order", "order_id", "paid"), ("payment", "payment_id", "authorized")),
    "payment.captured": (("payment", "payment_id", "captured"),),
    "payment.failed": (("payment", "payment_id", "failed"),),
    "payout.requested": (("payout", "payout_id", "requested"),),
    "payout.sent": (("payout", "payout_id", "sent"),),
    "payout.settled": (("payout", "payout_id", "settled"),),
    "payout.failed": (("payout", "payout_id", "failed"),),
}
EXCEPTION_TOPICS: Final = frozenset({"recon.exception_raised", "recon.exception_cleared", "recon.exception_resolved"})
TOPICS: Final = frozenset(
    {*ITEM_KINDS, *STAGES, "fee.charged", "chargeback.resolved", "psp.settlement_received", "recon.file_imported",
     "recon.line_imported", "seller.frozen", "seller.unfrozen", *EXCEPTION_TOPICS}
)  # fmt: skip


def _minor(amount: dict[str, str] | None) -> int | None:
    return minor_units(amount) if amount is not None else None


class ReconciliationProjection:
    """Both sides of every reconciliation level, and the exceptions found."""

    name = "reconciliation"
    #: µs an event, rebuilt alone over a million demo events (measured in lanes): a hint for grouping (ADR 0037).
    rebuild_cost = 20
    tables: tuple[Table, ...] = (ITEMS, LINES, FILES, SETTLEMENTS, LIFECYCLE, FREEZES, EXCEPTIONS)

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        events = [e for e in batch if e.record.topic in TOPICS]
        if not events:
            return []
        items = self._items(events, views)
        lines: list[tuple[Any, ...]] = []
        files: list[tuple[Any, ...]] = []
        settlements: list[tuple[Any, ...]] = []
        stages: dict[tuple[str, str], tuple[Any, ...]] = {}
        freezes: dict[tuple[str, str], tuple[Any, ...]] = {}
        for ev in events:
            doc = ev.doc
            kind, p = doc["type"], doc["payload"]
            for what, field, stage in STAGES.get(kind, ()):
                stages[(what, p[field])] = (what, p[field], stage, doc["occurred_at"][:10], str(ev.record.event_id),
                                            p.get("seller_id") or "")  # fmt: skip
            if kind in ("seller.frozen", "seller.unfrozen"):
                # Payouts a compliance freeze stops are held on purpose, not incomplete.
                freezes[(p["seller_id"], p["freeze_id"])] = (p["seller_id"], p["freeze_id"], p["case_id"],
                                                             int(kind == "seller.frozen"))  # fmt: skip
            if kind == "recon.line_imported":
                lines.append((p["reference"], p["file_sha256"], p["line_no"], p["file_name"], p["source"],
                              p["source_kind"], p["record_type"], p["batch_id"], p["direction"], p["net"]["currency"],
                              _minor(p["gross"]), _minor(p["fee"]), minor_units(p["net"]), p["booked_on"],
                              p["value_date"], p["exchange_rate"], str(ev.record.event_id)))  # fmt: skip
            elif kind == "recon.file_imported":
                files.append((p["file_sha256"], p["file_name"], p["source"], p["source_kind"], p["format"],
                              p["lines"], str(ev.record.event_id), ev.record.position))  # fmt: skip
            elif kind == "psp.settlement_received":
                settlements.append((p["psp"], p["settlement_id"], p["net"]["currency"], minor_units(p["net"]),
                                    _minor(p["fee"]) or 0, p["value_date"], len(p["items"]),
                                    str(ev.record.event_id)))  # fmt: skip
        writes: list[Write] = [
            Put(ITEMS, [tuple(v) for _, v in sorted(items.items())]),
            Put(LINES, lines),
            Put(FILES, files),
            Put(SETTLEMENTS, settlements),
            Put(LIFECYCLE, [v for _, v in sorted(stages.items())]),
            Put(FREEZES, [v for _, v in sorted(freezes.items())]),
        ]
        exc = [e for e in events if e.record.topic in EXCEPTION_TOPICS]
        if exc:
            writes.append(self._exceptions(exc, views))
        return writes

    @staticmethod
    def _items(events: Sequence[Event], views: ViewReader) -> dict[tuple[str, str], list[Any]]:
        """Item rows touched by the batch, read back first: a payment may be captured in parts,
        its fees and its settlement arrive in later events (and later batches)."""
        touched: list[tuple[str, str]] = []
        for ev in events:
            kind, p = ev.doc["type"], ev.doc["payload"]
            if kind in ITEM_KINDS:
                touched.append((p[ITEM_IDS[ITEM_KINDS[kind]]], ITEM_KINDS[kind]))
            elif kind == "fee.charged" and p["kind"] == "processing" and p.get("payment_id"):
                touched.append((p["payment_id"], "capture"))
            elif kind == "chargeback.resolved" and p["outcome"] == "won":
                touched.append((p["chargeback_id"], "chargeback_reversal"))
            elif kind == "psp.settlement_received":
                touched += [(i["reference"], i["kind"]) for i in p["items"]]
        if not touched:
            return {}
        keys = sorted(set(touched))
        rows: dict[tuple[str, str], list[Any]] = {k: list(v) for k, v in views.lookup(ITEMS, keys).items()}
        for ev in events:
            doc = ev.doc
            kind, p = doc["type"], doc["payload"]
            eid = str(ev.record.event_id)
            if kind in ITEM_KINDS or (kind == "chargeback.resolved" and p["outcome"] == "won"):
                item_kind = ITEM_KINDS.get(kind, "chargeback_reversal")
                ref = p[ITEM_IDS.get(item_kind, "chargeback_id")]
                row = rows.get((ref, item_kind))
                if row is None:
                    row = rows[(ref, item_kind)] = [ref, item_kind, p["psp"], p["seller_id"], p["amount"]["currency"],
                                                    0, 0, doc["occurred_at"][:10], "[]", None]  # fmt: skip
                row[2], row[3] = p["psp"], p["seller_id"]
                row[5] += minor_units(p["amount"])
                row[8] = _add_id(row[8], eid)
            elif kind == "fee.charged" and p["kind"] == "processing" and p.get("payment_id"):
                key = (p["payment_id"], "capture")
                row = rows.get(key)
                if row is None:  # a fee booked before its capture: the capture fills the rest
                    row = rows[key] = [key[0], "capture", "", p["seller_id"], p["amount"]["currency"], 0, 0,
                                       doc["occurred_at"][:10], "[]", None]  # fmt: skip
                row[6] += minor_units(p["amount"])
                row[8] = _add_id(row[8], eid)
            elif kind == "psp.settlement_received":
                for i in p["items"]:
                    settled = rows.get((i["reference"], i["kind"]))
                    if settled is not None:
                        settled[9] = p["settlement_id"]
        return rows

    @staticmethod
    def _exceptions(events: Sequence[Event], views: ViewReader) -> Write:
        ids = sorted({e.doc["payload"]["exception_id"] for e in events})
        rows = {k[0]: list(v) for k, v in views.lookup(EXCEPTIONS, [(i,) for i in ids]).items()}
        for ev in events:
            doc = ev.doc
            p = doc["payload"]
            eid = str(ev.record.event_id)
            if doc["type"] == "recon.exception_raised":
                amount = p["ledger_amount"] or p["external_amount"]
                rows[p["exception_id"]] = [
                    p["exception_id"], p["level"], p["category"], p["reference"], p["source"],
                    amount["currency"] if amount else None, _minor(p["ledger_amount"]), _minor(p["external_amount"]),
                    _minor(p["difference"]), p["item_date"], p["found_on"], p["detail"],
                    orjson.dumps(p["evidence"]).decode(), "open", None, None, None, None, None, eid, None,
                ]  # fmt: skip
                continue
            row = rows[p["exception_id"]]  # the write side refuses closing an exception never raised
            if doc["type"] == "recon.exception_cleared":
                row[13], row[14], row[18] = "cleared", p["cleared_on"], p["detail"]
            else:
                row[13], row[14] = p["resolution"], doc["occurred_at"][:10]
                row[15], row[16], row[17], row[18] = p["decided_by"], p["approved_by"], p["adjustment_id"], p["note"]
            row[20] = eid
        return Put(EXCEPTIONS, [tuple(v) for _, v in sorted(rows.items())])


def _add_id(ids_json: str, event_id: str) -> str:
    ids: list[str] = orjson.loads(ids_json)
    if event_id not in ids and len(ids) < 50:
        ids.append(event_id)
    return orjson.dumps(ids).decode()
