"""OAuth 2.0 client credentials for the HTTP API: slow-hashed secrets, signed JWTs, scopes.

Tokens are HS256 JWTs (PyJWT) signed with the ledger's API secret (``QUIPU_API_SECRET``, or
``quipu-data/api-secret`` created with mode 0600), valid for ``TOKEN_SECONDS``. A request
without a valid token gets 401, one whose token lacks the route's scope 403, both with the
RFC 6750 ``WWW-Authenticate`` header.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt

from adapters.bootstrap import Ledger
from ledger.errors import QuipuError

SCOPES: Final = (
    "events:write", "ledger:read", "payouts:write", "recon:read", "recon:write", "aml:read", "aml:write", "audit:read",
    "admin",
)  # fmt: skip
TOKEN_SECONDS: Final = 900
ISSUER: Final = "quipu"


class AuthError(QuipuError):
    """A client or token problem; ``status`` is 400, 401 or 403."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error


def api_secret(path: Path | None = None) -> bytes:
    """The token-signing secret: from the environment, else a file created once with mode 0600."""
    if env := os.environ.get("QUIPU_API_SECRET"):
        return env.encode()
    path = path or Path(os.environ.get("QUIPU_API_SECRET_FILE", "quipu-data/api-secret"))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_bytes().strip()


def _hash(secret: str, salt: bytes) -> str:
    return salt.hex() + "$" + hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32).hex()


def _check(secret: str, stored: str) -> bool:
    salt_hex, _, _ = stored.partition("$")
    return hmac.compare_digest(_hash(secret, bytes.fromhex(salt_hex)), stored)


def add_client(ledger: Ledger, client_id: str, scopes: list[str]) -> str:
    """Register a client; returns its secret, shown once and stored only as a hash."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise QuipuError(f"--scope: {', '.join(unknown) or '(none)'} not among {', '.join(SCOPES)}")
    if ledger.views.query("SELECT 1 FROM api_clients WHERE client_id = ?", (client_id,)):
        raise QuipuError(f"client {client_id!r} already exists")
    secret = secrets.token_urlsafe(32)
    ledger.views.execute(
        "INSERT INTO api_clients (client_id, secret_hash, scopes, created_at) VALUES (?, ?, ?, ?)",
        (client_id, _hash(secret, secrets.token_bytes(16)), " ".join(sorted(set(scopes))), _now().isoformat()),
    )
    return secret


def revoke_client(ledger: Ledger, client_id: str) -> None:
    """Revoke a client: its secret stops working (tokens already issued expire within minutes)."""
    if not ledger.views.query("SELECT 1 FROM api_clients WHERE client_id = ? AND revoked_at IS NULL", (client_id,)):
        raise QuipuError(f"no active client {client_id!r}")
    ledger.views.execute("UPDATE api_clients SET revoked_at = ? WHERE client_id = ?", (_now().isoformat(), client_id))


def list_clients(ledger: Ledger) -> list[dict[str, Any]]:
    rows = ledger.views.query("SELECT client_id, scopes, created_at, revoked_at FROM api_clients ORDER BY client_id")
    return [{"client_id": c, "scopes": s, "created_at": at, "revoked_at": r or ""} for c, s, at, r in rows]


def issue_token(
    ledger: Ledger, secret_key: bytes, client_id: str, client_secret: str, scope: str | None
) -> dict[str, Any]:
    """The client-credentials grant: a token for the asked scopes (default: all the client's)."""
    rows = ledger.views.query(
        "SELECT secret_hash, scopes FROM api_clients WHERE client_id = ? AND revoked_at IS NULL", (client_id,)
    )
    if not rows or not _check(client_secret, rows[0][0]):
        raise AuthError(401, "invalid_client", "unknown client or wrong secret")
    allowed = set(rows[0][1].split())
    asked = set(scope.split()) if scope else allowed
    if not asked <= allowed:
        raise AuthError(400, "invalid_scope", f"scope {' '.join(sorted(asked - allowed))} not granted to this client")
    now = _now()
    claims = {"iss": ISSUER, "sub": client_id, "scope": " ".join(sorted(asked)), "iat": now,
              "exp": now + dt.timedelta(seconds=TOKEN_SECONDS)}  # fmt: skip
    return {"access_token": jwt.encode(claims, secret_key, algorithm="HS256"), "token_type": "Bearer",
            "expires_in": TOKEN_SECONDS, "scope": claims["scope"]}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, and what they may do."""

    client_id: str
    scopes: frozenset[str]


def authenticate(header: str | None, secret_key: bytes, needed: str) -> Caller:
    """The caller of a request with ``Authorization: Bearer …``, checked for the ``needed`` scope."""
    if not header or not header.startswith("Bearer "):
        raise AuthError(401, "invalid_request", "missing bearer token")
    try:
        claims = jwt.decode(header[7:], secret_key, algorithms=["HS256"], issuer=ISSUER,
                            options={"require": ["exp", "iss", "sub"]})  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "invalid_token", "the token has expired") from None
    except jwt.InvalidTokenError:
        raise AuthError(401, "invalid_token", "the token is not valid") from None
    scopes = frozenset(str(claims.get("scope", "")).split())
    if needed not in scopes and "admin" not in scopes:
        raise AuthError(403, "insufficient_scope", f"this route needs the {needed} scope")
    return Caller(str(claims["sub"]), scopes)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
