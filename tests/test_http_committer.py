"""The worker's committer process (ADR 0041): same answers as posting in the worker, survives its own death.

The HTTP suites run real ``quipu serve`` processes, so every post they make already goes through a committer;
this file checks what only the committer can get wrong: answering each group with its own results, in order,
across the process boundary; starting, failing to start, being killed, and stopping; traces across processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import jwt
import orjson
import pytest

from adapters.bootstrap import open_ledger
from adapters.committer import CommitterLost, CommitterProcess, committer_choice
from adapters.http.app import create_app
from benchmarks.common import children
from domain.integrity import verify_chain
from domain.service import PostResult, prepare
from ledger.errors import QuipuError
from tests.factories import adjustment, authorized, captured
from tests.servers import free_port, wait_until_serving

SECRET = "committer-test-secret-0123456789-abcdefghijkl"


def _events(n: int, prefix: str) -> list[bytes]:
    out = []
    for i in range(n):
        out += [orjson.dumps(authorized(f"{prefix}{i}", "10.00")), orjson.dumps(captured(f"{prefix}{i}", "10.00"))]
    return out


#: A result as the tests compare them: outcome, event id, position, reason.
_Summary = list[tuple[str, str | None, int | None, str | None]]


def _summary(results: Sequence[PostResult]) -> _Summary:
    return [(r.outcome.value, r.event_id, r.position, r.reason) for r in results]


def _posted_in_the_worker(tmp_path: Path, groups: Sequence[Sequence[bytes]]) -> list[_Summary]:
    """What posting the same groups in order into a fresh ledger in this process answers."""
    with open_ledger(f"sqlite:///{tmp_path}/in-the-worker.db") as ledger:
        return [_summary(ledger.service.post(g)) for g in groups]


def test_each_group_gets_its_own_results_as_posting_in_the_worker_would(ledger_url: str, tmp_path: Path) -> None:
    events = _events(30, "c")
    refused = orjson.dumps(captured("nowhere", "1.00"))  # no authorization: a rule refuses it
    groups = [events[:7], [events[0], refused, *events[7:20]], [b"{not json"], events[20:]]

    async def through_the_committer() -> list[_Summary]:
        committer = CommitterProcess(ledger_url)
        await committer.start()
        try:
            return [_summary(await committer.post(g, {}, [])) for g in groups]
        finally:
            await committer.close()

    answered = asyncio.run(through_the_committer())
    assert answered == _posted_in_the_worker(tmp_path, groups)
    assert [o for o, *_ in answered[1][:2]] == ["duplicate", "rejected"] and answered[2][0][0] == "rejected"
    with open_ledger(ledger_url) as ledger:
        assert ledger.store.head() == len(events) and verify_chain(ledger.store).broken is None


def test_groups_in_flight_together_are_answered_in_order_each_with_its_own_results(
    ledger_url: str, tmp_path: Path
) -> None:
    # ADR 0042: the worker sends a group while the one before is being decided. Each later group depends on the
    # earlier ones (duplicates, captures of earlier authorizations), so any reordering or mix-up shows.
    events = _events(40, "p")
    # An entry that would not balance is found out by prepare, so in the worker for a prepared group (ADR 0042):
    # its verdict must cross to the committer with the event.
    lines = [("seller:S1:available:BRL", "debit", "10.00", "BRL"),
             ("platform:main:adjustments:MXN", "credit", "10.00", "MXN")]  # fmt: skip
    unbalanced = orjson.dumps(adjustment("a1", lines))
    groups = [events[:30], [events[0], *events[30:50]], [b"{not json", events[1], unbalanced], events[50:],
              events[60:70]]  # fmt: skip

    async def all_at_once() -> list[_Summary]:
        committer = CommitterProcess(ledger_url)
        await committer.ensure_started()
        try:
            # Both forms in flight together: prepared by the worker (big groups) and raw (small ones).
            sent = [committer.send(prepare(g) if i % 2 == 0 else g, {}, []) for i, g in enumerate(groups)]
            return [_summary(await s) for s in sent]
        finally:
            await committer.close()

    answered = asyncio.run(all_at_once())
    assert answered == _posted_in_the_worker(tmp_path, groups)
    assert [len(a) for a in answered] == [len(g) for g in groups]
    assert answered[1][0][0] == "duplicate" and {o for o, *_ in answered[4]} == {"duplicate"}
    assert answered[2][2][0] == "rejected" and "entry does not balance" in (answered[2][2][3] or "")


def test_a_group_the_committer_cannot_post_fails_alone_and_in_its_turn(tmp_path: Path) -> None:
    # The committer trusts the worker's preparing, but the store still checks each event's bytes against the hash
    # its chain link will cover: a group whose hash does not match is refused whole, and nothing of it is written.
    tampered = prepare(_events(2, "t"))
    first = tampered.parsed[0]
    tampered.parsed[0] = dataclasses.replace(first, digest=bytes(32))

    async def scenario() -> tuple[str, list[str]]:
        committer = CommitterProcess(f"sqlite:///{tmp_path}/ledger.db")
        await committer.ensure_started()
        try:
            bad = committer.send(tampered, {}, [])
            fine = committer.send(prepare(_events(2, "f")), {}, [])
            with pytest.raises(RuntimeError) as failed:
                await bad
            return str(failed.value), [r.outcome.value for r in await fine]
        finally:
            await committer.close()

    reason, outcomes = asyncio.run(scenario())
    assert "StateMismatch" in reason and first.event.event_id.hex in reason.replace("-", "")
    assert outcomes == ["appended"] * 4
    with open_ledger(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        assert ledger.store.head() == 4 and verify_chain(ledger.store).broken is None


def test_a_cancelled_group_is_still_committed_and_its_answer_goes_to_no_one_else(tmp_path: Path) -> None:
    later = _events(1, "y")

    async def scenario() -> list[str]:
        committer = CommitterProcess(f"sqlite:///{tmp_path}/ledger.db")
        await committer.ensure_started()
        try:
            committer.send(prepare(_events(3, "x")), {}, []).cancel()  # its caller went away
            return [r.event_id or "" for r in await committer.send(prepare(later), {}, [])]
        finally:
            await committer.close()

    ids = asyncio.run(scenario())
    assert ids == [orjson.loads(e)["event_id"] for e in later]
    with open_ledger(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        assert ledger.store.head() == 8  # the cancelled group was not taken back


def test_a_killed_committer_is_replaced_and_a_stopped_one_leaves_no_process(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, list[str]]:
        committer = CommitterProcess(f"sqlite:///{tmp_path}/ledger.db")
        await committer.start()
        assert committer.process is not None and committer.process.pid is not None
        first = committer.process.pid
        outcomes = [r.outcome.value for r in await committer.post(_events(1, "a"), {}, [])]
        os.kill(first, signal.SIGKILL)
        committer.process.join(10)
        # Killed between groups: the next post starts another and is answered.
        outcomes += [r.outcome.value for r in await committer.post(_events(1, "b"), {}, [])]
        assert committer.process is not None and committer.process.pid is not None
        second = committer.process.pid
        process = committer.process
        await committer.close()
        assert not process.is_alive() and process.exitcode == 0  # asked to stop, it closed its ledger and exited
        return first, second, outcomes

    first, second, outcomes = asyncio.run(scenario())
    assert first != second and outcomes == ["appended"] * 4


@pytest.mark.parametrize("sizes", [(2500,), (2500, 10)], ids=["one group", "two groups in flight"])
def test_a_committer_killed_while_it_commits_fails_what_it_holds_with_a_retryable_error(
    tmp_path: Path, sizes: tuple[int, ...]
) -> None:
    groups = [_events(n, f"k{i}-") for i, n in enumerate(sizes)]
    everything = [e for g in groups for e in g]

    async def scenario() -> list[str]:
        committer = CommitterProcess(f"sqlite:///{tmp_path}/ledger.db")
        await committer.ensure_started()
        assert committer.process is not None and committer.process.pid is not None
        # The first raw (the committer prepares it), the second prepared here (ADR 0042): both forms are lost.
        sent = [committer.send(g if i == 0 else prepare(g), {}, []) for i, g in enumerate(groups)]
        await asyncio.sleep(0.05)  # 5,000 events take far longer than this to decide and append (~0.5 s)
        os.kill(committer.process.pid, signal.SIGKILL)
        for answer in sent:
            with pytest.raises(CommitterLost, match="went away"):
                await answer
        # The retry, with the same event ids, records each event once whatever the killed one had done; the
        # next post started another committer.
        retried = [r.outcome.value for r in await committer.post(everything, {}, [])]
        await committer.close()
        return retried

    retried = asyncio.run(scenario())
    assert set(retried) <= {"appended", "duplicate"} and len(retried) == len(everything)
    with open_ledger(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        assert ledger.store.head() == len(everything) and verify_chain(ledger.store).broken is None


def test_a_committer_that_cannot_open_its_ledger_says_why() -> None:
    committer = CommitterProcess("postgresql://nobody:wrong@127.0.0.1:1/nowhere")
    with pytest.raises(CommitterLost, match="could not open the ledger"):
        asyncio.run(committer.start())
    assert committer.process is None


def test_an_unknown_committer_is_refused_by_name_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(QuipuError, match="committer \\(QUIPU_COMMITTER\\): 'fork' is not one of process, thread"):
        create_app(f"sqlite:///{tmp_path}/ledger.db", committer="fork")
    env = {**os.environ, "QUIPU_API_SECRET": SECRET, "QUIPU_COMMITTER": " Fork "}
    refused = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "serve", "--database", f"sqlite:///{tmp_path}/ledger.db",
         "--port", str(free_port())],
        cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "QUIPU_COMMITTER): 'fork' is not one of process, thread" in refused.stderr + refused.stdout
    assert not (tmp_path / "ledger.db").exists()  # refused before a ledger was created
    monkeypatch.setenv("QUIPU_COMMITTER", "THREAD")  # case and spaces do not matter
    assert committer_choice() == "thread"


def test_over_http_a_killed_committer_costs_no_event_and_the_append_span_joins_the_request_trace(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {**os.environ, "QUIPU_API_SECRET": SECRET, "QUIPU_OTEL_EXPORTER": "console", "QUIPU_LOG_FORMAT": "json"}
    url = f"sqlite:///{tmp_path}/ledger.db"
    log = tmp_path / "server.log"
    with open(log, "wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "serve", "--database", url, "--port", str(port)],
            cwd=tempfile.gettempdir(), env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    exp = int(time.time()) + 300
    bearer = jwt.encode({"iss": "quipu", "sub": "svc", "scope": "events:write", "exp": exp}, SECRET, "HS256")
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=headers) as api:
            wait_until_serving(api, server, log)
            traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            first = api.post("/v1/events", content=orjson.dumps(authorized("h1", "10.00")),
                             headers={"traceparent": traceparent})  # fmt: skip
            assert first.status_code == 201
            (committer,) = _children(server.pid, "spawn_main")
            os.kill(committer, signal.SIGKILL)
            body = orjson.dumps(captured("h1", "10.00"))
            second = api.post("/v1/events", content=body)
            if second.status_code == 503:  # it was still dying when the group was sent: retry, as a client does
                assert second.headers["Retry-After"] == "1"
                second = api.post("/v1/events", content=body)
            assert second.status_code == 201, second.text  # a new committer took the group
            assert _children(server.pid, "spawn_main") not in ([], [committer])
    finally:
        server.terminate()
        server.wait(timeout=30)
    with open_ledger(url) as ledger:
        assert ledger.store.head() == 2 and verify_chain(ledger.store).broken is None
    spans = [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"name"')]
    request = next(s for s in spans if s["name"] == "POST /v1/events")
    append = next(s for s in spans if s["name"] == "quipu.append")
    assert request["context"]["trace_id"] == append["context"]["trace_id"] == "0x0af7651916cd43dd8448eb211c80319c"
    assert append["parent_id"] == request["context"]["span_id"]  # made in another process, under the request


def _children(pid: int, marker: str) -> list[int]:
    """``pid``'s children whose command line holds ``marker``."""
    found = []
    for child in children(pid):
        with open(f"/proc/{child}/cmdline", "rb") as cmd:
            if marker.encode() in cmd.read():
                found.append(child)
    return found


def test_write_conflicts_that_outlast_the_retries_are_retryable_and_stop_a_committer_told_to(tmp_path: Path) -> None:
    # serve() runs in a thread of a child process, with the service's post_prepared made to give up as it does after
    # MAX_ATTEMPTS conflicts: the answer is "lost" (retryable: 503, or a Kafka retry), never "error" (500, or a
    # worker crash), and with stop_after_failure the committer stops reading (ADR 0045).
    script = f"""
import pickle, socket, struct, threading
from adapters.committer import _frame, serve
from domain.ports import WriteConflict
from domain.service import LedgerService

def give_up(self, batch):
    raise WriteConflict("stream payment:p1 moved 12 times")

LedgerService.post_prepared = give_up
ours, theirs = socket.socketpair()
thread = threading.Thread(target=serve, args=(theirs, "sqlite:///{tmp_path}/ledger.db", True))
thread.start()
stream = ours.makefile("rwb")
def receive():
    (length,) = struct.unpack("!I", stream.read(4))
    return pickle.loads(stream.read(length))
assert receive() == ("ready",)
stream.write(_frame((("raw", [b"{{}}"]), {{}}, [])))
stream.write(_frame((("raw", [b"{{}}"]), {{}}, [])))  # queued behind the failed group: never answered
stream.flush()
print(receive())
thread.join(30)
print("stopped" if not thread.is_alive() else "still serving")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    answer, state = run.stdout.strip().splitlines()
    assert answer.startswith("('lost', 'other writers kept taking the same streams: stream payment:p1 moved")
    assert state == "stopped"
