"""The reference-model stateful test at length: Quipu and a tiny in-memory ledger driven by the
same random commands (``tests/test_stateful.py``), for as many examples as asked, on SQLite and/or
PostgreSQL. Prints the examples run, the steps, how often each command ran and what the ledger
did with the posts, the wall time, and the divergences found (0, or the first one, shrunk by
Hypothesis to a minimal reproduction; the exit status is then 1).

    python -m benchmarks.stateful --examples 1000 --backend sqlite
    python -m benchmarks.stateful --examples 1000 --backend postgresql [--pg-url URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import backends, check_pg, default_pg_url, drop_schema, new_schema_name, pg_schema_url
from tests.test_stateful import report, run_machine, sqlite_urls


def pg_urls(base: str) -> Callable[[], tuple[str, Callable[[], None]]]:
    """A fresh scratch schema per example, dropped when the example ends."""

    def new() -> tuple[str, Callable[[], None]]:
        schema = new_schema_name("stateful")
        return pg_schema_url(base, schema), lambda: drop_schema(base, schema)

    return new


def run(backend: str, examples: int, steps: int, pg_url: str) -> bool:
    """One backend's run; True when no divergence was found."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="quipu-stateful-") as scratch:
        urls = sqlite_urls(Path(scratch)) if backend == "sqlite" else pg_urls(pg_url)
        try:
            stats = run_machine(urls, examples, steps)
        except Exception as exc:  # Hypothesis has shrunk it and noted the steps
            failures = exc.exceptions if isinstance(exc, ExceptionGroup) else (exc,)
            what = "DIVERGENCE" if all(isinstance(e, AssertionError) for e in failures) else "ERROR (not a divergence)"
            print(f"{backend}: {what} after {time.perf_counter() - started:,.0f} s")
            traceback.print_exception(exc)
            return False
    print(f"{backend}: {report(stats)}")
    print(f"{backend}: {time.perf_counter() - started:,.0f} s wall; divergences found: 0")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1000, help="examples per backend (default 1000)")
    parser.add_argument("--steps", type=int, default=30, help="most steps per example (default 30)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default=default_pg_url())
    args = parser.parse_args(argv)
    ok = True
    for backend in backends(args.backend):
        if backend == "postgresql" and (problem := check_pg(args.pg_url)) is not None:
            print(f"postgresql: {problem}")
            ok = False
            continue
        ok = run(backend, args.examples, args.steps, args.pg_url) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
