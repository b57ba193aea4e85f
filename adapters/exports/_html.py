"""The HTML writer: one page that opens offline, with figures formatted for the reader's locale.

Nothing on the page is fetched: the CSS is inline, charts are inline SVG with glyphs drawn as
paths, and a Content-Security-Policy forbids any request the page might still try. Every
value and title is HTML-escaped. The same input gives the same bytes (no clock, no random ids).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from html import escape
from typing import Final

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    NumberPattern,
    format_decimal,
    format_percent,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
)

from adapters.exports._model import Cell, Money, Table, decimals_of, unique_slugs
from ledger.money import format_currency_digits

_WORDS: Final = {
    "en": {"rows": "rows", "row": "row", "totals": "Totals", "for": "Generated for", "none": "No rows."},
    "es": {"rows": "filas", "row": "fila", "totals": "Totales", "for": "Generado para", "none": "Sin filas."},
    "pt": {"rows": "linhas", "row": "linha", "totals": "Totais", "for": "Gerado para", "none": "Sem linhas."},
}

_CSS: Final = """
:root{color-scheme:light;--ink:#1d2430;--muted:#5b6576;--line:#d9dee7;--band:#f5f7fa;--neg:#b3261e}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1200px;padding:24px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
color:var(--ink)}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 6px;border-bottom:1px solid var(--line)}
.subtitle{color:var(--muted);margin:0 0 4px;font-size:16px}.for{color:var(--muted);margin:0}
nav ol{margin:12px 0;padding-left:20px}nav a{color:inherit}
.summary{color:var(--muted);margin:4px 0 12px}
figure{margin:12px 0}figure svg{max-width:100%;height:auto}
.wrap{overflow-x:auto;border:1px solid var(--line);border-radius:4px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap;vertical-align:top}
th{background:var(--band);position:sticky;top:0}
tbody tr:nth-child(even){background:#fbfcfd}
.num{text-align:right}.neg{color:var(--neg)}
footer{margin-top:32px;color:var(--muted);font-size:12px}
@media print{th{position:static}.wrap{overflow:visible;border:0}}
""".strip()

# Only inline styles and inline SVG are allowed: the browser refuses any fetch the page might attempt.
_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_QUOTED: Final = re.compile(r"'([^']*)'")


class LocaleNumbers:
    """Figures written for a locale with babel's symbols, every digit kept (no rounding, ever).

    An unknown locale falls back to plain decimals (``1234.50 BRL``). Babel's own functions
    cost ~50 µs a call; for the usual patterns the symbols and affixes are looked up once and
    applied by hand, which writes the same text (the tests compare them).
    """

    def __init__(self, locale: str) -> None:
        self.locale: Locale | None
        try:
            self.locale = Locale.parse(locale.replace("-", "_"))
        except (ValueError, TypeError, UnknownLocaleError):
            self.locale = None
        self._money_affixes: dict[str, tuple[str, str, str, str] | None] = {}
        if self.locale is not None:
            self._group = get_group_symbol(self.locale)
            self._decimal = get_decimal_symbol(self.locale)
            self._decimal_affixes = _affixes(self.locale.decimal_formats[None], "")
            self._percent_affixes = _affixes(self.locale.percent_formats[None], "")

    @property
    def language(self) -> str:
        return self.locale.language if self.locale is not None else "en"

    @property
    def tag(self) -> str:
        """The BCP 47 tag for ``<html lang>``."""
        if self.locale is None:
            return "en"
        return "-".join(p for p in (self.locale.language, self.locale.script, self.locale.territory) if p)

    def money(self, amount: Decimal, currency: str | None) -> str:
        if currency is None:
            return self.decimal(amount)
        if self.locale is None:
            return f"{amount:f} {currency}"
        if currency not in self._money_affixes:
            pattern = self.locale.currency_formats["standard"]
            self._money_affixes[currency] = _affixes(pattern, get_currency_symbol(currency, self.locale))
        affixes = self._money_affixes[currency]
        if affixes is None:
            # The currency's own decimals are already in the amount; babel must not round it to CLDR's.
            return format_currency_digits(amount, currency, self.locale, decimals_of(amount))
        return self._apply(amount, affixes)

    def decimal(self, value: Decimal) -> str:
        if self.locale is None:
            return f"{value:f}"
        if self._decimal_affixes is None:
            return format_decimal(value, locale=self.locale, decimal_quantization=False)
        return self._apply(value, self._decimal_affixes)

    def percent(self, fraction: Decimal) -> str:
        shown = (fraction * 100).quantize(Decimal(1).scaleb(-max(0, decimals_of(fraction) - 2)))
        if self.locale is None:
            return f"{shown:f}%"
        if self._percent_affixes is None:
            return format_percent(fraction, locale=self.locale, decimal_quantization=False)
        return self._apply(shown, self._percent_affixes)

    def _apply(self, value: Decimal, affixes: tuple[str, str, str, str]) -> str:
        digits = f"{abs(value):,f}"
        if self._group != "," or self._decimal != ".":
            digits = digits.translate({ord(","): self._group, ord("."): self._decimal})
        if value.is_signed():
            return f"{affixes[2]}{digits}{affixes[3]}"
        return f"{affixes[0]}{digits}{affixes[1]}"


def _affixes(pattern: NumberPattern, symbol: str) -> tuple[str, str, str, str] | None:
    """Positive and negative prefix and suffix of a pattern, or None when only babel can apply it."""
    if pattern.grouping != (3, 3) or pattern.exp_prec or "@" in pattern.pattern or pattern.scale not in (0, 2):
        return None  # Indian grouping, scientific or significant-digit patterns
    parts = (pattern.prefix[0], pattern.suffix[0], pattern.prefix[1], pattern.suffix[1])
    if any("¤¤" in p for p in parts):
        return None
    out = tuple(_QUOTED.sub(lambda m: m.group(1) or "'", p.replace("¤", symbol)) for p in parts)
    return out[0], out[1], out[2], out[3]


def render_html(title: str, subtitle: str, generated_for: str, tables: Sequence[Table], locale: str) -> str:
    """The whole page as text."""
    numbers = LocaleNumbers(locale)
    words = _WORDS.get(numbers.language, _WORDS["en"])
    anchors = [f"s-{slug}" for slug in unique_slugs([t.title for t in tables])]
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{escape(numbers.tag)}">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="Quipu">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{escape(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="subtitle">{escape(subtitle)}</p>')
    if generated_for:
        parts.append(f'<p class="for">{escape(words["for"])} {escape(generated_for)}</p>')
    parts.append("</header>")
    if len(tables) > 1:
        parts.append("<nav><ol>")
        parts.extend(f'<li><a href="#{a}">{escape(t.title)}</a></li>' for t, a in zip(tables, anchors, strict=True))
        parts.append("</ol></nav>")
    for index, (table, anchor) in enumerate(zip(tables, anchors, strict=True)):
        parts.append(f'<section id="{anchor}">')
        parts.append(f"<h2>{escape(table.title)}</h2>")
        parts.append(f'<p class="summary">{_summary(table, numbers, words)}</p>')
        if table.charts:
            from adapters.exports._charts import chart_svg

            for n, chart in enumerate(table.charts):
                parts.append(f'<figure role="img" aria-label="{escape(chart.title)}">')
                parts.append(chart_svg(chart, prefix=f"q{index}c{n}-", number=numbers.decimal))
                parts.append("</figure>")
        parts.append(_table_html(table, numbers, words))
        parts.append("</section>")
    if generated_for:
        parts.append(f"<footer>{escape(words['for'])} {escape(generated_for)}</footer>")
    parts.append("</body>")
    parts.append("</html>")
    return "\n".join(parts) + "\n"


def _summary(table: Table, numbers: LocaleNumbers, words: dict[str, str]) -> str:
    count = len(table.cells)
    text = f"{count:,} {words['row'] if count == 1 else words['rows']}"
    totals = []
    for index, column in enumerate(table.columns):
        if column.kind != "money":
            continue
        sums: dict[str | None, Decimal] = {}
        for row in table.cells:
            cell = row[index]
            if isinstance(cell, Money):
                sums[cell.currency] = sums.get(cell.currency, Decimal(0)) + cell.amount
        if sums:
            # Currencies in a fixed order so the page is the same bytes each time.
            shown = ", ".join(numbers.money(sums[c], c) for c in sorted(sums, key=lambda c: c or ""))
            totals.append(f"{escape(column.name)}: {escape(shown)}")
    if totals:
        text += f" · {escape(words['totals'])}: " + "; ".join(totals)
    return text


def _table_html(table: Table, numbers: LocaleNumbers, words: dict[str, str]) -> str:
    if not table.columns:
        return f"<p>{escape(words['none'])}</p>"
    numeric = [c.kind in ("money", "int", "decimal", "percent") for c in table.columns]
    head = "".join(
        f'<th class="num">{escape(c.name)}</th>' if is_num else f"<th>{escape(c.name)}</th>"
        for c, is_num in zip(table.columns, numeric, strict=True)
    )
    lines = ['<div class="wrap"><table>', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    percent = [c.kind == "percent" for c in table.columns]
    for row in table.cells:
        cells = "".join(_td(cell, numbers, is_pct) for cell, is_pct in zip(row, percent, strict=True))
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def _td(cell: Cell, numbers: LocaleNumbers, is_percent: bool) -> str:
    if cell is None:
        return "<td></td>"
    if isinstance(cell, str):
        return f"<td>{escape(cell)}</td>"
    if isinstance(cell, Money):
        return _num(numbers.money(cell.amount, cell.currency), cell.amount < 0)
    if isinstance(cell, Decimal):
        return _num(numbers.percent(cell) if is_percent else numbers.decimal(cell), cell < 0)
    if isinstance(cell, int):
        return _num(str(cell), cell < 0)
    if isinstance(cell, datetime):
        # ISO 8601: unambiguous for readers on both sides of 03/04.
        return f"<td>{escape(cell.isoformat(sep=' '))}</td>"
    if isinstance(cell, date):
        return f"<td>{cell.isoformat()}</td>"
    return f"<td>{escape(str(cell))}</td>"  # pragma: no cover - every Cell kind is handled above


def _num(text: str, negative: bool) -> str:
    return f'<td class="num neg">{escape(text)}</td>' if negative else f'<td class="num">{escape(text)}</td>'
