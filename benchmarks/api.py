"""HTTP API: single-event POST latency at fixed offered rates, and the batch endpoint's events/s.

A real ``quipu serve`` (uvicorn, ``--workers N``) on loopback, a real OAuth client and bearer token, a fresh
ledger per case. The load generator is open-loop: request *i* is due at ``t0 + i / rate`` whatever happened
to the ones before, and its latency runs from that due time to the last byte of the answer, so a stalled
server shows up in the percentiles instead of slowing the generator down (no coordinated omission). It
keeps a pool of keep-alive HTTP/1.1 connections and opens another whenever every one is busy.

The events are a demo month in log order, so a capture can arrive while its authorization is still in
flight: each answer's status is counted (201 appended, 200 duplicate, 422 refused) and reported. Every
answer is one full append path either way.

    python -m benchmarks.api --quick                                 # SQLite, 500 and 1000 requests/s, 5 s
    python -m benchmarks.api --backend postgresql --rates 500 1000 2000 --seconds 20 --workers 2
    python -m benchmarks.api --batch-only --backend both             # the batch endpoint alone

Writes ``bench-results/api.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import httpx

from adapters.bootstrap import open_ledger
from adapters.http.auth import add_client
from benchmarks.common import (
    DEFAULT_RESULTS_DIR,
    backends,
    check_pg,
    children,
    cpu_seconds,
    default_pg_url,
    demo_lines,
    drop_schema,
    machine,
    new_schema_name,
    pg_schema_url,
    pids_named,
    print_table,
    probe_note,
    write_json,
)
from tests.servers import free_port

SECRET: Final = "benchmark-signing-secret-not-for-production-use-0123456789"
#: The open-loop generator gives up on connections beyond this many (then the server is far past saturation).
MAX_CONNECTIONS: Final = 256
BATCH_SIZE: Final = 1000
SEED: Final = 4343
#: Seconds of load at the offered rate before the measured run.
WARM_UP_SECONDS: Final = 3.0


@dataclass(slots=True)
class LatencyCase:
    """One offered rate against one backend."""

    backend: str
    workers: int
    offered_per_s: int
    seconds: float
    requests: int
    achieved_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    connections: int
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    server_cpu_ms: float = 0.0
    """CPU the server's processes (uvicorn's parent and workers) used per answered request."""
    db_cpu_ms: float = 0.0
    """CPU PostgreSQL's processes used per answered request (0 on SQLite, whose work is in the server's)."""
    loadgen_cpu_ms: float = 0.0
    """CPU the load generator (this process) used per answered request."""


@dataclass(slots=True)
class BatchCase:
    """The batch endpoint, closed loop: ``clients`` posting batches of ``batch`` events back to back."""

    backend: str
    workers: int
    clients: int
    batch: int
    events: int
    seconds: float
    events_per_s: float
    appended: int
    worker_cpu_us: float = 0.0
    """CPU per event of the server's worker processes (HTTP, JSON, the hand-over to their committers)."""
    committer_cpu_us: float = 0.0
    """CPU per event of the workers' committer processes (validate, decide, append: ADR 0041)."""
    db_cpu_us: float = 0.0
    """CPU per event of PostgreSQL's processes (0 on SQLite)."""
    loadgen_cpu_us: float = 0.0
    """CPU per event of the clients (this process)."""


@contextlib.contextmanager
def _ledger_url(backend: str, pg_base: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="quipu-api-bench-") as tmp:
            yield f"sqlite:///{tmp}/ledger.db"
        return
    schema = new_schema_name("bench_api")
    try:
        yield pg_schema_url(pg_base, schema)
    finally:
        drop_schema(pg_base, schema)


@contextlib.contextmanager
def _server(url: str, workers: int) -> Iterator[tuple[str, str, int]]:
    """A running ``quipu serve``, a bearer token with ``events:write`` and the server's process id."""
    with open_ledger(url) as ledger:
        secret = add_client(ledger, "bench", ["events:write", "ledger:read"])
    port = free_port()
    env = {**os.environ, "QUIPU_API_SECRET": SECRET, "QUIPU_RATE_PER_SECOND": "1000000", "QUIPU_RATE_BURST": "1000000"}
    # The server's request log goes to a file: a pipe nobody reads would fill and stall the server.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "serve", "--database", url, "--port", str(port),
             "--workers", str(workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=tempfile.gettempdir(),
        )  # fmt: skip
        try:
            yield f"http://127.0.0.1:{port}", _token(f"http://127.0.0.1:{port}", secret, proc, log), proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _token(base: str, secret: str, proc: subprocess.Popen[bytes], log: IO[bytes]) -> str:
    """A bearer token, once the server answers (it imports, migrates and warms up first)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"quipu serve exited: {log.read().decode(errors='replace')[-2000:]}")
        try:
            answer = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials",
                                "client_id": "bench", "client_secret": secret}, timeout=5)  # fmt: skip
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token
    raise RuntimeError("quipu serve did not answer within 60 s")


class _Conn:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for Quipu's answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self, head: bytes, body: bytes) -> int:
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        await self.reader.readexactly(length)
        return status


async def _open_loop(base: str, token: str, bodies: Sequence[bytes], rate: int, seconds: float) -> dict[str, Any]:
    host, port = base.removeprefix("http://").split(":")
    head = (f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: ").encode()  # fmt: skip
    idle: list[_Conn] = []
    opened = 0
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors = 0
    total = min(len(bodies), int(rate * seconds))

    async def one(i: int, due: float) -> None:
        nonlocal opened, errors
        reused = bool(idle)
        if reused:
            conn = idle.pop()
        else:
            if opened >= MAX_CONNECTIONS:
                errors += 1
                return
            opened += 1
            conn = _Conn(*await asyncio.open_connection(host, int(port)))
        try:
            try:
                status = await conn.request(head, bodies[i])
            except (ConnectionError, asyncio.IncompleteReadError):
                if not reused:
                    raise
                # The server closes a keep-alive connection idle past its timeout (uvicorn: 5 s): as HTTP clients
                # do, send again once on a new connection. The latency still runs from the due time.
                conn.writer.close()
                conn = _Conn(*await asyncio.open_connection(host, int(port)))
                status = await conn.request(head, bodies[i])
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            errors += 1
            opened -= 1
            return
        latencies.append(time.perf_counter() - due)
        statuses[str(status)] += 1
        idle.append(conn)

    loop = asyncio.get_running_loop()
    # Only the requests still in flight are kept: gathering every task of the run at its end took the generator's
    # loop away from reading answers for tens of milliseconds, charged to the last requests' latency.
    pending: set[asyncio.Task[None]] = set()
    # The generator's own garbage collections would pause its loop too, and show as the server's latency.
    collecting = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter() + 0.05
        for i in range(total):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = loop.create_task(one(i, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        while pending:
            await asyncio.gather(*pending)
        elapsed = time.perf_counter() - t0
    finally:
        if collecting:
            gc.enable()
    for conn in idle:
        conn.writer.close()
    return {"latencies": latencies, "statuses": dict(statuses), "errors": errors, "elapsed": elapsed,
            "connections": opened, "requests": total}  # fmt: skip


def _pct(sorted_ms: Sequence[float], p: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(p / 100 * len(sorted_ms)))]


def latency_case(backend: str, pg_base: str, workers: int, rate: int, seconds: float) -> LatencyCase:
    bodies = demo_lines(SEED, int(rate * seconds) + 10)
    with _ledger_url(backend, pg_base) as url, _server(url, workers) as (base, token, pid):
        # A warm-up at the offered rate on another month's events (other ids, other streams), so imports, first
        # connections, first plans and a cold committer are not in the figures: what is measured is a server that
        # has been running. It was 50 events at 100/s: the first seconds of each run then had p99 2-5 times the rest.
        warm = demo_lines(SEED + 1, int(rate * WARM_UP_SECONDS))
        asyncio.run(_open_loop(base, token, warm, rate, WARM_UP_SECONDS))
        # CPU per request is the steady figure to compare two versions by: p99 at a fixed rate swings with
        # whatever else the shared cores run, but the work one request costs does not.
        # The server, its workers and theirs (each worker's committer process, ADR 0041).
        kids = children(pid)
        server = [pid, *kids, *(g for k in kids for g in children(k))]
        database = pids_named("postgres") if backend == "postgresql" else []
        cpu_before = (cpu_seconds(server), cpu_seconds(database), time.process_time())
        out = asyncio.run(_open_loop(base, token, bodies, rate, seconds))
        cpu_after = (cpu_seconds(server), cpu_seconds(database), time.process_time())
    ms = sorted(x * 1000 for x in out["latencies"])
    per_request = [round(1000 * (b - a) / max(1, len(ms)), 3) for a, b in zip(cpu_before, cpu_after, strict=True)]
    return LatencyCase(
        backend=backend, workers=workers, offered_per_s=rate, seconds=round(out["elapsed"], 2),
        requests=out["requests"], achieved_per_s=round(len(ms) / out["elapsed"], 1),
        p50_ms=round(statistics.median(ms), 2) if ms else float("nan"), p90_ms=round(_pct(ms, 90), 2),
        p99_ms=round(_pct(ms, 99), 2), max_ms=round(ms[-1], 2) if ms else float("nan"),
        connections=out["connections"], statuses=out["statuses"], errors=out["errors"],
        server_cpu_ms=per_request[0], db_cpu_ms=per_request[1], loadgen_cpu_ms=per_request[2],
    )  # fmt: skip


def _server_processes(pid: int) -> tuple[list[int], list[int]]:
    """``quipu serve``'s processes: (the server and its workers, their committers). With one worker the server is
    the worker; each worker's committer is a ``spawn``ed child with no children of its own (ADR 0041)."""
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children(tree[-1]))
    committers = [p for p in tree if p != pid and not children(p) and b"spawn_main" in _cmdline(p)]
    return [p for p in tree if p not in committers], committers


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def batch_case(backend: str, pg_base: str, workers: int, clients: int, events: int) -> BatchCase:
    lines = demo_lines(SEED, events)
    # Each client posts its own slice of whole batches; slices follow log order so dependent events
    # mostly land after what they depend on (what they don't is refused and counted, not hidden).
    batches = [lines[i : i + BATCH_SIZE] for i in range(0, len(lines), BATCH_SIZE)]
    with _ledger_url(backend, pg_base) as url, _server(url, workers) as (base, token, pid):
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        async def client(mine: list[list[bytes]]) -> int:
            appended = 0
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
                for batch in mine:
                    answer = await http.post("/v1/events/batch", content=b"[" + b",".join(batch) + b"]")
                    answer.raise_for_status()
                    appended += sum(r["outcome"] == "appended" for r in answer.json()["results"])
            return appended

        async def all_clients() -> int:
            shares = [batches[c::clients] for c in range(clients)]
            return sum(await asyncio.gather(*(client(s) for s in shares)))

        # Which process the work lands in: a worker answers HTTP, its committer validates and appends (ADR 0041).
        workers_pids, committers = _server_processes(pid)
        database = pids_named("postgres") if backend == "postgresql" else []
        before = {p: cpu_seconds([p]) for p in [*workers_pids, *committers, *database]}
        load_before = time.process_time()
        t0 = time.perf_counter()
        appended = asyncio.run(all_clients())
        elapsed = time.perf_counter() - t0
        load = time.process_time() - load_before
        spent = {p: cpu_seconds([p]) - before[p] for p in before}
    per_event = 1e6 / len(lines)
    return BatchCase(
        backend=backend, workers=workers, clients=clients, batch=BATCH_SIZE, events=len(lines),
        seconds=round(elapsed, 2), events_per_s=round(len(lines) / elapsed, 1), appended=appended,
        worker_cpu_us=round(per_event * sum(spent[p] for p in workers_pids), 1),
        committer_cpu_us=round(per_event * sum(spent[p] for p in committers), 1),
        db_cpu_us=round(per_event * sum(spent[p] for p in database), 1),
        loadgen_cpu_us=round(per_event * load, 1),
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--rates", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[2])
    ap.add_argument("--batch-events", type=int, default=40_000)
    ap.add_argument("--batch-clients", type=int, default=2)
    ap.add_argument("--batch-only", action="store_true")
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--quick", action="store_true", help="SQLite, 500 and 1000 requests/s for 5 s, 10,000 batch events")
    ap.add_argument("--pg-url", default=default_pg_url())
    ap.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = ap.parse_args(argv)
    if args.quick:
        args.backend, args.rates, args.seconds, args.batch_events = "sqlite", [500, 1000], 5.0, 10_000
    chosen = backends(args.backend)
    if "postgresql" in chosen and (problem := check_pg(args.pg_url)):
        print(f"PostgreSQL: {problem}", file=sys.stderr)
        return 1
    latency: list[LatencyCase] = []
    batch: list[BatchCase] = []
    for backend in chosen:
        for workers in args.workers:
            if not args.batch_only:
                for rate in args.rates:
                    case = latency_case(backend, args.pg_url, workers, rate, args.seconds)
                    latency.append(case)
                    print(
                        f"{backend} workers={workers} {rate}/s: p50 {case.p50_ms} ms p99 {case.p99_ms} ms "
                        f"achieved {case.achieved_per_s}/s {case.statuses} errors={case.errors}",
                        flush=True,
                    )
            if not args.latency_only:
                b = batch_case(backend, args.pg_url, workers, args.batch_clients, args.batch_events)
                batch.append(b)
                print(f"{backend} workers={workers} batch: {b.events_per_s} events/s", flush=True)
    if latency:
        print("\nSingle-event POST, open loop")
        print_table(
            ["backend", "workers", "offered/s", "achieved/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "conns",
             "CPU ms/req: server", "database", "load gen"],
            [[c.backend, c.workers, c.offered_per_s, c.achieved_per_s, c.p50_ms, c.p90_ms, c.p99_ms, c.max_ms,
              c.connections, c.server_cpu_ms, c.db_cpu_ms, c.loadgen_cpu_ms] for c in latency],
        )  # fmt: skip
    if batch:
        print(f"\nBatch endpoint ({BATCH_SIZE} events per request)")
        print_table(
            [
                "backend",
                "workers",
                "clients",
                "events",
                "seconds",
                "events/s",
                "CPU µs/event: workers",
                "committers",
                "database",
                "clients",
            ],
            [
                [
                    b.backend,
                    b.workers,
                    b.clients,
                    b.events,
                    b.seconds,
                    b.events_per_s,
                    b.worker_cpu_us,
                    b.committer_cpu_us,
                    b.db_cpu_us,
                    b.loadgen_cpu_us,
                ]
                for b in batch
            ],
        )
    used = machine(args.pg_url if "postgresql" in chosen else None)
    print(probe_note(used))
    doc = {"machine": used, "latency": [asdict(c) for c in latency], "batch": [asdict(b) for b in batch]}
    write_json(args.results_dir / "api.json", doc)
    return 0 if all(c.errors == 0 for c in latency) else 1


if __name__ == "__main__":
    sys.exit(main())
