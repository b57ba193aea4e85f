"""The web console end to end, in a real headless Chromium driven by Playwright, against a real `quipu serve`.

A month of marketplace events (with the planted reconciliation discrepancies and AML typologies)
is posted; people sign in with their OAuth clients; every page is opened, screenshotted into
``tests/console_screens/`` and timed with the browser's Navigation Timing (recorded, never
asserted: timing depends on the machine); figures on the pages are compared with the CLI's JSON for
the same report; a reconciliation exception is resolved in the browser and must be in the log as a
``recon.exception_resolved`` event in the person's name; a person without a scope is refused.

The browser is Debian's ``chromium`` (``scripts/test.sh`` installs it): Playwright never downloads
its own. Without it the test skips, except under ``CI=true``, where a missing browser fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_http import SECRET, _secret_of, serve  # noqa: F401  (serve is a fixture used below)

CHROMIUM = Path(os.environ.get("QUIPU_CHROMIUM", "/usr/bin/chromium"))
SCREENS = Path(__file__).parent / "console_screens"
UNTIL = dt.date(2026, 11, 13)
ALL_READ = ("ledger:read", "recon:read", "recon:write", "aml:read", "aml:write", "audit:read")
EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.IGNORECASE)


def _browser_or_skip() -> Any:
    """Playwright's sync API, or a skip (a failure under CI) saying what is missing."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install playwright; never `playwright install`)"
    if missing is None and not CHROMIUM.exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set QUIPU_CHROMIUM)"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI: {missing}")
        pytest.skip(missing)
    return sync_playwright


def _cli(url: str | None, *args: str) -> Any:
    """A CLI report as JSON (the first JSON document when a command prints several sections)."""
    database = ["--database", url] if url else []  # `quipu calendar` needs no ledger
    run = subprocess.run([sys.executable, "-m", "adapters.cli", *args, *database, "--format", "json"],
                         capture_output=True, text=True, timeout=300, check=False, cwd=tempfile.gettempdir(),
                         env={**os.environ, "QUIPU_API_SECRET": SECRET})  # fmt: skip
    assert run.returncode == 0, run.stderr
    return json.JSONDecoder().raw_decode(run.stdout.lstrip())[0]


def _client(url: str, name: str, *scopes: str) -> str:
    args = [a for s in scopes for a in ("--scope", s)]
    run = subprocess.run([sys.executable, "-m", "adapters.cli", "clients", "add", name, *args, "--database", url],
                         capture_output=True, text=True, timeout=120, check=False, cwd=tempfile.gettempdir(),
                         env={**os.environ, "QUIPU_API_SECRET": SECRET})  # fmt: skip
    return _secret_of(run)


def _seed(url: str, files: Path) -> None:
    """The demo's month at a test's size: orders to payouts, AML typologies, the processors' and bank's files."""
    from rich.console import Console

    from adapters import aml
    from adapters.bootstrap import open_ledger
    from adapters.demo import generate, iter_jsonl
    from adapters.demo_aml import planted
    from adapters.demo_recon import reconcile_month

    # settle=False as in the reconciliation tests: the simulated processor files cover captures, and the
    # generator's own payouts would add ~150 exceptions that hide the five planted ones.
    with open_ledger(url) as ledger, open(os.devnull, "w") as devnull:
        lines = list(iter_jsonl(generate(seed=7, events=1500, settle=False)))
        for i in range(0, len(lines), 1000):
            ledger.service.post(lines[i : i + 1000])
        ledger.service.post(planted(7))
        aml.intercept(ledger)
        reconcile_month(ledger, Console(file=devnull, width=200), files, UNTIL)


class Visit:
    """One browser context's walk: every page opened is timed, screenshotted and checked for external URLs."""

    def __init__(self, page: Any, base: str, tag: str, timings: dict[str, float]) -> None:
        self.page, self.base, self.tag, self.timings = page, base, tag, timings
        self.requests: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))

    def open(self, name: str, path: str) -> Any:
        response = self.page.goto(self.base + path, wait_until="load")
        self.record(name)
        return response

    def record(self, name: str) -> None:
        page = self.page
        page.wait_for_function("performance.getEntriesByType('navigation')[0].loadEventEnd > 0")
        timing = page.evaluate(
            "() => { const n = performance.getEntriesByType('navigation')[0];"
            " return {load: n.loadEventEnd - n.startTime, response: n.responseEnd - n.startTime}; }"
        )
        self.timings[f"{self.tag}:{name}"] = round(float(timing["load"]), 1)
        SCREENS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENS / f"{self.tag}-{name}.png"), full_page=True)
        html = page.content()
        assert not EXTERNAL.findall(html), f"{name}: external URL in {EXTERNAL.findall(html)[:3]}"

    def sign_in(self, client_id: str, secret: str) -> None:
        page = self.page
        page.goto(self.base + "/console/")
        assert "/console/login" in page.url
        page.fill("#client_id", client_id)
        page.fill("#client_secret", secret)
        page.click("#sign-in")
        page.wait_for_load_state("load")


def _values(page: Any, selector: str) -> list[str]:
    return [str(v) for v in page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.value)")]


@pytest.fixture
def chromium() -> Iterator[Any]:
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def test_the_finance_team_signs_in_reads_every_page_and_resolves_an_exception_in_a_browser(
    chromium: Any,
    serve: Callable[..., httpx.Client],  # noqa: F811
    ledger_url: str,
    tmp_path: Path,
) -> None:
    _seed(ledger_url, tmp_path / "files")
    ana = _client(ledger_url, "ana", *ALL_READ)
    bob = _client(ledger_url, "bob", "recon:read")
    api = serve()
    base = str(api.base_url).rstrip("/")
    backend = "postgresql" if ledger_url.startswith("postgresql") else "sqlite"
    timings: dict[str, float] = {}

    # -- ana: every page, in Brazilian Portuguese ----------------------------------------------------
    context = chromium.new_context(locale="pt-BR", viewport={"width": 1400, "height": 900})
    visit = Visit(context.new_page(), base, backend, timings)
    page = visit.page
    visit.sign_in("ana", ana)
    assert page.url == base + "/console/" and page.inner_text("#signed-in-as") == "ana"
    cookie = next(c for c in context.cookies() if c["name"] == "quipu_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]  # plain http here

    visit.open("overview", "/console/")
    trial = _cli(ledger_url, "trial-balance")
    shown = {r: _values(page, f"#trial-balance td.{r} .num") for r in ("debits", "credits", "net")}
    assert shown == {r: [t[r] for t in trial] for r in ("debits", "credits", "net")}
    brl = page.inner_text("#trial-balance tr[data-currency='BRL'] td.debits")
    from adapters.exports._html import LocaleNumbers

    brl_debits = next(t["debits"] for t in trial if t["currency"] == "BRL")
    assert brl == LocaleNumbers("pt_BR").money(Decimal(brl_debits), "BRL")  # R$ 1.234,56: the viewer's locale
    assert int(page.inner_text("#events-total").replace(".", "")) > 2000
    assert page.locator("figure.chart svg").count() == 2

    visit.open("balances", "/console/balances?account=psp:*")
    cli_psp = _cli(ledger_url, "balances", "--account", "psp:*")
    assert _values(page, "#balances td.balance .num") == [r["balance"] for r in cli_psp]
    account = cli_psp[0]["account"]
    page.click(f"#balances a.account:text-is('{account}')")
    page.wait_for_load_state("load")
    visit.record("account")
    trail = _cli(ledger_url, "audit", "trail", account)
    balances_shown = _values(page, "#postings td.balance .num")
    assert balances_shown == [r["balance"] for r in trail][-len(balances_shown) :]
    page.click("#postings a.entry >> nth=0")
    page.wait_for_load_state("load")
    visit.record("entry")
    event_id = page.inner_text("#event-id")
    assert event_id in page.inner_text("#event-body")  # the stored event behind the entry

    visit.open("settlement", "/console/settlement?start=2026-10-01&days=31")
    batches = _cli(ledger_url, "settlement", "batches", "--from", "2026-10-01", "--to", "2026-10-31")
    assert _values(page, "#batches .num[data-currency]") == [b["amount"] for b in batches]
    br_holidays = {h["date"] for h in _cli(None, "calendar", "BR", "--year", "2026")}
    marked = set(page.eval_on_selector_all("section.site:has(h2:text-is('BR')) .day.holiday",
                                           "els => els.map(e => e.dataset.date)"))  # fmt: skip
    assert marked == {d for d in br_holidays if "2026-10-01" <= d <= "2026-10-31"} and "2026-10-12" in marked

    visit.open("reconciliation", "/console/reconciliation")
    exceptions = _cli(ledger_url, "reconcile", "exceptions", "--as-of", UNTIL.isoformat())
    assert int(page.inner_text("#exception-count")) == len(exceptions) == 5
    rates = _cli(ledger_url, "reconcile", "run", "--date", UNTIL.isoformat(), "--dry-run", "--skip-rebuild-check")
    shown_rates = page.eval_on_selector_all("#match-rates tbody tr", "rows => rows.map(r => r.dataset.level)")
    assert [int(x) for x in shown_rates] == [r["level"] for r in rates]
    matched = _values(page, "#match-rates tbody td:nth-child(2) .num")
    assert matched == [str(r["matched"]) for r in rates]
    timing = next(e for e in exceptions if e["category"] == "timing")
    row = page.locator(f"#exceptions tr[data-exception='{timing['exception_id']}']")
    row.locator("select[name=resolution]").select_option("accepted_timing")
    row.locator("input[name=note]").fill("the bank credited it two days late")
    row.locator("button[type=submit]").click()
    page.wait_for_load_state("load")
    visit.record("reconciliation-resolved")
    recorded = page.inner_text("#recorded code")
    assert int(page.inner_text("#exception-count")) == 4
    after = _cli(ledger_url, "reconcile", "exceptions", "--as-of", UNTIL.isoformat(), "--status", "all")
    assert next(e for e in after if e["exception_id"] == timing["exception_id"])["status"] == "accepted_timing"
    from adapters.bootstrap import open_ledger

    with open_ledger(ledger_url) as ledger:
        head = ledger.store.head()
        last = json.loads(ledger.store.read(head - 1, 1)[0].body)
    assert last["event_id"] == recorded and last["type"] == "recon.exception_resolved"
    assert last["payload"]["decided_by"] == "ana" and last["payload"]["exception_id"] == timing["exception_id"]

    visit.open("aml", "/console/aml")
    alerts = _cli(ledger_url, "aml", "alerts")
    assert page.locator("#alerts tbody tr").count() == len(alerts) > 0
    page.click("#cases a >> nth=0")
    page.wait_for_load_state("load")
    visit.record("aml-case")

    visit.open("fx", "/console/fx")
    assert page.locator("#fx tbody tr").count() == len(_cli(ledger_url, "fx", "exposure"))

    # The chain is walked in the background (seconds on a month of data); the page shows the last finished walk.
    for _ in range(240):
        visit.open("audit", "/console/audit")
        if page.locator("#chain-status.ok").count() and "more events since" not in page.content():
            break
        page.wait_for_timeout(500)
    assert page.inner_text("#chain-status").startswith(f"Chain verified: {head} events")

    # A form without this session's CSRF token is refused, even with the session cookie.
    resolve_url = base + f"/console/reconciliation/exceptions/{exceptions[0]['exception_id']}/resolve"
    forged = context.request.post(resolve_url, form={"resolution": "accepted_timing", "note": "forged"},
                                  max_redirects=0)  # fmt: skip
    assert forged.status == 403

    page.click("#sign-out")
    page.wait_for_load_state("load")
    assert "/console/login" in page.url
    page.goto(base + "/console/fx")
    assert "/console/login" in page.url  # the cookie is gone: back to the sign-in form
    assert all(u.startswith(base) for u in visit.requests), [u for u in visit.requests if not u.startswith(base)]
    context.close()

    # -- bob may read reconciliation only ------------------------------------------------------------
    context = chromium.new_context(locale="es-MX")
    visit = Visit(context.new_page(), base, f"{backend}-bob", timings)
    page = visit.page
    visit.sign_in("bob", bob)
    visit.record("refused")
    assert page.inner_text("#refused").startswith("bob may not see this page: it needs the ledger:read scope")
    assert [a.inner_text() for a in page.locator("header nav a").all()] == ["Reconciliation"]
    response = visit.open("reconciliation", "/console/reconciliation")
    assert response.status == 200 and page.locator("form.resolve").count() == 0
    assert page.goto(base + "/console/audit").status == 403
    csrf = page.get_attribute("form[action='/console/logout'] input[name=csrf]", "value")
    refused = context.request.post(resolve_url, form={"csrf": csrf, "resolution": "accepted_timing",
                                   "note": "no scope"}, max_redirects=0)  # fmt: skip
    assert refused.status == 403 and "recon:write" in refused.text()
    context.close()

    # Wrong secrets get the form again, not a session.
    context = chromium.new_context()
    visit = Visit(context.new_page(), base, f"{backend}-nobody", timings)
    visit.sign_in("ana", "not-the-secret")
    assert "Unknown client or wrong secret." in visit.page.inner_text("p.error")
    context.close()

    SCREENS.mkdir(exist_ok=True)
    (SCREENS / f"load-times-{backend}.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"\npage load times (ms, Navigation Timing loadEventEnd), {backend}:")
    for name, ms in timings.items():
        print(f"  {name:45} {ms:8.1f}")
