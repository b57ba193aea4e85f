"""Structured logs: one JSON object per line (or ``key=value`` text), request ids, and redaction.

The ``quipu`` logger gets one handler on stderr; nothing touches the root logger, so a program
embedding Quipu keeps its own logging. Every line carries ``ts`` (UTC), ``level``, ``logger`` and
``msg``, the fields passed as ``extra=``, and the trace and span ids when a span is recording.
Anything that looks like a bearer token, a JWT or a card number is replaced before it is written,
whatever logged it: the API never logs headers, and this is the second line of defence.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Final, TextIO

import orjson
from opentelemetry import trace

from ledger.errors import QuipuError
from ledger.pan import contains_pan, masked

#: The formats ``--log-format`` and ``QUIPU_LOG_FORMAT`` accept; ``auto`` is JSON unless stderr is a terminal.
LOG_FORMATS: Final = ("auto", "json", "text")
ROOT_LOGGER: Final = "quipu"
REQUEST_ID_HEADER: Final = "x-request-id"

# The attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_SECRETS: Final = (
    # An Authorization header's credentials, however they got into a message.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    # A JWT anywhere (three base64url parts, the first a JSON object's opening brace).
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[jwt redacted]"),
    (re.compile(r"(?i)\b(client_secret|password|secret)=[^&\s]+"), r"\1=[redacted]"),
)
#: An incoming X-Request-ID is kept only if it is this shape (ids, UUIDs, base64); else one is made.
_SANE_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")


#: One search that every string with something to redact matches; most log fields match nothing.
_SUSPECT: Final = re.compile(r"(?i)bearer|basic|eyJ|secret|password")


def redact(text: str) -> str:
    """``text`` without bearer tokens, JWTs, secrets in forms, or card numbers."""
    if _SUSPECT.search(text):
        for pattern, replacement in _SECRETS:
            text = pattern.sub(replacement, text)
    return masked(text) if contains_pan(text) else text


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane id, else a new random (version 4) UUID.

    A sane id is also one redaction leaves as it is, so the access log can write it without redacting it.
    """
    if header and _SANE_REQUEST_ID.fullmatch(header) and redact(header) == header:
        return header
    # What str(uuid.uuid4()) gives, without building a UUID object on every request.
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


#: The RFC 4122 variant bits (10xx) over a random hex digit's low two bits.
_VARIANT: Final = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


@dataclass(slots=True)
class RequestInfo:
    """What the access log needs to know about the request in progress; routes fill in the client."""

    request_id: str
    client_id: str | None = None


_current: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar("quipu_request", default=None)


def begin_request(info: RequestInfo) -> contextvars.Token[RequestInfo | None]:
    return _current.set(info)


def end_request(token: contextvars.Token[RequestInfo | None]) -> None:
    _current.reset(token)


def current_request() -> RequestInfo | None:
    """The request being served in this context (also in the thread a sync route runs in)."""
    return _current.get()


def note_client(client_id: str) -> None:
    """Record who is calling, for the request's log line and span (never their token)."""
    if (info := _current.get()) is not None:
        info.client_id = client_id


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


#: A record's fields that its writer has already redacted (the access log's, built per request), as one
#: ``extra=`` value: they are written as they are, instead of searched again for secrets on every line.
CLEAN_EXTRA: Final = "_quipu_clean"


@functools.lru_cache(maxsize=4)
def _second_text(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def log_time(created: float) -> str:
    """``created`` as ISO 8601 UTC with milliseconds; a second's text is made once, not on every line."""
    whole, micros = divmod(round(created * 1_000_000), 1_000_000)  # as datetime.fromtimestamp rounds
    return f"{_second_text(whole)}.{micros // 1000:03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ts": log_time(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": redact(record.getMessage()),
    }
    if (clean := getattr(record, CLEAN_EXTRA, None)) is not None:
        doc.update(clean)
    else:
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = _clean(value)
    if "request_id" not in doc and (info := _current.get()) is not None:
        doc["request_id"] = info.request_id
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        doc.setdefault("trace_id", format(span.trace_id, "032x"))
        doc.setdefault("span_id", format(span.span_id, "016x"))
    if record.exc_info:
        doc["exc"] = redact(logging.Formatter().formatException(record.exc_info))
    return doc


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(_fields(record), default=str).decode()


class TextFormatter(logging.Formatter):
    """``ts level logger msg key=value …`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        doc = _fields(record)
        head = f"{doc.pop('ts')} {doc.pop('level').upper():7} {doc.pop('logger')} {doc.pop('msg')}"
        exc = doc.pop("exc", None)
        tail = " ".join(f"{k}={orjson.dumps(v).decode() if not isinstance(v, str) or ' ' in v else v}"
                        for k, v in doc.items())  # fmt: skip
        line = f"{head} {tail}" if tail else head
        return f"{line}\n{exc}" if exc else line


def resolve_format(choice: str | None = None, stream: TextIO | None = None) -> str:
    """``json`` or ``text``: the choice, else ``QUIPU_LOG_FORMAT``, else ``auto`` (text only on a terminal)."""
    value = (choice or os.environ.get("QUIPU_LOG_FORMAT") or "auto").strip().lower()
    if value not in LOG_FORMATS:
        raise QuipuError(f"log format: {value!r} is not one of {', '.join(LOG_FORMATS)}")
    if value == "auto":
        target = stream or sys.stderr
        return "text" if hasattr(target, "isatty") and target.isatty() else "json"
    return value


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


_HANDLER_MARK: Final = "_quipu_handler"


def configure_logging(
    fmt: str | None = None, level: int | str | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Send the ``quipu`` loggers to ``stream`` (stderr) in ``fmt``; calling again replaces the handler."""
    chosen = resolve_format(fmt, stream)
    logger = logging.getLogger(ROOT_LOGGER)
    for old in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(formatter(chosen))
    logger.addHandler(handler)
    logger.setLevel(level or os.environ.get("QUIPU_LOG_LEVEL", "INFO").upper())
    logger.propagate = False
    return handler


def uvicorn_log_config(fmt: str, level: str = "WARNING") -> dict[str, Any]:
    """uvicorn's own loggers (start-up, errors) in the same format as Quipu's; its access log stays off."""
    factory = (
        "adapters.observability.logs.JsonFormatter" if fmt == "json" else "adapters.observability.logs.TextFormatter"
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"quipu": {"()": factory}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "quipu", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
    }
