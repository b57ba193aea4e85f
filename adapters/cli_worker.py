"""``quipu worker`` and ``quipu outbox publish``: Kafka ingestion and the journal outbox (ADR 0010, ADR 0022)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, Optional, TypeVar

import typer

from adapters.cli import DatabaseOpt, LogFormatOpt, app, err, fail, ledger_for
from adapters.kafka.broker import DEFAULT_BROKERS, DEFAULT_GROUP, DLQ_TOPIC, INBOUND_TOPIC, OUTBOX_TOPIC
from ledger.errors import QuipuError

outbox_app = typer.Typer(help="The journal outbox: entries published to Kafka from the log.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")

T = TypeVar("T")

BrokersOpt = Annotated[str, typer.Option("--brokers", help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT]")]


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the loop finishes the batch in hand, commits, and returns."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_until_stopped(
    run: Callable[[asyncio.Event], Awaitable[T]], stop: asyncio.Event, grace_s: float
) -> T | None:
    """``run(stop)`` to its end; ``None`` when it has not ended ``grace_s`` seconds after ``stop`` was set.

    A worker finishes the batch in hand and commits within seconds of SIGTERM. One that has not is stuck
    (seen with a broker that never completes a rebalance, where leaving the group waits for minutes), and
    a deploy waiting on it is stuck too: the caller then exits without committing, which loses nothing
    (offsets move only after an append, and a redelivered event is recorded once)."""
    task = asyncio.ensure_future(run(stop))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if not done:
            return None
    return task.result()


@app.command("worker")
def worker_cmd(
    database: DatabaseOpt = None,
    brokers: BrokersOpt = DEFAULT_BROKERS,
    topic: Annotated[str, typer.Option("--topic", help="inbound events topic")] = INBOUND_TOPIC,
    group: Annotated[str, typer.Option("--group", help="consumer group; workers in one group share partitions")] = (
        DEFAULT_GROUP
    ),
    batch: Annotated[int, typer.Option("--batch", min=1, max=10_000, help="messages per append")] = 1000,
    dlq_topic: Annotated[str, typer.Option("--dlq-topic", help="where refused messages go")] = DLQ_TOPIC,
    metrics_port: Annotated[
        Optional[int], typer.Option("--metrics-port", help="serve Prometheus metrics on 127.0.0.1:PORT")
    ] = None,
    stop_grace: Annotated[
        float,
        typer.Option("--stop-grace", min=0.1, help="seconds SIGTERM may take before the worker exits uncommitted"),
    ] = 30.0,
    log_format: LogFormatOpt = None,
    committer: Annotated[
        Optional[str],
        typer.Option(
            "--committer",
            help="where batches are appended: process (a committer process, while the next batch is staged here) "
            "or thread; default QUIPU_COMMITTER, else process",
        ),
    ] = None,
) -> None:
    """Append the events of the inbound topic, batch by batch, committing offsets only after each append.

    Refused messages go to the dead-letter topic with their reason; a failing database is retried, never
    dead-lettered. SIGTERM finishes the batch in hand and stops; a worker still running --stop-grace seconds
    later exits with status 3 without committing (what it held is redelivered and recorded once). Logs a line
    per batch and per dead letter (JSON unless stderr is a terminal); traces when QUIPU_OTEL_EXPORTER is set
    (docs/observability.md).
    """
    import logging

    from adapters.committer import committer_choice
    from adapters.kafka.worker import IngestWorker, WorkerMetrics, WorkerSettings
    from adapters.observability.logs import configure_logging
    from adapters.observability.tracing import configure_tracing, shutdown_tracing

    try:
        configure_logging(log_format)
        configure_tracing("quipu-worker")
        where = committer_choice(committer)
    except QuipuError as exc:
        raise fail(exc) from None
    log = logging.getLogger("quipu.worker")
    settings = WorkerSettings(database, brokers, topic, group, dlq_topic, batch, committer=where)
    metrics = None
    if metrics_port is not None:
        from prometheus_client import start_http_server

        metrics = WorkerMetrics()
        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
    worker = IngestWorker(settings, report=log.info, metrics=metrics)

    async def main() -> None:
        if await run_until_stopped(worker.run, _stop_on_signals(), stop_grace) is None:
            log.error(
                f"worker did not stop within {stop_grace:g} s of the signal (a rebalance that does not end?): "
                "exiting without committing; the messages in hand are redelivered and recorded once",
                extra={"stop_grace_s": stop_grace, "appended": worker.stats.appended},
            )
            logging.shutdown()
            # Not SystemExit: interpreter shutdown would wait on the stuck consumer and database threads.
            os._exit(3)

    log.info(
        f"worker: {topic} -> ledger, group {group}, batch {batch}, dead letters to {dlq_topic}",
        extra={"topic": topic, "group": group, "batch": batch, "dlq_topic": dlq_topic},
    )
    try:
        asyncio.run(main())
    except QuipuError as exc:
        raise fail(exc) from None
    finally:
        shutdown_tracing()
    log.info(f"worker stopped: {worker.stats.line()}", extra={"appended": worker.stats.appended,
             "duplicates": worker.stats.duplicates, "messages": worker.stats.messages})  # fmt: skip


@outbox_app.command("publish")
def outbox_publish(
    database: DatabaseOpt = None,
    brokers: BrokersOpt = DEFAULT_BROKERS,
    topic: Annotated[str, typer.Option("--topic", help="outbound journal topic")] = OUTBOX_TOPIC,
    page: Annotated[int, typer.Option("--page", min=1, max=10_000, help="log rows per acknowledged round")] = 1000,
    follow: Annotated[bool, typer.Option("--follow", help="keep publishing new entries until SIGTERM")] = False,
) -> None:
    """Publish each journal entry after the stored position, moving the position only past acknowledged ones."""
    from adapters.kafka.outbox import OutboxSettings, publish

    settings = OutboxSettings(brokers, topic, page, follow)
    with ledger_for(database) as ledger:

        async def main() -> None:
            stats = await publish(
                ledger, settings, _stop_on_signals(), report=lambda line: err.print(line, highlight=False)
            )
            err.print(
                f"outbox: {stats.published} entries published to {topic}, position {stats.position}", markup=False
            )

        asyncio.run(main())
