"""Live status: the change feed by long-poll, and presence (connect + heartbeat) while visible.

:class:`CaseFollower` waits on ``GET /events?after=…&wait=25`` with the case token: one request
parked on the server at a time, answered as soon as something happens; then the case and any new
messages are read again. :class:`Presence` connects the customer side while the window is open,
heartbeats every 20 s, and disconnects when it closes.
"""

from __future__ import annotations

import logging
import threading

from sos_agent.client import ApiError, TransportError
from sos_agent.core import AgentCore
from sos_agent.outbox import backoff_delay

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 20.0


class CaseFollower:
    """Keeps ``core.case_view`` and ``core.messages`` current while a case is open."""

    def __init__(self, core: AgentCore, wait: int = 25) -> None:
        self.core = core
        self.wait = wait
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.core.notify()

    def _run(self) -> None:
        failures = 0
        cursor: str | None = None
        following: str | None = None
        while not self._stop.is_set():
            record = self.core.current()
            if record is None or record.is_final or not record.token:
                # Nothing to follow: sleep until the core changes (no polling).
                self.core.wait_for_change(timeout=60)
                continue
            try:
                if following != record.local_id:
                    # Take the feed's current end first, then read the case: nothing is missed.
                    cursor = self.core.client.feed(record.token, None, wait=0)["cursor"]
                    following = record.local_id
                    self.core.refresh_case()
                answer = self.core.client.feed(record.token, cursor, wait=self.wait)
                failures = 0
                self.core.set_online(True)
                cursor = answer.get("cursor", cursor)
                if answer.get("events") and not self._stop.is_set():
                    self.core.refresh_case()
            except TransportError as exc:
                failures += 1
                self.core.set_online(False)
                self._stop.wait(backoff_delay(failures, exc.retry_after, cap=30))
            except ApiError as exc:
                log.warning("feed refused: %s", exc)
                self.core.refresh_case()  # marks the case over if the token is no longer valid
                failures += 1
                self._stop.wait(backoff_delay(failures, cap=60))


class Presence:
    """The customer side's connection to the session while the window is open."""

    def __init__(self, core: AgentCore, interval: float = HEARTBEAT_INTERVAL) -> None:
        self.core = core
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected: tuple[str, str] | None = None

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.active:
            if not self._stop.is_set():
                return
            self._thread.join(5)  # still disconnecting from the last time the window closed
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="presence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Disconnect (in the background: closing the window must not wait for the network)."""
        self._stop.set()
        self.core.notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            record = self.core.current()
            if record is None or record.is_final or not record.token or not record.code:
                self._disconnect()
                self.core.wait_for_change(timeout=self.interval)
                continue
            target = (record.code, record.token)
            try:
                if self._connected != target:
                    self._disconnect()
                    self.core.client.presence(record.code, record.token, "connect")
                    self._connected = target
                    self.core.refresh_case()
                else:
                    self.core.client.presence(record.code, record.token, "heartbeat")
                self.core.set_online(True)
            except TransportError:
                self.core.set_online(False)
                self._connected = None
            except ApiError as exc:
                log.info("presence refused: %s", exc)
                self._connected = None
            self._stop.wait(self.interval)
        self._disconnect()

    def _disconnect(self) -> None:
        if self._connected is None:
            return
        code, token = self._connected
        self._connected = None
        try:
            self.core.client.presence(code, token, "disconnect")
        except (TransportError, ApiError) as exc:
            log.info("disconnect failed (the backend times presence out): %s", exc)
