"""Group commit: concurrent posts share transactions, yet each gets exactly its own results, in order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import orjson
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.bootstrap import Ledger
from adapters.committer import DEPTH, CommitterProcess, Link
from adapters.http.group_commit import GroupCommit
from adapters.observability.tracing import instrument, tracer, use_tracer_provider
from domain.service import PostResult, Prepared
from tests.factories import authorized, captured


def _raw(event: dict[str, object]) -> bytes:
    return orjson.dumps(event)


def _committer(ledger: Ledger, calls: list[int], gate: threading.Event | None = None) -> GroupCommit:
    def post(raws: Sequence[bytes]) -> list[PostResult]:
        if gate is not None:
            gate.wait(10)  # hold the first commit, so the requests behind it pile up
        calls.append(len(raws))
        return ledger.service.post(raws)

    return GroupCommit(post)


def test_requests_arriving_during_a_commit_share_the_next_one(ledger: Ledger) -> None:
    calls: list[int] = []
    gate = threading.Event()
    committer = _committer(ledger, calls, gate)

    async def scenario() -> list[list[PostResult]]:
        first = asyncio.ensure_future(committer.post([_raw(authorized("p0", "10.00"))]))
        await asyncio.sleep(0.05)  # the first group is now inside its (held) commit
        rest = [asyncio.ensure_future(committer.post([_raw(authorized(f"p{i}", "10.00"))])) for i in range(1, 30)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *rest)

    answers = asyncio.run(scenario())
    assert calls == [1, 29]  # two transactions for thirty requests
    assert committer.groups == 2
    assert all(len(a) == 1 and a[0].index == 0 and a[0].outcome.value == "appended" for a in answers)
    positions: list[int] = []
    for a in answers:
        assert a[0].position is not None
        positions.append(a[0].position)
    assert positions == sorted(positions) and len(set(positions)) == 30  # arrival order is log order
    assert ledger.store.head() == 30


def test_each_request_gets_its_own_results_decided_in_arrival_order(ledger: Ledger) -> None:
    calls: list[int] = []
    gate = threading.Event()
    committer = _committer(ledger, calls, gate)
    auth = authorized("p1", "50.00")

    async def scenario() -> tuple[list[PostResult], list[PostResult], list[PostResult], list[PostResult]]:
        blocker = asyncio.ensure_future(committer.post([_raw(authorized("p0", "1.00"))]))
        await asyncio.sleep(0.05)
        batch = asyncio.ensure_future(committer.post([_raw(auth), _raw(captured("p1", "60.00"))]))
        await asyncio.sleep(0.01)
        # Queued behind the batch: decided after its authorization, so this capture fits ...
        ok = asyncio.ensure_future(committer.post([_raw(captured("p1", "50.00"))]))
        await asyncio.sleep(0.01)
        again = asyncio.ensure_future(committer.post([_raw(auth)]))  # ... and this is a duplicate
        await asyncio.sleep(0.01)
        gate.set()
        return await asyncio.gather(blocker, batch, ok, again)

    _, batch, ok, again = asyncio.run(scenario())
    assert calls == [1, 4]
    assert [(r.index, r.outcome.value) for r in batch] == [(0, "appended"), (1, "rejected")]
    assert "60.00" in (batch[1].reason or "") or "capture" in (batch[1].reason or "")
    assert [(r.index, r.outcome.value) for r in ok] == [(0, "appended")]
    assert [(r.index, r.outcome.value, r.position) for r in again] == [(0, "duplicate", batch[0].position)]


def test_a_failed_commit_fails_every_request_of_its_group_and_records_nothing(ledger: Ledger) -> None:
    failing = {"on": True}

    def post(raws: Sequence[bytes]) -> list[PostResult]:
        if failing["on"]:
            raise RuntimeError("the database went away")
        return ledger.service.post(raws)

    committer = GroupCommit(post)

    async def scenario() -> list[object]:
        tasks = [committer.post([_raw(authorized(f"p{i}", "10.00"))]) for i in range(5)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert ledger.store.head() == 0
    failing["on"] = False
    (result,) = asyncio.run(committer.post([_raw(authorized("p9", "10.00"))]))
    assert result.outcome.value == "appended"


def test_a_group_never_exceeds_its_size_limit(ledger: Ledger) -> None:
    calls: list[int] = []
    gate = threading.Event()

    def post(raws: Sequence[bytes]) -> list[PostResult]:
        gate.wait(10)
        calls.append(len(raws))
        return ledger.service.post(raws)

    committer = GroupCommit(post, max_events=5)

    async def scenario() -> None:
        tasks = [asyncio.ensure_future(committer.post([_raw(authorized(f"p{i}", "1.00"))])) for i in range(12)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert calls == [5, 5, 2]  # all twelve queued before the first commit started


def test_a_request_larger_than_the_limit_still_goes_alone(ledger: Ledger) -> None:
    size = 3
    committer = GroupCommit(ledger.service.post, max_events=2)
    results = asyncio.run(committer.post([_raw(authorized(f"q{i}", "1.00")) for i in range(size)]))
    assert [r.index for r in results] == list(range(size))
    assert ledger.store.head() == size


def test_a_grouped_commit_is_traced_under_its_first_request_and_links_the_others(ledger: Ledger) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    instrument(ledger)
    gate = threading.Event()

    def post(raws: Sequence[bytes]) -> list[PostResult]:
        gate.wait(10)
        return ledger.service.post(raws)

    committer = GroupCommit(post)

    async def request(name: str, pid: str) -> None:
        with tracer().start_as_current_span(name):
            await committer.post([_raw(authorized(pid, "1.00"))])

    async def scenario() -> None:
        first = asyncio.ensure_future(request("r0", "p0"))
        await asyncio.sleep(0.05)  # r0's commit is held; r1 and r2 queue behind it as one group
        rest = [asyncio.ensure_future(request(f"r{i}", f"p{i}")) for i in (1, 2)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, *rest)

    try:
        asyncio.run(scenario())
    finally:
        use_tracer_provider(None)
    spans = {s.name: s for s in exporter.get_finished_spans() if s.name.startswith("r")}
    appends = [s for s in exporter.get_finished_spans() if s.name == "quipu.append"]
    assert len(appends) == 2
    by_parent = {a.parent.span_id if a.parent else None: a for a in appends}
    assert set(by_parent) == {spans["r0"].context.span_id, spans["r1"].context.span_id}
    assert not by_parent[spans["r0"].context.span_id].links
    grouped = by_parent[spans["r1"].context.span_id]
    assert [link.context.span_id for link in grouped.links] == [spans["r2"].context.span_id]
    assert grouped.attributes is not None and grouped.attributes["quipu.events.count"] == 2


def test_with_a_committer_process_two_groups_are_in_flight_and_each_request_gets_its_own_results(
    tmp_path: Path,
) -> None:
    # ADR 0042: big groups are sent while another is in flight (it waits in the socket), never more than DEPTH.
    committer = CommitterProcess(f"sqlite:///{tmp_path}/ledger.db")
    grouped = GroupCommit(lambda raws: [])  # never called: the groups go to the process
    grouped.process = committer
    in_flight, most = 0, 0
    send = committer.send

    def counting_send(
        batch: Prepared | Sequence[bytes], trace: dict[str, str], links: Sequence[Link]
    ) -> asyncio.Future[list[PostResult]]:
        nonlocal in_flight, most
        answer = send(batch, trace, links)
        in_flight += 1
        most = max(most, in_flight)

        def done(_: object) -> None:
            nonlocal in_flight
            in_flight -= 1

        answer.add_done_callback(done)
        return answer

    committer.send = counting_send  # type: ignore[method-assign]
    requests = [[_raw(authorized(f"g{i}", "10.00")), _raw(captured(f"g{i}", "10.00"))] for i in range(300)]

    async def scenario() -> list[list[PostResult]]:
        try:
            pending = []
            for raws in requests:
                pending.append(asyncio.ensure_future(grouped.post(raws)))
                await asyncio.sleep(0)  # they arrive one by one, while groups are being committed
            return await asyncio.gather(*pending)
        finally:
            await committer.close()

    answers = asyncio.run(scenario())
    assert most == DEPTH  # pipelined, and never deeper
    assert 1 < grouped.groups < len(requests)
    for raws, answer in zip(requests, answers, strict=True):
        assert [r.event_id for r in answer] == [orjson.loads(r)["event_id"] for r in raws]
        assert [r.outcome.value for r in answer] == ["appended", "appended"] and [r.index for r in answer] == [0, 1]
    positions = [r.position for a in answers for r in a]
    assert positions == list(range(1, 2 * len(requests) + 1))  # arrival order is log order
