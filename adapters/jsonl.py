"""Posting a JSONL file: one event per line, appended in batches, every line accounted for."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from domain.service import LedgerService, Outcome, PostResult


@dataclass
class PostSummary:
    """Counts by outcome and each line that was not appended or a duplicate."""

    appended: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    problems: list[tuple[int, str, str]] = field(default_factory=list)
    """(line number, outcome, reason)"""

    @property
    def ok(self) -> bool:
        """True when nothing was rejected and nothing conflicted."""
        return self.rejected == 0 and self.conflicts == 0

    def add(self, line: int, result: PostResult) -> None:
        if result.outcome is Outcome.APPENDED:
            self.appended += 1
        elif result.outcome is Outcome.DUPLICATE:
            self.duplicates += 1
        else:
            if result.outcome is Outcome.REJECTED:
                self.rejected += 1
            else:
                self.conflicts += 1
            self.problems.append((line, result.outcome.value, result.reason or ""))


def numbered_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines with their 1-based line numbers."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line


def post_lines(
    service: LedgerService,
    lines: Iterable[bytes],
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> PostSummary:
    """Post JSONL lines in batches of ``batch_size``; a bad line never stops the others."""
    summary = PostSummary()
    batch: list[tuple[int, bytes]] = []

    def flush() -> None:
        results = service.post([raw for _, raw in batch])
        for (number, _), result in zip(batch, results, strict=True):
            summary.add(number, result)
        if progress is not None:
            progress(len(batch))
        batch.clear()

    for number, raw in numbered_lines(lines):
        batch.append((number, raw))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return summary
