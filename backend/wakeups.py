"""Wake-ups for long-polls: an in-process signal, and across processes LISTEN/NOTIFY
(PostgreSQL) or datagrams between the processes serving one SQLite database.

A long-poll waits on the signal and re-reads the event log when woken; it also re-reads after a
short fallback interval, so a lost wake-up only delays an answer, never loses an event.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import selectors
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

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

    def stop(self, wait: float = 0.0) -> None:
        self._stop.set()
        if wait and self._thread.is_alive():
            self._thread.join(wait)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.ready.set()
                    self._listen(conn.pgconn)
            except Exception:  # noqa: BLE001 - keep listening through database restarts
                log.warning("change listener lost its database connection; retrying", exc_info=True)
                self._signal.notify()  # let waiters re-read rather than wait blindly
                time.sleep(1.0)

    def _listen(self, pgconn: Any) -> None:
        """Read notifications straight off the connection (libpq's calls, through psycopg.pq).

        Every change of every process arrives here, so this loop is kept short: it waits on the
        socket without the interpreter lock, and wakes the long-polls once for all the
        notifications that arrived together (psycopg's ``notifies()`` makes an object and a
        generator step of each).
        """
        selector = selectors.DefaultSelector()
        selector.register(pgconn.socket, selectors.EVENT_READ)
        with selector:
            while not self._stop.is_set():
                if not selector.select(timeout=1.0):
                    continue
                pgconn.consume_input()  # raises OperationalError when the connection is gone
                woken = False
                while pgconn.notifies() is not None:
                    woken = True
                if woken:
                    self._signal.notify()


RELIST_AFTER = 1.0


class PeerWakeups:
    """Wake-ups across the processes serving one SQLite database (Linux).

    Each listening process binds an abstract Unix datagram socket with a name of its own, and
    registers that name as an empty file in a folder next to the database. After a commit that
    added events, the writer sends one byte to every other registered name; the receiver wakes
    its long-polls. A name nobody holds any more (its process died) is removed by the first
    sender to find it so. Without it (other systems), long-polls still see other processes'
    changes at their fallback poll.
    """

    def __init__(self, database: str, signal: ChangeSignal) -> None:
        self.folder = os.path.abspath(database) + "-wake"
        digest = hashlib.sha256(self.folder.encode()).hexdigest()[:16]
        self._prefix = f"\0sos-wake-{digest}-"
        self._signal = signal
        self._name: str | None = None
        self._socket: socket.socket | None = None
        self._sender: socket.socket | None = None
        self._sender_pid = 0
        self._peers: list[str] = []
        self._seen_mtime = -1
        self._listed_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @staticmethod
    def supported() -> bool:
        return sys.platform.startswith("linux")

    def listen(self) -> bool:
        """Register this process and wake its long-polls on other processes' changes.

        False, with a warning, when it cannot (the folder cannot be written, say): long-polls
        then see other processes' changes at their fallback re-read.
        """
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # Named before the file exists: a stop signal arriving in between still finds it
        # for close() to remove.
        self._name = name
        try:
            receiver.bind(self._prefix + name)
            receiver.settimeout(1.0)
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            with open(os.path.join(self.folder, name), "x"):
                pass
        except OSError as exc:
            self._name = None
            receiver.close()
            log.warning(
                "no wake-ups from other processes (%s); long-polls see their changes within "
                "SOS_FEED_POLL_INTERVAL",
                exc,
            )
            return False
        self._socket = receiver
        threading.Thread(target=self._receive, name="sos-peer-wake", daemon=True).start()
        return True

    @staticmethod
    def forget(folder: str, pid: int) -> None:
        """Remove the registrations of a process known to be dead (a worker's supervisor)."""
        with suppress(OSError):
            for name in os.listdir(folder):
                if name.split("-", 1)[0] == str(pid):
                    with suppress(OSError):
                        os.unlink(os.path.join(folder, name))

    def close(self) -> None:
        """Deregister; the receiving thread ends within a second."""
        self._stop.set()
        if self._name is not None:
            with suppress(OSError):
                os.unlink(os.path.join(self.folder, self._name))
            self._name = None
        with self._lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None

    def _receive(self) -> None:
        receiver = self._socket
        assert receiver is not None
        with receiver:
            while not self._stop.is_set():
                try:
                    receiver.recv(16)
                except TimeoutError:
                    continue
                except OSError:  # pragma: no cover - the socket is gone
                    return
                # Several changes arrive together under load: one wake-up covers them all.
                receiver.setblocking(False)
                with suppress(OSError):
                    while receiver.recv(16):
                        pass
                receiver.settimeout(1.0)
                self._signal.notify()

    def notify(self) -> None:
        """Wake the other processes' long-polls (after a commit that added events)."""
        with self._lock:
            peers = self._current_peers()
            if not peers:
                return
            sender = self._sender
            if sender is None or self._sender_pid != os.getpid():
                try:
                    sender = self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                except OSError:  # pragma: no cover - out of descriptors: the fallback poll
                    log.warning("cannot wake other processes", exc_info=True)
                    return
                sender.setblocking(False)
                self._sender_pid = os.getpid()
            gone = []
            for peer in peers:
                try:
                    sender.sendto(b"!", self._prefix + peer)
                except BlockingIOError:  # its queue is full: it has wake-ups to read already
                    pass
                except (ConnectionRefusedError, FileNotFoundError):
                    gone.append(peer)
                except OSError:  # pragma: no cover - the fallback poll covers it
                    log.debug("could not wake %s", peer, exc_info=True)
            for peer in gone:
                with suppress(OSError):
                    os.unlink(os.path.join(self.folder, peer))
                peers.remove(peer)

    def _current_peers(self) -> list[str]:
        """The registered names but this process's own, re-listed when the folder changes.

        Also every ``RELIST_AFTER`` seconds: a folder's time stamp has the kernel's coarse
        clock, so a registration just after a listing may leave it unchanged.
        """
        # Called after commits: no error of its own may reach the request that committed.
        try:
            mtime = os.stat(self.folder).st_mtime_ns
            now = time.monotonic()
            if mtime != self._seen_mtime or now - self._listed_at > RELIST_AFTER:
                self._seen_mtime, self._listed_at = mtime, now
                self._peers = [n for n in os.listdir(self.folder) if n != self._name]
        except OSError:  # no folder (nobody listens), or not one
            self._peers = []
        return self._peers
