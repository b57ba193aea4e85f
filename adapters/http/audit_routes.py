"""HTTP routes for auditors (scope ``audit:read``): the hash chain, signed checkpoints, balances as of a moment.

* ``GET /v1/audit/verify`` walks the chain from position 1 as ``quipu verify`` does and reports the
  first broken link, if any (200 either way: the walk's verdict is the answer). The walk reads on a
  connection of its own, so other requests go on meanwhile.
* ``POST /v1/audit/verify`` walks it up to a checkpoint the auditor kept, as ``quipu verify
  --from-checkpoint`` does: the signature is checked first (against a pinned public key, if given).
* ``GET /v1/audit/checkpoint`` signs the chain head (or the link at ``position``) with the ledger's
  key, as ``quipu checkpoint`` does. Checkpoints are kept outside the ledger, so there is no list of
  them to read; the key must exist already (``quipu checkpoint`` creates it), a GET never creates it.
* ``GET /v1/audit/balances`` gives balances as of a log position, a record time (what the ledger knew
  then) or a business time (what had happened by then): the three rules of ``quipu replay``, read
  from the journal's postings instead of folded into a snapshot (same figures, nothing written).
"""

from __future__ import annotations

import re
import threading
from typing import Any, Final, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from adapters.audit import key_path, load_or_create_key, positions_between, take_checkpoint
from adapters.bootstrap import open_ledger
from adapters.http import contract
from adapters.http.contract import BalanceDoc, Guard, Problem
from adapters.http.ledger_routes import GLOB_PATTERN, MAX_POSITION, Params, param, read_body
from adapters.reports import ReportError, balance_rows, parse_as_of
from domain.checkpoints import Checkpoint, CheckpointError, check_signature
from domain.integrity import ChainReport, verify_chain
from ledger.errors import QuipuError

SCOPE: Final = "audit:read"
_GLOB: Final = re.compile(GLOB_PATTERN)
_BASIS: Final = re.compile("effective|recorded")


class BrokenLinkRow(BaseModel):
    position: int
    event_id: str | None
    reason: str


class ChainStatus(BaseModel):
    ok: bool = Field(description="every link holds (and, with a checkpoint, ends at the signed head)")
    events: int = Field(ge=0, description="positions 1..events verify")
    head: int = Field(ge=0, description="the last position walked to")
    head_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="the chain hash at `events`")
    broken: BrokenLinkRow | None
    checkpoint: int | None = Field(None, description="the checkpoint's position, when verifying against one")


class VerifyRequest(BaseModel):
    """``POST /v1/audit/verify``: a checkpoint kept outside the ledger, and optionally the key to trust."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: Checkpoint
    public_key: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="the ledger's published key, hex")


class BalancesAsOf(BaseModel):
    as_of: str
    basis: Literal["position", "recorded", "effective"]
    position: int = Field(ge=0, description="the last log position the figures include")
    balances: list[BalanceDoc]


def _status(report: ChainReport, head: int, checkpoint: Checkpoint | None = None) -> dict[str, Any]:
    b = report.broken
    return {
        "ok": b is None,
        "events": report.events,
        "head": head,
        "head_sha256": report.head_hash,
        "broken": None if b is None else {"position": b.position, "event_id": b.event_id, "reason": b.reason},
        "checkpoint": None if checkpoint is None else checkpoint.position,
    }


def _walk(url: str, checkpoint: Checkpoint | None = None) -> dict[str, Any]:
    """Walk the chain on a connection of its own, as the console does: a walk of a long log takes seconds and
    must not hold the lock every other request of this process waits for."""
    with open_ledger(url, migrate=False) as own:
        head = own.store.head() if checkpoint is None else checkpoint.position
        return _status(verify_chain(own.store, checkpoint=checkpoint), head, checkpoint)


_BALANCE_PARAMS: Final = [
    param("as_of", {"type": "string", "pattern": r"^([0-9]{1,19}|[0-9]{4}-.+)$"},
          "a log position, or an ISO 8601 time with offset", required=True),
    param("basis", {"type": "string", "enum": ["effective", "recorded"]},
          "for a time: `effective` (default) counts what had happened by then, `recorded` what the ledger "
          "had recorded by then"),
    param("account", {"type": "string", "maxLength": 200, "pattern": GLOB_PATTERN},
          "glob, e.g. `seller:*:available:BRL`"),
]  # fmt: skip
_CHECKPOINT_PARAMS: Final = [
    param("position", {"type": "integer", "minimum": 0, "maximum": MAX_POSITION},
          "the position to sign (default: the head)"),
]  # fmt: skip


def add_routes(app: FastAPI, guard: Guard, state: dict[str, Any], lock: threading.Lock, problem: Problem) -> None:
    """Mount the ``/v1/audit`` routes (scope ``audit:read``)."""

    @app.get(
        "/v1/audit/verify",
        dependencies=[contract.needs(SCOPE)],
        summary="Walk the hash chain from position 1: ok, or the first broken link",
        responses=contract.answers(ChainStatus),
    )
    def verify(request: Request) -> Response:
        if (refused := guard(request, SCOPE)) is not None:
            return refused
        return JSONResponse(_walk(state["ledger"].url))

    @app.post(
        "/v1/audit/verify",
        dependencies=[contract.needs(SCOPE)],
        summary="Walk the hash chain up to a signed checkpoint: it must end at the signed head",
        responses=contract.answers(ChainStatus, 400, 422),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": VerifyRequest.model_json_schema()}},
            }
        },
    )
    async def verify_against(request: Request) -> Response:
        if (refused := guard(request, SCOPE)) is not None:
            return refused
        body = read_body(VerifyRequest, await request.body(), problem, "Invalid checkpoint")
        if isinstance(body, JSONResponse):
            return body
        try:
            check_signature(body.checkpoint, body.public_key)
        except CheckpointError as exc:
            pinned = body.public_key is not None and body.public_key != body.checkpoint.public_key
            field = "public_key" if pinned else "checkpoint.signature"
            return problem(422, "Checkpoint refused", f"{field}: {exc}", [f"{field}: {exc}"])
        return JSONResponse(await run_in_threadpool(_walk, state["ledger"].url, body.checkpoint))

    @app.get(
        "/v1/audit/checkpoint",
        dependencies=[contract.needs(SCOPE)],
        summary="A checkpoint of the chain head (or of a position), signed with the ledger's key",
        responses=contract.answers(Checkpoint, 404, 422),
        openapi_extra={"parameters": _CHECKPOINT_PARAMS},
    )
    def checkpoint(request: Request) -> Response:
        if (refused := guard(request, SCOPE)) is not None:
            return refused
        q = Params(request)
        raw_position = q.text("position")
        position = None if raw_position is None else q.bounded("position", raw_position, 0, MAX_POSITION, 0)
        if (bad := q.refused(problem)) is not None:
            return bad
        path = key_path()
        if not path.exists():
            return problem(404, "No signing key", "the ledger has no signing key yet; `quipu checkpoint` creates it")
        try:
            key = load_or_create_key(path)
            with lock:
                signed = take_checkpoint(state["ledger"].store, key, position)
        except QuipuError as exc:
            why = str(exc).removeprefix("--")
            return problem(404, "No such position", why, [why])
        return JSONResponse(signed.model_dump())

    @app.get(
        "/v1/audit/balances",
        dependencies=[contract.needs(SCOPE)],
        summary="Balances as of a log position, a record time or a business time (the rules of quipu replay)",
        responses=contract.answers(BalancesAsOf, 422),
        openapi_extra={"parameters": _BALANCE_PARAMS},
    )
    def balances(request: Request) -> Response:
        if (refused := guard(request, SCOPE)) is not None:
            return refused
        q = Params(request)
        as_of = q.text("as_of", longest=40)
        basis = q.text("basis", _BASIS, "effective or recorded")
        account = q.text("account", _GLOB, "a glob of name characters with '*', '?' and closed '[…]' classes", 200)
        kind, value = "position", 0
        if as_of is None:
            if not any(e.startswith("as_of:") for e in q.errors):
                q.errors.append("as_of: required (a log position, or an ISO 8601 time with offset)")
        else:
            try:
                kind, value = parse_as_of(as_of)
            except ReportError as exc:
                q.errors.append(str(exc).replace("--as-of", "as_of", 1))
            if kind == "position" and basis is not None:
                q.errors.append("basis: applies to a time; a position is already what the ledger had recorded")
            if kind == "position" and value > MAX_POSITION:
                q.errors.append(f"as_of: {as_of} is beyond any log position")
        if (bad := q.refused(problem)) is not None:
            return bad
        assert as_of is not None
        with lock:
            ledger = state["ledger"]
            ledger.runner.run()
            head = ledger.store.head()
            if kind == "position":
                if value > head:
                    why = f"position {value} is beyond the head of the log ({head})"
                    return problem(422, "Invalid query", f"as_of: {why}", [f"as_of: {why}"])
                used, stop, rows = "position", value, balance_rows(ledger, account, str(value))
            elif basis == "recorded":
                stop = positions_between(ledger.store, None, value)[1]
                used, rows = "recorded", balance_rows(ledger, account, str(stop))
            else:
                used, stop = "effective", ledger.runner.positions()["journal"]
                rows = balance_rows(ledger, account, as_of)
        return JSONResponse({"as_of": as_of, "basis": used, "position": stop, "balances": rows})
