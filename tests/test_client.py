"""The Python client against a real server process and a real database: single and batch posts,
retries that reuse the event id (recorded once), problem details on errors, floats refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from adapters.client import ApiError, AsyncQuipuClient, EventRefused, NotJson, QuipuClient
from tests.factories import authorized, captured
from tests.test_http import _quipu, _secret_of, serve  # noqa: F401  (the fixture)


class LoseFirstResponse(httpx.BaseTransport):
    """Forwards every request to the server, but answers the first event post with a 503 as if the
    response had been lost after the ledger committed: the client must retry the same bytes."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost = 0
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == "/v1/events":
            self.bodies.append(request.read())
            if not self.lost:
                self.lost += 1
                response.read()
                return httpx.Response(503, json={"title": "Service Unavailable", "detail": "lost"})
        return response


def test_the_client_posts_retries_with_the_same_id_and_reports_problems(
    serve: Callable[..., httpx.Client],  # noqa: F811
    ledger_url: str,
) -> None:
    secret = _secret_of(_quipu("clients", "add", "checkout", "--scope", "events:write", "--scope", "ledger:read",
                               "--database", ledger_url))  # fmt: skip
    api = serve()
    base = str(api.base_url)
    lossy = LoseFirstResponse()
    with QuipuClient(base, "checkout", secret, transport=lossy, backoff=0.01) as quipu:
        auth = authorized("p1", "100.00")
        del auth["event_id"]  # the client assigns one, before the first attempt
        first = quipu.post(auth)
        assert first.outcome == "duplicate" and first.position == 1  # the lost attempt had committed it
        assert len(set(lossy.bodies)) == 1 and len(lossy.bodies) == 2  # the retry sent the very same bytes
        assert quipu.post(captured("p1", "60.00")).outcome == "appended"
        with pytest.raises(EventRefused) as refused:
            quipu.post(captured("p1", "50.00"))  # more than what is left of the authorisation
        assert refused.value.status == 422 and any("amount" in e for e in refused.value.errors)
        with pytest.raises(NotJson, match=r"event.payload.amount.amount: a float"):
            quipu.post({**captured("p1", "1.00"), "payload": {"amount": {"amount": 1.5, "currency": "BRL"}}})
        batch = [authorized(f"b{i}", "10.00") for i in range(2500)]
        results = quipu.post_batch(batch)
        assert len(results) == 2500 and {r.outcome for r in results} == {"appended"}
        assert {r.outcome for r in quipu.post_batch(batch)} == {"duplicate"}
        assert sum(1 for _ in quipu.events(after=0, page=700)) == 2502
    with QuipuClient(base, "checkout", "wrong-secret", retries=0) as stranger, pytest.raises(ApiError) as denied:
        stranger.post(authorized("p9", "1.00"))
    assert denied.value.status == 401 and denied.value.title == "invalid_client"


def test_the_async_client_posts_and_batches(
    serve: Callable[..., httpx.Client],  # noqa: F811
    ledger_url: str,
) -> None:
    secret = _secret_of(_quipu("clients", "add", "svc", "--scope", "events:write", "--database", ledger_url))
    api = serve()

    async def run() -> None:
        async with AsyncQuipuClient(str(api.base_url), "svc", secret) as quipu:
            assert (await quipu.post(authorized("a1", "5.00"))).outcome == "appended"
            results = await quipu.post_batch([authorized(f"c{i}", "1.00") for i in range(1200)])
            assert len(results) == 1200 and results[-1].position == 1201
            with pytest.raises(EventRefused):
                await quipu.post(captured("zz", "1.00"))  # never authorised

    asyncio.run(run())
