"""Schemathesis against the API's own OpenAPI document (issue 7): every operation, with inputs generated from
the schema and from its negation, on a ledger holding a reconciled month, an AML case and payouts, on SQLite
and on PostgreSQL. No answer may be a server error, and every answer must be one the document declares, in the
declared media type, with the declared headers, matching the declared schema; invalid input must be refused.

The calls go in-process to the ASGI app ``quipu serve`` runs, with a token from the real client-credentials
grant carrying every scope but ``admin``. ``QUIPU_FUZZ_EXAMPLES`` raises the example counts for a longer run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.bootstrap import open_ledger
from adapters.demo_recon import reconcile_month
from adapters.http.app import create_app
from adapters.http.auth import SCOPES, add_client
from tests.conftest import drop_schema, pg_url_for_new_schema
from tests.test_http_settlement import _seed
from tests.test_reconciliation import UNTIL, _post_month, _quiet

SECRET = "schemathesis-signing-secret-0123456789-abcdefgh"
#: Examples per operation (each in positive and negative mode); about 24 operations.
SQLITE_EXAMPLES = int(os.environ.get("QUIPU_FUZZ_EXAMPLES", "20"))
PG_EXAMPLES = max(1, SQLITE_EXAMPLES // 2)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
#: How many generated cases were sent, per database (printed at the end; the fuzzing report quotes it).
SENT: dict[str, int] = {}


def _serve(url: str, tmp: Any, backend: str) -> Iterator[dict[str, Any]]:
    with open_ledger(url) as ledger:
        _post_month(ledger, seed=41, events=1200)
        reconcile_month(ledger, _quiet(), tmp / "files", UNTIL)
        secret = add_client(ledger, "fuzzer", [s for s in SCOPES if s != "admin"])
    _seed(url)  # AML: a seller frozen by an open case
    form = {"grant_type": "client_credentials", "client_id": "fuzzer", "client_secret": secret}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("QUIPU_API_SECRET", SECRET)
        env.setenv("QUIPU_RATE_BURST", "100000")
        app = create_app(url)
        with asgi.get_client(cast(Any, app)) as client:  # starts the app's lifespan, which reads the secret
            granted = client.post("/oauth/token", data=form)
    assert granted.status_code == 200, granted.text
    SENT[backend] = 0
    yield {"app": app, "headers": {"Authorization": f"Bearer {granted.json()['access_token']}"}, "db": backend}
    asgi.shutdown_lifespans()
    print(f"\nschemathesis: {SENT[backend]} cases sent on {backend}")


@pytest.fixture(scope="module")
def sqlite_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("schemathesis-sqlite")
    yield from _serve(f"sqlite:///{tmp}/ledger.db", tmp, "sqlite")


@pytest.fixture(scope="module")
def pg_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    url, pg_schema = pg_url_for_new_schema()
    try:
        yield from _serve(url, tmp_path_factory.mktemp("schemathesis-pg"), "postgresql")
    finally:
        drop_schema(pg_schema)


# The document does not depend on the database: read it from an app that is never started. SQLite runs every
# phase (the coverage phase sends each parameter's boundary and invalid values); PostgreSQL, where each call is
# slower, the random examples only.
DOCUMENT = create_app("sqlite:///never-opened.db").openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
pg_schema = schemathesis.openapi.from_dict(
    DOCUMENT, config=schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})
)


def _call(case: schemathesis.Case[Any], api: dict[str, Any]) -> None:
    SENT[api["db"]] += 1
    case.call_and_validate(app=api["app"], headers=api["headers"], checks=CHECKS)


@schema.parametrize()
@settings(max_examples=SQLITE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_on_sqlite(
    case: schemathesis.Case[Any], sqlite_api: dict[str, Any]
) -> None:
    _call(case, sqlite_api)


@pg_schema.parametrize()
@settings(max_examples=PG_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_on_postgresql(
    case: schemathesis.Case[Any], pg_api: dict[str, Any]
) -> None:
    _call(case, pg_api)
