"""The `quipu` command line, end to end through real processes and real databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import pytest

from tests.factories import authorized, captured

QUIPU = [sys.executable, "-m", "adapters.cli"]
WORKDIR = tempfile.mkdtemp(prefix="quipu-cli-tests-")


def quipu(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [*QUIPU, *args],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
        cwd=WORKDIR,  # the demo writes its key and checkpoint under ./quipu-data: not in the repository
    )


def test_demo_export_then_post_twice_gives_the_same_zero_trial_balance(ledger_url: str, tmp_path: Path) -> None:
    demo_db = f"sqlite:///{tmp_path}/demo.db"
    export = tmp_path / "month.jsonl"
    run = quipu("demo", "--database", demo_db, "--events", "3000", "--seed", "11", "--export", str(export))
    assert run.returncode == 0, run.stderr
    lines = [ln for ln in export.read_bytes().splitlines() if ln.strip()]
    first = quipu("post", str(export), "--database", ledger_url)
    assert first.returncode == 0, first.stderr
    assert f"appended {len(lines)}, duplicates 0, rejected 0" in first.stdout
    second = quipu("post", str(export), "--database", ledger_url)
    assert second.returncode == 0, second.stderr
    assert f"appended 0, duplicates {len(lines)}, rejected 0" in second.stdout
    assert quipu("project", "--database", ledger_url).returncode == 0
    trial = json.loads(quipu("trial-balance", "--database", ledger_url, "--format", "json").stdout)
    demo_trial = json.loads(quipu("trial-balance", "--database", demo_db, "--format", "json").stdout)
    assert trial == demo_trial
    assert {row["currency"] for row in trial} == {"ARS", "BRL", "CLP", "COP", "MXN"}
    assert all(row["net"] in ("0", "0.00") and row["debits"] == row["credits"] for row in trial)
    check = quipu("project", "--check", "--database", ledger_url)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "False" not in check.stdout
    verify = quipu("verify", "--database", ledger_url)
    assert verify.returncode == 0 and f"chain verified: {len(lines)} events" in verify.stdout


def test_the_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path, db in ((a, "a.db"), (b, "b.db")):
        assert (
            quipu(
                "demo", "--database", f"sqlite:///{tmp_path}/{db}", "--events", "800", "--export", str(path)
            ).returncode
            == 0
        )
    assert a.read_bytes() == b.read_bytes()
    c = tmp_path / "c.jsonl"
    quipu("demo", "--database", f"sqlite:///{tmp_path}/c.db", "--events", "800", "--seed", "8", "--export", str(c))
    assert c.read_bytes() != a.read_bytes()


def test_post_reports_each_rejected_line_and_exits_non_zero(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/l.db"
    bad = captured("p1", "10.00")
    bad["payload"]["amount"]["amount"] = 10
    body = b"\n".join([orjson.dumps(authorized("p1", "100.00")), b"", b"{not json", orjson.dumps(bad)]) + b"\n"
    run = quipu("post", "-", "--database", db, stdin=body)
    assert run.returncode == 1
    assert "appended 1, duplicates 0, rejected 2" in run.stdout
    assert "line 3: rejected: event: not valid JSON" in run.stderr
    assert (
        'line 4: rejected: payload.amount.amount: must be a decimal string such as "12.34", not a JSON number'
        in run.stderr
    )


def test_verify_exits_one_and_names_the_broken_link(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "l.db"
    db = f"sqlite:///{path}"
    events = b"\n".join(orjson.dumps(authorized(f"p{i}", "10.00")) for i in range(5))
    assert quipu("post", "-", "--database", db, stdin=events).returncode == 0
    conn = sqlite3.connect(path)
    conn.execute("UPDATE quipu_events SET state = replace(state, '10.00', '99.00') WHERE rowid = 3")
    conn.commit()
    conn.close()
    run = quipu("verify", "--database", db)
    assert run.returncode == 1
    assert "chain BROKEN at position 3" in run.stdout and "body altered" in run.stdout


def test_balances_as_of_position_and_time_and_formats(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/l.db"
    early = authorized("p1", "100.00")
    cap1 = captured("p1", "60.00")
    cap2 = captured("p1", "40.00")
    cap2["occurred_at"] = "2026-10-05T12:00:00-03:00"
    body = b"\n".join(orjson.dumps(e) for e in (early, cap1, cap2))
    assert quipu("post", "-", "--database", db, stdin=body).returncode == 0
    assert quipu("project", "--database", db).returncode == 0
    live = json.loads(quipu("balances", "--database", db, "--format", "json", "--account", "seller:*").stdout)
    assert live == [{"account": "seller:S1:pending:BRL", "currency": "BRL", "debits": "0.00", "credits": "100.00",
                     "balance": "100.00", "normal_side": "credit"}]  # fmt: skip
    at2 = json.loads(quipu("balances", "--database", db, "--format", "json", "--as-of", "2").stdout)
    assert {r["account"]: r["balance"] for r in at2} == {
        "psp:cielo:receivable:BRL": "60.00",
        "seller:S1:pending:BRL": "60.00",
    }
    at_time = json.loads(
        quipu("balances", "--database", db, "--format", "json", "--as-of", "2026-10-02T00:00:00Z").stdout
    )
    assert {r["balance"] for r in at_time} == {"60.00"}
    csv_out = quipu("trial-balance", "--database", db, "--format", "csv").stdout.splitlines()
    assert csv_out == ["currency,debits,credits,net", "BRL,100.00,100.00,0.00"]
    beyond = quipu("balances", "--database", db, "--as-of", "99")
    assert beyond.returncode == 2 and "beyond the journal's projected position 3" in beyond.stderr
    naive = quipu("balances", "--database", db, "--as-of", "2026-10-02T00:00:00")
    assert naive.returncode == 2 and "has no UTC offset" in naive.stderr


def test_project_resumes_and_stops_at_a_position(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/l.db"
    body = b"\n".join(
        orjson.dumps(e) for e in (authorized("p1", "100.00"), captured("p1", "60.00"), captured("p1", "40.00"))
    )
    quipu("post", "-", "--database", db, stdin=body)
    first = quipu("project", "--database", db, "--to-position", "2")
    assert "positions 0 → 2" in first.stdout
    second = quipu("project", "--database", db)
    assert "projected 1 events: positions 2 → 3" in second.stdout
    third = quipu("project", "--database", db)
    assert "projected 0 events: positions 3 → 3" in third.stdout


def test_reports_say_when_their_view_is_behind_the_log(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/l.db"
    body = b"\n".join(orjson.dumps(e) for e in (authorized("p1", "100.00"), captured("p1", "60.00")))
    quipu("post", "-", "--database", db, stdin=body)
    # Not projected yet: the JSON on stdout stays what scripts parse, the note goes to stderr and the exit is 0.
    trial = quipu("trial-balance", "--database", db, "--format", "json")
    assert trial.returncode == 0 and json.loads(trial.stdout) == []
    assert "trial balance view is at position 0 of 2 (2 events not yet projected)" in trial.stderr
    assert "quipu project" in trial.stderr
    balances = quipu("balances", "--database", db, "--format", "csv")
    assert "balances view is at position 0 of 2" in balances.stderr
    by_time = quipu("balances", "--database", db, "--as-of", "2030-01-01T00:00:00Z")
    assert "journal view is at position 0 of 2" in by_time.stderr
    quipu("project", "--database", db, "--to-position", "1")
    assert "at position 1 of 2 (1 event not yet projected)" in quipu("trial-balance", "--database", db).stderr
    # As of a position already projected the answer is whole: no note.
    assert quipu("balances", "--database", db, "--as-of", "1").stderr == ""
    quipu("project", "--database", db)
    for args in (("trial-balance",), ("balances",), ("balances", "--as-of", "2030-01-01T00:00:00Z")):
        caught_up = quipu(*args, "--database", db)
        assert caught_up.returncode == 0 and caught_up.stderr == "", (args, caught_up.stderr)


def test_a_report_on_a_missing_ledger_says_so_and_creates_nothing(tmp_path: Path, ledger_url: str) -> None:
    typo = tmp_path / "typo.db"
    for args in (("trial-balance",), ("balances",), ("verify",), ("project",), ("aml", "alerts")):
        run = quipu(*args, "--database", f"sqlite:///{typo}")
        assert run.returncode == 2 and f"no ledger at sqlite:///{typo} (no such file)" in run.stderr, (args, run)
    assert not typo.exists()
    # A server out of reach is said as such, its password never shown, before anything is looked for.
    env_pw = os.environ.pop("PGPASSWORD", None)
    try:
        down = quipu("trial-balance", "--database", "postgresql://u:secret@127.0.0.1:1/db")
    finally:
        if env_pw is not None:
            os.environ["PGPASSWORD"] = env_pw
    assert down.returncode == 2 and "cannot open postgresql://u:***@127.0.0.1:1/db" in down.stderr, down.stderr
    assert "secret" not in down.stderr and "Traceback" not in down.stderr
    if ledger_url.startswith("postgresql"):
        from adapters.store.pg_url import parse_pg_url

        missing = ledger_url.replace(parse_pg_url(ledger_url).schema, "quipu_never_created")
        run = quipu("trial-balance", "--database", missing)
        assert run.returncode == 2 and "no ledger in schema 'quipu_never_created'" in run.stderr, run.stderr
    # The same commands on a ledger that exists, however empty, answer.
    assert quipu("db", "upgrade", "--database", ledger_url).returncode == 0
    assert quipu("trial-balance", "--database", ledger_url).returncode == 0


def test_schema_prints_every_event_type(tmp_path: Path) -> None:
    from domain.catalog import EVENT_TYPES

    schemas = json.loads(quipu("schema").stdout)
    assert set(schemas) == set(EVENT_TYPES)
    one = quipu("schema", "--type", "payment.teleported")
    assert one.returncode == 2 and "unknown event type" in one.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x", "must start with sqlite:/// or postgresql://"),
        ("sqlite:///:memory:", "in-memory SQLite ledger would lose every event"),
        ("postgresql://u@127.0.0.1:1/db", "has no password"),
        ("postgresql://u:secret@127.0.0.1:1/db", "cannot open postgresql://u:***@127.0.0.1:1/db"),
        ("sqlite:////proc/no-such-dir/l.db", "cannot open sqlite:////proc/no-such-dir/l.db"),
    ],
)
def test_bad_database_urls_are_clear_errors(url: str, message: str) -> None:
    env_pw = os.environ.pop("PGPASSWORD", None)
    try:
        run = quipu("db", "upgrade", "--database", url)  # a command that would create the ledger
    finally:
        if env_pw is not None:
            os.environ["PGPASSWORD"] = env_pw
    assert run.returncode == 2 and message in run.stderr.replace("\n", " ").replace("  ", " ")
    assert "secret" not in run.stderr and "Traceback" not in run.stderr


def test_text_people_chose_is_printed_as_text_never_as_rich_markup(tmp_path: Path) -> None:
    """ "[/x]" read as markup is a closing tag with nothing open: Rich raises and the command dies with a traceback;
    "[bold]" would vanish from the output. Both must come out as typed, in messages and in tables."""
    db = f"sqlite:///{tmp_path}/l.db"
    name = "svc[/x][bold]"
    added = quipu("clients", "add", name, "--scope", "events:write", "--database", db)
    assert added.returncode == 0, added.stderr
    assert f"client_id={name}" in added.stdout
    listed = quipu("clients", "list", "--database", db)
    assert listed.returncode == 0 and "[/x][bold]" in listed.stdout, listed.stderr
    revoked = quipu("clients", "revoke", name, "--database", db)
    assert revoked.returncode == 0 and f"revoked {name}" in revoked.stdout, revoked.stderr


_REGISTERED = """
import importlib, json
import adapters.cli as cli

def top():
    commands = {c.name or c.callback.__name__.replace("_", "-") for c in cli.app.registered_commands}
    return commands | {g.name for g in cli.app.registered_groups}

def db():
    return len(cli.db_app.registered_commands)

core, found = sorted(top()), {}
for module in cli.COMMAND_MODULES:
    names, subcommands = top(), db()
    importlib.import_module(module)
    # A module may also add a sub-command to a group of the core (db analyst-role).
    found[module] = sorted(top() - names | ({"db"} if db() > subcommands else set()))
print(json.dumps({"core": core, "modules": found}))
"""


def test_each_command_module_adds_the_commands_the_entry_point_imports_it_for() -> None:
    from adapters import cli

    # A fresh interpreter: in this one the modules may have registered already.
    run = subprocess.run([sys.executable, "-c", _REGISTERED], capture_output=True, text=True, check=True)
    seen = json.loads(run.stdout)
    assert seen["core"] == sorted(cli.CORE_COMMANDS)
    assert seen["modules"] == {m: sorted(names) for m, names in cli.COMMANDS_OF.items()}
    assert cli.modules_for(["aml", "case", "X"]) == ("adapters.cli_aml",)
    assert cli.modules_for(["db", "upgrade"]) == ("adapters.cli_analyst",)
    assert cli.modules_for(["balances"]) == ()
    for argv in ([], ["--help"], ["no-such-command"]):
        assert cli.modules_for(argv) == cli.COMMAND_MODULES
