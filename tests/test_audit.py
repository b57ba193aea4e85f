"""Checkpoints and exports: an auditor proves the log untouched, with and without Quipu."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.audit import export, load_or_create_key, take_checkpoint
from adapters.bootstrap import Ledger, open_ledger
from domain.checkpoints import CheckpointError, check_signature
from domain.integrity import verify_chain
from ledger.chain import GENESIS, link_hash
from tests.factories import authorized, captured

VERIFY_EXPORT = Path(__file__).resolve().parents[1] / "scripts" / "verify_export.py"


def _fill(ledger: Ledger, n: int = 10) -> None:
    ledger.service.post([e for i in range(n) for e in (authorized(f"p{i}", "10.00"), captured(f"p{i}", "10.00"))])


def test_a_checkpoint_verifies_and_its_signature_is_checked(ledger: Ledger, tmp_path: Path) -> None:
    _fill(ledger)
    key = load_or_create_key(tmp_path / "k.pem")
    cp = take_checkpoint(ledger.store, key)
    check_signature(cp)
    assert cp.position == 20
    assert verify_chain(ledger.store, checkpoint=cp).broken is None
    # More events later do not disturb the proof of the first 20.
    ledger.service.post([authorized("later", "1.00")])
    assert verify_chain(ledger.store, checkpoint=cp).broken is None
    forged = cp.model_copy(update={"position": 19})
    with pytest.raises(CheckpointError, match="signature does not verify"):
        check_signature(forged)
    other = load_or_create_key(tmp_path / "other.pem")
    with pytest.raises(CheckpointError, match="another key"):
        check_signature(cp, take_checkpoint(ledger.store, other).public_key)


def test_a_rewritten_self_consistent_chain_is_caught_only_by_the_checkpoint(tmp_path: Path) -> None:
    """Remove event 5, renumber the rest and recompute every later link: `verify` alone is fooled."""
    path = tmp_path / "l.db"
    with open_ledger(f"sqlite:///{path}") as ledger:
        _fill(ledger)
        cp = take_checkpoint(ledger.store, load_or_create_key(tmp_path / "k.pem"))
        records = ledger.store.read(0, 100)
    conn = sqlite3.connect(path, isolation_level=None)
    victim = records[4]
    conn.execute("DELETE FROM quipu_events WHERE state = ?", (victim.body,))
    conn.execute("DELETE FROM quipu_event_chain")
    previous = GENESIS
    for new_position, r in enumerate([r for r in records if r.position != 5], start=1):
        previous = link_hash(previous, new_position, r.event_id, r.recorded_at_us, r.body_sha256)
        conn.execute(
            "INSERT INTO quipu_event_chain VALUES (?,?,?,?,?,?,?)",
            (new_position, r.stream_id.hex, r.version, r.event_id.bytes, r.recorded_at_us, r.body_sha256, previous),
        )
    conn.close()
    with open_ledger(f"sqlite:///{path}") as ledger:
        assert verify_chain(ledger.store).broken is None  # the attacker's chain is self-consistent
        broken = verify_chain(ledger.store, checkpoint=cp).broken
        assert broken is not None
        assert "missing" in broken.reason or "signed head" in broken.reason


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=1, max_value=20), offset=st.integers(min_value=0, max_value=400))
def test_the_checkpoint_walk_names_an_altered_event(
    tmp_path_factory: pytest.TempPathFactory, position: int, offset: int
) -> None:
    folder = tmp_path_factory.mktemp("cp")
    path = folder / "l.db"
    with open_ledger(f"sqlite:///{path}") as ledger:
        _fill(ledger)
        cp = take_checkpoint(ledger.store, load_or_create_key(folder / "k.pem"))
        victim = ledger.store.read(position - 1, 1)[0]
    body = bytearray(victim.body)
    body[offset % len(body)] ^= 0x01
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE quipu_events SET state = ? WHERE state = ?", (bytes(body), victim.body))
    conn.close()
    with open_ledger(f"sqlite:///{path}") as ledger:
        broken = verify_chain(ledger.store, checkpoint=cp).broken
    assert broken is not None and broken.position == position


def _verify_export(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # Run from an empty directory with a bare interpreter path: no Quipu import is possible.
    return subprocess.run(
        [sys.executable, "-I", str(VERIFY_EXPORT), str(folder), *extra],
        capture_output=True, text=True, cwd=folder, timeout=60, check=False,
    )  # fmt: skip


def test_an_export_verifies_offline_and_names_tampering(ledger: Ledger, tmp_path: Path) -> None:
    _fill(ledger)
    key = load_or_create_key(tmp_path / "k.pem")
    report = export(ledger.store, key, 6, 15, tmp_path / "exp")
    assert report.events == 10
    ok = _verify_export(tmp_path / "exp")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERIFIED: positions 6..15 (10 events)" in ok.stdout
    pinned = take_checkpoint(ledger.store, key).public_key
    assert _verify_export(tmp_path / "exp", "--public-key", pinned).returncode == 0
    assert "another key" in _verify_export(tmp_path / "exp", "--public-key", "00" * 32).stdout
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "exp" / "events.parquet")
    assert table.column("position").to_pylist() == list(range(6, 16))
    lines = (tmp_path / "exp" / "events.jsonl").read_bytes().splitlines()
    row = orjson.loads(lines[3])
    row["body"] = row["body"].replace("10.00", "99.00")
    lines[3] = orjson.dumps(row)
    (tmp_path / "exp" / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    bad = _verify_export(tmp_path / "exp")
    assert bad.returncode == 1 and "position 9: body altered" in bad.stdout


def test_cli_checkpoint_verify_and_export(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/l.db"
    key = str(tmp_path / "k.pem")

    def quipu(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from adapters.cli import main; main()", *args],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip

    body = "\n".join(json.dumps(authorized(f"p{i}", "5.00")) for i in range(5))
    (tmp_path / "e.jsonl").write_text(body)
    assert quipu("post", str(tmp_path / "e.jsonl"), "--database", db).returncode == 0
    cp = quipu("checkpoint", "--database", db, "--key", key, "--out", str(tmp_path / "cp.json"))
    assert cp.returncode == 0, cp.stderr
    ok = quipu("verify", "--database", db, "--from-checkpoint", str(tmp_path / "cp.json"))
    assert ok.returncode == 0 and "up to the signed checkpoint at position 5" in ok.stdout
    tampered = json.loads((tmp_path / "cp.json").read_text())
    tampered["position"] = 4
    (tmp_path / "bad.json").write_text(json.dumps(tampered))
    bad = quipu("verify", "--database", db, "--from-checkpoint", str(tmp_path / "bad.json"))
    assert bad.returncode == 1 and "signature does not verify" in bad.stderr
    exp = quipu("export", "--database", db, "--key", key, "--out", str(tmp_path / "x"))
    assert exp.returncode == 0, exp.stderr
    assert _verify_export(tmp_path / "x").returncode == 0
