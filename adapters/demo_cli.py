"""``quipu demo``: generate, post, project, and show what the ledger now knows."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from adapters.bootstrap import Ledger, open_ledger
from adapters.demo import LOCALES, generate
from adapters.demo_settlement import show, simulate
from adapters.reports import Format, balance_rows, fx_exposure_rows, render, trial_balance_rows
from ledger.errors import QuipuError
from ledger.money import format_money

#: The demo reconciles October 2026 as of this day: every processor payout is due at the bank by then.
RECON_DATE: Final = dt.date(2026, 11, 13)


def run_demo(
    database: str | None,
    seed: int,
    events: int,
    export: Path | None,
    out: Console,
    err: Console,
    progress_bar: Callable[[], Progress],
) -> None:
    """The main job on the embedded default: a simulated month, end to end."""
    import typer

    started = time.perf_counter()
    generated = generate(seed, events, settle=False)
    out.print(f"generated {len(generated)} events for October 2026 (seed {seed})")
    try:
        ledger = open_ledger(database)
    except QuipuError as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        raise typer.Exit(2) from None
    with ledger:
        t0 = time.perf_counter()
        with progress_bar() as bar:
            task = bar.add_task("posting day by day, settling each day", total=len(generated))
            story = simulate(ledger, generated, seed, lambda n: bar.advance(task, n))
        out.print(
            f"posted {story['posted']} business events to {ledger.url} day by day, with daily settlement runs and "
            f"Monday payouts, in {time.perf_counter() - t0:.1f} s; {len(story['problems'])} problems"
        )
        for problem in story["problems"][:10]:
            err.print(problem, markup=False)
        t0 = time.perf_counter()
        with progress_bar() as bar:
            task = bar.add_task("projecting", total=ledger.store.head())
            report = ledger.runner.run(progress=lambda pos, head: bar.update(task, completed=pos, total=head))
        out.print(f"projected {report.events} events in {time.perf_counter() - t0:.1f} s")
        render(trial_balance_rows(ledger), Format.table, "trial balance (net is zero in every currency)", out)
        _largest(ledger_rows=balance_rows(ledger, "seller:*"), out=out)
        exposure = fx_exposure_rows(ledger)
        if exposure:
            render(exposure, Format.table, "FX exposure", out)
        show(ledger, story, out)
        from adapters.demo_recon import reconcile_month

        recon = reconcile_month(ledger, out, Path("quipu-data") / "statements", RECON_DATE)
        missed = [cat for cat, ref in recon["planted"].items() if ref not in recon["found"].get(cat, [])]
        if missed:
            err.print(f"reconciliation missed planted discrepancies: {', '.join(missed)}")
            story["problems"].append(f"reconciliation missed {missed}")
        if export is not None:
            written = _export_log(ledger, export)
            out.print(f"exported all {written} recorded events, settlement and reconciliation included, to {export}")
        from adapters.audit import key_path, load_or_create_key, take_checkpoint

        signed = take_checkpoint(ledger.store, load_or_create_key(key_path()))
        checkpoint_file = Path("quipu-data") / "demo.checkpoint"
        checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
        checkpoint_file.write_text(signed.model_dump_json() + "\n")
        out.print(
            f"checkpoint of position {signed.position} signed by {signed.public_key[:16]}… written to "
            f"{checkpoint_file}; keep it outside the system and run `quipu verify --from-checkpoint {checkpoint_file}`"
        )
        out.print(f"done in {time.perf_counter() - started:.1f} s; try `quipu verify` and `quipu project --check`")
        if story["problems"]:
            raise typer.Exit(1)


def _export_log(ledger: Ledger, path: Path) -> int:
    """Every recorded event, in log order, as the JSONL `quipu post` accepts (the stored bytes)."""
    written, position = 0, 0
    with path.open("wb") as fh:
        while records := ledger.store.read(position, 5000):
            fh.writelines(r.body + b"\n" for r in records)
            written += len(records)
            position = records[-1].position
    return written


def _largest(ledger_rows: list[dict[str, str]], out: Console, per_currency: int = 3) -> None:
    table = Table(title="largest seller balances, in each currency's locale")
    for col in ("account", "balance", "locale"):
        table.add_column(col, justify="right" if col == "balance" else "left")
    by_ccy: dict[str, list[dict[str, str]]] = {}
    for row in ledger_rows:
        by_ccy.setdefault(row["currency"], []).append(row)
    for ccy in sorted(by_ccy):
        locale = LOCALES.get(ccy, "en_US")
        top = sorted(by_ccy[ccy], key=lambda r: -abs(Decimal(r["balance"])))[:per_currency]
        for row in top:
            table.add_row(row["account"], format_money(Decimal(row["balance"]), ccy, locale), locale)
    out.print(table)


def serve_console(database: str | None, port: int, out: Console, host: str = "127.0.0.1") -> None:
    """Keep the web console running on the demo's ledger, with a demo person who holds every scope.

    The person's secret is printed once and stored only as a slow hash, like any client's; each run of the demo
    adds a new one (``demo-finance``, then ``demo-finance-2`` …) rather than reusing a secret nobody has any more.
    """
    import uvicorn

    from adapters.bootstrap import database_url
    from adapters.http.app import create_app
    from adapters.http.auth import SCOPES, add_client

    url = database_url(database)
    with open_ledger(url) as ledger:
        taken = {str(c) for (c,) in ledger.views.query("SELECT client_id FROM api_clients")}
        client_id = next(name for n in range(1, 10_000)
                         if (name := "demo-finance" if n == 1 else f"demo-finance-{n}") not in taken)  # fmt: skip
        secret = add_client(ledger, client_id, [s for s in SCOPES if s != "admin"])
    out.print(f"console: http://{host}:{port}/console/  (Ctrl-C stops it)")
    out.print(f"sign in as client id [bold]{client_id}[/bold] with secret [bold]{secret}[/bold] (shown once)")
    uvicorn.run(create_app(url), host=host, port=port, log_level="warning")
