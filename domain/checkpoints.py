"""Signed checkpoints: the head of the hash chain, signed with the ledger's Ed25519 key.

A checkpoint is small enough to keep outside the system (a file an auditor keeps, a line
to publish). Whoever holds it can later prove the log up to its position is unchanged:
recomputing the chain from position 1 must arrive at the signed head hash.

The signed message is ``b"quipu-checkpoint-v1\\n" || position (8 bytes, big-endian) ||
head chain hash (32 bytes) || recorded_at_us (8 bytes, big-endian)``.
"""

from __future__ import annotations

import struct
from typing import Annotated, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from ledger.errors import QuipuError

DOMAIN_TAG: Final = b"quipu-checkpoint-v1\n"
_HEX64 = r"^[0-9a-f]{64}$"


class CheckpointError(QuipuError, ValueError):
    """A checkpoint that is malformed or whose signature does not verify."""


class Checkpoint(BaseModel):
    """What an auditor keeps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Annotated[str, Field(pattern=r"^quipu-checkpoint-v1$")] = "quipu-checkpoint-v1"
    position: Annotated[int, Field(ge=0)]
    """The last position the checkpoint covers."""
    head_sha256: Annotated[str, Field(pattern=_HEX64)]
    """The chain hash at that position (32 zero bytes for an empty log)."""
    recorded_at_us: Annotated[int, Field(ge=0)]
    """When the event at that position was recorded (µs since 1970-01-01 UTC)."""
    public_key: Annotated[str, Field(pattern=_HEX64)]
    """The Ed25519 public key that signed it (raw 32 bytes, hex)."""
    signature: Annotated[str, Field(pattern=r"^[0-9a-f]{128}$")]
    """Ed25519 signature of the message above, hex."""

    def message(self) -> bytes:
        """The exact bytes that are signed."""
        return message(self.position, bytes.fromhex(self.head_sha256), self.recorded_at_us)


def message(position: int, head: bytes, recorded_at_us: int) -> bytes:
    """The signed message for a chain head."""
    return DOMAIN_TAG + struct.pack(">Q", position) + head + struct.pack(">Q", recorded_at_us)


def sign(key: Ed25519PrivateKey, position: int, head: bytes, recorded_at_us: int) -> Checkpoint:
    """A checkpoint of the given head, signed with ``key``."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    signature = key.sign(message(position, head, recorded_at_us))
    return Checkpoint(
        position=position,
        head_sha256=head.hex(),
        recorded_at_us=recorded_at_us,
        public_key=public.hex(),
        signature=signature.hex(),
    )


def check_signature(checkpoint: Checkpoint, trusted_public_key: str | None = None) -> None:
    """Raise :class:`CheckpointError` unless the signature verifies (with a trusted key, if given)."""
    if trusted_public_key is not None and trusted_public_key != checkpoint.public_key:
        raise CheckpointError("checkpoint was signed by another key than the ledger's")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(checkpoint.public_key)).verify(
            bytes.fromhex(checkpoint.signature), checkpoint.message()
        )
    except InvalidSignature:
        raise CheckpointError("checkpoint signature does not verify: the file was altered") from None
