"""Auditors' tools: the signing key, checkpoints, and offline-verifiable exports."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from domain.checkpoints import Checkpoint, CheckpointError, sign
from domain.ports import EventStore
from ledger.chain import GENESIS
from ledger.errors import QuipuError

DEFAULT_KEY: Final = Path("quipu-data/signing-key.pem")


def key_path(explicit: Path | None = None) -> Path:
    """``--key``, else ``QUIPU_SIGNING_KEY``, else ``./quipu-data/signing-key.pem``."""
    return explicit or Path(os.environ.get("QUIPU_SIGNING_KEY", DEFAULT_KEY))


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The ledger's Ed25519 key; created (mode 0600) the first time a checkpoint is taken."""
    if path.exists():
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise QuipuError(f"{path}: not an Ed25519 private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


def take_checkpoint(store: EventStore, key: Ed25519PrivateKey, position: int | None = None) -> Checkpoint:
    """Sign the chain head (or the link at ``position``)."""
    at = store.head() if position is None else position
    if at == 0:
        return sign(key, 0, GENESIS, 0)
    records = store.read(at - 1, 1)
    if not records or records[0].position != at:
        raise QuipuError(f"--position: the log has no event at position {at}")
    return sign(key, at, records[0].chain_sha256, records[0].recorded_at_us)


def read_checkpoint(path: Path) -> Checkpoint:
    """A checkpoint file, validated (its signature is checked by the caller)."""
    try:
        return Checkpoint.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise CheckpointError(f"{path}: not a Quipu checkpoint ({exc})") from None


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What an export wrote."""

    first: int
    last: int
    events: int
    files: tuple[Path, ...]


def positions_between(store: EventStore, start_us: int | None, end_us: int | None) -> tuple[int, int]:
    """The positions recorded in [start, end] (record time never decreases along the log)."""
    first, last, after = 0, 0, 0
    while True:
        page = store.read(after, 10_000)
        if not page:
            break
        for r in page:
            if (start_us is None or r.recorded_at_us >= start_us) and (end_us is None or r.recorded_at_us <= end_us):
                first = first or r.position
                last = r.position
        after = page[-1].position
        if end_us is not None and page[-1].recorded_at_us > end_us:
            break
    return first, last


def export(store: EventStore, key: Ed25519PrivateKey, first: int, last: int, out: Path) -> ExportReport:
    """Write events ``first..last`` as JSONL and Parquet, with a checkpoint covering ``last``.

    Each row carries its position, event id, record time, body and both hashes; the manifest
    carries the chain hash just before ``first``, so the range verifies on its own.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if first < 1 or last < first:
        raise QuipuError("export: no events in the range")
    out.mkdir(parents=True, exist_ok=True)
    previous = GENESIS if first == 1 else store.read(first - 2, 1)[0].chain_sha256
    columns: dict[str, list[Any]] = {k: [] for k in ("position", "event_id", "type", "recorded_at_us", "body",
                                                      "body_sha256", "chain_sha256")}  # fmt: skip
    jsonl = out / "events.jsonl"
    count = 0
    with jsonl.open("wb") as fh:
        after = first - 1
        while after < last:
            page = store.read(after, 5000, to_position=last)
            if not page:
                break
            for r in page:
                row = {
                    "position": r.position,
                    "event_id": str(r.event_id),
                    "type": r.topic,
                    "recorded_at_us": r.recorded_at_us,
                    "body": r.body.decode(),
                    "body_sha256": r.body_sha256.hex(),
                    "chain_sha256": r.chain_sha256.hex(),
                }
                fh.write(orjson.dumps(row) + b"\n")
                for k, v in row.items():
                    columns[k].append(v)
                count += 1
            after = page[-1].position
    parquet = out / "events.parquet"
    pq.write_table(pa.table(columns), parquet)
    checkpoint = take_checkpoint(store, key, last)
    manifest = {
        "format": "quipu-export-v1",
        "first_position": first,
        "last_position": last,
        "events": count,
        "previous_chain_sha256": previous.hex(),
        "checkpoint": checkpoint.model_dump(),
        "link": "chain_sha256 = SHA-256(previous chain || position u64 BE || event id 16 bytes || "
        "recorded_at_us u64 BE || SHA-256(body as UTF-8))",
    }
    manifest_path = out / "manifest.json"
    manifest_path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return ExportReport(first, last, count, (jsonl, parquet, manifest_path))
