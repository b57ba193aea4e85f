"""The API's contract, enforced and published: who may call each route, what every refusal looks like,
how large a body may be, and the shapes of the answers.

- A route declares its scope with ``dependencies=[needs("ledger:read")]``: the OpenAPI document then
  says so (an OAuth 2.0 client-credentials scheme, with 401, 403 and 429 answers), and a request
  FastAPI refuses before the handler runs (a bad query parameter, a body that is not JSON or not the
  model) is first checked like any other: no valid token is 401 and a token without the scope 403,
  never a 422 that tells a stranger what the route accepts. The handler still calls the route's guard,
  which also applies the rate limit.
- FastAPI's own errors (validation, unknown path, wrong method, a body over the limit) are RFC 9457
  ``application/problem+json`` documents naming the field and the reason, like the handlers' own.
- :class:`BodyLimit` answers 413 before reading a body whose ``Content-Length`` is over the limit, and
  stops reading one that grows past it.
- :func:`publish` finishes the OpenAPI document: the problem schema on every 4xx answer, the
  security answers, and no trace of FastAPI's validation-error shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal

from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.openapi.utils import get_openapi
from fastapi.params import Depends
from fastapi.responses import JSONResponse, Response
from fastapi.security import OAuth2
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters import bootstrap
from adapters.committer import CommitterLost
from adapters.http.auth import SCOPES
from domain.envelope import AMOUNT_PATTERN
from ledger.pan import masked

#: The database lost (:data:`adapters.bootstrap.DATABASE_LOST`) or the committer process with it: answered 503 with
#: Retry-After.
DATABASE_LOST: Final = (*bootstrap.DATABASE_LOST, CommitterLost)

Guard = Callable[[Request, str], Response | None]
Problem = Callable[..., JSONResponse]

PROBLEM: Final = "application/problem+json"
SCHEME: Final = "oauth2"
#: A decimal string as the API writes money: no exponent, no plus sign, a minus sign only when negative.
MONEY_PATTERN: Final = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"
SCOPE_TEXT: Final = {
    "events:write": "post events (one or a batch)",
    "ledger:read": "read the event feed, balances, journal, settlement and taxes",
    "payouts:write": "request payouts",
    "recon:read": "read reconciliation exceptions",
    "recon:write": "record decisions on reconciliation exceptions",
    "aml:read": "read AML alerts and cases",
    "aml:write": "record AML case actions",
    "audit:read": "read the audit views",
    "admin": "every scope",
}
assert set(SCOPE_TEXT) == set(SCOPES), "every scope is described"


class _Bearer(OAuth2):
    """The scheme's declaration; as a dependency it checks what no route may be given before the route runs: a NUL
    character (``%00``) in the path or a query parameter, which PostgreSQL cannot compare with any text."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        errors = []
        # From the scope, not request.url: building the URL object cost more than the rest of the route's checks.
        if "\x00" in request.scope["path"]:
            errors.append({"loc": ("path",), "msg": NUL_TEXT, "type": "nul", "input": ""})
        raw_query: bytes = request.scope.get("query_string", b"")
        # A decoded parameter can only hold a NUL that the raw query spells %00 or holds as is.
        if b"%00" in raw_query or b"\x00" in raw_query:
            for name, value in request.query_params.multi_items():
                if "\x00" in name or "\x00" in value:
                    errors.append(
                        {"loc": ("query", name.replace("\x00", "%00")), "msg": NUL_TEXT, "type": "nul", "input": ""}
                    )
        if errors:
            raise RequestValidationError(errors)
        return await super().__call__(request)


NUL_TEXT: Final = "holds a NUL character (%00), which no parameter may contain"

bearer = _Bearer(
    flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl="/oauth/token", scopes=SCOPE_TEXT)),
    scheme_name=SCHEME,
    description="A bearer JWT from `POST /oauth/token` (client credentials); `admin` passes every route.",
    auto_error=False,  # the handlers' guard answers, in the API's own problem format
)


def needs(scope: str) -> Any:
    """The declaration of a route's scope, for ``dependencies=[...]``."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    return Security(bearer, scopes=[scope])


def route_scope(route: object) -> str | None:
    """The scope a route declares with :func:`needs`, or None."""
    for dependency in getattr(route, "dependencies", None) or ():
        if isinstance(dependency, Depends) and dependency.dependency is bearer:
            scopes = list(getattr(dependency, "scopes", None) or ())
            if scopes:
                return str(scopes[0])
    return None


# ---- errors ----------------------------------------------------------------------------------------------------

_TITLES: Final = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 413: "Content too large"}


class BodyTooLarge(HTTPException):
    """A request body over the limit (raised while it is read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: larger than the limit of {limit} bytes")
        self.limit = limit


def _field(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        return "body"
    return ".".join(loc[1:]) or (loc[0] if loc else "request")


def _reason(error: Mapping[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        loc = error.get("loc", ())
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        return f"not valid JSON ({(error.get('ctx') or {}).get('error', 'decode error')}{where})"
    return str(error.get("msg", "invalid"))


def as_field(message: str, options: Mapping[str, str]) -> str:
    """A message the command line's code wrote (``--seller: …``) naming the API's field instead (``seller_id: …``)."""
    option, sep, rest = message.partition(": ")
    return f"{options[option]}: {rest}" if sep and option in options else message


def validation_errors(exc: RequestValidationError) -> list[str]:
    """Each of FastAPI's validation errors as ``"field: reason"`` (never echoing a card number)."""
    return [masked(f"{_field(e)}: {_reason(e)}") for e in exc.errors()]


def database_unavailable(problem: Problem) -> Response:
    """The answer when the ledger's database is lost (:data:`DATABASE_LOST`) while a request is served."""
    # A restart or a cut connection: the caller's retry (same event ids) is safe and will likely succeed
    # once the pool reconnects, so this is 503 with Retry-After, never a bare 500 a client does not retry.
    detail = (
        "the ledger's database did not answer; retry with the same event ids (one already recorded answers duplicate)"
    )
    response = problem(503, "Database unavailable", detail, [detail])
    response.headers["Retry-After"] = "1"
    return response


def install(app: FastAPI, guard: Guard, problem: Problem, body_limit: int, larger: Mapping[str, int]) -> None:
    """Problem documents for FastAPI's own errors, the body limit, and the published contract."""

    def refused(request: Request) -> Response | None:
        scope = route_scope(request.scope.get("route"))
        return guard(request, scope) if scope else None

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if (refusal := refused(request)) is not None:
            return refusal
        errors = validation_errors(exc)
        return problem(422, "Invalid request", "; ".join(errors), errors)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        if status < 500 and (refusal := refused(request)) is not None:
            return refusal
        if status == 404:
            detail = f"path: {masked(request.url.path[:200])!r} is not a route of this API"
        elif status == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            detail = f"method: {request.method} is not allowed on this path; allowed: {allowed}"
        elif status == 400 and request.scope.get("route") is not None:
            # FastAPI could not read the body as JSON text at all (bytes that are not UTF-8, say).
            detail = "body: not valid JSON (not UTF-8 text, or malformed)"
        else:
            detail = masked(str(exc.detail))
        response = problem(status, _TITLES.get(status, "Refused"), detail, [detail])
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def database_down(request: Request, exc: Exception) -> Response:
        return database_unavailable(problem)

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    for lost in DATABASE_LOST:
        app.add_exception_handler(lost, database_down)
    app.add_middleware(BodyLimit, problem=problem, limit=body_limit, larger=dict(larger))
    publish(app)


class BodyLimit:
    """413 for a body over the limit: at once when ``Content-Length`` says so, else as soon as the bytes read pass
    it. ``larger`` gives some paths (the batch route) a higher limit."""

    def __init__(self, app: ASGIApp, problem: Problem, limit: int, larger: dict[str, int]) -> None:
        self.app, self.problem, self.limit, self.larger = app, problem, limit, larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.limit)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            await self._refuse(limit, scope, receive, send)
            return
        read = 0
        started = False

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(limit, scope, receive, send)

    async def _refuse(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"body: larger than the limit of {limit} bytes"
        await self.problem(413, "Content too large", detail, [detail])(scope, receive, send)


# ---- the published document ------------------------------------------------------------------------------------

Money = Annotated[str, Field(pattern=MONEY_PATTERN, examples=["60.00", "-12.50", "1234"])]
Amount = Annotated[str, Field(pattern=AMOUNT_PATTERN, examples=["60.00", "1234"])]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class ProblemDoc(BaseModel):
    """An RFC 9457 problem document: every refusal of the API."""

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: list[str] = Field(default_factory=list, description='each "field: reason" (absent when none)')


class OAuthErrorDoc(BaseModel):
    """An RFC 6749 token-endpoint error."""

    error: Literal["invalid_request", "invalid_client", "invalid_scope", "unsupported_grant_type"]
    error_description: str | None = None


class TokenDoc(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(gt=0)
    scope: str


class PostedDoc(BaseModel):
    """One event's fate: appended (201, with its position) or a duplicate (200, the original's position)."""

    index: int = Field(ge=0)
    outcome: Literal["appended", "duplicate"]
    event_id: str | None
    position: int | None = Field(None, ge=1)


class BatchResultDoc(BaseModel):
    index: int = Field(ge=0)
    outcome: Literal["appended", "duplicate", "conflict", "rejected"]
    event_id: str | None
    position: int | None = Field(None, ge=1)
    reason: str | None = Field(None, description='for conflicts and rejections: "field: reason"')


class BatchDoc(BaseModel):
    results: list[BatchResultDoc] = Field(description="one per posted event, in order")


class FeedEventDoc(BaseModel):
    position: int = Field(ge=1)
    event_id: str
    type: str
    recorded_at_us: int
    chain_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    event: dict[str, Any]


class FeedDoc(BaseModel):
    events: list[FeedEventDoc]
    next: str


class BalanceDoc(BaseModel):
    account: str
    currency: Currency
    debits: Amount
    credits: Amount
    balance: Money
    normal_side: Literal["debit", "credit"]


class TrialBalanceDoc(BaseModel):
    currency: Currency
    debits: Amount
    credits: Amount
    net: Money


class SellerBalanceDoc(BaseModel):
    currency: Currency
    pending: Money
    due: Money
    deficit: Money
    available: Money
    held: Money
    reserved: Money
    in_payout: Money
    paid_out: Money
    captured: Money
    deductions: Money


class SettlementBatchDoc(BaseModel):
    date: str
    site: str
    currency: Currency
    amount: Money
    installments: int


class PayoutDoc(BaseModel):
    outcome: Literal["appended", "duplicate"]
    event: dict[str, Any] = Field(description="the payout.requested event as recorded")


class TaxDoc(BaseModel):
    site: str
    kind: str
    tax: str
    currency: Currency
    amount: Money
    lines: int


class AlertDoc(BaseModel):
    alert: str
    seller: str
    site: str
    typology: str
    severity: str
    raised_at: str
    summary: str
    evidence: int = Field(ge=0)
    events: str
    case: str
    status: str


class CaseStepDoc(BaseModel):
    at: str
    action: str
    by: str
    text: str


class ActionDoc(BaseModel):
    outcomes: list[Literal["appended", "duplicate"]]


class ReconExceptionDoc(BaseModel):
    exception_id: str
    level: int
    category: str
    reference: str
    source: str | None
    currency: Currency | None
    ledger: Money | None
    external: Money | None
    difference: Money | None
    item_date: str
    found_on: str
    age_days: int
    status: str
    detail: str
    evidence: str


class ResolutionDoc(BaseModel):
    exception_id: str
    event_id: str


def answers(
    model: Any, *problems: int, status: int = 200, also: Mapping[int, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses``: ``model`` at ``status`` (and ``also``, status -> model), and the problem statuses
    its handler answers with (the security answers and 413 are added for every route that has them)."""
    out: dict[int | str, dict[str, Any]] = {status: {"model": model}}
    for code, other in (also or {}).items():
        out[code] = {"model": other}
    for code in problems:
        out[code] = {"description": _ERROR_TEXT.get(code, "Refused")}
    return out


_ERROR_TEXT: Final = {
    400: "Malformed request",
    401: "No valid bearer token",
    403: "The token lacks this route's scope",
    404: "Not found",
    409: "Conflict: the same id was recorded with a different body",
    413: "The body is over the limit",
    422: "A parameter or field is invalid; `errors` names each one and why",
    429: "Over the client's rate limit (see Retry-After)",
    503: "The external token issuer's keys cannot be fetched (see Retry-After)",
}
_CHALLENGE: Final = {
    "WWW-Authenticate": {"description": 'RFC 6750 challenge, e.g. Bearer realm="quipu", error="invalid_token"',
                         "schema": {"type": "string"}},
}  # fmt: skip
_RETRY: Final = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}}


def publish(app: FastAPI) -> None:
    """Serve the finished OpenAPI document (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)  # fmt: skip
            finish(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def finish(document: dict[str, Any]) -> None:
    """Every 4xx answer a problem document; the security answers on every scoped route; 413 on every body."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = ProblemDoc.model_json_schema()
    problem_content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            if any(SCHEME in requirement for requirement in operation.get("security", ())):
                responses.setdefault("401", {"description": _ERROR_TEXT[401], "headers": _CHALLENGE})
                responses.setdefault("403", {"description": _ERROR_TEXT[403], "headers": _CHALLENGE})
                responses.setdefault("429", {"description": _ERROR_TEXT[429], "headers": _RETRY})
                responses.setdefault("503", {"description": _ERROR_TEXT[503], "headers": _RETRY})
            if "requestBody" in operation:
                responses.setdefault("400", {"description": _ERROR_TEXT[400]})
            if method != "get":
                responses.setdefault("413", {"description": _ERROR_TEXT[413]})
            for code, response in responses.items():
                if not code.isdigit() or int(code) < 400:
                    continue
                content = response.get("content", {})
                if not content or "HTTPValidationError" in str(content):
                    response["content"] = problem_content
                    response["description"] = _ERROR_TEXT.get(int(code), response.get("description", "Refused"))
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _event_schema() -> dict[str, Any]:
    from domain.catalog import EVENT_TYPES

    return {
        "type": "object",
        "description": "An event: the envelope here, the payload as `quipu schema --type TYPE` prints it.",
        "required": ["event_id", "type", "schema_version", "occurred_at", "source", "payload"],
        "properties": {
            "event_id": {"type": "string", "format": "uuid"},
            "type": {"type": "string", "enum": sorted(EVENT_TYPES)},
            "schema_version": {"type": "integer", "minimum": 1},
            "occurred_at": {"type": "string", "format": "date-time"},
            "source": {"type": "string", "minLength": 1, "maxLength": 100},
            "payload": {"type": "object"},
        },
    }


def event_body(batch_limit: int | None = None) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads one event (or, with ``batch_limit``, a JSON array of them) itself."""
    schema = _event_schema()
    if batch_limit is not None:
        schema = {"type": "array", "maxItems": batch_limit, "items": schema}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


TOKEN_FORM: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "client_id": {"type": "string", "description": "or HTTP Basic"},
                        "client_secret": {"type": "string", "description": "or HTTP Basic"},
                        "scope": {"type": "string", "description": "space-separated; default: all the client's"},
                    },
                }
            }
        },
    }
}
