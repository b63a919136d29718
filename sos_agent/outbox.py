"""The durable outbox: every change the customer asks for is written to disk before it is sent.

Each request is one JSON file in ``<data>/outbox/`` (written atomically: temporary file, then
``os.replace``), named so that they sort in the order they were queued. A request carries an
``Idempotency-Key`` made when it was first queued, so sending it again after a crash or a lost
answer never makes a second case. Requests are sent in order; a request that cannot be sent yet
(network down, server error, 429) is retried with exponential backoff and jitter, never sooner
than the server's ``Retry-After``. A request the server refuses for good (4xx) is moved to
``outbox/failed/`` and reported.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sos_agent.client import ApiError, TransportError
from sos_agent.storage import atomic_write_json, read_json

log = logging.getLogger(__name__)

BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0


def backoff_delay(
    attempts: int,
    retry_after: float | None = None,
    *,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
    rng: random.Random | None = None,
) -> float:
    """Seconds before attempt ``attempts + 1``: exponential, capped, with jitter.

    "Equal jitter": half the exponential step is fixed, half random, so retries of many agents
    spread out without ever retrying at once. ``Retry-After`` is a floor.
    """
    step = min(cap, base * (2 ** max(0, attempts - 1)))
    delay = step / 2 + (rng or random).uniform(0, step / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


@dataclass
class OutboxEntry:
    id: str
    kind: str
    method: str
    path: str
    body: dict[str, Any] | None
    idempotency_key: str
    case: str | None = None
    attempts: int = 0
    next_attempt_at: float = 0.0
    created_at: float = field(default_factory=time.time)
    last_error: str | None = None


class Outbox:
    """The outbox folder. Thread-safe within one process (one agent runs per user)."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(data_dir) / "outbox"
        self.failed_folder = self.folder / "failed"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._lock = threading.RLock()

    def enqueue(
        self,
        kind: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        case: str | None = None,
    ) -> OutboxEntry:
        """Write a request to disk; it is sent by :meth:`deliver_next`."""
        entry = OutboxEntry(
            id=f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}",
            kind=kind,
            method=method,
            path=path,
            body=body,
            idempotency_key=str(uuid.uuid4()),
            case=case,
            created_at=self.clock(),
        )
        self._write(entry)
        log.info("queued %s %s (%s)", method, path, entry.id)
        return entry

    def pending(self) -> list[OutboxEntry]:
        """Queued requests, oldest first."""
        with self._lock:
            entries = []
            for path in sorted(self.folder.glob("*.json")):
                raw = read_json(path)
                if not isinstance(raw, dict):
                    log.warning("ignoring unreadable outbox file %s", path.name)
                    continue
                try:
                    entries.append(OutboxEntry(**raw))
                except TypeError:
                    log.warning("ignoring malformed outbox file %s", path.name)
            return entries

    def failed(self) -> list[OutboxEntry]:
        return [OutboxEntry(**read_json(p)) for p in sorted(self.failed_folder.glob("*.json"))]

    def __len__(self) -> int:
        return len(list(self.folder.glob("*.json")))

    def remove(self, entry: OutboxEntry) -> None:
        with self._lock:
            try:
                os.unlink(self._path(entry))
            except FileNotFoundError:
                pass

    def retry_now(self) -> None:
        """Make every queued request due now (the network came back)."""
        with self._lock:
            for entry in self.pending():
                if entry.next_attempt_at > self.clock():
                    entry.next_attempt_at = self.clock()
                    self._write(entry)

    def deliver_next(self, send: Callable[[OutboxEntry], Any]) -> float | None:
        """Try the oldest request if it is due.

        ``send(entry)`` performs it and records its result; it raises ``TransportError`` to retry
        later or ``ApiError`` when the server refused it for good. Returns the seconds until the
        next request is due (0 for "go on at once"), or ``None`` when the outbox is empty.
        """
        # Only the worker sends, so the entry cannot change under us; the lock is not held
        # while sending, because ``send`` takes the state's lock (lock order: state, outbox).
        entries = self.pending()
        if not entries:
            return None
        entry = entries[0]
        wait = entry.next_attempt_at - self.clock()
        if wait > 0:
            return wait
        try:
            send(entry)
        except TransportError as exc:
            entry.attempts += 1
            delay = backoff_delay(entry.attempts, exc.retry_after)
            entry.next_attempt_at = self.clock() + delay
            entry.last_error = str(exc)
            self._write(entry)
            log.info("will retry %s in %.1f s: %s", entry.id, delay, exc)
            raise
        except ApiError as exc:
            entry.last_error = str(exc)
            atomic_write_json(self.failed_folder / f"{entry.id}.json", asdict(entry))
            self.remove(entry)
            log.warning("server refused %s %s: %s", entry.method, entry.path, exc)
            exc.entry = entry  # type: ignore[attr-defined]
            raise
        self.remove(entry)
        return 0.0

    def _path(self, entry: OutboxEntry) -> Path:
        return self.folder / f"{entry.id}.json"

    def _write(self, entry: OutboxEntry) -> None:
        with self._lock:
            atomic_write_json(self._path(entry), asdict(entry), private=True)


class OutboxWorker:
    """A thread that empties the outbox, sleeping between retries (woken early by new work)."""

    def __init__(
        self,
        outbox: Outbox,
        send: Callable[[OutboxEntry], Any],
        *,
        on_online: Callable[[bool], None] = lambda online: None,
        on_refused: Callable[[OutboxEntry, ApiError], None] = lambda entry, exc: None,
    ) -> None:
        self.outbox = outbox
        self.send = send
        self.on_online = on_online
        self.on_refused = on_refused
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> float | None:
        """Deliver what is due; the seconds to sleep (``None``: nothing queued)."""
        while True:
            try:
                delay = self.outbox.deliver_next(self.send)
            except TransportError:
                self.on_online(False)
                continue  # the entry now has a future retry time: deliver_next returns it
            except ApiError as exc:
                self.on_refused(exc.entry, exc)  # type: ignore[attr-defined]
                continue
            if delay == 0.0:
                self.on_online(True)
                continue
            return delay

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.run_once()
            except Exception:  # never let the sender die: the outbox is the customer's safety net
                log.exception("outbox delivery failed unexpectedly")
                delay = 5.0
            self._wake.wait(timeout=delay)
            self._wake.clear()
