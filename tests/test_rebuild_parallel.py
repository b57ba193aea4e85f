"""A rebuild with worker processes folding pages side by side (ADR 0037) equals the serial one, and a run
stopped by a failure leaves a prefix of pages that a later run resumes from."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from typer.testing import CliRunner

from adapters.bootstrap import Ledger
from adapters.cli import app
from adapters.demo import generate
from adapters.rebuild import rebuild
from projections.parallel import fold_pages, page_local, pages
from projections.runner import ProjectionRunner
from projections.views import Event, ViewReader, Write


def _post_demo(ledger: Ledger, events: int = 2400) -> int:
    lines = list(generate(seed=11, events=events, settle=True))
    for i in range(0, len(lines), 500):
        ledger.service.post(lines[i : i + 500])
    return ledger.store.head()


def test_the_parallel_rebuild_equals_the_serial_one(ledger: Ledger) -> None:
    head = _post_demo(ledger)
    serial = rebuild(ledger, workers=1)
    expected = ledger.runner.checksums()
    assert (serial.end, serial.workers) == (head, 1)
    # Small pages, so that each worker folds and commits several, interleaved with the other's.
    seen: list[tuple[int, int]] = []
    report = rebuild(ledger, workers=2, min_events=0, page=97, progress=lambda done, total: seen.append((done, total)))
    # Two page workers, then two processes for the projections that read their own views.
    assert report.workers == 2 and len(report.worker_peaks_mib) == 2 + 2
    # Two passes (page-local projections, then the others) make one job for a progress bar: it never goes back.
    assert {total for _, total in seen} == {2 * head}
    assert [done for done, _ in seen] == sorted(done for done, _ in seen) and seen[-1][0] == 2 * head
    assert (report.start, report.end, report.events) == (0, head, head)
    assert ledger.runner.positions() == {p.name: head for p in ledger.runner.projections}
    assert ledger.runner.checksums() == expected


def test_a_parallel_rebuild_stops_where_asked_and_a_run_resumes(ledger: Ledger) -> None:
    head = _post_demo(ledger, 1200)
    rebuild(ledger, workers=1)
    expected = ledger.runner.checksums()
    stop = head // 2 + 3  # not on a page boundary
    report = rebuild(ledger, to_position=stop, workers=2, min_events=0, page=50)
    assert report.end == stop
    assert set(ledger.runner.positions().values()) == {stop}
    ledger.runner.run()
    assert ledger.runner.checksums() == expected


def test_only_page_local_projections_are_folded_in_parallel(ledger: Ledger) -> None:
    local = {p.name for p in ledger.runner.projections if page_local(p)}
    # These read their own committed rows while folding: a page cannot be folded before the one ahead commits.
    assert {"settlement", "aml", "logistics", "reconciliation"}.isdisjoint(local)
    assert {"journal", "balances", "trial_balance"} <= local
    stateful = [p for p in ledger.runner.projections if not page_local(p)]
    with pytest.raises(ValueError, match="page-local"):
        fold_pages(ledger.store, ledger.views, stateful, 0, 10, 5, 0, 1, _ThreadTurns())


class _ThreadTurns:
    """The pages' commit order between threads (the adapter does the same between processes)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.next = 0
        self.stopped = False
        self.committed: list[int] = []

    def wait(self, page: int) -> bool:
        with self.cond:
            self.cond.wait_for(lambda: self.next == page or self.stopped, timeout=60)
            return not self.stopped

    def done(self, page: int, position: int) -> None:
        with self.cond:
            self.committed.append(page)
            self.next = page + 1
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()


class _FailsAt:
    """A page-local projection wrapper whose fold fails on the page holding ``position``."""

    page_local = True

    def __init__(self, inner: object, position: int) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[attr-defined]
        self.tables = inner.tables  # type: ignore[attr-defined]
        self.position = position

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        if any(e.record.position == self.position for e in batch):
            raise RuntimeError("disk on fire")
        return self.inner.fold(batch, views)  # type: ignore[attr-defined, no-any-return]


def test_a_failing_page_stops_every_worker_and_leaves_a_prefix_that_resumes(ledger: Ledger) -> None:
    head = _post_demo(ledger, 1200)
    journal = [p for p in ledger.runner.projections if p.name in ("journal", "balances", "trial_balance")]
    serial = ProjectionRunner(ledger.store, ledger.views, journal)
    serial.rebuild()
    expected = serial.checksums()
    size, bad_page = 40, 7
    failing = [_FailsAt(p, bad_page * size + 5) if p.name == "balances" else p for p in journal]
    ledger.views.reset(journal)
    turns = _ThreadTurns()
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            fold_pages(ledger.store, ledger.views, failing, 0, head, size, w, 2, turns)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [str(e) for e in errors] == ["disk on fire"]
    # The failure stops the run at once: the pages committed are a prefix in order, none at or past the bad one.
    done = len(turns.committed)
    assert turns.committed == list(range(done)) and done <= bad_page
    assert set(serial.positions().values()) == {done * size}
    serial.run()
    assert serial.positions() == {p.name: head for p in journal}
    assert serial.checksums() == expected


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"workers": 0}, "workers: must be at least 1, not 0"),
        ({"page": 0}, "page: must be at least 1 event, not 0"),
        ({"to_position": -1}, "to_position: must be a log position (0 or more), not -1"),
    ],
)
def test_bad_rebuild_arguments_are_refused_before_any_view_is_emptied(
    ledger: Ledger, arguments: dict[str, int], reason: str
) -> None:
    _post_demo(ledger, 300)
    ledger.runner.run()
    before = ledger.runner.checksums()
    with pytest.raises(ValueError) as refused:
        rebuild(ledger, min_events=0, **arguments)  # type: ignore[arg-type]
    assert str(refused.value) == reason
    assert ledger.runner.checksums() == before and min(ledger.runner.positions().values()) > 0


def test_pages_cover_the_range_exactly() -> None:
    assert [pages(0, h, 5) for h in (0, 1, 5, 6, 10, 11)] == [0, 1, 1, 2, 2, 3]
    assert pages(7, 7, 5) == 0 and pages(7, 20, 5) == 3


def test_the_cli_rebuilds_with_workers_and_proves_it(ledger: Ledger) -> None:
    _post_demo(ledger, 600)
    result = CliRunner().invoke(app, ["project", "--database", ledger.url, "--rebuild", "--workers", "2", "--check"])
    assert result.exit_code == 0, result.output
    assert "False" not in result.output
    refused = CliRunner().invoke(app, ["project", "--database", ledger.url, "--rebuild", "--workers", "0"])
    assert refused.exit_code == 2 and "--workers" in refused.output
    # Catching up is always one process: asking for workers there is a mistake worth saying.
    pointless = CliRunner().invoke(app, ["project", "--database", ledger.url, "--workers", "2"])
    assert pointless.exit_code == 2 and "--workers: only a --rebuild or a --check" in pointless.output


def test_a_worker_killed_mid_rebuild_fails_the_run_and_a_run_resumes_from_the_prefix(ledger: Ledger) -> None:
    import multiprocessing
    import os
    import signal

    from adapters.rebuild import RebuildFailed

    head = _post_demo(ledger, 1200)
    rebuild(ledger, workers=1)
    expected = ledger.runner.checksums()
    killed: list[int] = []

    def kill_one_worker(position: int, _head: int) -> None:
        if position > 0 and not killed:
            victim = multiprocessing.active_children()[0]
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(position)

    # Tiny pages: the run lasts long enough for the parent to see a committed page and kill a worker.
    with pytest.raises(RebuildFailed, match="exited without reporting"):
        rebuild(ledger, workers=2, min_events=0, page=3, progress=kill_one_worker)
    assert killed, "no worker was killed"
    positions = ledger.runner.positions()
    local = {positions[p.name] for p in ledger.runner.projections if page_local(p)}
    # The page-local projections stand together at a whole page; the others had not started.
    assert len(local) == 1 and 0 < min(local) < head and min(local) % 3 == 0
    assert {positions[p.name] for p in ledger.runner.projections if not page_local(p)} == {0}
    ledger.runner.run()
    assert ledger.runner.checksums() == expected


def test_the_check_rebuilds_into_scratch_with_workers_and_finds_an_altered_view(ledger: Ledger) -> None:
    from rich.progress import Progress

    from adapters.check import check_rebuild

    _post_demo(ledger, 1200)
    ledger.runner.run()
    quiet = lambda: Progress(disable=True)  # noqa: E731
    rows = check_rebuild(ledger, quiet, workers=2, min_events=0)
    assert rows and all(r["equal"] for r in rows), rows
    ledger.views.execute("UPDATE account_balances SET debits_minor = debits_minor + 1 WHERE account = "
                         "(SELECT MIN(account) FROM account_balances)")  # fmt: skip
    rows = check_rebuild(ledger, quiet, workers=2, min_events=0)
    assert {r["projection"] for r in rows if not r["equal"]} == {"balances"}


def test_another_runner_moving_the_views_mid_rebuild_hands_over_to_a_serial_finish(ledger: Ledger) -> None:
    head = _post_demo(ledger, 1200)
    rebuild(ledger, workers=1)
    expected = ledger.runner.checksums()
    local = [p for p in ledger.runner.projections if page_local(p)]
    raced: list[int] = []

    def another_runner_moves_one_event(done: int, _total: int) -> None:
        if raced or not 0 < done < head - 300:
            return
        # A second `quipu project` folds one event while the workers run. It may lose a race to a worker's
        # commit (it then stops where the worker left the views): try until it has moved them off a page edge.
        other = ProjectionRunner(ledger.store, ledger.views, local, batch_size=1)
        for _ in range(50):
            at = min(other.positions().values())
            other.run(to_position=at + 1)
            if any(position % 3 for position in other.positions().values()):
                raced.append(at + 1)
                return

    # The parent sees the workers' progress only as often as it polls: on a loaded machine they may be past the
    # window before its first look. Stage it again then (each rebuild starts from zero).
    for _ in range(5):
        report = rebuild(ledger, workers=2, min_events=0, page=3, progress=another_runner_moves_one_event)
        if raced:
            break
    assert raced, "the race was not staged"
    assert report.end == head and report.worker_peaks_mib == []  # the workers gave way to a serial finish
    assert ledger.runner.checksums() == expected


def test_a_projection_process_killed_fails_the_rebuild_and_a_run_carries_it_on(ledger: Ledger) -> None:
    import multiprocessing
    import os
    import signal

    from adapters.rebuild import RebuildFailed

    head = _post_demo(ledger, 1200)
    rebuild(ledger, workers=1)
    expected = ledger.runner.checksums()
    ledger.runner.batch_size = 10  # the projection processes commit every 10 events: time to kill one mid-run
    killed: list[str] = []

    def kill_them_in_the_second_pass(done: int, _total: int) -> None:
        if done > head and not killed:
            # Every projection process still running: one that has already reported may not have exited yet, and
            # killing only that one (the first child, say) made no failure to see. Work is left in the second
            # pass, so at least one has not reported.
            for victim in multiprocessing.active_children():
                if victim.name.startswith("quipu-rebuild-") and victim.pid is not None:
                    os.kill(victim.pid, signal.SIGKILL)
                    killed.append(victim.name)

    with pytest.raises(RebuildFailed, match="exited without reporting"):
        rebuild(ledger, workers=2, min_events=0, progress=kill_them_in_the_second_pass)
    assert killed, "no projection process was killed"
    positions = ledger.runner.positions()
    assert {positions[p.name] for p in ledger.runner.projections if page_local(p)} == {head}
    # The killed ones stopped where their last commits left them (at the head if already done): a run carries on.
    ledger.runner.run()
    assert ledger.runner.checksums() == expected


def test_lane_groups_share_the_cost_and_keep_every_projection_once(ledger: Ledger) -> None:
    from adapters.rebuild import lane_groups

    stateful = [p for p in ledger.runner.projections if not page_local(p)]
    cost = {p.name: getattr(p, "rebuild_cost", 10) for p in stateful}
    for lanes in (1, 2, 3, 8):
        groups = lane_groups(stateful, lanes)
        assert sorted(n for g in groups for n in g) == sorted(cost) and len(groups) == min(lanes, len(cost))
        loads = [sum(cost[n] for n in g) for g in groups]
        # Costliest first, each to the lightest lane: no two lanes differ by more than one projection's cost.
        assert max(loads) - min(loads) <= max(cost.values())
    # With the measured hints, settlement (the costliest) runs alone beside the three others together.
    assert ["settlement"] in lane_groups(stateful, 2)
