"""ISO 20022 ``camt.053`` bank statements (BankToCustomerStatement, any ``camt.053.001.NN``).

Read with expat, the streaming parser under the standard library's XML modules, fed in chunks:
only the entry being read is kept in memory. A DOCTYPE is refused as soon as the parser meets
it, before any entity is declared, so an external entity (XXE) is never fetched and an entity
bomb (billion laughs) never expanded; a statement has no use for either.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass, field
from typing import IO, Final

from adapters.recon_import.model import (
    PAN_REASON,
    Context,
    Problems,
    amount_text,
    build_line,
    check_currency,
    cut_description,
    parse_date,
    parse_decimal,
    quoted,
)
from adapters.recon_import.settings import CamtFormat
from domain.recon.events import StatementLinePayload
from ledger.pan import contains_pan

#: Every version of the message: camt.053.001.02 (2009) to the latest.
NAMESPACE: Final = re.compile(r"urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.[0-9]{2}")
_STATEMENTS: Final = ("Document", "BkToCstmrStmt")
_STATEMENT: Final = (*_STATEMENTS, "Stmt")
_ENTRY: Final = (*_STATEMENT, "Ntry")
_ACCOUNTS: Final = frozenset({(*_STATEMENT, "Acct", "Id", "IBAN"), (*_STATEMENT, "Acct", "Id", "Othr", "Id")})
#: ISO 20022 amounts: up to 18 digits, at most 5 of them decimals, no sign (CdtDbtInd says which way).
_AMOUNT: Final = re.compile(r"[0-9]{1,18}(\.[0-9]{1,5})?")
# Limits on what one element may hold, so a hostile file cannot grow memory without bound.
MAX_TEXT_CHARS: Final = 64 * 1024
MAX_DEPTH: Final = 64
MAX_ENTRY_ELEMENTS: Final = 10_000
CHUNK_BYTES: Final = 1024 * 1024


@dataclass
class _Element:
    line: int
    attrs: dict[str, str]
    parts: list[str] = field(default_factory=list)
    chars: int = 0


@dataclass
class _Entry:
    line: int
    fields: dict[str, tuple[str, int, dict[str, str]]] = field(default_factory=dict)
    """Path inside ``Ntry`` → (text, line, attributes) of its first occurrence."""
    elements: int = 0
    ok: bool = True


class _Reader:
    def __init__(self, layout: CamtFormat, ctx: Context) -> None:
        self.layout = layout
        self.ctx = ctx
        self.problems: Problems = ctx.problems
        # ISO 20022 messages are UTF-8; fixing it here also keeps a declared encoding from
        # reaching Python's codec lookup (an unknown name there is not an XML error).
        self.parser = xml.parsers.expat.ParserCreate(encoding="UTF-8", namespace_separator=" ")
        self.parser.buffer_text = True
        self.parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.parser.StartDoctypeDeclHandler = self._refuse_doctype
        self.parser.EntityDeclHandler = self._refuse_entity
        self.parser.ExternalEntityRefHandler = self._refuse_external
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._chars
        self.names: list[str] = []
        self.open: list[_Element] = []
        self.namespace = ""
        self.statements_seen = False
        self.entry: _Entry | None = None
        self.entries = 0
        self.account: str | None = None
        self.lines: list[StatementLinePayload] = []

    def _refuse_doctype(self, *_: object) -> None:
        self.problems.fatal(
            "a DOCTYPE is not accepted (entity declarations can read files or expand without end)",
            self.parser.CurrentLineNumber,
        )

    def _refuse_entity(self, *_: object) -> None:
        self.problems.fatal("an entity declaration is not accepted", self.parser.CurrentLineNumber)

    def _refuse_external(self, *_: object) -> int:
        self.problems.fatal("an external entity is not accepted", self.parser.CurrentLineNumber)

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        uri, _, local = name.rpartition(" ")
        line = self.parser.CurrentLineNumber
        if not self.names:
            if local != "Document" or not NAMESPACE.fullmatch(uri):
                self.problems.fatal(
                    f"not a camt.053 statement: the root element is {local} in namespace {uri or '(none)'!r}",
                    line,
                    local,
                )
            self.namespace = uri
        # Elements of other namespaces (inside SplmtryData) keep theirs, so no path of ours matches them.
        self.names.append(local if uri == self.namespace else f"{{{uri}}}{local}")
        path = tuple(self.names)
        if len(path) > MAX_DEPTH:
            self.problems.fatal(f"elements nested deeper than {MAX_DEPTH}", line, "/".join(path))
        for key, value in attrs.items():
            if contains_pan(value):
                self._bad(PAN_REASON, line, "/".join(path) + "/@" + key)
        if path == _STATEMENTS:
            self.statements_seen = True
        elif path == _STATEMENT:
            self.account = None
        elif path == _ENTRY:
            self.entries += 1
            if self.entries > self.ctx.max_lines:
                self.problems.fatal(f"more than {self.ctx.max_lines} entries", line, "/".join(path))
            self.entry = _Entry(line)
        elif self.entry is not None:
            self.entry.elements += 1
            if self.entry.elements > MAX_ENTRY_ELEMENTS:
                self.problems.fatal(f"an entry with more than {MAX_ENTRY_ELEMENTS} elements", line, "/".join(path))
        self.open.append(_Element(line, attrs))

    def _chars(self, data: str) -> None:
        element = self.open[-1]
        # Indentation between elements is dropped, or the root would gather the whole file's.
        if not element.parts and not data.strip():
            return
        element.chars += len(data)
        if element.chars > MAX_TEXT_CHARS:
            self.problems.fatal(f"text longer than {MAX_TEXT_CHARS} characters", element.line, "/".join(self.names))
        element.parts.append(data)

    def _end(self, _name: str) -> None:
        element = self.open.pop()
        path = tuple(self.names)
        text = "".join(element.parts).strip()
        if text and contains_pan(text):
            self._bad(PAN_REASON, element.line, "/".join(path))
        if self.entry is not None and len(path) > len(_ENTRY):
            self.entry.fields.setdefault("/".join(path[len(_ENTRY) :]), (text, element.line, element.attrs))
        elif path in _ACCOUNTS:
            self.account = text
        elif path == _ENTRY and self.entry is not None:
            if self.entry.ok:
                self._finish(self.entry)
            self.entry = None
        self.names.pop()

    def _bad(self, reason: str, line: int, column: str) -> None:
        if self.entry is not None:
            self.entry.ok = False
        self.problems.add(reason, line, column)

    def _finish(self, entry: _Entry) -> None:
        prefix = "/".join(_ENTRY)
        ok = True

        def fail(path: str, reason: str) -> None:
            nonlocal ok
            ok = False
            found = entry.fields.get(path)
            self.problems.add(reason, found[1] if found else entry.line, f"{prefix}/{path}")

        def text(path: str) -> str:
            found = entry.fields.get(path)
            return found[0] if found else ""

        currency = entry.fields.get("Amt", ("", 0, {}))[2].get("Ccy", "")
        try:
            check_currency(currency)
        except ValueError as exc:
            fail("Amt", f"Ccy: {exc}")
            currency = ""
        if currency and self.ctx.currency is not None and currency != self.ctx.currency:
            fail("Amt", f"Ccy: {currency} differs from the currency asked, {self.ctx.currency}")
            currency = ""
        net = None
        amount = text("Amt")
        if not _AMOUNT.fullmatch(amount):
            fail("Amt", f"{quoted(amount)} is not an amount such as 1234.56" if amount else "an amount is required")
        elif currency:
            try:
                value = parse_decimal(amount, signed=False)
                if value == 0:
                    fail("Amt", "the amount is zero: an entry must move money")
                net = {"amount": amount_text(value, currency), "currency": currency}
            except ValueError as exc:
                fail("Amt", str(exc))
        indicator = text("CdtDbtInd")
        if indicator not in ("CRDT", "DBIT"):
            fail("CdtDbtInd", f"{quoted(indicator)} is neither CRDT nor DBIT")
        direction = "debit" if indicator == "DBIT" else "credit"
        booked_on, value_date = None, None
        for which in ("BookgDt", "ValDt"):
            day = None
            if f"{which}/Dt" in entry.fields:
                path, formats = f"{which}/Dt", ("%Y-%m-%d",)
            else:
                path, formats = f"{which}/DtTm", ("iso8601",)
            if path in entry.fields:
                try:
                    day = parse_date(text(path), formats)
                except ValueError as exc:
                    fail(path, str(exc))
            elif which == "BookgDt":
                fail("BookgDt", "a booking date (Dt or DtTm) is required")
            if which == "BookgDt":
                booked_on = day
            else:
                value_date = day
        reference, ref_path = None, self.layout.reference[0]
        for path in self.layout.reference:
            candidate = text(path)
            if candidate and candidate not in self.layout.ignore_references:
                reference, ref_path = candidate, path
                break
        if reference is None:
            fail(ref_path, f"no reference: none of {', '.join(self.layout.reference)} is given")
        description = text(self.layout.description)
        if self.layout.account_in_description and self.account:
            description = f"account {self.account}: {description}" if description else f"account {self.account}"
        if not ok:
            return
        fields = {
            **self.ctx.base(),
            "line_no": entry.line,
            "record_type": f"bank_{direction}",
            "reference": reference,
            "direction": direction,
            "net": net,
            "booked_on": booked_on,
            "value_date": value_date,
            "description": cut_description(description),
        }
        columns = {
            "net": "Amt", "direction": "CdtDbtInd", "record_type": "CdtDbtInd", "reference": ref_path,
            "booked_on": "BookgDt", "value_date": "ValDt", "description": self.layout.description,
        }  # fmt: skip
        line = build_line(fields, entry.line, {k: f"{prefix}/{v}" for k, v in columns.items()}, self.problems)
        if line is not None:
            self.lines.append(line)

    def read(self, stream: IO[bytes]) -> list[StatementLinePayload]:
        try:
            while chunk := stream.read(CHUNK_BYTES):
                self.parser.Parse(chunk, False)
            self.parser.Parse(b"", True)
        except xml.parsers.expat.ExpatError as exc:
            reason = xml.parsers.expat.ErrorString(exc.code) or "not well-formed"
            self.problems.fatal(f"malformed XML: {reason} (character {exc.offset + 1})", exc.lineno)
        except (LookupError, ValueError) as exc:  # pragma: no cover - expat's own limits, kept as refusals
            self.problems.fatal(f"malformed XML: {exc}", self.parser.CurrentLineNumber)
        if not self.statements_seen:
            self.problems.fatal("not a bank-to-customer statement: no BkToCstmrStmt element", None, "Document")
        return self.lines


def read_camt053(stream: IO[bytes], layout: CamtFormat, ctx: Context) -> list[StatementLinePayload]:
    """One line per ``Ntry``: its line number is the element's, columns are element paths."""
    return _Reader(layout, ctx).read(stream)
