"""Bad rule files and bad command-line dates are refused, naming the entry and field."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from adapters import config_files
from adapters.config_files import ConfigError


def _copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (config_files.CONFIG_ROOT / name).read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("name", "loader", "old", "new", "message"),
    [
        ("conversion_rules.toml", "conversion_rules", 'seller = "*"\nsite = "BR"', 'seller = "*"',
         "rule[0]: site: a rule for every seller (*) must name its site"),
        ("aml.toml", "aml_rules", 'structuring_count = 3', 'structuring_count = 0', "site[0].structuring_count"),
        ("aml.toml", "aml_rules", 'report_threshold = "50000.00"', "report_threshold = 50000.0",
         "site[0].report_threshold"),
        ("logistics.toml", "logistics", 'funded_by = "carrier"', 'funded_by = "buyer"', "compensation[0].funded_by"),
        ("withholding.toml", "withholding", 'valid_to = "2026-01-01"', 'valid_to = "2019-01-01"', "rule[0]"),
        ("settlement.toml", "settlement_methods", 'percent = "10"', 'percent = "-10"', "reserve[0].percent"),
    ],
)  # fmt: skip
def test_a_bad_rule_file_is_refused_naming_the_entry_and_field(
    tmp_path: Path, name: str, loader: str, old: str, new: str, message: str
) -> None:
    path = _copy(tmp_path, name, old, new)
    with pytest.raises(ConfigError, match=re.escape(f"{name}: {message}")):
        getattr(config_files, loader)(path)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["settlement", "run", "--date", "yesterday"], "--date"),
        (["seller", "balance", "S1", "--as-of", "2026-13-01"], "--as-of"),
        (["hold", "place", "--seller", "S1", "--amount", "1.00", "--currency", "BRL", "--reason", "aml", "--at",
          "2026-10-01T10:00:00"], "--at"),
        (["config", "status", "--on", "soon"], "--on"),
        (["fx", "revalue", "--as-of", "31/10/2026"], "--as-of"),
    ],
)  # fmt: skip
def test_bad_dates_and_moments_on_the_command_line_exit_2_naming_the_option(
    args: list[str], option: str, tmp_path: Path
) -> None:
    run = subprocess.run([sys.executable, "-m", "adapters.cli", *args, "--database", f"sqlite:///{tmp_path}/x.db"],
                         check=False, capture_output=True, text=True, cwd=tempfile.gettempdir())  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert f"error: {option}: " in " ".join(run.stderr.split()), run.stderr
