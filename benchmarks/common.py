"""Helpers shared by the benchmarks: backends, scratch schemas, event slices, output."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg.sql import SQL, Identifier

from adapters.demo import generate, iter_jsonl
from adapters.runtime import proc_self
from adapters.store.pg_url import parse_pg_url

BACKENDS: Final = ("sqlite", "postgresql")
DEFAULT_PG_URL: Final = "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
DEFAULT_RESULTS_DIR: Final = Path("bench-results")


def default_pg_url() -> str:
    """``QUIPU_BENCH_DATABASE_URL``, else ``QUIPU_TEST_DATABASE_URL``, else the local server."""
    return os.environ.get("QUIPU_BENCH_DATABASE_URL") or os.environ.get("QUIPU_TEST_DATABASE_URL") or DEFAULT_PG_URL


def backends(choice: str) -> tuple[str, ...]:
    """``sqlite``, ``postgresql`` or ``both``."""
    return BACKENDS if choice == "both" else (choice,)


def pg_schema_url(base: str, schema: str) -> str:
    """``base`` with ``schema=`` set (replacing any schema it already names)."""
    head, _, query = base.partition("?")
    params = [p for p in query.split("&") if p and not p.startswith("schema=")]
    params.append(f"schema={schema}")
    return f"{head}?{'&'.join(params)}"


def new_schema_name(prefix: str) -> str:
    """A unique scratch schema name."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def drop_schema(base_url: str, schema: str) -> None:
    """``DROP SCHEMA ... CASCADE`` (no error when it is already gone)."""
    with psycopg.connect(parse_pg_url(base_url).conninfo, autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


@contextlib.contextmanager
def scratch_ledger_url(backend: str, directory: Path, name: str, pg_url: str) -> Iterator[str]:
    """A fresh ledger's URL: an SQLite file ``name.db`` in ``directory``, or a new PostgreSQL schema (prefix
    ``bench_name``) on ``pg_url``, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory.resolve()}/{name}.db"
        return
    schema = new_schema_name(f"bench_{name}".replace("-", "_"))
    try:
        yield pg_schema_url(pg_url, schema)
    finally:
        drop_schema(pg_url, schema)


def written_bytes() -> int:
    """Bytes this process has sent to storage so far (``write_bytes`` of ``/proc/self/io``; 0 where unreadable)."""
    return proc_self("io", "write_bytes") or 0


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds the live processes ``pids`` have used so far (``/proc/PID/stat``; gone ones: 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                # The command name (field 2) may hold spaces: the fields after it start behind its ')'.
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return total / tick


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (``/proc/PID/task/*/children``); empty when unreadable."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as f:
                found.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (``/proc/PID/stat``; a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def pids_named(comm: str) -> list[int]:
    """Every process whose command name (``/proc/PID/comm``) is ``comm``: PostgreSQL's backends, say."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm", encoding="ascii") as f:
                    if f.read().strip() == comm:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def pg_wal_bytes(base_url: str) -> int:
    """The server's WAL position in bytes: the difference of two readings is the WAL written in between."""
    with psycopg.connect(parse_pg_url(base_url).conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()
        return int(row[0]) if row else 0


def check_pg(base_url: str) -> str | None:
    """``None`` when the server answers, else why not."""
    try:
        with psycopg.connect(parse_pg_url(base_url).conninfo, connect_timeout=5):
            return None
    except (psycopg.Error, ValueError) as exc:
        return str(exc).strip()


def demo_lines(seed: int, events: int) -> list[bytes]:
    """Exactly ``events`` demo events of ``seed``, as JSON lines.

    ``generate`` returns *about* ``events`` events (±10%) in time order, so ask for a few
    more and cut: a prefix of that order is self-consistent (an event only depends on
    earlier ones). The cut drops the last hours of the month (mostly the final payouts).
    """
    made = generate(seed=seed, events=events + events // 8 + 50)
    if len(made) < events:  # pragma: no cover - the generator undershot by more than 12%
        raise RuntimeError(f"generate(seed={seed}) made {len(made)} events, {events} needed")
    return list(iter_jsonl([_own_rates(e, seed) for e in made[:events]]))


def _own_rates(event: dict[str, Any], seed: int) -> dict[str, Any]:
    """Every seed publishes the same daily fixes (pair, source, as-of): a rate is recorded once,
    so a second seed's would be refused. Each seed's fixes are stamped a few seconds apart."""
    if event["type"] != "fx.rate_published":
        return event
    shift = dt.timedelta(seconds=seed % 86_400)
    as_of = dt.datetime.fromisoformat(event["payload"]["as_of"]) + shift
    return {**event, "occurred_at": as_of.isoformat(), "payload": {**event["payload"], "as_of": as_of.isoformat()}}


def batches(lines: Sequence[bytes], size: int) -> Iterator[Sequence[bytes]]:
    """``lines`` in consecutive slices of ``size``."""
    for i in range(0, len(lines), size):
        yield lines[i : i + size]


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path``, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain, right-aligned text table."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


#: Iterations of the CPU probe's loop: ~0.13-0.15 s on this project's machines when they are quiet.
PROBE_ITERATIONS: Final = 3_000_000


def cpu_probe() -> float:
    """CPU seconds a fixed pure-Python loop takes now: how fast the (shared, drifting) cores are at the moment.

    On this project's 2 shared cores a loop like it (at module level, so about twice as slow) took 0.26-0.57 s
    within one evening, and every benchmark's figures moved with it. A figure is only comparable with another
    measured at a similar probe.
    """
    started = time.process_time()
    total = 0
    for i in range(PROBE_ITERATIONS):
        total += i * i
    return round(time.process_time() - started, 3)


def probe_note(info: dict[str, Any]) -> str:
    """The line a benchmark prints about the machine's speed while it ran."""
    return (
        f"CPU probe: {info.get('cpu_probe_s')} s (a fixed pure-Python loop, taken after the runs; ~0.13-0.15 s on a "
        "quiet machine of this project, higher when the shared cores are slow: compare figures at similar probes)"
    )


def machine(pg_url: str | None) -> dict[str, Any]:
    """What the numbers were measured on, and how fast its cores were (:func:`cpu_probe`)."""
    info: dict[str, Any] = {
        "cpu_probe_s": cpu_probe(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/meminfo") as f:
            total_kib = int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
        info["memory_gib"] = round(total_kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    info["sqlite"] = sqlite3.sqlite_version
    if pg_url is not None and check_pg(pg_url) is None:
        with psycopg.connect(parse_pg_url(pg_url).conninfo) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgresql"] = row[0] if row else None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    return info
