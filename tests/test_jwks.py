"""Tokens of an external issuer, checked against its JWKS served by a real local HTTP server.

The issuer's keys (RSA for RS256, P-256 for ES256) are generated per test session and published at
``/jwks.json`` by ``http.server`` in a thread, which counts the fetches. The API runs in-process over
SQLite; one test starts ``quipu serve`` with the JWKS options to check the command's wiring.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from adapters.http.app import create_app
from adapters.http.auth import AuthError, ExternalIssuer, ExternalIssuerSettings, authenticate
from ledger.errors import QuipuError
from tests.factories import authorized
from tests.servers import free_port, wait_until_serving

LOCAL_SECRET = "jwks-test-local-secret-0123456789-abcdefghijklmnop"
ISSUER = "https://id.example.test/"
AUDIENCE = "https://quipu.example.test/api"


@functools.cache
def _keys() -> tuple[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]:
    """The issuer's keys, made once per session (a 2048-bit RSA key takes a while on a busy machine)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048), ec.generate_private_key(ec.SECP256R1())


class Issuer:
    """An OAuth issuer's keys and its JWKS endpoint; ``keys`` may change while it runs (rotation)."""

    def __init__(self) -> None:
        self.rsa, self.ec = _keys()
        self.published: dict[str, Any] = {"rsa-1": self.rsa.public_key(), "ec-1": self.ec.public_key()}
        self.fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                issuer.fetches += 1
                body = json.dumps({"keys": [issuer.jwk(kid, key) for kid, key in issuer.published.items()]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def jwk(kid: str, key: Any) -> dict[str, Any]:
        if isinstance(key, bytes):
            return {"kty": "oct", "k": _b64(key), "kid": kid, "use": "sig", "alg": "HS256"}
        if isinstance(key, rsa.RSAPublicKey):
            doc = json.loads(RSAAlgorithm.to_jwk(key))
            alg = "RS256"
        else:
            doc = json.loads(ECAlgorithm.to_jwk(key))
            alg = "ES256"
        return {**doc, "kid": kid, "use": "sig", "alg": alg}

    def token(self, claims: dict[str, Any] | None = None, kid: str = "rsa-1", key: Any = None, alg: str = "RS256",
              **changes: Any) -> str:  # fmt: skip
        now = dt.datetime.now(dt.UTC)
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "checkout-svc", "scope": "events:write ledger:read",
                "iat": now, "exp": now + dt.timedelta(minutes=5)}  # fmt: skip
        body.update(claims or {})
        body.update(changes)
        signing = key if key is not None else (self.ec if alg.startswith("ES") else self.rsa)
        return jwt.encode({k: v for k, v in body.items() if v is not None}, signing, algorithm=alg,
                          headers={"kid": kid})  # fmt: skip

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    idp = Issuer()
    yield idp
    idp.close()


def settings(url: str, **changes: Any) -> ExternalIssuerSettings:
    return ExternalIssuerSettings(url, ISSUER, AUDIENCE, **changes)


@pytest.fixture
def api(issuer: Issuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("QUIPU_API_SECRET", LOCAL_SECRET)
    with TestClient(create_app(f"sqlite:///{tmp_path}/ledger.db", external=settings(issuer.url))) as client:
        yield client


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A token PyJWT would refuse to make (HS256 keyed with a public key, ``alg: none``)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def good_claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "checkout-svc", "scope": "events:write ledger:read admin",
            "iat": now, "exp": now + 300}  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_external_issuers_good_tokens_are_accepted_beside_local_ones(api: TestClient, issuer: Issuer) -> None:
    posted = api.post("/v1/events", json=authorized("p1", "10.00"), headers=bearer(issuer.token()))
    assert posted.status_code == 201, posted.text
    # ES256 with the scopes as an `scp` list (the Azure AD / Okta shape).
    es = issuer.token(kid="ec-1", alg="ES256", scope=None, scp=["ledger:read"])
    assert api.get("/v1/trial-balance", headers=bearer(es)).status_code == 200
    # The local issuer keeps working side by side.
    now = dt.datetime.now(dt.UTC)
    claims = {"iss": "quipu", "sub": "local-svc", "scope": "ledger:read", "exp": now + dt.timedelta(minutes=5)}
    local = jwt.encode(claims, LOCAL_SECRET, algorithm="HS256")
    assert api.get("/v1/trial-balance", headers=bearer(local)).status_code == 200
    # Three requests with the issuer's tokens, one fetch of its keys.
    assert issuer.fetches == 1


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("wrong issuer", "not from the expected issuer"),
        ("wrong audience", "not meant for this API"),
        ("expired", "expired"),
        ("unknown kid", "signing key is not the issuer's"),
        ("another key", "not valid"),
        ("hs256 keyed with the public key", "not valid"),
        ("alg none", "algorithm is not accepted"),
        ("no kid", "names no signing key"),
        ("rs512 not allowed", "algorithm is not accepted"),
    ],
)
def test_bad_external_tokens_get_401_with_the_rfc_6750_challenge(
    api: TestClient, issuer: Issuer, case: str, detail: str
) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    public_pem = issuer.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = {
        "wrong issuer": lambda: issuer.token(iss="https://evil.example.test/"),
        "wrong audience": lambda: issuer.token(aud="https://someone-else.example.test"),
        "expired": lambda: issuer.token(iat=past - dt.timedelta(minutes=5), exp=past),
        "unknown kid": lambda: issuer.token(kid="rsa-99"),
        "another key": lambda: issuer.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        # Algorithm confusion: the public key (which anyone can fetch) used as an HMAC secret.
        "hs256 keyed with the public key": lambda: handmade(
            {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
            good_claims(),
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
        ),
        "alg none": lambda: handmade({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, good_claims(), lambda _: b""),
        "no kid": lambda: handmade({"alg": "RS256", "typ": "JWT"}, good_claims(), lambda _: b"x" * 256),
        "rs512 not allowed": lambda: issuer.token(alg="RS512"),
    }[case]()
    for method, path in (("POST", "/v1/events"), ("GET", "/v1/trial-balance")):
        kwargs: dict[str, Any] = {"json": authorized("p2", "1.00")} if method == "POST" else {}
        response = api.request(method, path, headers=bearer(token), **kwargs)
        assert response.status_code == 401, (case, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert detail in response.json()["detail"], response.json()
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="quipu", error="invalid_token"'), challenge
    assert api.get("/v1/trial-balance", headers=bearer(issuer.token())).status_code == 200
    # Nothing above, not even the unknown kid, fetched the keys again within the cooldown.
    assert issuer.fetches <= 1


def test_the_issuers_verifier_itself_refuses_hs256_and_symmetric_keys(issuer: Issuer) -> None:
    """Algorithm confusion one level down: even handed straight to the issuer's verifier (not routed
    by ``alg`` to the local secret), an HS256 token keyed with the public key, or a JWKS entry that
    is a symmetric key, is refused before any signature is computed."""
    public_pem = issuer.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = handmade({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, good_claims(),
                      lambda data: hmac.new(public_pem, data, hashlib.sha256).digest())  # fmt: skip
    external = ExternalIssuer(settings(issuer.url, algorithms=("RS256", "ES256")))
    with pytest.raises(AuthError, match="algorithm is not accepted") as refused:
        external.verify(forged, jwt.get_unverified_header(forged))
    assert refused.value.status == 401
    with pytest.raises(QuipuError, match="HS256 not among"):
        ExternalIssuer(settings(issuer.url, algorithms=("RS256", "HS256")))
    issuer.published["oct-1"] = b"a-shared-secret-published-by-mistake-0123456789"
    claimed = issuer.token(kid="oct-1")  # says RS256, names the symmetric key
    with pytest.raises(AuthError, match="not an asymmetric key"):
        external.verify(claimed, jwt.get_unverified_header(claimed))


def test_an_external_token_without_the_routes_scope_gets_403(api: TestClient, issuer: Issuer) -> None:
    reader = issuer.token(scope="ledger:read")
    refused = api.post("/v1/events", json=authorized("p3", "1.00"), headers=bearer(reader))
    assert refused.status_code == 403
    assert refused.headers["WWW-Authenticate"] == (
        'Bearer realm="quipu", error="insufficient_scope", error_description="this route needs the events:write '
        'scope", scope="events:write"'
    )
    assert api.get("/v1/trial-balance", headers=bearer(reader)).status_code == 200
    nothing = issuer.token(scope=None)
    assert api.get("/v1/trial-balance", headers=bearer(nothing)).status_code == 403
    missing = api.get("/v1/trial-balance")
    assert missing.status_code == 401 and 'error="invalid_request"' in missing.headers["WWW-Authenticate"]


def test_a_rotated_key_is_fetched_and_an_unreachable_issuer_is_503(issuer: Issuer, tmp_path: Path) -> None:
    external = ExternalIssuer(settings(issuer.url, refresh_cooldown_s=0))
    assert authenticate(f"Bearer {issuer.token()}", b"", "ledger:read", external).client_id == "checkout-svc"
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer.published["rsa-2"] = rotated.public_key()
    caller = authenticate(f"Bearer {issuer.token(kid='rsa-2', key=rotated)}", b"", "events:write", external)
    assert (caller.client_id, caller.issuer) == ("checkout-svc", ISSUER)
    assert issuer.fetches == 2  # the unknown kid made it fetch once more, and then it was known

    down = ExternalIssuer(settings(f"http://127.0.0.1:{free_port()}/jwks.json"))
    with pytest.raises(AuthError) as unavailable:
        authenticate(f"Bearer {issuer.token()}", b"", "ledger:read", down)
    assert unavailable.value.status == 503


def test_the_issuer_settings_are_checked() -> None:
    base = {"QUIPU_JWKS_URL": "https://id.example.test/jwks.json", "QUIPU_JWT_ISSUER": ISSUER,
            "QUIPU_JWT_AUDIENCE": AUDIENCE}  # fmt: skip
    assert ExternalIssuerSettings.from_env({}) is None
    loaded = ExternalIssuerSettings.from_env(base)
    assert loaded is not None and loaded.algorithms == ("RS256", "ES256")
    for change, message in (
        ({"QUIPU_JWT_AUDIENCE": ""}, "needs QUIPU_JWT_ISSUER and QUIPU_JWT_AUDIENCE"),
        ({"QUIPU_JWT_ISSUER": ""}, "needs QUIPU_JWT_ISSUER and QUIPU_JWT_AUDIENCE"),
        ({"QUIPU_JWT_ALGORITHMS": "RS256,HS256"}, "HS256 not among"),
        ({"QUIPU_JWT_ALGORITHMS": "none"}, "none not among"),
        ({"QUIPU_JWKS_URL": "file:///etc/passwd"}, "is not an http(s) URL"),
        ({"QUIPU_JWT_ISSUER": "quipu"}, "the local issuer's name"),
    ):
        with pytest.raises(QuipuError, match=message.replace("(", r"\(").replace(")", r"\)")):
            ExternalIssuerSettings.from_env(base | change)


def test_quipu_serve_takes_the_issuer_from_its_options(issuer: Issuer, tmp_path: Path) -> None:
    port = free_port()
    args = [sys.executable, "-m", "adapters.cli", "serve", "--database", f"sqlite:///{tmp_path}/ledger.db",
            "--port", str(port), "--jwks-url", issuer.url, "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE,
            "--log-format", "json"]  # fmt: skip
    env = {**os.environ, "QUIPU_API_SECRET": LOCAL_SECRET}
    env.pop("QUIPU_JWKS_URL", None)
    server = subprocess.Popen(args, cwd=tempfile.gettempdir(), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            wait_until_serving(client, server)
            token = issuer.token()
            ok = client.get("/v1/trial-balance", headers={**bearer(token), "X-Request-ID": "jwks-cli-1"})
            assert ok.status_code == 200, ok.text
            bad = client.get("/v1/trial-balance", headers=bearer(issuer.token(aud="elsewhere")))
            assert bad.status_code == 401
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=15)
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    served = next(line for line in lines if line.get("request_id") == "jwks-cli-1")
    assert (served["client_id"], served["status"], served["route"]) == ("checkout-svc", 200, "/v1/trial-balance")
    assert token not in stderr.decode()


def test_quipu_serve_refuses_an_issuer_without_an_audience(issuer: Issuer, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "serve", "--database", f"sqlite:///{tmp_path}/ledger.db",
         "--jwks-url", issuer.url, "--jwt-issuer", ISSUER],
        capture_output=True, text=True, timeout=60, check=False, cwd=tempfile.gettempdir(),
        env={k: v for k, v in os.environ.items() if not k.startswith(("QUIPU_JWT", "QUIPU_JWKS"))},
    )  # fmt: skip
    assert run.returncode == 2 and "needs QUIPU_JWT_ISSUER and QUIPU_JWT_AUDIENCE" in run.stderr
