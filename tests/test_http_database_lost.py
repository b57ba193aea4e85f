"""A database that goes away under the API: 503 problem+json with Retry-After, never a bare 500, and the
client's retry with the same event ids records each event exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Final

import psycopg
import pytest
from fastapi.testclient import TestClient

from adapters.bootstrap import open_ledger
from adapters.http.app import create_app
from adapters.http.auth import add_client
from adapters.store.pg_url import parse_pg_url
from tests.conftest import PG_URL, drop_schema, pg_url_for_new_schema
from tests.factories import authorized

SECRET: Final = "database-lost-signing-secret-0123456789-abcdefg"
APP_NAME: Final = f"quipu-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pg_api() -> Iterator[tuple[TestClient, dict[str, str], str]]:
    url, schema = pg_url_for_new_schema()
    try:
        with open_ledger(url) as ledger:
            secret = add_client(ledger, "poster", ["events:write"])
        with pytest.MonkeyPatch.context() as env:
            env.setenv("QUIPU_API_SECRET", SECRET)
            # libpq names every connection this app opens, so only they are cut (other tests share the server).
            env.setenv("PGAPPNAME", APP_NAME)
            with TestClient(create_app(url)) as client:
                token = client.post("/oauth/token", data={"grant_type": "client_credentials",
                                    "client_id": "poster", "client_secret": secret}).json()["access_token"]  # fmt: skip
                yield client, {"Authorization": f"Bearer {token}"}, url
    finally:
        drop_schema(schema)


def _cut_the_apps_connections() -> int:
    """Terminate every connection the app holds: what a database restart does to its pool."""
    with psycopg.connect(parse_pg_url(PG_URL).conninfo, autocommit=True, application_name="cutter") as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", [APP_NAME]
        ).fetchall()
    return len(rows)


def test_a_cut_connection_answers_503_and_the_retry_records_once(
    pg_api: tuple[TestClient, dict[str, str], str],
) -> None:
    client, auth, url = pg_api
    assert client.post("/v1/events", json=authorized("p0", "1.00"), headers=auth).status_code == 201
    event = authorized("p1", "2.00")
    assert _cut_the_apps_connections() >= 1
    answers = []
    for _ in range(10):  # a client's retry loop, same event id each time
        answer = client.post("/v1/events", json=event, headers=auth)
        answers.append(answer.status_code)
        assert answer.status_code in (200, 201, 503), answer.text
        if answer.status_code == 503:
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.headers["Retry-After"] == "1"
            assert "retry with the same event ids" in answer.json()["detail"]
            continue
        break
    assert answers[-1] in (200, 201), answers
    print("answers after the cut:", answers)
    with open_ledger(url, migrate=False) as ledger:
        ids = [str(r.event_id) for r in ledger.store.read(0, 10)]
    assert ids.count(event["event_id"]) == 1 and len(ids) == 2
