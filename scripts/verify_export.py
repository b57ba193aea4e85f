#!/usr/bin/env python3
"""Verify a Quipu audit export offline, without Quipu or its database.

Usage: python verify_export.py EXPORT_DIR [--public-key HEX]

Needs only Python 3.11+ and the `cryptography` package (for the Ed25519 signature). It
checks, for every line of events.jsonl in order: the positions are consecutive; SHA-256 of
the body equals body_sha256; the body's event id and type match the row; the chain hash
follows from the previous one. Finally the last chain hash must equal the checkpoint's
signed head, and the signature must verify (with the ledger's published public key when
--public-key is given). Exit status 0 when everything holds; 1 naming the first failure.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import uuid
from pathlib import Path


def fail(message: str) -> int:
    print(f"NOT VERIFIED: {message}")
    return 1


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    folder = Path(argv[0])
    pinned = argv[argv.index("--public-key") + 1] if "--public-key" in argv else None
    manifest = json.loads((folder / "manifest.json").read_text())
    checkpoint = manifest["checkpoint"]
    previous = bytes.fromhex(manifest["previous_chain_sha256"])
    expected = manifest["first_position"]
    with (folder / "events.jsonl").open("rb") as fh:
        for line in fh:
            row = json.loads(line)
            body = row["body"].encode()
            if row["position"] != expected:
                return fail(f"position {expected} is missing (found {row['position']})")
            digest = hashlib.sha256(body).digest()
            if digest.hex() != row["body_sha256"]:
                return fail(f"position {expected}: body altered")
            doc = json.loads(body)
            if doc.get("event_id") != row["event_id"] or doc.get("type") != row["type"]:
                return fail(f"position {expected}: event id or type differs from the body")
            link = hashlib.sha256(
                previous + struct.pack(">Q", expected) + uuid.UUID(row["event_id"]).bytes
                + struct.pack(">Q", row["recorded_at_us"]) + digest
            ).digest()  # fmt: skip
            if link.hex() != row["chain_sha256"]:
                return fail(f"position {expected}: chain hash does not follow from the previous link")
            previous, expected = link, expected + 1
    if expected - 1 != manifest["last_position"]:
        return fail(f"the export ends at {expected - 1}, the manifest says {manifest['last_position']}")
    if checkpoint["position"] != expected - 1 or checkpoint["head_sha256"] != previous.hex():
        return fail("the last chain hash is not the checkpoint's signed head")
    if pinned is not None and pinned != checkpoint["public_key"]:
        return fail("the checkpoint was signed by another key than the one given")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    signed = (
        b"quipu-checkpoint-v1\n" + struct.pack(">Q", checkpoint["position"]) + bytes.fromhex(checkpoint["head_sha256"])
        + struct.pack(">Q", checkpoint["recorded_at_us"])
    )  # fmt: skip
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(checkpoint["public_key"])).verify(
            bytes.fromhex(checkpoint["signature"]), signed
        )
    except InvalidSignature:
        return fail("the checkpoint signature does not verify")
    print(
        f"VERIFIED: positions {manifest['first_position']}..{manifest['last_position']} "
        f"({manifest['events']} events), head {previous.hex()}, key {checkpoint['public_key']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
