"""Wake-ups for long-polls: an in-process signal, plus LISTEN/NOTIFY across processes.

A long-poll waits on the signal and re-reads the event log when woken; it also re-reads after a
short fallback interval, so a lost wake-up only delays an answer, never loses an event.
"""

from __future__ import annotations

import logging
import threading
import time

from backend.db import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


class ChangeSignal:
    """A counter that goes up on every change, with waiting for it to move."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._version = 0
        self._waiting = 0

    @property
    def version(self) -> int:
        with self._condition:
            return self._version

    @property
    def waiting(self) -> int:
        """How many threads are waiting right now (for tests and diagnostics)."""
        with self._condition:
            return self._waiting

    def notify(self) -> None:
        with self._condition:
            self._version += 1
            self._condition.notify_all()

    def wait(self, seen_version: int, timeout: float) -> bool:
        """Wait until the version moves past ``seen_version``; False on time-out."""
        with self._condition:
            self._waiting += 1
            try:
                return self._condition.wait_for(lambda: self._version != seen_version, timeout)
            finally:
                self._waiting -= 1


class PostgresListener:
    """Forwards PostgreSQL notifications on the events channel to a :class:`ChangeSignal`."""

    def __init__(self, url: str, signal: ChangeSignal) -> None:
        self._url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._signal = signal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sos-pg-listen", daemon=True)
        self.ready = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.ready.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._signal.notify()
            except Exception:  # noqa: BLE001 - keep listening through database restarts
                log.warning("change listener lost its database connection; retrying", exc_info=True)
                self._signal.notify()  # let waiters re-read rather than wait blindly
                time.sleep(1.0)
