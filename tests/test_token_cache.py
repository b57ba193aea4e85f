"""Local tokens: the signature is checked once per token, the expiry on every request."""

from __future__ import annotations

import time

import jwt
import pytest

from adapters.http import auth
from adapters.http.auth import AuthError, authenticate

SECRET = b"a-test-signing-secret-of-enough-length-0123456789"


def _token(secret: bytes, exp: float, scope: str = "events:write") -> str:
    return jwt.encode({"sub": "c1", "iss": auth.ISSUER, "exp": int(exp), "scope": scope}, secret, algorithm="HS256")


def test_a_verified_token_is_still_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = time.time() + 60
    token = _token(SECRET, exp)
    assert authenticate(f"Bearer {token}", SECRET, "events:write").client_id == "c1"
    assert authenticate(f"Bearer {token}", SECRET, "events:write").client_id == "c1"  # from the cache
    monkeypatch.setattr(time, "time", lambda: exp + 1)
    with pytest.raises(AuthError) as refused:
        authenticate(f"Bearer {token}", SECRET, "events:write")
    assert refused.value.status == 401 and "expired" in str(refused.value)


def test_a_cached_token_does_not_open_another_secret_or_another_scope() -> None:
    token = _token(SECRET, time.time() + 60)
    authenticate(f"Bearer {token}", SECRET, "events:write")
    with pytest.raises(AuthError) as forged:
        authenticate(f"Bearer {token}", b"another-secret-entirely-of-enough-length-98765", "events:write")
    assert forged.value.status == 401
    with pytest.raises(AuthError) as scoped:
        authenticate(f"Bearer {token}", SECRET, "ledger:read")
    assert scoped.value.status == 403
