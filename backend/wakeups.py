"""Wake-ups for long-polls: an in-process signal, plus LISTEN/NOTIFY across processes.

A long-poll waits on the signal and re-reads the event log when woken; it also re-reads after a
short fallback interval, so a lost wake-up only delays an answer, never loses an event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from backend.db import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


class _Waiter:
    """One thread waiting for the version to move past ``seen``; released to wake it."""

    __slots__ = ("seen", "lock")

    def __init__(self, seen: int) -> None:
        self.seen = seen
        self.lock = threading.Lock()
        self.lock.acquire()


class ChangeSignal:
    """A counter that goes up on every change, with waiting for it to move.

    Waiters are woken one after another, not all at once: a change wakes the first waiter it
    concerns, and each woken waiter wakes the next when its turn ends (:meth:`turn`). Fifty
    long-polls woken together would all fight for the interpreter and the feed cache at once;
    in turns, the first refreshes the cache and each of the others takes its answer from it
    while the one before sends its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._queue: deque[_Waiter] = deque()

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    @property
    def waiting(self) -> int:
        """How many threads are waiting right now (for tests and diagnostics)."""
        with self._lock:
            return len(self._queue)

    def notify(self) -> None:
        with self._lock:
            self._version += 1
            self._wake_next()

    def wait(self, seen_version: int, timeout: float) -> bool:
        """Wait until the version moves past ``seen_version``; False on time-out."""
        with self.turn(seen_version, timeout) as moved:
            return moved

    @contextmanager
    def turn(self, seen_version: int, timeout: float) -> Iterator[bool]:
        """Wait as :meth:`wait` does; the next waiter is woken when the ``with`` block ends."""
        with self._lock:
            if self._version != seen_version:
                waiter = None
            else:
                waiter = _Waiter(seen_version)
                self._queue.append(waiter)
        woken = waiter is None or waiter.lock.acquire(timeout=timeout)
        with self._lock:
            if not woken:
                try:
                    self._queue.remove(waiter)
                except ValueError:  # chosen to wake just as it timed out: its turn came
                    woken = True
            moved = self._version != seen_version
        try:
            yield moved
        finally:
            if woken:
                with self._lock:
                    self._wake_next()

    def _wake_next(self) -> None:
        """Wake the first queued waiter the current version concerns (the lock is held)."""
        for waiter in self._queue:
            if waiter.seen != self._version:
                self._queue.remove(waiter)
                waiter.lock.release()
                return


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
