"""The HTTP role of the crash harness: a ``quipu serve`` process and a client posting to it.

The client is the project's own :class:`adapters.client.QuipuClient` in a thread of the harness, with its
retries off so the harness sees every lost answer: it posts its slice in batches of random sizes, in order,
and when a request gets no answer (the server was killed, the database went away) it waits and sends the
same batch again with the same event ids, as a real client would. An event counts as acknowledged only
when a response said ``appended`` or ``duplicate``; one that comes back ``duplicate`` on a retry was
committed by a request whose answer was lost.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Final

import httpx
import orjson

from adapters.client import ApiError, QuipuClient
from benchmarks.crash_common import Context, Event, Role, cli_args, run_cli
from tests.servers import free_port

CLIENT_ID: Final = "crash-harness"
#: A server that has answered nothing but errors for this long while up is restarted, as a liveness
#: probe would (the failure is reported).
UNRESPONSIVE_S: Final = 20.0
RETRY_PAUSE_S: Final = 0.25


class ApiClient(threading.Thread):
    """Posts the released part of the slice, batch by batch, in order, until every event is acknowledged."""

    def __init__(
        self, base_url: str, secret: str, batches: Sequence[Sequence[Event]], released: Callable[[], int]
    ) -> None:
        super().__init__(name="crash-api-client", daemon=True)
        self.base_url = base_url
        self.secret = secret
        self.batches = [list(b) for b in batches]
        self.released = released
        self.stop = threading.Event()
        self.finished = False
        self.acked: set[str] = set()
        self.requests = 0
        self.unanswered = 0
        """Requests that got no result: connection refused or reset, or an error status."""
        self.committed_unanswered = 0
        """Events a retry found already recorded: the request that committed them lost its answer."""
        self.errors: Counter[str] = Counter()
        self.refused: list[str] = []
        self.failing_since: float | None = None
        self.in_flight = False

    def run(self) -> None:
        with QuipuClient(self.base_url, CLIENT_ID, self.secret, retries=0, timeout=30.0) as client:
            offset = 0
            for batch in self.batches:
                offset += len(batch)
                while self.released() < offset:
                    if self.stop.wait(0.02):
                        return
                if not self._post_until_answered(client, batch):
                    return
        self.finished = True

    def _post_until_answered(self, client: QuipuClient, batch: Sequence[Event]) -> bool:
        docs = [orjson.loads(e.line) for e in batch]
        retried = False
        while not self.stop.is_set():
            self.requests += 1
            self.in_flight = True
            try:
                results = client.post_batch(docs)
            except (httpx.HTTPError, ApiError) as exc:
                self.in_flight = False
                self.unanswered += 1
                self.errors[_label(exc)] += 1
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                retried = True
                self.stop.wait(RETRY_PAUSE_S)
                continue
            self.in_flight = False
            self.failing_since = None
            for r in results:
                if r.outcome in ("appended", "duplicate") and r.event_id is not None:
                    self.acked.add(r.event_id)
                    if retried and r.outcome == "duplicate":
                        self.committed_unanswered += 1
                else:
                    self.refused.append(f"{r.event_id}: {r.outcome}: {r.reason}")
            return True
        return False


def _label(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.status} {exc.title}"
    return type(exc).__name__


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.05)
        return s.connect_ex(("127.0.0.1", port)) == 0


class ApiRole(Role):
    """``quipu serve`` kept running (restarted when it dies) while the client posts through it."""

    name = "api"

    def __init__(self, ctx: Context, events: Sequence[Event]) -> None:
        super().__init__(ctx, events)
        self.port = free_port()
        # Fixed for the run, so tokens stay valid across server restarts.
        self.signing_secret = secrets.token_urlsafe(32)
        self.client: ApiClient | None = None
        self.ready = False
        self.ready_at = 0.0
        self.probe_restarts = 0
        sizes: list[list[Event]] = []
        i = 0
        while i < len(self.events):
            # Small batches, so requests are frequent and a kill often finds one in flight.
            n = ctx.rng.randint(1, 40)
            sizes.append(self.events[i : i + n])
            i += n
        self._batches = sizes

    def _register(self) -> str:
        """An OAuth client with ``events:write``; its secret is printed once."""
        done = run_cli(["clients", "add", CLIENT_ID, "--scope", "events:write", "--database", self.ctx.database],
                       self.ctx.work, timeout=120)  # fmt: skip
        for line in done.stdout.splitlines():
            if line.startswith("client_secret="):
                return line.partition("=")[2].strip()
        raise RuntimeError(f"quipu clients add failed: {done.stdout[-500:]} {done.stderr[-500:]}")

    def tick(self, now: float) -> None:
        if self.client is None:
            secret = self._register()
            self.client = ApiClient(
                f"http://127.0.0.1:{self.port}", secret, self._batches,
                lambda: self.ctx.release.count(len(self.events)),
            )  # fmt: skip
            self.client.start()
        self._reap(now)
        if self.child is None:
            if not self.client.finished and self._may_start(now):
                self._spawn(
                    cli_args("serve", "--database", self.ctx.database, "--port", str(self.port)),
                    env={"QUIPU_API_SECRET": self.signing_secret, "QUIPU_RATE_PER_SECOND": "100000",
                         "QUIPU_RATE_BURST": "100000"},
                )  # fmt: skip
                self.ready = False
            return
        if self.client.finished:
            self.child.terminate()
            self.child = None
            return
        if not self.ready and _port_open(self.port):
            self.ready, self.ready_at = True, now
            self.kill_at = now + self.ctx.rng.uniform(0.1, 2.0)
        since = self.client.failing_since
        if self.ready and since is not None and now - max(since, self.ready_at) > UNRESPONSIVE_S:
            self.stats.failures.append(
                f"answered only errors for {UNRESPONSIVE_S:.0f} s ({dict(self.client.errors)}); restarted"
            )
            self.probe_restarts += 1
            self.child.kill()
            self.child = None
            self._died = True
            self.client.failing_since = now

    def killable(self, now: float) -> bool:
        return self.ready and super().killable(now)

    def up(self) -> bool:
        return self.ready and super().up()

    def has_work(self) -> bool:
        return self.client is None or not self.client.finished

    def working(self) -> bool:
        """A request is in flight."""
        return self.client is not None and self.client.in_flight

    def done(self) -> bool:
        return self.client is not None and self.client.finished

    def stop(self) -> None:
        if self.client is not None:
            self.client.stop.set()
            self.client.join(60)
        super().stop()

    def acknowledged(self) -> set[str]:
        return set(self.client.acked) if self.client is not None else set()

    def problems(self) -> list[str]:
        if self.client is not None and self.client.refused:
            return [f"the API refused {len(self.client.refused)} events: {self.client.refused[:3]}"]
        return []

    def details(self) -> dict[str, Any]:
        c = self.client
        if c is None:
            return {}
        return {
            "batches": len(self._batches),
            "requests": c.requests,
            "requests_unanswered": c.unanswered,
            "committed_but_unanswered": c.committed_unanswered,
            "errors": dict(c.errors),
            "refused": c.refused[:10],
            "liveness_restarts": self.probe_restarts,
        }
