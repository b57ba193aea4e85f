"""Broker helpers: wait for a real metadata round-trip, create topics with their partition counts.

``python -m adapters.kafka.broker wait HOST:PORT`` is what ``scripts/start-kafka.sh`` runs: an open port
says nothing about whether the broker answers Kafka requests yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from typing import Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError, TopicAlreadyExistsError  # type: ignore[import-untyped]

DEFAULT_BROKERS: Final = "127.0.0.1:9092"
INBOUND_TOPIC: Final = "quipu.events.in"
DLQ_TOPIC: Final = "quipu.events.dlq"
OUTBOX_TOPIC: Final = "quipu.journal.out"
DEFAULT_GROUP: Final = "quipu-ingest"
#: Partitions of the topics Quipu creates when they are missing (a broker's auto-creation may make only one).
DEFAULT_PARTITIONS: Final = 4


async def wait_ready(brokers: str, timeout_s: float = 30.0) -> None:
    """Return once the broker answers a metadata request; raise ``TimeoutError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        # The port first, quietly: aiokafka logs every refused connection as an error.
        if not await _port_open(brokers.split(",", maxsplit=1)[0]):
            await asyncio.sleep(0.05)
            continue
        admin = AIOKafkaAdminClient(bootstrap_servers=brokers, request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (TimeoutError, KafkaError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.2)
        finally:
            await admin.close()
    raise TimeoutError(f"kafka broker at {brokers} not ready after {timeout_s:.0f} s: {last!r}")


async def _port_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        _, writer = await asyncio.open_connection(host, int(port))
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def ensure_topics(brokers: str, names: Sequence[str], partitions: int = DEFAULT_PARTITIONS) -> None:
    """Create the missing topics with ``partitions`` partitions each (existing ones are left as they are)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names if n not in existing]
        if missing:
            # Another process may create one between our list and create: that is what we wanted anyway.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


def main(argv: Sequence[str]) -> int:
    """``wait HOST:PORT [TIMEOUT_S]`` or ``topics HOST:PORT PARTITIONS NAME...``."""
    if len(argv) >= 2 and argv[0] == "wait":
        try:
            asyncio.run(wait_ready(argv[1], float(argv[2]) if len(argv) > 2 else 30.0))
        except TimeoutError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    if len(argv) >= 4 and argv[0] == "topics":
        asyncio.run(ensure_topics(argv[1], argv[3:], int(argv[2])))
        return 0
    print("usage: python -m adapters.kafka.broker wait HOST:PORT [TIMEOUT_S] | topics HOST:PORT N NAME...")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
