"""``quipu outbox publish``: the ledger's journal entries, published from the log to an outbound topic.

The log is the outbox. Every accepted event is a committed log row with a gap-free position in commit
order, and the entry it books is a pure function of its stored bytes (``entry_for_doc``). The publisher
reads committed rows after its stored position, produces one message per entry (events that book nothing
produce nothing), waits until the broker acknowledged all of them (acks=all, idempotent producer), and
only then stores the position of the last row read. So:

- nothing is published that was not committed: only committed rows can be read;
- nothing committed is never published: the position moves only past acknowledged messages, and a
  crashed publisher starts again from the stored position, republishing at most the last page's
  entries. Consumers dedupe by ``event_id`` (in the value and in a header).

Messages are keyed by the event's stream name, the same key its event came in with (ADR 0010): entries of
one order, payment or wallet stay in log order on one partition. An account is no key: one entry touches
several accounts. The event id would be unique per message, so it would order nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from adapters.bootstrap import Ledger
from adapters.kafka.broker import DEFAULT_PARTITIONS, ensure_topics
from domain.catalog import parse_event, to_current
from domain.ports import Recorded
from domain.posting_rules import entry_for_doc
from domain.rules import stream_name
from ledger.money import format_amount

#: Header names on every outbound message.
EVENT_ID: Final = "quipu.event_id"
POSITION: Final = "quipu.position"
#: The message's format, so a consumer can tell a later shape from this one.
FORMAT: Final = "quipu.journal_entry.v1"
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    """Where to publish and how much to read from the log at once."""

    brokers: str
    topic: str
    page: int = 1000
    """Log rows per round: the most entries a crash can make the next run publish again."""
    follow: bool = False
    """Keep waiting for new log rows instead of stopping when caught up."""
    poll_s: float = 0.5
    """With ``follow``: how long to wait when the log has nothing new."""
    partitions: int = DEFAULT_PARTITIONS


@dataclass(slots=True)
class OutboxStats:
    """What one run did."""

    published: int = 0
    """Messages acknowledged by the broker."""
    rows: int = 0
    """Log rows read (events that book no entry are read and skipped)."""
    position: int = 0
    """The stored position at the end."""


def stored_position(ledger: Ledger, topic: str) -> int:
    """How far ``topic`` has been published (0 when never)."""
    rows = ledger.views.query("SELECT position FROM outbox_positions WHERE topic = ?", (topic,))
    return int(rows[0][0]) if rows else 0


def store_position(ledger: Ledger, topic: str, position: int) -> None:
    """Move ``topic``'s position forward to ``position``; never backwards (a slower twin cannot undo it)."""
    ledger.views.execute(
        "INSERT INTO outbox_positions (topic, position) VALUES (?, ?) ON CONFLICT (topic) "
        "DO UPDATE SET position = excluded.position WHERE outbox_positions.position < excluded.position",
        (topic, position),
    )


def entry_message(record: Recorded) -> tuple[bytes, bytes] | None:
    """(key, value) of the entry ``record`` books, or ``None`` when it books nothing."""
    doc = orjson.loads(record.body)
    entry = entry_for_doc(doc)
    if entry is None:
        return None
    stream = stream_name(to_current(parse_event(doc)))
    value = {
        "format": FORMAT,
        "event_id": doc["event_id"],
        "position": record.position,
        "event_type": doc["type"],
        "stream": stream,
        "occurred_at": doc["occurred_at"],
        "recorded_at": (_EPOCH + dt.timedelta(microseconds=record.recorded_at_us)).isoformat(),
        "memo": entry.memo,
        "postings": [
            {
                "account": p.account,
                "currency": p.currency,
                "side": p.side.value,
                "amount": format_amount(p.amount_minor, p.currency),
            }
            for p in entry.postings
        ],
    }
    return stream.encode(), orjson.dumps(value)


async def publish(
    ledger: Ledger,
    settings: OutboxSettings,
    stop: asyncio.Event | None = None,
    report: Callable[[str], None] = lambda _: None,
) -> OutboxStats:
    """Publish from the stored position until caught up (or, with ``follow``, until ``stop`` is set)."""
    stop = stop or asyncio.Event()
    await ensure_topics(settings.brokers, [settings.topic], settings.partitions)
    stats = OutboxStats(position=stored_position(ledger, settings.topic))
    producer = AIOKafkaProducer(bootstrap_servers=settings.brokers, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        while not stop.is_set():
            records = ledger.store.read(stats.position, settings.page)
            if not records:
                if not settings.follow:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=settings.poll_s)
                continue
            stats.published += await _send_page(producer, settings.topic, records)
            # Every message of the page is acknowledged: only now may the position pass it.
            store_position(ledger, settings.topic, records[-1].position)
            stats.position = records[-1].position
            stats.rows += len(records)
            report(f"published {stats.published} entries, position {stats.position}")
    finally:
        await producer.stop()
    return stats


async def _send_page(producer: Any, topic: str, records: Sequence[Recorded]) -> int:
    pending = []
    for r in records:
        message = entry_message(r)
        if message is None:
            continue
        key, value = message
        headers = [(EVENT_ID, str(r.event_id).encode()), (POSITION, str(r.position).encode())]
        # send() queues in call order; the idempotent producer keeps that order per partition on retries.
        pending.append(await producer.send(topic, value, key=key, headers=headers))
    await asyncio.gather(*pending)
    return len(pending)
