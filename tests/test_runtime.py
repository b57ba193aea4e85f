"""Every Quipu process runs with the collector settings of ADR 0031; its own memory and I/O figures read right."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.runtime import GC_THRESHOLDS, proc_self, status_mib
from benchmarks.common import alive


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


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_helper_process_dies_with_its_parent(tmp_path: Path) -> None:
    # As a committer process does (ADR 0045): killed with its worker, it appends nothing the worker cannot answer.
    pidfile = tmp_path / "helper.pid"
    helper = ("import os, sys, time\nfrom adapters.runtime import die_with_parent\ndie_with_parent(os.getppid())\n"
              "open(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(120)\n")  # fmt: skip
    spawn = f"subprocess.Popen([sys.executable, '-c', {helper!r}, {str(pidfile)!r}])"
    parent_code = f"import subprocess, sys, time\n{spawn}\ntime.sleep(120)\n"
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text()):
            assert time.monotonic() < deadline, "the helper never started"
            time.sleep(0.05)
        child = int(pidfile.read_text())
        assert alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while alive(child):
        assert time.monotonic() < deadline, "the helper outlived its parent"
        time.sleep(0.05)
