"""Every Quipu process runs with the collector settings of ADR 0031; its own memory and I/O figures read right."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adapters.runtime import GC_THRESHOLDS, proc_self, status_mib


def test_the_console_script_and_the_api_workers_tune_the_collector() -> None:
    probe = (
        "import gc, sys\n"
        "import importlib\n"
        "import adapters.cli as cli\n"
        "for name in cli.COMMAND_MODULES: importlib.import_module(name)\n"
        "cli.app = lambda: print(gc.get_threshold(), gc.get_freeze_count() > 0)\n"
        "cli.main()\n"
        "from adapters.http.app import create_app_from_env\n"
        "gc.set_threshold(700, 10, 10)\n"
        "create_app_from_env()\n"
        "print(gc.get_threshold())\n"
    )
    env = {**os.environ, "QUIPU_DATABASE_URL": "sqlite:///:memory:", "QUIPU_LOG_FORMAT": "json"}
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0] == f"{GC_THRESHOLDS} True"
    assert lines[-1] == str(GC_THRESHOLDS)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux's /proc")
def test_proc_figures_are_read_by_field_and_absent_ones_are_none() -> None:
    rss = proc_self("status", "VmRSS")
    assert rss is not None and rss > 1024  # KiB: a Python process holds more than a MiB
    before = proc_self("io", "write_bytes")
    assert before is not None and before >= 0
    rss_mib = status_mib("VmRSS")
    assert rss_mib is not None and abs(rss_mib - rss / 1024) < 64  # read a moment apart
    assert proc_self("status", "NoSuchField") is None and status_mib("NoSuchField") is None
    assert proc_self("no-such-file", "VmRSS") is None
    # A prefix of a field is not that field ("Vm" would otherwise match every Vm* line).
    assert proc_self("status", "Vm") is None
