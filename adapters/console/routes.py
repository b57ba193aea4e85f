"""The console's routes: sign in and out, one GET per page, one POST per decision.

Each route parses, checks the person's scope, calls the function in :mod:`adapters.console.pages`
(which calls the CLI's row functions), and renders a template. Without the page's scope a person
gets 403 and a page that says which scope is missing; without a session, the sign-in form. A
decision (resolving a reconciliation exception, an AML case action) is recorded as an event by the
same adapter call the CLI and the API make, in the name of the signed-in client, and answered with
a redirect (303) so that reloading the page does not post it again.
"""

from __future__ import annotations

import datetime as dt
import hmac
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from adapters import aml, reconcile
from adapters.console import pages
from adapters.console.session import (
    LOCALE_COOKIE,
    LOCALES,
    LOGIN_COOKIE,
    PATH,
    Viewer,
    csrf_ok,
    csrf_token,
    end_session,
    locale_of,
    new_login_nonce,
    set_cookie,
    signed_in,
    start_session,
    viewer,
)
from adapters.exports import Chart
from adapters.exports._charts import chart_svg
from adapters.exports._html import LocaleNumbers
from adapters.http.auth import AuthError, Caller, issue_token
from adapters.params import parse_day
from ledger.errors import QuipuError

HERE: Final = Path(__file__).parent
#: Every page says where it may load from: only this server, so nothing leaves the machine even by mistake.
#: Inline styles are allowed because matplotlib's SVG carries a <style> element; scripts are not needed at all.
CSP: Final = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'")  # fmt: skip
NAV: Final = (
    ("overview", "/console/", "ledger:read", "Overview"),
    ("balances", "/console/balances", "ledger:read", "Balances"),
    ("settlement", "/console/settlement", "ledger:read", "Settlement calendar"),
    ("reconciliation", "/console/reconciliation", "recon:read", "Reconciliation"),
    ("aml", "/console/aml", "aml:read", "AML"),
    ("fx", "/console/fx", "ledger:read", "FX exposure"),
    ("audit", "/console/audit", "audit:read", "Audit"),
)


class Numbers:
    """Figures for one viewer: their locale when known, else each currency's own (R$ in pt_BR, $ in es_MX)."""

    def __init__(self, locale: str | None) -> None:
        self.locale = locale
        self._by_locale: dict[str, LocaleNumbers] = {}

    def _numbers(self, currency: str | None) -> LocaleNumbers:
        chosen = self.locale or (pages.default_locales().get(currency or "", "en_US") if currency else "en_US")
        if chosen not in self._by_locale:
            self._by_locale[chosen] = LocaleNumbers(chosen)
        return self._by_locale[chosen]

    def money(self, value: object, currency: str | None) -> Markup:
        """An amount, with its exact decimal string kept in ``data-value`` (the tests compare it with the CLI's)."""
        if value is None or value == "":
            return Markup('<span class="num">–</span>')
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            return Markup('<span class="num">{}</span>').format(value)
        shown = self._numbers(currency).money(amount, currency)
        return Markup('<span class="num" data-value="{}" data-currency="{}">{}</span>').format(
            value, currency or "", shown
        )

    def number(self, value: object) -> Markup:
        try:
            shown = self._numbers(None).decimal(Decimal(str(value)))
        except InvalidOperation:
            shown = str(value)
        return Markup('<span class="num" data-value="{}">{}</span>').format(value, shown)

    def plain(self, value: Decimal) -> str:
        """A chart label: no markup."""
        return self._numbers(None).decimal(value)


def mount(app: FastAPI, state: dict[str, Any], lock: threading.Lock, auth: bool) -> None:
    """Serve the console under ``/console`` on the API's app, sharing its ledger, lock and signing secret."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    app.mount(f"{PATH}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    threading.Thread(target=_warm_up, args=(env,), name="console-warm-up", daemon=True).start()

    def secret() -> bytes:
        return bytes(state["secret"])

    def who(request: Request, scope: str) -> Viewer | Response:
        """The person if they hold ``scope``; else the sign-in redirect (no session) or the refusal page (403)."""
        if not auth:  # ``quipu serve --no-auth``: local use, everyone may do everything
            return Viewer(Caller("local", frozenset({"admin"})), "")
        try:
            return viewer(request, secret(), scope)
        except AuthError as exc:
            if exc.status == 401:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(f"{PATH}/login?next={quote(target, safe='')}", status_code=303)
                end_session(response, request)
                return response
            person = signed_in(request, secret())
            return render(request, "refused.html", person, scope=scope, status=403, title="Not allowed")

    def render(request: Request, template: str, person: Viewer | None, status: int = 200, **ctx: Any) -> HTMLResponse:
        numbers = Numbers(locale_of(request))
        token = person.token if person else ""
        context: dict[str, Any] = {
            "request": request, "person": person, "nav": [n for n in NAV if person and person.may(n[2])],
            "csrf": csrf_token(secret(), token) if person else "", "money": numbers.money, "number": numbers.number,
            "locale": numbers.locale, "locales": LOCALES, "path": request.url.path,
        }  # fmt: skip
        html = env.get_template(template).render({**context, **ctx})  # the login page brings its own csrf
        return HTMLResponse(html, status_code=status, headers=_headers())

    def chart(prefix: str, request: Request, built: Chart | None) -> Markup | None:
        """The chart as inline SVG, drawn once per content and locale: matplotlib takes a few hundred ms a chart,
        so a page whose figures did not change (only the log's head did) must not pay for it again."""
        return chart_in(prefix, Numbers(locale_of(request)), built)

    def chart_in(prefix: str, numbers: Numbers, built: Chart | None) -> Markup | None:
        if built is None:
            return None
        series = tuple((name, tuple(str(v) for v in values)) for name, values in built.series.items())
        # Keyed by how the locale writes numbers, not by its name: pt_BR, es_AR, es_CL and es_CO draw the same
        # chart, so do es_MX and en_US.
        style = numbers.plain(Decimal("-1234.5"))
        key = ("chart", prefix, built.title, built.kind, tuple(built.labels), series, built.unit, style)
        # Several charts share a page: the prefix keeps their SVG element ids apart.
        return Markup(pages.CACHE.get(key, lambda: chart_svg(built, f"{prefix}-", numbers.plain)))

    async def form(request: Request) -> dict[str, str]:
        # Forms are urlencoded: parsed here, as /oauth/token does, rather than adding python-multipart.
        body = (await request.body()).decode(errors="replace")
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def forged(request: Request, person: Viewer, fields: dict[str, str]) -> Response | None:
        if not auth or csrf_ok(secret(), person.token, fields.get("csrf")):
            return None
        return render(request, "error.html", person, status=403, title="Form expired",
                      message="This form was not issued to this session (or the session changed). Reload the page "
                              "and try again.")  # fmt: skip

    # -- signing in and out ------------------------------------------------------------------------

    @app.get(f"{PATH}/login", include_in_schema=False)
    def login_form(request: Request, next: str = f"{PATH}/") -> Response:
        nonce = new_login_nonce()
        response = render(request, "login.html", None, csrf=nonce, next=_safe_next(next), title="Sign in", error="")
        set_cookie(response, request, LOGIN_COOKIE, nonce, 600)
        return response

    @app.post(f"{PATH}/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        fields = await form(request)
        target = _safe_next(fields.get("next", ""))
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not hmac.compare_digest(nonce, fields.get("csrf", "")):
            return _login_again(request, target, "The sign-in form expired; please sign in again.", 400)

        def grant() -> dict[str, Any]:
            with lock:
                return issue_token(state["ledger"], secret(), fields.get("client_id", "").strip(),
                                   fields.get("client_secret", ""), None)  # fmt: skip

        try:
            body = await run_in_threadpool(grant)
        except AuthError as exc:
            return _login_again(request, target, "Unknown client or wrong secret." if exc.status == 401 else str(exc),
                                exc.status)  # fmt: skip
        response = RedirectResponse(target, status_code=303)
        start_session(response, request, str(body["access_token"]))
        return response

    def _login_again(request: Request, target: str, error: str, status: int) -> Response:
        nonce = new_login_nonce()
        response = render(request, "login.html", None, status=status, csrf=nonce, next=target, title="Sign in",
                          error=error)  # fmt: skip
        set_cookie(response, request, LOGIN_COOKIE, nonce, 600)
        return response

    @app.post(f"{PATH}/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        fields = await form(request)
        person = signed_in(request, secret())
        if person is not None and (refused := forged(request, person, fields)) is not None:
            return refused
        response = RedirectResponse(f"{PATH}/login", status_code=303)
        end_session(response, request)
        return response

    @app.post(f"{PATH}/locale", include_in_schema=False)
    async def choose_locale(request: Request) -> Response:
        fields = await form(request)
        person = signed_in(request, secret()) if auth else Viewer(Caller("local", frozenset({"admin"})), "")
        if person is None:
            return RedirectResponse(f"{PATH}/login", status_code=303)
        if (refused := forged(request, person, fields)) is not None:
            return refused
        chosen = fields.get("locale", "")
        response = RedirectResponse(_safe_next(fields.get("next", "")), status_code=303)
        set_cookie(response, request, LOCALE_COOKIE, chosen if chosen in LOCALES else "auto", 365 * 86400)
        return response

    # -- pages -------------------------------------------------------------------------------------

    @app.get(f"{PATH}", include_in_schema=False)
    def console_root() -> Response:
        return RedirectResponse(f"{PATH}/", status_code=307)

    @app.get(f"{PATH}/", include_in_schema=False)
    def overview(request: Request) -> Response:
        person = who(request, "ledger:read")
        if isinstance(person, Response):
            return person
        with lock:
            data = pages.overview(state["ledger"])
            # Start the reconciliation page's dry run early, on its own connection: it takes most of a second
            # on a month of data, and people usually open the overview first. (The chain walk, seconds of
            # hashing that would hold the interpreter while the next pages render, starts on the audit page.)
            # The reconciliation page's charts too, in every way of writing numbers a viewer may have chosen
            # (this person's first): drawing them is most of that page's first view.
            styles = [Numbers(loc) for loc in (locale_of(request), *LOCALES, None)]

            def draw(summary: list[dict[str, Any]], aging: list[dict[str, Any]]) -> None:
                for numbers in styles:
                    recon_charts(summary, aging, numbers)

            pages.prewarm_recon(state["ledger"].url, data["head"], draw)
        per_day = data["per_day"]
        charts = [
            chart("per-day", request, Chart(
                "journal entries per day", "bar", [d.strftime("%d %b") for d, _ in per_day],
                {"entries": [n for _, n in per_day]}, "entries") if per_day else None),
            chart("by-type", request, Chart(
                "journal entries by event type", "hbar", [r["type"] for r in data["by_type"][:12]],
                {"entries": [r["entries"] for r in data["by_type"][:12]]}, "entries") if data["by_type"] else None),
        ]  # fmt: skip
        return render(request, "overview.html", person, title="Overview", data=data, charts=[c for c in charts if c])

    @app.get(f"{PATH}/balances", include_in_schema=False)
    def balances(request: Request, account: str = "") -> Response:
        person = who(request, "ledger:read")
        if isinstance(person, Response):
            return person
        with lock:
            rows = pages.balances(state["ledger"], account.strip() or None)
        return render(request, "balances.html", person, title="Balances", rows=rows[: pages.BALANCE_ROWS],
                      total=len(rows), account=account)  # fmt: skip

    @app.get(f"{PATH}/accounts/{{name:path}}", include_in_schema=False)
    def account(request: Request, name: str, all: int = 0) -> Response:
        person = who(request, "ledger:read")
        if isinstance(person, Response):
            return person
        try:
            with lock:
                rows = pages.account(state["ledger"], name)
        except QuipuError as exc:
            return render(request, "error.html", person, status=404, title="No such account", message=str(exc))
        shown = rows if all else rows[-pages.TRAIL_ROWS :]
        return render(request, "account.html", person, title=name, account=name, rows=shown, total=len(rows),
                      currency=name.rsplit(":", 1)[-1])  # fmt: skip

    @app.get(f"{PATH}/entries/{{position}}", include_in_schema=False)
    def entry(request: Request, position: int) -> Response:
        person = who(request, "ledger:read")
        if isinstance(person, Response):
            return person
        try:
            if not 0 < position < 2**63:  # beyond any log, and beyond what SQLite's integers can be asked
                raise QuipuError(f"position: {position} is not in the log")
            with lock:
                data = pages.entry(state["ledger"], position)
        except QuipuError as exc:
            return render(request, "error.html", person, status=404, title="No such entry", message=str(exc))
        return render(request, "entry.html", person, title=f"Entry at position {position}", position=position,
                      data=data)  # fmt: skip

    @app.get(f"{PATH}/settlement", include_in_schema=False)
    def settlement_calendar(request: Request, site: str = "", start: str = "", days: int = 21) -> Response:
        person = who(request, "ledger:read")
        if isinstance(person, Response):
            return person
        try:
            first = parse_day(start or None, "start")
        except QuipuError as exc:
            return render(request, "error.html", person, status=422, title="Not a date", message=str(exc))
        days = max(1, min(days, 62))
        chosen = site.strip().upper() or None
        if chosen and chosen not in {s for ss in pages.sites_by_currency().values() for s in ss}:
            return render(request, "error.html", person, status=422, title="Unknown site",
                          message=f"site: unknown site {site!r}")  # fmt: skip
        with lock:
            data = pages.calendar(state["ledger"], first, days, chosen)
        sites = sorted(s for ss in pages.sites_by_currency().values() for s in ss)
        return render(request, "settlement.html", person, title="Settlement calendar", data=data, site=chosen or "",
                      days=days, all_sites=sites)  # fmt: skip

    def recon_charts(summary: list[dict[str, Any]], aging: list[dict[str, Any]], numbers: Numbers) -> list[Markup]:
        """The reconciliation page's charts (also drawn ahead of time, from the overview, by the prewarm)."""
        buckets = [label for _, _, label in reconcile.AGING_BUCKETS if any(a["bucket"] == label for a in aging)]
        categories = sorted({a["category"] for a in aging})
        counts = {(a["bucket"], a["category"]): a["exceptions"] for a in aging}
        charts = [
            chart_in("recon-rate", numbers, Chart(
                "match rate per level (%)", "bar", [f"level {s['level']}" for s in summary],
                {"matched %": [Decimal(s["match_rate_pct"]) for s in summary]}, "%") if summary else None),
            chart_in("recon-aging", numbers, Chart(
                "open exceptions by age", "stacked_bar", buckets,
                {c: [counts.get((b, c), 0) for b in buckets] for c in categories}, "exceptions") if aging else None),
        ]  # fmt: skip
        return [c for c in charts if c]

    @app.get(f"{PATH}/reconciliation", include_in_schema=False)
    def reconciliation(request: Request, as_of: str = "", status: str = "open", done: str = "") -> Response:
        person = who(request, "recon:read")
        if isinstance(person, Response):
            return person
        statuses = ("open", *reconcile.RESOLUTIONS, "cleared", "all")  # a resolved exception's status is its resolution
        status = status if status in statuses else "open"
        with lock:
            ledger = state["ledger"]
            try:
                day = dt.date.fromisoformat(as_of) if as_of else pages.recon_as_of(ledger)
            except ValueError:
                day = pages.recon_as_of(ledger)
            data = pages.reconciliation(ledger, day, status)
        charts = recon_charts(data["summary"], data["aging"], Numbers(locale_of(request)))
        return render(request, "reconciliation.html", person, title="Reconciliation", data=data, as_of=day,
                      shown_status=status, statuses=statuses, charts=charts, done=done,
                      resolutions=reconcile.RESOLUTIONS, may_resolve=person.may("recon:write"))  # fmt: skip

    @app.post(f"{PATH}/reconciliation/exceptions/{{exception_id}}/resolve", include_in_schema=False)
    async def resolve(request: Request, exception_id: str) -> Response:
        person = who(request, "recon:write")
        if isinstance(person, Response):
            return person
        fields = await form(request)
        if (refused := forged(request, person, fields)) is not None:
            return refused

        def record() -> str:
            with lock:
                before = state["ledger"].store.head()
                event_id, _ = reconcile.resolve(
                    state["ledger"], exception_id, fields.get("resolution", ""), person.client_id,
                    fields.get("note", "").strip() or "resolved in the console", fields.get("adjustment_id") or None,
                    fields.get("approved_by") or None, dt.datetime.now(dt.UTC).replace(microsecond=0),
                )  # fmt: skip
                pages.carry_recon(before, state["ledger"].store.head())
                return event_id

        if fields.get("resolution") not in reconcile.RESOLUTIONS:
            return render(request, "error.html", person, status=422, title="Resolution refused",
                          message=f"resolution: must be one of {', '.join(reconcile.RESOLUTIONS)}")  # fmt: skip
        try:
            event_id = await run_in_threadpool(record)
        except QuipuError as exc:
            return render(request, "error.html", person, status=422, title="Resolution refused", message=str(exc))
        back = f"{PATH}/reconciliation?as_of={quote(fields.get('as_of', ''))}&done={quote(event_id)}"
        return RedirectResponse(back, status_code=303)

    @app.get(f"{PATH}/aml", include_in_schema=False)
    def aml_page(request: Request) -> Response:
        person = who(request, "aml:read")
        if isinstance(person, Response):
            return person
        with lock:
            data = pages.aml_overview(state["ledger"])
        return render(request, "aml.html", person, title="AML", data=data)

    @app.get(f"{PATH}/aml/cases/{{case_id}}", include_in_schema=False)
    def aml_case(request: Request, case_id: str, done: str = "") -> Response:
        person = who(request, "aml:read")
        if isinstance(person, Response):
            return person
        try:
            if "\x00" in case_id:  # no id holds one, and PostgreSQL cannot even be asked about it
                raise QuipuError("case_id: no case has a NUL character in its id")
            with lock:
                data = pages.aml_case(state["ledger"], case_id)
        except QuipuError as exc:
            return render(request, "error.html", person, status=404, title="No such case", message=str(exc))
        return render(request, "aml_case.html", person, title=f"Case {case_id}", case_id=case_id, data=data,
                      done=done, may_decide=person.may("aml:write"))  # fmt: skip

    @app.post(f"{PATH}/aml/cases/{{case_id}}/actions", include_in_schema=False)
    async def aml_action(request: Request, case_id: str) -> Response:
        person = who(request, "aml:write")
        if isinstance(person, Response):
            return person
        fields = await form(request)
        if (refused := forged(request, person, fields)) is not None:
            return refused
        action, text = fields.get("action", ""), fields.get("text", "").strip()
        if action not in ("assign", "note", "escalate", "clear", "confirm") or not text:
            return render(request, "error.html", person, status=422, title="Action refused",
                          message="action: one of assign, note, escalate, clear, confirm, with a text")  # fmt: skip

        def record() -> list[Any]:
            with lock:
                return aml.decide(state["ledger"], case_id, action, person.client_id, text,
                                  dt.datetime.now(dt.UTC).replace(microsecond=0), fields.get("assignee") or None,
                                  fields.get("report") or None)  # fmt: skip

        try:
            results = await run_in_threadpool(record)
        except QuipuError as exc:
            return render(request, "error.html", person, status=422, title="Action refused", message=str(exc))
        refused_ = [r for r in results if r.outcome.value in ("rejected", "conflict")]
        if refused_:
            return render(request, "error.html", person, status=422, title="Action refused",
                          message=refused_[0].reason or "")  # fmt: skip
        return RedirectResponse(f"{PATH}/aml/cases/{quote(case_id)}?done={quote(action)}", status_code=303)

    @app.get(f"{PATH}/fx", include_in_schema=False)
    def fx(request: Request) -> Response:
        person = who(request, "ledger:read")
        if isinstance(person, Response):
            return person
        with lock:
            rows = pages.fx(state["ledger"])
        valued = [r for r in rows if r.get("value_usd")]
        charts = [chart("fx", request, Chart(
            "open FX positions valued in USD", "hbar", [r["currency"] for r in valued],
            {"USD": [Decimal(r["value_usd"]) for r in valued]}, "USD") if valued else None)]  # fmt: skip
        return render(request, "fx.html", person, title="FX exposure", rows=rows, charts=[c for c in charts if c])

    @app.get(f"{PATH}/audit", include_in_schema=False)
    def audit(request: Request) -> Response:
        person = who(request, "audit:read")
        if isinstance(person, Response):
            return person
        with lock:
            ledger = state["ledger"]
            watch = pages.CHAIN.status(ledger.url, ledger.store.head())
        return render(request, "audit.html", person, title="Audit", watch=watch, data=watch["result"])


def _warm_up(env: Environment) -> None:
    """What every server pays once (compiling templates, building this year's bank calendars, loading
    matplotlib's fonts), paid while it starts rather than on someone's first page."""
    for name in env.list_templates():
        env.get_template(name)
    year = dt.datetime.now(dt.UTC).year
    for sites in pages.sites_by_currency().values():
        for site in sites:
            pages.bank_calendar(site, (year,))
    pages.default_locales()
    chart_svg(Chart("warm-up", "bar", ["a"], {"n": [1]}), "warm-up-")


def _safe_next(target: str) -> str:
    """Only a console path: never another site (an open redirect would make the sign-in page a phishing aid)."""
    if target.startswith(f"{PATH}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PATH}/"


def _headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store", "X-Frame-Options": "DENY"}  # fmt: skip
