"""Every Quipu process runs with the collector settings of ADR 0031."""

from __future__ import annotations

import os
import subprocess
import sys

from adapters.runtime import GC_THRESHOLDS


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
