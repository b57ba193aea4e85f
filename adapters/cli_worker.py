"""``quipu worker`` and ``quipu outbox publish``: Kafka ingestion and the journal outbox (ADR 0010, ADR 0022)."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated, Optional

import typer

from adapters.cli import DatabaseOpt, LogFormatOpt, app, err, fail, ledger_for
from adapters.kafka.broker import DEFAULT_BROKERS, DEFAULT_GROUP, DLQ_TOPIC, INBOUND_TOPIC, OUTBOX_TOPIC
from ledger.errors import QuipuError

outbox_app = typer.Typer(help="The journal outbox: entries published to Kafka from the log.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")

BrokersOpt = Annotated[str, typer.Option("--brokers", help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT]")]


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the loop finishes the batch in hand, commits, and returns."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


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
    log_format: LogFormatOpt = None,
) -> None:
    """Append the events of the inbound topic, batch by batch, committing offsets only after each append.

    Refused messages go to the dead-letter topic with their reason; a failing database is retried, never
    dead-lettered. SIGTERM finishes the batch in hand and stops. Logs a line per batch and per dead letter
    (JSON unless stderr is a terminal); traces when QUIPU_OTEL_EXPORTER is set (docs/observability.md).
    """
    import logging

    from adapters.kafka.worker import IngestWorker, WorkerMetrics, WorkerSettings
    from adapters.observability.logs import configure_logging
    from adapters.observability.tracing import configure_tracing, shutdown_tracing

    try:
        configure_logging(log_format)
        configure_tracing("quipu-worker")
    except QuipuError as exc:
        raise fail(exc) from None
    log = logging.getLogger("quipu.worker")
    settings = WorkerSettings(database, brokers, topic, group, dlq_topic, batch)
    metrics = None
    if metrics_port is not None:
        from prometheus_client import start_http_server

        metrics = WorkerMetrics()
        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
    worker = IngestWorker(settings, report=log.info, metrics=metrics)

    async def main() -> None:
        await worker.run(_stop_on_signals())

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
