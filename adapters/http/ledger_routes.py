"""HTTP reads of the ledger itself: the chart of accounts and the journal, page by page.

``GET /v1/accounts`` lists every account the journal has posted to, with its parts (party, party id,
purpose, currency) and normal side, filtered by a glob, a prefix or a part, in account-name order
(byte order on both databases) with the last account as the cursor. ``GET /v1/journal/entries``
pages through the journal in log order with the log position as the cursor; ``next`` (and a
``Link: <…>; rel="next"`` header) is given while more entries follow. ``GET /v1/journal/entries/{position}``
is one entry. Amounts are decimal strings; every refusal is an RFC 9457 problem naming the parameter.

Query parameters are read here rather than by FastAPI, so a bad one is a problem document that names
it (FastAPI's own validation answers in another shape); the OpenAPI description of each parameter is
given explicitly and says exactly what is accepted.

The helpers at the top (``Params``, ``param``, ``read_body``, the account patterns) are shared by the FX
and audit routes; scopes, answers and the money patterns are the API contract's (``adapters/http/contract.py``).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlencode

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from adapters.http import contract
from adapters.http.contract import Amount, Currency, Guard, Problem
from ledger.accounts import NORMAL_SIDE, Party, parse_account
from ledger.errors import AccountNameError
from ledger.money import format_amount

M = TypeVar("M", bound=BaseModel)

MAX_POSITION: Final = 2**63 - 1
PAGE_LIMIT: Final = 1000
DEFAULT_PAGE: Final = 100
_ACCOUNT_CHARS: Final = r"A-Za-z0-9._:\-"
#: A glob over account names: ``*``, ``?`` and bracket classes (``[A-C]``, ``[!X]``) of name characters.
GLOB_PATTERN: Final = rf"^(?:[{_ACCOUNT_CHARS}*?!]|\[!?[{_ACCOUNT_CHARS}]+\])+$"
PREFIX_PATTERN: Final = rf"^[{_ACCOUNT_CHARS}]+$"
PURPOSE_PATTERN: Final = rf"^({'|'.join(sorted(NORMAL_SIDE))})(\.[A-Za-z0-9._\-]{{1,40}})?$"
#: An account name, ``party:party_id:purpose:CCY``, exactly as the chart allows it.
ACCOUNT_PATTERN: Final = (
    rf"^({'|'.join(p.value for p in Party)}):[A-Za-z0-9][A-Za-z0-9._\-]{{0,63}}:{PURPOSE_PATTERN[1:-1]}:[A-Z]{{3}}$"
)
_GLOB: Final = re.compile(GLOB_PATTERN)
_PREFIX: Final = re.compile(PREFIX_PATTERN)
_PURPOSE: Final = re.compile(PURPOSE_PATTERN)
_ACCOUNT: Final = re.compile(ACCOUNT_PATTERN)
_PARTY: Final = re.compile("|".join(p.value for p in Party))
_CCY: Final = re.compile(r"[A-Z]{3}")


def param(
    name: str, schema: dict[str, Any], description: str, where: str = "query", required: bool = False
) -> dict[str, Any]:
    """One OpenAPI parameter object (parameters are read by hand, so they are described by hand)."""
    return {"name": name, "in": where, "required": required or where == "path", "description": description,
            "schema": schema}  # fmt: skip


class Params:
    """Query parameters read one by one; each bad one is remembered as ``"name: reason"``."""

    def __init__(self, request: Request) -> None:
        self.query = request.query_params
        self.errors: list[str] = []

    def text(self, name: str, pattern: re.Pattern[str] | None = None, what: str = "", longest: int = 100) -> str | None:
        values = self.query.getlist(name)
        if not values:
            return None
        if len(values) > 1:
            self.errors.append(f"{name}: given {len(values)} times; give it once")
            return None
        value = values[0]
        if len(value) > longest:
            self.errors.append(f"{name}: {len(value)} characters; at most {longest}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.errors.append(f"{name}: {value[:80]!r} is not {what}")
            return None
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        return self.bounded(name, value, low, high, default)

    def bounded(self, name: str, value: str, low: int, high: int, default: int) -> int:
        if not (value.isascii() and value.isdigit()) or len(value) > 19 or not low <= int(value) <= high:
            self.errors.append(f"{name}: {value[:80]!r} is not a whole number from {low} to {high}")
            return default
        return int(value)

    def refused(self, problem: Problem) -> JSONResponse | None:
        """The 422 naming every bad parameter, or None when all were good."""
        if not self.errors:
            return None
        return problem(422, "Invalid query", "; ".join(self.errors), self.errors)


def read_body(model: type[M], raw: bytes, problem: Problem, title: str, limit: int = 4096) -> M | JSONResponse:
    """The body as ``model``, validated strictly (a number is not a string, nor a string a number), or the
    problem to answer: 400 for a body too large or not JSON, 422 naming each bad field."""
    if len(raw) > limit:
        return problem(400, "Body too large", f"the body is {len(raw)} bytes; the limit is {limit}",
                       [f"body: {len(raw)} bytes; at most {limit}"])  # fmt: skip
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        found = exc.errors()
        if any(e["type"] == "json_invalid" for e in found):
            return problem(400, "Not JSON", "body: not valid JSON", ["body: not valid JSON"])
        errors = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in found]
        return problem(422, title, "; ".join(errors), errors)


def paged(model: Any, *problems: int) -> dict[int | str, dict[str, Any]]:
    """The answers of a paged route: the page, with its ``Link`` header while another page follows."""
    out = contract.answers(model, *problems)
    out[200]["headers"] = {"Link": {"description": 'RFC 8288: `<next page URL>; rel="next"`, while one follows',
                                    "schema": {"type": "string"}}}  # fmt: skip
    return out


def when(us: int) -> str:
    """Microseconds since 1970-01-01 UTC as an ISO 8601 time in UTC."""
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))).isoformat()


def link_next(response: JSONResponse, url: str | None) -> JSONResponse:
    """Add the RFC 8288 ``Link`` header for the next page, when there is one."""
    if url is not None:
        response.headers["Link"] = f'<{url}>; rel="next"'
    return response


# ---- response shapes (documentation: the handlers build the same dicts) ----


class AccountRow(BaseModel):
    account: str = Field(examples=["seller:S-1001:available:BRL"])
    party: str = Field(examples=["seller"])
    party_id: str
    purpose: str = Field(examples=["available", "fee_revenue.commission"])
    currency: Currency
    normal_side: Literal["debit", "credit"]
    postings: int = Field(ge=0, description="postings booked to it so far")


class AccountsPage(BaseModel):
    accounts: list[AccountRow]
    cursor: str | None = Field(description="the last account of this page: pass it as `after` to go on")
    next: str | None = Field(description="the next page's URL, or null when this page is the last")


class PostingRow(BaseModel):
    line: int = Field(ge=1)
    account: str
    side: Literal["debit", "credit"]
    amount: Amount
    currency: Currency


class EntryRow(BaseModel):
    position: int = Field(ge=1, description="the log position of the event that booked it")
    event_id: str
    type: str
    occurred_at: str
    recorded_at: str
    memo: str
    postings: list[PostingRow]


class EntriesPage(BaseModel):
    entries: list[EntryRow]
    cursor: int = Field(ge=0, description="the last position this page covers: pass it as `after` to go on")
    next: str | None = Field(description="the next page's URL, or null when no more entries are projected yet")


# ---- queries ----


def _order(dialect: str) -> str:
    # Byte order on both databases, whatever PostgreSQL's collation: the cursor means the same everywhere.
    return ' COLLATE "C"' if dialect == "postgresql" else ""


def account_page(
    views: Any, dialect: str, after: str | None, limit: int, keep: Callable[[str], bool], prefix: str | None
) -> tuple[list[tuple[str, int]], bool]:
    """Up to ``limit`` accounts after the cursor that ``keep`` accepts, and whether more follow."""
    collate = _order(dialect)
    lower, inclusive = after or "", False
    if prefix is not None and prefix > lower:
        lower, inclusive = prefix, True
    found: list[tuple[str, int]] = []
    while True:
        rows = views.query(
            f"SELECT account, postings FROM account_balances WHERE account{collate} {'>=' if inclusive else '>'} ? "
            f"ORDER BY account{collate} LIMIT ?",
            (lower, PAGE_LIMIT),
        )
        for name, postings in rows:
            if prefix is not None and not name.startswith(prefix):
                if name > prefix:
                    return found, False  # past every name with the prefix
                continue
            if keep(name):
                if len(found) == limit:
                    return found, True
                found.append((name, int(postings)))
        if len(rows) < PAGE_LIMIT:
            return found, False
        lower, inclusive = rows[-1][0], False


def entries_after(views: Any, after: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` journal entries after position ``after`` with their postings, and whether more follow."""
    heads = views.query(
        "SELECT position, event_id, event_type, occurred_at_us, recorded_at_us, memo FROM journal_entries "
        "WHERE position > ? ORDER BY position LIMIT ?",
        (after, limit + 1),
    )
    more = len(heads) > limit
    heads = heads[:limit]
    if not heads:
        return [], False
    return _with_postings(views, heads, after, int(heads[-1][0])), more


def entry_at(views: Any, position: int) -> dict[str, Any] | None:
    """The journal entry booked by the event at ``position``, or None."""
    heads = views.query(
        "SELECT position, event_id, event_type, occurred_at_us, recorded_at_us, memo FROM journal_entries "
        "WHERE position = ?",
        (position,),
    )
    return _with_postings(views, heads, position - 1, position)[0] if heads else None


def _with_postings(views: Any, heads: Sequence[tuple[Any, ...]], after: int, last: int) -> list[dict[str, Any]]:
    lines: dict[int, list[dict[str, Any]]] = {}
    for position, line, account, ccy, debit, credit in views.query(
        "SELECT position, line, account, currency, debit_minor, credit_minor FROM journal_postings "
        "WHERE position > ? AND position <= ? ORDER BY position, line",
        (after, last),
    ):
        side, minor = ("debit", int(debit)) if int(debit) else ("credit", int(credit))
        lines.setdefault(int(position), []).append(
            {"line": int(line), "account": account, "side": side, "amount": format_amount(minor, ccy), "currency": ccy}
        )
    return [
        {"position": int(position), "event_id": event_id, "type": kind, "occurred_at": when(occurred),
         "recorded_at": when(recorded), "memo": memo, "postings": lines.get(int(position), [])}
        for position, event_id, kind, occurred, recorded, memo in heads
    ]  # fmt: skip


# ---- routes ----

_ACCOUNT_PARAMS: Final = [
    param("pattern", {"type": "string", "maxLength": 200, "pattern": GLOB_PATTERN},
          "glob over the whole name, e.g. `seller:*:available:BRL` (`*`, `?`, `[A-C]`, `[!X]`)"),
    param("prefix", {"type": "string", "maxLength": 200, "pattern": PREFIX_PATTERN}, "names starting with this"),
    param("party", {"type": "string", "enum": [p.value for p in Party]}, "only this party"),
    param("purpose", {"type": "string", "pattern": PURPOSE_PATTERN},
          "only this purpose (`fee_revenue` also matches `fee_revenue.commission`)"),
    param("currency", {"type": "string", "pattern": r"^[A-Z]{3}$"}, "only accounts in this currency"),
    param("after", {"type": "string", "pattern": ACCOUNT_PATTERN},
          "cursor: the last account already seen (the previous page's `cursor`)"),
    param("limit", {"type": "integer", "minimum": 1, "maximum": PAGE_LIMIT, "default": DEFAULT_PAGE},
          "accounts per page"),
]  # fmt: skip
_ENTRY_PARAMS: Final = [
    param("after", {"type": "integer", "minimum": 0, "maximum": MAX_POSITION, "default": 0},
          "cursor: the last log position already seen (the previous page's `cursor`)"),
    param("limit", {"type": "integer", "minimum": 1, "maximum": PAGE_LIMIT, "default": DEFAULT_PAGE},
          "entries per page"),
]  # fmt: skip
_POSITION_PARAM: Final = [
    param("position", {"type": "integer", "minimum": 1, "maximum": MAX_POSITION}, "the log position", where="path")
]


def add_routes(app: FastAPI, guard: Guard, state: dict[str, Any], lock: threading.Lock, problem: Problem) -> None:
    """Mount ``/v1/accounts`` and ``/v1/journal/entries`` (scope ``ledger:read``)."""

    @app.get(
        "/v1/accounts",
        dependencies=[contract.needs("ledger:read")],
        summary="The chart of accounts: every account posted to, with its parts (cursor pagination)",
        responses=paged(AccountsPage, 422),
        openapi_extra={"parameters": _ACCOUNT_PARAMS},
    )
    def accounts(request: Request) -> Response:
        if (refused := guard(request, "ledger:read")) is not None:
            return refused
        q = Params(request)
        pattern = q.text("pattern", _GLOB, "a glob of name characters with '*', '?' and closed '[…]' classes", 200)
        prefix = q.text("prefix", _PREFIX, "letters, digits and '._:-'", 200)
        party = q.text("party", _PARTY, f"one of {', '.join(p.value for p in Party)}")
        purpose = q.text("purpose", _PURPOSE, "a purpose of the chart of accounts, such as available or fee_revenue")
        ccy = q.text("currency", _CCY, "a three-letter upper-case ISO 4217 code")
        after = q.text("after", _ACCOUNT, "an account name party:party_id:purpose:CCY (the previous page's cursor)")
        if after is not None:
            try:
                parse_account(after)
            except AccountNameError as exc:
                q.errors.append(f"after: {exc}")
        limit = q.integer("limit", DEFAULT_PAGE, 1, PAGE_LIMIT)
        if (bad := q.refused(problem)) is not None:
            return bad

        def keep(name: str) -> bool:
            p_party, _, p_purpose, p_ccy = name.split(":")
            return (
                (pattern is None or fnmatch.fnmatchcase(name, pattern))
                and (party is None or p_party == party)
                and (purpose is None or p_purpose == purpose or p_purpose.startswith(purpose + "."))
                and (ccy is None or p_ccy == ccy)
            )

        with lock:
            ledger = state["ledger"]
            ledger.runner.run()
            found, more = account_page(ledger.views, ledger.dialect, after, limit, keep, prefix)
        rows = []
        for name, postings in found:
            acc = parse_account(name)
            rows.append({"account": name, "party": acc.party.value, "party_id": acc.party_id,
                         "purpose": acc.purpose, "currency": acc.currency, "normal_side": acc.normal_side.value,
                         "postings": postings})  # fmt: skip
        cursor = found[-1][0] if found else after
        nxt = None
        if more and cursor is not None:
            given = {k: v for k, v in (("pattern", pattern), ("prefix", prefix), ("party", party),
                                       ("purpose", purpose), ("currency", ccy)) if v is not None}  # fmt: skip
            nxt = "/v1/accounts?" + urlencode({**given, "after": cursor, "limit": limit})
        return link_next(JSONResponse({"accounts": rows, "cursor": cursor, "next": nxt}), nxt)

    @app.get(
        "/v1/journal/entries",
        dependencies=[contract.needs("ledger:read")],
        summary="Journal entries with their postings, in log order (cursor: the log position)",
        responses=paged(EntriesPage, 422),
        openapi_extra={"parameters": _ENTRY_PARAMS},
    )
    def journal_entries(request: Request) -> Response:
        if (refused := guard(request, "ledger:read")) is not None:
            return refused
        q = Params(request)
        after = q.integer("after", 0, 0, MAX_POSITION)
        limit = q.integer("limit", DEFAULT_PAGE, 1, PAGE_LIMIT)
        if (bad := q.refused(problem)) is not None:
            return bad
        with lock:
            ledger = state["ledger"]
            ledger.runner.run()
            entries, more = entries_after(ledger.views, after, limit)
        cursor = entries[-1]["position"] if entries else after
        nxt = f"/v1/journal/entries?after={cursor}&limit={limit}" if more else None
        return link_next(JSONResponse({"entries": entries, "cursor": cursor, "next": nxt}), nxt)

    @app.get(
        "/v1/journal/entries/{position}",
        dependencies=[contract.needs("ledger:read")],
        summary="The journal entry booked by the event at a log position",
        responses=contract.answers(EntryRow, 404, 422),
        openapi_extra={"parameters": _POSITION_PARAM},
    )
    def journal_entry(request: Request) -> Response:
        if (refused := guard(request, "ledger:read")) is not None:
            return refused
        q = Params(request)
        position = q.bounded("position", str(request.path_params["position"]), 1, MAX_POSITION, 0)
        if (bad := q.refused(problem)) is not None:
            return bad
        with lock:
            ledger = state["ledger"]
            ledger.runner.run()
            entry = entry_at(ledger.views, position)
            head = ledger.store.head()
        if entry is None:
            why = (f"{position} is beyond the head of the log ({head})" if position > head
                   else f"the event at position {position} books no journal entry")  # fmt: skip
            return problem(404, "No such entry", f"position: {why}", [f"position: {why}"])
        return JSONResponse(entry)
