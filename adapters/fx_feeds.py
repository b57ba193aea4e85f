"""FX rate sources: file importers (CSV, JSON, ECB XML) and a streaming feed read from a tick file.

Each importer returns ``(records, problems)``: every problem names the file, line (or
element) and field, and a file with any problem is not imported at all. Records become
``fx.rate_published`` events whose ids derive from (pair, source, as_of), so importing the
same file twice records nothing new.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

import orjson

from ledger.errors import QuipuError
from ledger.money import currency

_RATE: Final = re.compile(r"(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?")
_NS: Final = uuid.UUID("0f5c1d7e-3a52-4b8e-9c1e-2b7f6a4d9e10")


@dataclass(frozen=True, slots=True)
class RateRecord:
    """One published rate and where it came from."""

    base: str
    quote: str
    rate: str
    source: str
    as_of: dt.datetime
    origin: str
    """``file:line`` (or element) it was read from."""

    def event(self) -> dict[str, Any]:
        """The ``fx.rate_published`` event, with an id that makes re-imports duplicates."""
        key = f"{self.base}{self.quote}|{self.source}|{self.as_of.isoformat()}"
        return {
            "event_id": str(uuid.uuid5(_NS, key)),
            "type": "fx.rate_published",
            "schema_version": 1,
            "occurred_at": self.as_of.isoformat(),
            "source": f"fx-import:{self.origin.split(':')[0]}",
            "payload": {
                "base": self.base,
                "quote": self.quote,
                "rate": self.rate,
                "source": self.source,
                "as_of": self.as_of.isoformat(),
            },
        }


def _check(fields: dict[str, Any], source: str | None, origin: str) -> tuple[RateRecord | None, list[str]]:
    problems = []
    values: dict[str, str] = {}
    for name in ("base", "quote", "rate", "as_of"):
        value = fields.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{origin}: {name}: missing")
        else:
            values[name] = value.strip()
    src = source or (fields.get("source") or "").strip()
    if not src:
        problems.append(f"{origin}: source: missing (give a source column or --source)")
    for name in ("base", "quote"):
        if name in values:
            try:
                currency(values[name])
            except QuipuError as exc:
                problems.append(f"{origin}: {name}: {exc}")
    if "rate" in values and (not _RATE.fullmatch(values["rate"]) or Decimal(values["rate"]) == 0):
        problems.append(f"{origin}: rate: {values['rate']!r} is not a positive decimal such as 5.4321")
    as_of = None
    if "as_of" in values:
        try:
            as_of = dt.datetime.fromisoformat(values["as_of"].replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{origin}: as_of: {values['as_of']!r} is not an ISO 8601 time")
        else:
            if as_of.tzinfo is None:
                problems.append(f"{origin}: as_of: {values['as_of']!r} has no UTC offset")
    if values.get("base") and values.get("base") == values.get("quote"):
        problems.append(f"{origin}: quote: a rate from {values['base']} to itself is not a rate")
    if problems or as_of is None:
        return None, problems
    return RateRecord(values["base"], values["quote"], values["rate"], src, as_of, origin), []


def read_csv(path: Path, source: str | None = None) -> tuple[list[RateRecord], list[str]]:
    """Columns ``base,quote,rate,as_of[,source]`` with a header row."""
    records, problems = [], []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"base", "quote", "rate", "as_of"} - set(reader.fieldnames or [])
        if missing:
            return [], [f"{path.name}:1: header lacks {', '.join(sorted(missing))}"]
        for row in reader:
            record, found = _check(dict(row), source, f"{path.name}:{reader.line_num}")
            problems += found
            if record:
                records.append(record)
    return records, problems


def read_json(path: Path, source: str | None = None) -> tuple[list[RateRecord], list[str]]:
    """A JSON array of objects with ``base``, ``quote``, ``rate`` (a string), ``as_of`` and ``source``."""
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        return [], [f"{path.name}: not valid JSON ({exc})"]
    if not isinstance(data, list):
        return [], [f"{path.name}: must be a JSON array of rate objects"]
    records, problems = [], []
    for i, item in enumerate(data):
        origin = f"{path.name}:[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{origin}: must be an object")
            continue
        if not isinstance(item.get("rate"), str):
            problems.append(f"{origin}: rate: must be a decimal string, not a {type(item.get('rate')).__name__}")
            continue
        record, found = _check(item, source, origin)
        problems += found
        if record:
            records.append(record)
    return records, problems


def read_ecb_xml(path: Path) -> tuple[list[RateRecord], list[str]]:
    """The ECB's euro reference rates (``eurofxref`` XML): EUR base, fixed at 16:00 Frankfurt time."""
    try:
        root = ET.parse(path).getroot()  # a rates file the operator chose; ElementTree expands no external entities
    except ET.ParseError as exc:
        return [], [f"{path.name}: not well-formed XML ({exc})"]
    records, problems = [], []
    frankfurt = ZoneInfo("Europe/Berlin")
    for day in root.iter():
        if not day.tag.endswith("Cube") or "time" not in day.attrib:
            continue
        try:
            date = dt.date.fromisoformat(day.attrib["time"])
        except ValueError:
            problems.append(f"{path.name}: Cube time={day.attrib['time']!r}: not a date")
            continue
        as_of = dt.datetime(date.year, date.month, date.day, 16, 0, tzinfo=frankfurt).isoformat()
        for cube in day:
            origin = f"{path.name}:{date} {cube.attrib.get('currency', '?')}"
            fields = {
                "base": "EUR",
                "quote": cube.attrib.get("currency"),
                "rate": cube.attrib.get("rate"),
                "as_of": as_of,
            }
            record, found = _check(fields, "ECB", origin)
            problems += found
            if record:
                records.append(record)
    if not records and not problems:
        problems.append(f"{path.name}: no Cube elements with rates")
    return records, problems


class RateFeed(Protocol):
    """A streaming source of rates (a Bloomberg- or LSEG-like push feed)."""

    def __iter__(self) -> Iterator[RateRecord]: ...


class RecordedTickFeed:
    """A feed replayed from a recorded tick file: one JSON tick per line,
    ``{"pair": "USDBRL", "bid": "5.4321", "ask": "5.4329", "ts": "2026-11-25T13:00:00.250Z", "venue": "LSEG"}``.
    Each tick becomes a rate at its mid price (bid + ask) / 2, from ``venue``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def __iter__(self) -> Iterator[RateRecord]:
        with self.path.open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                origin = f"{self.path.name}:{number}"
                try:
                    tick = orjson.loads(line)
                    pair, bid, ask = str(tick["pair"]), Decimal(str(tick["bid"])), Decimal(str(tick["ask"]))
                except (orjson.JSONDecodeError, KeyError, ArithmeticError, TypeError) as exc:
                    self.problems.append(f"{origin}: not a tick with pair, bid and ask ({exc})")
                    continue
                if not isinstance(tick.get("bid"), str) or not isinstance(tick.get("ask"), str):
                    self.problems.append(f"{origin}: bid and ask must be decimal strings")
                    continue
                if len(pair) != 6 or ask < bid:
                    self.problems.append(f"{origin}: pair must be six letters and ask not below bid")
                    continue
                mid = ((bid + ask) / 2).quantize(Decimal("0.000000000001")).normalize()
                fields = {"base": pair[:3], "quote": pair[3:], "rate": format(mid, "f"), "as_of": tick.get("ts")}
                record, found = _check(fields, str(tick.get("venue") or "market feed"), origin)
                self.problems += found
                if record:
                    yield record


def read_ticks(path: Path) -> tuple[list[RateRecord], list[str]]:
    """All the rates of a recorded tick file."""
    feed = RecordedTickFeed(path)
    records = list(feed)
    return records, feed.problems
