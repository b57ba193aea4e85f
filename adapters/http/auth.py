"""OAuth 2.0 client credentials for the HTTP API: slow-hashed secrets, signed JWTs, scopes.

Tokens are HS256 JWTs (PyJWT) signed with the ledger's API secret (``QUIPU_API_SECRET``, or
``quipu-data/api-secret`` created with mode 0600), valid for ``TOKEN_SECONDS``. A request
without a valid token gets 401, one whose token lacks the route's scope 403, both with the
RFC 6750 ``WWW-Authenticate`` header.

Tokens of an external issuer (an OAuth/OIDC provider) are accepted too when ``QUIPU_JWKS_URL``,
``QUIPU_JWT_ISSUER`` and ``QUIPU_JWT_AUDIENCE`` are set: :class:`ExternalIssuer` checks them
against the issuer's published keys (PyJWT's ``PyJWKClient``, the key set cached). A token is
routed by its ``alg`` header: ``HS256`` only ever to the local secret, the asymmetric algorithms
only ever to the issuer's keys, so neither can be verified with the other's key (algorithm
confusion); ``none`` is accepted by neither.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from jwt import PyJWKClient, PyJWKClientConnectionError, PyJWKClientError, PyJWKSetError

from adapters.bootstrap import Ledger
from ledger.errors import QuipuError

SCOPES: Final = (
    "events:write", "ledger:read", "payouts:write", "recon:read", "recon:write", "aml:read", "aml:write", "audit:read",
    "admin",
)  # fmt: skip
TOKEN_SECONDS: Final = 900
ISSUER: Final = "quipu"
#: Algorithms an external issuer's tokens may use: asymmetric only, so a public key is never an HMAC secret.
ASYMMETRIC: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LOCAL_ALGORITHM: Final = "HS256"


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
    if "\x00" in client_id:  # no client has one, and PostgreSQL cannot compare it with text
        raise AuthError(401, "invalid_client", "unknown client or wrong secret")
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
    issuer: str = ISSUER


@dataclass(frozen=True, slots=True)
class ExternalIssuerSettings:
    """Where an external issuer publishes its keys, and what its tokens must say to be accepted here."""

    jwks_url: str
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_s: int = 30
    """Clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
    cache_s: int = 300
    """How long the fetched key set is used before it is fetched again."""
    refresh_cooldown_s: float = 30.0
    """An unknown ``kid`` refetches the key set at most this often (a rotated key is found; random kids
    cannot make Quipu hammer the issuer)."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ExternalIssuerSettings | None:
        """From ``QUIPU_JWKS_URL``, ``QUIPU_JWT_ISSUER``, ``QUIPU_JWT_AUDIENCE`` (and ``QUIPU_JWT_ALGORITHMS``,
        ``QUIPU_JWT_LEEWAY``, ``QUIPU_JWKS_CACHE_SECONDS``); ``None`` when no JWKS URL is set."""
        env = dict(os.environ) if env is None else env
        url = env.get("QUIPU_JWKS_URL", "").strip()
        if not url:
            return None
        issuer, audience = env.get("QUIPU_JWT_ISSUER", "").strip(), env.get("QUIPU_JWT_AUDIENCE", "").strip()
        algorithms = tuple(a.strip() for a in env.get("QUIPU_JWT_ALGORITHMS", "RS256,ES256").split(",") if a.strip())
        try:
            leeway, cache = int(env.get("QUIPU_JWT_LEEWAY", "30")), int(env.get("QUIPU_JWKS_CACHE_SECONDS", "300"))
        except ValueError:
            raise QuipuError("QUIPU_JWT_LEEWAY and QUIPU_JWKS_CACHE_SECONDS must be whole seconds") from None
        return cls(url, issuer, audience, algorithms, leeway, cache).checked()

    def checked(self) -> ExternalIssuerSettings:
        if not self.jwks_url.startswith(("https://", "http://")):
            raise QuipuError(f"QUIPU_JWKS_URL: {self.jwks_url!r} is not an http(s) URL")
        if not self.issuer or not self.audience:
            raise QuipuError("QUIPU_JWKS_URL needs QUIPU_JWT_ISSUER and QUIPU_JWT_AUDIENCE: a token is accepted "
                             "only from that issuer and only when meant for this API")  # fmt: skip
        if self.issuer == ISSUER:
            raise QuipuError(f"QUIPU_JWT_ISSUER: {ISSUER!r} is the local issuer's name")
        refused = [a for a in self.algorithms if a not in ASYMMETRIC]
        if refused or not self.algorithms:
            raise QuipuError(
                f"QUIPU_JWT_ALGORITHMS: {', '.join(refused) or '(none)'} not among {', '.join(ASYMMETRIC)}"
            )
        if self.leeway_s < 0 or self.cache_s <= 0:
            raise QuipuError("QUIPU_JWT_LEEWAY must be >= 0 and QUIPU_JWKS_CACHE_SECONDS > 0")
        return self


class ExternalIssuer:
    """Verifies an external issuer's tokens against its JWKS (fetched lazily, then cached)."""

    def __init__(self, settings: ExternalIssuerSettings) -> None:
        self.settings = settings.checked()
        self.keys = PyJWKClient(
            settings.jwks_url, cache_keys=False, cache_jwk_set=True, lifespan=settings.cache_s, timeout=5,
            cooldown_duration=settings.refresh_cooldown_s,
        )  # fmt: skip

    def verify(self, token: str, header: dict[str, Any]) -> tuple[str, frozenset[str]]:
        """The token's subject and scopes; :class:`AuthError` 401 when it is not good, 503 when the keys
        cannot be fetched."""
        s = self.settings
        if header.get("alg") not in s.algorithms:
            raise AuthError(401, "invalid_token", "the token's signing algorithm is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError(401, "invalid_token", "the token names no signing key (kid)")
        try:
            key = self.keys.get_signing_key(kid)
        except PyJWKClientConnectionError:
            raise AuthError(503, "temporarily_unavailable", "the token issuer's keys cannot be fetched") from None
        except PyJWKSetError:
            raise AuthError(503, "temporarily_unavailable", "the token issuer's key set is not usable") from None
        except PyJWKClientError:
            raise AuthError(401, "invalid_token", "the token's signing key is not the issuer's") from None
        if key.key_type not in ("RSA", "EC", "OKP"):
            raise AuthError(401, "invalid_token", "the token's signing key is not an asymmetric key")
        try:
            claims = jwt.decode(token, key, algorithms=list(s.algorithms), issuer=s.issuer, audience=s.audience,
                                leeway=s.leeway_s, options={"require": ["exp", "iss", "aud", "sub"]})  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "invalid_token", "the token has expired") from None
        except jwt.InvalidIssuerError:
            raise AuthError(401, "invalid_token", "the token is not from the expected issuer") from None
        except jwt.InvalidAudienceError:
            raise AuthError(401, "invalid_token", "the token is not meant for this API (audience)") from None
        except jwt.InvalidTokenError:
            raise AuthError(401, "invalid_token", "the token is not valid") from None
        return str(claims["sub"]), _scopes(claims)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """``scope`` (space-separated, RFC 8693) or ``scp`` (a list, or a space-separated string)."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(v for v in value if isinstance(v, str))
    return frozenset(found)


#: Local tokens already verified: token → (caller, expiry). A client sends the same token for its whole
#: lifetime, and checking its signature was about a tenth of a single POST's cost (benchmarks/api.py).
_VERIFIED: dict[tuple[str, bytes], tuple[Caller, float]] = {}
_VERIFIED_MAX: Final = 4096


def _local_caller(token: str, secret_key: bytes) -> Caller:
    """The caller of a token signed with the local secret; its signature checked once, its expiry every time."""
    key = (token, secret_key)
    hit = _VERIFIED.get(key)
    if hit is not None:
        if time.time() < hit[1]:
            return hit[0]
        _VERIFIED.pop(key, None)
        raise AuthError(401, "invalid_token", "the token has expired")
    try:
        claims = jwt.decode(token, secret_key, algorithms=[LOCAL_ALGORITHM], issuer=ISSUER,
                            options={"require": ["exp", "iss", "sub"]})  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "invalid_token", "the token has expired") from None
    except jwt.InvalidTokenError:
        raise AuthError(401, "invalid_token", "the token is not valid") from None
    caller = Caller(str(claims["sub"]), frozenset(str(claims.get("scope", "")).split()))
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()  # crude but bounded: the live tokens come back on their next request
    _VERIFIED[key] = (caller, float(claims["exp"]))
    return caller


def authenticate(header: str | None, secret_key: bytes, needed: str, external: ExternalIssuer | None = None) -> Caller:
    """The caller of a request with ``Authorization: Bearer …``, checked for the ``needed`` scope.

    ``HS256`` tokens are checked against the local secret; with ``external``, tokens signed with an
    asymmetric algorithm against the external issuer's keys.
    """
    if not header or not header.startswith("Bearer "):
        raise AuthError(401, "invalid_request", "missing bearer token")
    token = header[7:]
    caller = _caller(token, secret_key, external)
    if needed not in caller.scopes and "admin" not in caller.scopes:
        raise AuthError(403, "insufficient_scope", f"this route needs the {needed} scope")
    return caller


def _caller(token: str, secret_key: bytes, external: ExternalIssuer | None) -> Caller:
    if (token, secret_key) in _VERIFIED:  # a local token seen before: no header to parse again
        return _local_caller(token, secret_key)
    try:
        unverified = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthError(401, "invalid_token", "the token is not valid") from None
    if external is not None and unverified.get("alg") != LOCAL_ALGORITHM:
        subject, scopes = external.verify(token, unverified)
        return Caller(subject, scopes, external.settings.issuer)
    return _local_caller(token, secret_key)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
