"""Reading the dated rule files under ``config/`` (TOML and JSON that finance can read and edit).

Errors name the file, the entry and the field: ``consumption_taxes.toml: rule[3].components[0].rate_pct: ...``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Final, TypeVar

from pydantic import BaseModel, ValidationError

from domain.aml.rules import AmlRules
from domain.fx_rules import ConversionRules
from domain.logistics import LogisticsRules
from domain.recon.rules import ReconConfig
from domain.regions import RegionConfig
from domain.settlement.calendar import CalendarTable
from domain.settlement.dates import MethodRules
from domain.settlement.routes import RouteError, RouteTable, load_route_table
from domain.taxes.assess import WithholdingTable
from domain.taxes.rules import ConsumptionTable, ImportTable
from ledger.errors import QuipuError

CONFIG_ROOT: Final = Path(__file__).resolve().parents[1] / "config"
M = TypeVar("M", bound=BaseModel)


class ConfigError(QuipuError, ValueError):
    """A rule file that is missing, unreadable or invalid."""


def _load(model: type[M], path: Path) -> M:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name}: not valid {path.suffix[1:].upper()} ({exc})") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
            problems.append(f"{path.name}: {where}: {e['msg'].removeprefix('Value error, ')}")
        raise ConfigError("; ".join(problems)) from None


def consumption_taxes(path: Path | None = None) -> ConsumptionTable:
    """The consumption-tax table."""
    return _load(ConsumptionTable, path or CONFIG_ROOT / "consumption_taxes.toml")


def import_duties(path: Path | None = None) -> ImportTable:
    """The import-duty table."""
    return _load(ImportTable, path or CONFIG_ROOT / "import_duties.toml")


def regions(path: Path | None = None) -> RegionConfig:
    """The region configuration."""
    return _load(RegionConfig, path or CONFIG_ROOT / "regions.json")


class FxSettings(BaseModel):
    """``config/fx.toml``."""

    version: str
    lock_seconds: int
    default_markup: str
    official_fix_minutes: int = 4320
    staleness_minutes: dict[str, int]

    def staleness_limit_minutes(self, base: str, quote: str) -> int:
        """The staleness limit for a pair, or the default."""
        return self.staleness_minutes.get(base + quote, self.staleness_minutes["default"])


def fx_settings(path: Path | None = None) -> FxSettings:
    """The FX settings."""
    return _load(FxSettings, path or CONFIG_ROOT / "fx.toml")


def calendars(path: Path | None = None) -> CalendarTable:
    """The bank calendar rules."""
    return _load(CalendarTable, path or CONFIG_ROOT / "calendars.toml")


def settlement_methods(path: Path | None = None) -> MethodRules:
    """How each payment method settles."""
    return _load(MethodRules, path or CONFIG_ROOT / "settlement.toml")


def logistics(path: Path | None = None) -> LogisticsRules:
    """The delivery-delay compensation rules."""
    return _load(LogisticsRules, path or CONFIG_ROOT / "logistics.toml")


def withholding(path: Path | None = None) -> WithholdingTable:
    """The platform withholding rules and registered sellers."""
    return _load(WithholdingTable, path or CONFIG_ROOT / "withholding.toml")


def conversion_rules(path: Path | None = None) -> ConversionRules:
    """The sellers' automatic conversion rules."""
    return _load(ConversionRules, path or CONFIG_ROOT / "conversion_rules.toml")


def route_table(path: Path | None = None) -> RouteTable:
    """The payout corridors."""
    try:
        return load_route_table(path or CONFIG_ROOT / "payout_routes.toml")
    except RouteError as exc:
        raise ConfigError(str(exc)) from None


def aml_rules(path: Path | None = None) -> AmlRules:
    """The AML typologies' thresholds per site."""
    return _load(AmlRules, path or CONFIG_ROOT / "aml.toml")


def reconciliation(path: Path | None = None) -> ReconConfig:
    """Reconciliation windows, tolerances and processors."""
    return _load(ReconConfig, path or CONFIG_ROOT / "reconciliation.toml")
