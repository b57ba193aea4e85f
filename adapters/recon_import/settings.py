"""``config/recon_formats.toml``: how each report or statement format is read.

The file is finance's to edit, so every mistake in it is named by section and field
(``recon_formats.toml: stripe-balance.columns: ...``) before any statement is read.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.config_files import CONFIG_ROOT, ConfigError
from domain.envelope import Ident
from domain.recon.events import RecordType, SourceKind

DEFAULT_PATH: Final = CONFIG_ROOT / "recon_formats.toml"

_FROZEN: Final = ConfigDict(frozen=True, extra="forbid")
Header = Annotated[str, Field(min_length=1, max_length=200)]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class CsvFormat(BaseModel):
    """One CSV layout: where each value is, and how its numbers and dates are written."""

    model_config = _FROZEN

    source: Ident
    """The default producer of such files (the caller may name another)."""
    source_kind: SourceKind
    currency: CurrencyCode | None = None
    """For files without a currency column; the caller's currency wins over it."""
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    decimal_separator: Literal[".", ","] = "."
    thousands_separator: Literal["", ".", ",", " ", "'"] = ""
    date_formats: Annotated[tuple[str, ...], Field(min_length=1)]
    """``iso8601``, ``unix`` or strptime patterns, tried in order."""
    unknown_columns: Literal["ignore", "refuse"] = "ignore"
    allow_trailing_zero_decimals: bool = False
    """Accept ``"1500.00"`` for a currency without decimals when the extra digits are zeros."""
    columns: dict[str, Header]
    """What we read (a role) → its header name; the column must be present."""
    optional_columns: dict[str, Header] = Field(default_factory=dict)
    """Same, for columns a file may leave out."""
    record_types: dict[str, RecordType] = Field(default_factory=dict)
    """The file's own record kind (lower case) → ours."""
    record_type_default: RecordType | None = None
    """For kinds not listed; ``None`` refuses them."""
    reference: dict[str, Annotated[tuple[Header, ...], Field(min_length=1)]] = Field(default_factory=dict)
    """Record type (or ``default``) → the header names holding our id, first non-empty wins."""

    @model_validator(mode="after")
    def _consistent(self) -> CsvFormat:
        if self.decimal_separator == self.thousands_separator:
            raise ValueError("thousands_separator: must differ from decimal_separator")
        both = set(self.columns) & set(self.optional_columns)
        if both:
            raise ValueError(f"optional_columns: {', '.join(sorted(both))} also in columns")
        headers = [*self.columns.values(), *self.optional_columns.values()]
        twice = sorted({h for h in headers if headers.count(h) > 1})
        if twice:
            raise ValueError(f"columns: header {', '.join(twice)} named for two roles")
        for pattern in self.date_formats:
            if pattern not in ("iso8601", "unix") and "%" not in pattern:
                raise ValueError(
                    f"date_formats: {pattern!r} is not iso8601, unix or a strptime pattern such as %d/%m/%Y"
                )
        for kind, names in self.reference.items():
            unknown = [h for h in names if h not in headers]
            if unknown:
                raise ValueError(f"reference.{kind}: {', '.join(unknown)} is not one of the columns")
        return self

    def header(self, role: str) -> str | None:
        """The header name of a role, if this layout maps it."""
        return self.columns.get(role) or self.optional_columns.get(role)

    def references(self, record_type: str) -> tuple[str, ...]:
        """The header names to take our id from, for a record type."""
        return self.reference.get(record_type) or self.reference.get("default", ())


class MercadoPagoFormat(CsvFormat):
    """The release report, whose rows are records or the report's own structure."""

    record_rows: Annotated[tuple[str, ...], Field(min_length=1)]
    """RECORD_TYPE values that are records (lines)."""
    structure_rows: tuple[str, ...] = ()
    """RECORD_TYPE values that are balances, subtotals and totals (not lines)."""
    subtotal_row: str | None = None
    total_row: str | None = None


class CamtFormat(BaseModel):
    """The camt.053 reader's choices."""

    model_config = _FROZEN

    source: Ident
    source_kind: SourceKind
    reference: Annotated[
        tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9]+(/[A-Za-z0-9]+)*$")], ...], Field(min_length=1)
    ]
    """Element paths inside ``Ntry`` holding the reference, first present wins."""
    ignore_references: tuple[str, ...] = ()
    description: Annotated[str, Field(pattern=r"^[A-Za-z0-9]+(/[A-Za-z0-9]+)*$")] = "AddtlNtryInf"
    account_in_description: bool = False


#: Per CSV format: the roles it reads, and those that must be mapped (in columns or optional_columns).
ROLES: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    "mercadopago-release": (
        frozenset({"value_date", "source_id", "external_reference", "row_type", "kind", "net_credit", "net_debit",
                   "gross", "fee", "financing_fee", "booked_on", "batch_id", "currency", "description"}),
        frozenset({"value_date", "row_type", "kind", "net_credit", "net_debit"}),
    ),
    "stripe-balance": (
        frozenset({"id", "kind", "source_id", "net", "gross", "fee", "currency", "booked_on", "value_date",
                   "reporting_category", "description", "batch_id", "external_reference", "exchange_rate"}),
        frozenset({"id", "kind", "net", "currency", "booked_on"}),
    ),
    "bank-csv": (
        frozenset({"booked_on", "value_date", "amount", "credit", "debit", "currency", "reference", "description"}),
        frozenset({"booked_on"}),
    ),
}  # fmt: skip


class ReconFormats(BaseModel):
    """The whole file: limits, then one section per format."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    version: Annotated[str, Field(min_length=1)]
    effective_from: dt.date
    max_file_bytes: Annotated[int, Field(gt=0, le=64 * 1024**3)]
    max_lines: Annotated[int, Field(gt=0, le=50_000_000)]
    """At most 50 million: what ``recon.file_imported`` can count."""
    max_problems: Annotated[int, Field(ge=1, le=100_000)] = 1000
    mercadopago_release: MercadoPagoFormat = Field(alias="mercadopago-release")
    stripe_balance: CsvFormat = Field(alias="stripe-balance")
    camt053: CamtFormat
    bank_csv: CsvFormat = Field(alias="bank-csv")

    @model_validator(mode="after")
    def _roles(self) -> ReconFormats:
        for name, layout in (
            ("mercadopago-release", self.mercadopago_release),
            ("stripe-balance", self.stripe_balance),
            ("bank-csv", self.bank_csv),
        ):
            known, needed = ROLES[name]
            mapped = set(layout.columns) | set(layout.optional_columns)
            unknown = sorted(mapped - known)
            if unknown:
                raise ValueError(
                    f"{name}.columns: unknown role {', '.join(unknown)}; known: {', '.join(sorted(known))}"
                )
            missing = sorted(needed - mapped)
            if missing:
                raise ValueError(f"{name}.columns: {', '.join(missing)} must be given")
        signed, split = self.bank_csv.header("amount"), (self.bank_csv.header("credit"), self.bank_csv.header("debit"))
        one_column = signed is not None and split == (None, None)
        two_columns = signed is None and None not in split
        if not (one_column or two_columns):
            raise ValueError("bank-csv.columns: give either amount (signed) or both credit and debit")
        return self

    def section(self, fmt: str) -> CsvFormat | CamtFormat:
        """The settings of one format (``mercadopago-release`` ...)."""
        by_name: dict[str, CsvFormat | CamtFormat] = {
            "mercadopago-release": self.mercadopago_release,
            "stripe-balance": self.stripe_balance,
            "camt053": self.camt053,
            "bank-csv": self.bank_csv,
        }
        return by_name[fmt]


def load_formats(path: Path | None = None) -> ReconFormats:
    """The format settings, or a :class:`ConfigError` naming the section and field at fault."""
    file = path or DEFAULT_PATH
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file.name}: not valid TOML ({exc})") from None
    try:
        return ReconFormats.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False):
            where = ".".join(str(p) for p in e["loc"])
            where = f"{where}: " if where else ""
            problems.append(f"{file.name}: {where}{e['msg'].removeprefix('Value error, ')}")
        raise ConfigError("; ".join(problems)) from None
