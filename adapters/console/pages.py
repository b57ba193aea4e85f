"""What each console page shows, gathered from the same row functions the CLI prints.

A page's figures come from ``adapters.reports``, ``adapters.reconcile``, ``adapters.aml``,
``adapters.settlement``, ``adapters.audit_trail`` and the chain verifier, unchanged: the console
formats and draws them but never computes a figure of its own that the CLI also shows, so the two
cannot disagree. The few figures only the console shows (entries per day, seller funds per
currency) are sums of those rows, made with Decimal.

Work that costs more than a page's budget (a reconciliation dry run, a walk of the hash chain,
drawing a chart) is cached against the log's head: a new event changes the head and so the key.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson

from adapters import aml, audit_trail, config_files, reconcile, settlement
from adapters.bootstrap import Ledger
from adapters.reports import balance_rows, fx_exposure_rows, trial_balance_rows
from domain.settlement.calendar import BankCalendar, build_calendar
from ledger.money import format_amount

T = TypeVar("T")
Key = tuple[Any, ...]
#: How many postings an account page lists before it asks to show them all (a PSP account has thousands).
TRAIL_ROWS: Final = 300
BALANCE_ROWS: Final = 200
CHECKPOINT_FILE: Final = Path("quipu-data") / "demo.checkpoint"
_CACHE_SIZE: Final = 64


class _Cache:
    """A small LRU of expensive results keyed by what they depend on (the log head among it)."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[no-any-return]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > _CACHE_SIZE:
                self._items.popitem(last=False)
        return value

    def carry(
        self, match: Callable[[tuple[Any, ...]], bool], rekey: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    ) -> None:
        with self._lock:
            for key in [k for k in self._items if match(k)]:
                self._items[rekey(key)] = self._items[key]


CACHE: Final = _Cache()


@functools.cache
def sites_by_currency() -> dict[str, list[str]]:
    """Which sites trade in each currency (USD is Ecuador's, El Salvador's and Panama's)."""
    out: dict[str, list[str]] = defaultdict(list)
    for site, region in sorted(config_files.regions().region_config.items()):
        out[region.currency].append(str(site))
    return dict(out)


@functools.cache
def default_locales() -> dict[str, str]:
    """Each currency's own locale (its first site's), used when the viewer's is not known."""
    out: dict[str, str] = {}
    for site, region in sorted(config_files.regions().region_config.items()):
        _ = site
        out.setdefault(region.currency, region.locale)
    return out


@functools.cache
def bank_calendar(site: str, years: tuple[int, ...]) -> BankCalendar:
    """The site's bank calendar, built by the same code as ``quipu calendar``."""
    return build_calendar(config_files.calendars(), site, list(years))


def _currency_of(account: str) -> str:
    return account.rsplit(":", 1)[-1]


# -- overview --------------------------------------------------------------------------------------


def lag_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """Each projection's position and how far it is behind the log's head, as found (before catching up)."""
    head = ledger.store.head()
    return [
        {"projection": name, "position": position, "head": head, "lag_events": head - position}
        for name, position in sorted(ledger.runner.positions().items())
    ]


def overview(ledger: Ledger) -> dict[str, Any]:
    """Volume, balances by site and currency, and projection lag."""
    lag = lag_rows(ledger)
    ledger.runner.run()
    head = ledger.store.head()
    by_type = [
        {"type": str(t), "entries": int(n)}
        for t, n in ledger.views.query(
            "SELECT event_type, COUNT(*) FROM journal_entries GROUP BY event_type ORDER BY COUNT(*) DESC, event_type"
        )
    ]
    per_day = [
        (dt.date(1970, 1, 1) + dt.timedelta(days=int(day)), int(n))
        for day, n in ledger.views.query(
            "SELECT occurred_at_us / 86400000000 AS d, COUNT(*) FROM journal_entries GROUP BY d ORDER BY d"
        )
    ]
    trial = trial_balance_rows(ledger)
    funds: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in balance_rows(ledger, "seller:*"):
        kind = row["account"].split(":")[2]
        funds[(row["currency"], kind)] += Decimal(row["balance"])
    kinds = sorted({k for _, k in funds})
    sites = sites_by_currency()
    balances = [
        {**t, "sites": ", ".join(sites.get(t["currency"], [])),
         "seller_funds": {k: str(funds[(t["currency"], k)]) for k in kinds if (t["currency"], k) in funds}}
        for t in trial
    ]  # fmt: skip
    return {"head": head, "lag": lag, "by_type": by_type, "per_day": per_day, "trial": trial,
            "balances": balances, "fund_kinds": kinds}  # fmt: skip


# -- balances, accounts, entries -------------------------------------------------------------------


def balances(ledger: Ledger, pattern: str | None) -> list[dict[str, Any]]:
    """``quipu balances --account PATTERN``'s rows."""
    ledger.runner.run()
    return balance_rows(ledger, pattern or None)


def account(ledger: Ledger, name: str) -> list[dict[str, Any]]:
    """``quipu audit trail ACCOUNT``'s rows: each posting with its event and running balance."""
    ledger.runner.run()
    return audit_trail.account_trail(ledger, name)


def entry(ledger: Ledger, position: int) -> dict[str, Any]:
    """The journal entry at a log position, its postings, the adjustments correcting it, and the stored event."""
    ledger.runner.run()
    postings = audit_trail.entry_trail(ledger, str(position))
    records = ledger.store.read(position - 1, 1)
    record = records[0] if records else None
    return {
        "postings": postings,
        "event": orjson.dumps(orjson.loads(record.body), option=orjson.OPT_INDENT_2).decode() if record else "",
        "chain_sha256": record.chain_sha256.hex() if record else "",
        "topic": record.topic if record else "",
    }


# -- settlement calendar ---------------------------------------------------------------------------


def calendar(ledger: Ledger, first: dt.date, days: int, site: str | None) -> dict[str, Any]:
    """Per site, each day from ``first``: settlement batches (``quipu settlement batches``), bank holidays
    (``quipu calendar``), and the weekly payout run (Mondays, moved to the next day the banks open)."""
    last = first + dt.timedelta(days=days - 1)
    rows = settlement.batch_rows(ledger, first, last, site)
    by_site: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_site[r["site"]][r["date"]].append(r)
    shown = [site] if site else sorted(by_site)
    years = tuple(range(first.year, last.year + 1))
    out = []
    for s in shown:
        cal = bank_calendar(s, years)
        payout_days = set()
        day = first
        while day <= last:
            if day.weekday() == 0:
                payout_days.add(cal.on_or_after(day))
            day += dt.timedelta(days=1)
        cells = []
        for n in range(days):
            day = first + dt.timedelta(days=n)
            holiday = cal.closed.get(day)
            cells.append({"date": day.isoformat(), "weekday": day.strftime("%a"), "weekend": day.weekday() >= 5,
                          "holiday": holiday[0] if holiday else "", "payout": day in payout_days,
                          "batches": by_site.get(s, {}).get(day.isoformat(), [])})  # fmt: skip
        out.append({"site": s, "days": cells})
    return {"first": first, "last": last, "rows": rows, "sites": out}


# -- reconciliation --------------------------------------------------------------------------------


def recon_as_of(ledger: Ledger) -> dt.date:
    """The day the last run found exceptions on (the console's default ``as of``), else today."""
    found = ledger.views.query("SELECT MAX(found_on) FROM recon_exceptions")
    if found and found[0][0]:
        return dt.date.fromisoformat(str(found[0][0]))
    return dt.datetime.now(dt.UTC).date()


def reconciliation(ledger: Ledger, as_of: dt.date, status: str) -> dict[str, Any]:
    """``quipu reconcile run --dry-run --skip-rebuild-check`` (match rates) and ``quipu reconcile exceptions``.

    The level-1 check that rebuilds every projection from scratch is left to the CLI and the nightly
    run: it takes seconds, and the page must not.
    """
    ledger.runner.run()
    head = ledger.store.head()

    def dry_run() -> list[dict[str, Any]]:
        report = reconcile.run(ledger, as_of, dry_run=True, check_projections=False)
        return reconcile.summary_rows(report)

    summary = CACHE.get(recon_key(head, as_of), dry_run)
    rows = reconcile.exception_rows(ledger, as_of, None if status == "all" else status)
    open_rows = rows if status == "open" else [r for r in rows if r["status"] == "open"]
    return {"summary": summary, "exceptions": rows, "aging": reconcile.aging(open_rows), "head": head}


_PREWARMED: set[tuple[str, int]] = set()
_PREWARM_LOCK: Final = threading.Lock()


def prewarm_recon(
    url: str, head: int, draw: Callable[[list[dict[str, Any]], list[dict[str, Any]]], object] | None = None
) -> None:
    """Run the reconciliation page's dry run in the background on its own connection (a second or more on a
    month of data), and ``draw`` its charts from the same figures, so that the page, usually opened after the
    overview, finds both done."""
    with _PREWARM_LOCK:
        if (url, head) in _PREWARMED:
            return
        _PREWARMED.add((url, head))

    def work() -> None:
        from adapters.bootstrap import open_ledger

        with open_ledger(url, migrate=False) as own:
            if own.store.head() != head:
                return  # the log moved on: the page will compute what it needs
            as_of = recon_as_of(own)
            report = reconcile.run(own, as_of, dry_run=True, check_projections=False)
            summary = CACHE.get(recon_key(head, as_of), lambda: reconcile.summary_rows(report))
            if draw is not None:
                # The page's default view: open exceptions, aged as of the same day.
                draw(summary, reconcile.aging(reconcile.exception_rows(own, as_of, "open")))

    threading.Thread(target=work, name="console-recon-prewarm", daemon=True).start()


def recon_key(head: int, as_of: dt.date) -> tuple[Any, ...]:
    return ("recon", head, as_of)


def carry_recon(before: int, after: int) -> None:
    """After a resolution and nothing else was appended, the dry run's figures still hold at the new head: a
    decision on an exception changes no match. Copy them instead of running the matchers again."""
    if after != before + 1:
        return
    CACHE.carry(lambda key: key[0] == "recon" and key[1] == before, lambda key: ("recon", after, *key[2:]))


# -- AML -------------------------------------------------------------------------------------------


def aml_overview(ledger: Ledger) -> dict[str, Any]:
    """``quipu aml alerts``, the cases, and the holds still in force."""
    alerts = aml.alerts(ledger)
    cases = [
        {"case": c, "seller": s, "status": st, "alerts": a, "opened_at": o, "assignee": who, "report": rep}
        for c, s, st, a, o, who, rep in ledger.views.query(
            "SELECT case_id, seller_id, status, alert_ids, opened_at, assignee, report FROM aml_cases "
            "ORDER BY opened_at, case_id"
        )
    ]
    holds = [
        {"hold": h, "seller": s, "currency": c, "amount": format_amount(int(a), str(c)), "reason": r,
         "held_on": on, "release_on": rel}
        for h, s, c, a, r, on, rel in ledger.views.query(
            "SELECT hold_id, seller_id, currency, amount_minor, reason, held_on, release_on FROM settlement_holds "
            "WHERE released_on = '' ORDER BY held_on, hold_id, seller_id"
        )
    ]  # fmt: skip
    return {"alerts": alerts, "cases": cases, "holds": holds}


def aml_case(ledger: Ledger, case_id: str) -> dict[str, Any]:
    """``quipu aml case CASE_ID``'s timeline and the case's state."""
    timeline = aml.case_rows(ledger, case_id)
    found = ledger.views.query(
        "SELECT seller_id, status, alert_ids, assignee, report FROM aml_cases WHERE case_id = ?", [case_id]
    )
    seller, status, alerts, assignee, report = found[0] if found else ("", "", "", "", "")
    return {"timeline": timeline, "seller": seller, "status": status, "alerts": alerts, "assignee": assignee,
            "report": report}  # fmt: skip


# -- FX and audit ----------------------------------------------------------------------------------


def fx(ledger: Ledger) -> list[dict[str, Any]]:
    """``quipu fx exposure``'s rows."""
    ledger.runner.run()
    return fx_exposure_rows(ledger)


class ChainWatch:
    """The chain verified in the background, on its own connection: a walk of every event takes seconds on a month
    of data, longer than a page may. The audit page shows the last finished walk and starts a new one when the log
    has grown since; pages never wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._result: dict[str, Any] | None = None
        self._running_since: str = ""

    def status(self, url: str, head: int, checkpoint_file: Path = CHECKPOINT_FILE) -> dict[str, Any]:
        with self._lock:
            stale = self._result is None or self._result["head"] != head
            if stale and not self._running_since:
                self._running_since = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
                threading.Thread(target=self._walk, args=(url, checkpoint_file), name="console-chain-walk",
                                 daemon=True).start()  # fmt: skip
            return {"result": self._result, "running_since": self._running_since, "head": head}

    def _walk(self, url: str, checkpoint_file: Path) -> None:
        try:
            result = walk(url, checkpoint_file)
        except Exception as exc:  # a failed walk must be shown on the page, not lost in a thread
            result = {"head": -1, "chain": None, "error": f"{type(exc).__name__}: {exc}", "checkpoint": None,
                      "checkpoint_error": "", "checkpoint_file": str(checkpoint_file), "against_checkpoint": None,
                      "checked_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}  # fmt: skip
        with self._lock:
            self._result, self._running_since = result, ""


CHAIN: Final = ChainWatch()


def walk(url: str, checkpoint_file: Path = CHECKPOINT_FILE) -> dict[str, Any]:
    """The chain as ``quipu verify`` sees it, and the last checkpoint file, verified against the log."""
    from adapters.audit import read_checkpoint
    from adapters.bootstrap import open_ledger
    from domain.checkpoints import check_signature
    from domain.integrity import verify_chain
    from ledger.errors import QuipuError

    with open_ledger(url, migrate=False) as own:
        head = own.store.head()
        chain = verify_chain(own.store)
        out: dict[str, Any] = {"head": head, "chain": chain, "error": "", "checkpoint": None, "checkpoint_error": "",
                               "checkpoint_file": str(checkpoint_file), "against_checkpoint": None}  # fmt: skip
        if checkpoint_file.exists():
            try:
                cp = read_checkpoint(checkpoint_file)
                check_signature(cp)
            except QuipuError as exc:
                out["checkpoint_error"] = str(exc)
            else:
                out["checkpoint"] = cp
                out["against_checkpoint"] = verify_chain(own.store, checkpoint=cp)
    out["checked_at"] = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    return out
