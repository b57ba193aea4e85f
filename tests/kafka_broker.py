"""A real Kafka-protocol broker for the tests and benchmarks: the noida-db binary (shared/KAFKA.md).

Started as the binary itself (the ``noida-db`` console script is a wrapper whose PID does not stop the
broker), with ``--only kafka`` (otherwise it also opens lookalikes of PostgreSQL and others on their usual
ports), on a free port and a fresh data directory, and ready only after a real metadata round-trip.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import IO

from tests.servers import free_port


def noida_binary() -> Path | None:
    """The broker binary shipped inside the ``noida-db`` wheel, or ``None`` when it is not installed."""
    try:
        import noida_db  # type: ignore[import-untyped]
    except ImportError:
        return None
    binary = Path(noida_db.__file__).parent / "noida-db"
    if not binary.exists():
        return None
    binary.chmod(0o755)
    return binary


class LocalBroker:
    """One broker process; ``restart`` keeps its data (topics, messages, committed offsets)."""

    def __init__(self, binary: Path, data_dir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        from adapters.kafka.broker import wait_ready

        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        self._log = (self.data_dir / "broker.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.binary), "start", "--data-dir", str(self.data_dir / "data"), "--only", "kafka",
             "--kafka-port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            asyncio.run(wait_ready(self.bootstrap, 30.0))
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"broker did not start; see {self.data_dir / 'broker.log'}") from None

    def stop(self) -> None:
        """SIGTERM (the broker saves its data file), SIGKILL after 10 s."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Stop and start on the same port and data.

        The broker never evicts a group member that died without leaving (a SIGKILLed worker): its
        replacement would wait to join forever. Its group state lives only in memory, so a restart
        clears it and keeps the committed offsets. A limit of this broker, not of Kafka, which evicts
        the dead member after its session timeout.
        """
        self.stop()
        self.start()
