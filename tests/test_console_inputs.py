"""Hostile path and query values on the console's pages: a page that says no, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import pytest
from fastapi.testclient import TestClient

from adapters.bootstrap import open_ledger
from adapters.console.session import SESSION_COOKIE
from adapters.http.app import create_app
from adapters.http.auth import add_client

SECRET: Final = "console-inputs-signing-secret-0123456789-abcdef"


@pytest.fixture
def console(ledger_url: str) -> Iterator[TestClient]:
    """The console over an empty ledger, signed in as a person holding every scope."""
    with open_ledger(ledger_url) as ledger:
        secret = add_client(ledger, "ops", ["admin"])
    with pytest.MonkeyPatch.context() as env:
        env.setenv("QUIPU_API_SECRET", SECRET)
        with TestClient(create_app(ledger_url), follow_redirects=False) as client:
            granted = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "ops",
                                                        "client_secret": secret})  # fmt: skip
            client.cookies.set(SESSION_COOKIE, granted.json()["access_token"], path="/console")
            yield client


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/console/entries/99999999999999999999999", 404, "not in the log"),
        ("/console/entries/0", 404, "not in the log"),
        ("/console/settlement?start=9999-12-31", 422, "is not between"),
        ("/console/settlement?start=2026-13-01", 422, "is not a date"),
        ("/console/aml/cases/%00", 404, "NUL"),
    ],
)
def test_a_hostile_value_gets_a_page_naming_it(console: TestClient, path: str, status: int, says: str) -> None:
    answer = console.get(path)
    assert answer.status_code == status, answer.text[:500]
    assert says in answer.text
