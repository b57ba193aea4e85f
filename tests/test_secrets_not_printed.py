"""Logs and error messages never print secrets, tokens or card numbers (issue 10, item 3).

Failing paths are run with a Luhn-valid card number (written three ways), a client secret and a bearer token in
every place a caller can put them — bodies, query parameters, path segments, headers, files — and none of them
may come back in a problem document, a challenge header, the command line's output, a log record (caplog, with
its extra fields) or the log lines a real ``quipu serve`` writes on stderr.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import jwt
import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from adapters.bootstrap import open_ledger
from adapters.cli import COMMAND_MODULES, app
from adapters.http.app import create_app
from adapters.http.auth import add_client
from tests.factories import authorized
from tests.servers import free_port, wait_until_serving
from tests.test_recon_import import mutate

for _module in COMMAND_MODULES:
    importlib.import_module(_module)

SIGNING: Final = "secrets-test-signing-key-0123456789-abcdefghijkl"
PAN: Final = "4111111111111111"
PANS: Final = [PAN, "4111 1111 1111 1111", "4111-1111-1111-1111"]
#: A client secret as `quipu clients add` makes them, but never registered: a caller's wrong guess.
WRONG_SECRET: Final = "Zq8-wrongSecretGuessed_by-a-caller-0123456789AB"


def _forbidden(secret: str, token: str) -> list[str]:
    return [*PANS, secret, WRONG_SECRET, token, token.split(".")[2]]  # the signature alone is the secret part


def _assert_clean(text: str, forbidden: list[str], where: str) -> None:
    for value in forbidden:
        assert value not in text, f"{where} repeats {value[:12]}…: {text[max(0, text.find(value) - 200) :][:400]!r}"


def _record_text(record: logging.LogRecord) -> str:
    """A record as any handler could write it: its message, arguments, extra fields and exception."""
    fields = {k: v for k, v in vars(record).items() if k not in ("msg", "args", "exc_info")}
    text = f"{record.getMessage()} {fields!r}"
    if record.exc_info:
        text += logging.Formatter().formatException(record.exc_info)
    return text


@pytest.fixture
def api(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path}/ledger.db"
    with open_ledger(url) as ledger:
        secret = add_client(ledger, "ops", ["ledger:read"])
    with pytest.MonkeyPatch.context() as env:
        env.setenv("QUIPU_API_SECRET", SIGNING)
        with TestClient(create_app(url)) as client:
            quipu_logs = logging.getLogger("quipu")  # it does not propagate to the root, where caplog listens
            quipu_logs.addHandler(caplog.handler)
            caplog.set_level(logging.DEBUG)
            try:
                granted = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "ops",
                                                            "client_secret": secret})  # fmt: skip
                assert granted.status_code == 200
                yield {"client": client, "secret": secret, "token": granted.json()["access_token"]}
            finally:
                quipu_logs.removeHandler(caplog.handler)


def _failing_requests(client: httpx.Client, secret: str, token: str) -> list[httpx.Response]:
    """Every way a caller can hand the API a card number, a secret or a token, on paths that fail."""
    bearer = {"Authorization": f"Bearer {token}"}
    now = dt.datetime.now(dt.UTC)
    expired = jwt.encode({"iss": "quipu", "sub": "ops", "scope": "ledger:read", "exp": now - dt.timedelta(minutes=1)},
                         SIGNING, algorithm="HS256")  # fmt: skip
    pan_events = []
    for pan in PANS:
        for where in ("source", "payment_id", "seller_id"):
            doc = authorized("p1", "10.00")
            (doc if where == "source" else doc["payload"])[where] = pan if where == "source" else f"x{pan}"
            pan_events.append(doc)
    sent = [
        client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "ops",
                                          "client_secret": WRONG_SECRET}),
        client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "ops",
                                          "client_secret": secret, "scope": "admin"}),
        client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": WRONG_SECRET,
                                          "client_secret": secret}),
        client.post("/oauth/token", data={"grant_type": "client_credentials"},
                    auth=httpx.BasicAuth("ops", WRONG_SECRET)),
        client.post("/oauth/token", content=f"grant_type=password&password={secret}&client_secret={secret}",
                    headers={"Content-Type": "application/x-www-form-urlencoded"}),
        client.post("/v1/events", json=authorized("p1", "1.00"), headers=bearer),  # 403: not its scope
        client.get("/v1/balances", headers={"Authorization": f"Bearer {expired}"}),
        client.get("/v1/balances", headers={"Authorization": f"Bearer {token}x"}),  # a forged signature
        client.get("/v1/balances", headers={"Authorization": f"Basic {secret}"}),
        client.get("/v1/balances", params={"access_token": token, "as_of": token}, headers=bearer),
        client.get(f"/v1/aml/cases/{token}", headers={"Authorization": f"Bearer {expired}"}),
        client.get("/v1/fx/rates", params={"from": PAN, "to": secret, "at": token}, headers=bearer),
        client.get("/v1/accounts", params={"pattern": f"seller:{PAN}:*", "after": token}, headers=bearer),
        client.get("/v1/journal/entries/" + PAN, headers=bearer),
    ]  # fmt: skip
    for pan in PANS:
        sent += [
            client.get(f"/v1/sellers/{pan}/balance", headers=bearer),
            client.get("/v1/balances", params={"account": pan, "as_of": pan}, headers=bearer),
            client.get("/v1/settlement/batches", params={"from": pan, "site": pan}, headers=bearer),
            client.get(f"/v1/events?after={pan}&limit={pan}", headers=bearer),
        ]
    admin = jwt.encode({"iss": "quipu", "sub": "ops", "scope": "admin", "exp": now + dt.timedelta(minutes=5)},
                       SIGNING, algorithm="HS256")  # fmt: skip
    with_admin = {"Authorization": f"Bearer {admin}"}
    sent += [client.post("/v1/events", json=doc, headers=with_admin) for doc in pan_events]
    sent.append(client.post("/v1/events/batch", json=pan_events, headers=with_admin))
    sent.append(client.post("/v1/events", content=b'{"type": "' + PAN.encode() + b'"', headers=with_admin))
    sent.append(client.post("/v1/events", json={**authorized("p2", "1.00"), "type": PANS[1]}, headers=with_admin))
    sent.append(client.post("/v1/payouts", json={"seller_id": PAN, "amount": PAN, "currency": "BRL",
                                                 "destination": PANS[1]}, headers=with_admin))  # fmt: skip
    sent.append(client.post(f"/v1/aml/cases/{PAN}/actions", json={"action": "note", "by": PAN, "text": PANS[2]},
                            headers=with_admin))  # fmt: skip
    sent.append(client.post(f"/v1/reconciliation/exceptions/{PAN}/resolution", headers=with_admin,
                            json={"resolution": "written_off", "decided_by": PAN, "note": PANS[1],
                                  "adjustment_id": PAN, "approved_by": secret}))  # fmt: skip
    return sent


def _assert_responses_clean(responses: list[httpx.Response], forbidden: list[str]) -> None:
    assert all(r.status_code >= 400 or r.request.url.path == "/v1/events/batch" for r in responses), [
        (r.request.url.path, r.status_code) for r in responses if r.status_code < 400
    ]
    for r in responses:
        where = f"{r.request.method} {r.request.url.path} → {r.status_code}"
        assert r.status_code < 500, where
        _assert_clean(r.text, forbidden, where)
        _assert_clean(orjson.dumps(dict(r.headers)).decode(), forbidden, f"{where} (headers)")


def test_the_api_never_repeats_a_card_number_a_secret_or_a_token(
    api: dict[str, Any], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    forbidden = _forbidden(api["secret"], api["token"])
    responses = _failing_requests(api["client"], api["secret"], api["token"])
    _assert_responses_clean(responses, forbidden)
    assert caplog.records, "the requests were logged"
    for record in caplog.records:
        if record.name.startswith(("httpx", "httpcore")):
            continue  # the test's own HTTP client, which logs the URLs it requests: not Quipu's logs
        _assert_clean(_record_text(record), forbidden, f"log record {record.name}")
    out, err = capfd.readouterr()
    _assert_clean(out + err, forbidden, "the process's stdout and stderr")


def test_the_console_sign_in_never_repeats_the_secret(api: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    client: TestClient = api["client"]
    form = client.get("/console/login")
    nonce = form.cookies.get("quipu_console_login", "")
    refused = client.post("/console/login", data={"client_id": "ops", "client_secret": WRONG_SECRET, "csrf": nonce})
    assert refused.status_code == 401
    _assert_clean(refused.text, [WRONG_SECRET], "the console's sign-in page")
    for record in caplog.records:
        if not record.name.startswith(("httpx", "httpcore")):
            _assert_clean(_record_text(record), [WRONG_SECRET, api["secret"]], f"log record {record.name}")


def test_the_command_line_never_repeats_a_card_number(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    events = tmp_path / "events.jsonl"
    lines = []
    for pan in PANS:
        lines += [orjson.dumps({**authorized("p1", "1.00"), "source": pan}), b'{"type": "' + pan.encode() + b'"}',
                  orjson.dumps({**authorized("p1", "1.00"), "type": pan}), pan.encode()]  # fmt: skip
    events.write_bytes(b"\n".join(lines) + b"\n")
    statement = tmp_path / "statement.csv"
    statement.write_bytes(mutate("stripe_balance.csv", "Order BR-7", f"card {PANS[1]}"))
    runner = CliRunner()
    commands = [
        ["post", str(events)],
        ["reconcile", "import", str(statement), "--format", "stripe-balance"],
        ["clients", "revoke", PAN],
        ["clients", "add", PAN, "--scope", PANS[1]],
    ]
    for pan in PANS:
        commands += [
            ["seller", "balance", pan],
            ["aml", "case", pan],
            ["aml", "case", pan, "--action", "note", "--by", pan, "--text", pan],
            ["balances", "--as-of", pan],
            ["reconcile", "resolve", pan, "--resolution", "adjusted", "--adjustment", pan, "--by", pan, "--note", pan],
            ["hold", "release", pan, "--by", pan],
        ]
    for command in commands:
        run = runner.invoke(app, [*command, "--database", url])
        output = run.stdout + run.stderr
        assert run.exit_code != 0 and "Traceback" not in output, (command, output[-1000:])
        _assert_clean(output, PANS, f"quipu {' '.join(command[:2])}")


def test_a_served_process_never_logs_a_card_number_a_secret_or_a_token(tmp_path: Path) -> None:
    """The real thing: ``quipu serve`` with JSON logs, its stderr read after the same failing requests."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    with open_ledger(url) as ledger:
        secret = add_client(ledger, "ops", ["ledger:read"])
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "QUIPU_API_SECRET": SIGNING, "QUIPU_LOG_FORMAT": "json", "QUIPU_LOG_LEVEL": "DEBUG"}
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "serve", "--database", url, "--port", str(port)],
            cwd=tempfile.gettempdir(), env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                wait_until_serving(client, server, log)
                granted = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "ops",
                                                            "client_secret": secret})  # fmt: skip
                token = granted.json()["access_token"]
                forbidden = _forbidden(secret, token)
                _assert_responses_clean(_failing_requests(client, secret, token), forbidden)
        finally:
            server.terminate()
            server.wait(timeout=30)
    written = log.read_text(encoding="utf-8", errors="replace")
    assert '"status"' in written or "status" in written, "the requests were logged"
    _assert_clean(written, forbidden, "quipu serve's log")
