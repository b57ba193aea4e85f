"""The worker's log lines: one per batch (its partitions' offset ranges) and one per dead letter."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from adapters.kafka.ingest import BatchOutcome, Incoming

log = logging.getLogger("quipu.worker")


def log_batch(messages: Sequence[Incoming], outcome: BatchOutcome) -> None:
    """``batch`` with the offsets each partition's messages spanned, then each refusal with its origin."""
    if not messages:
        return
    ranges: dict[str, list[int]] = {}
    for m in messages:
        first_last = ranges.setdefault(str(m.partition), [m.offset, m.offset])
        first_last[0], first_last[1] = min(first_last[0], m.offset), max(first_last[1], m.offset)
    log.info(
        "batch",
        extra={"topic": messages[0].topic, "messages": len(messages), "appended": outcome.appended,
               "duplicates": outcome.duplicates, "dead_letters": len(outcome.dead), "offsets": ranges},
    )  # fmt: skip
    for d in outcome.dead:
        log.warning(
            "dead letter",
            extra={"topic": d.topic, "partition": d.partition, "offset": d.offset, "kind": d.kind.value,
                   "reason": d.reason, "event_id": d.event_id},
        )  # fmt: skip
