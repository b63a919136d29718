"""One agent per user: the first process owns a local channel, later ones hand over and exit.

The owner holds an OS lock on ``<data>/instance.lock`` for its lifetime (released by the OS if it
crashes), listens on a localhost TCP port, and writes the port and a random secret to
``<data>/instance.json`` (readable by this user only). A second process finds the lock taken,
reads the file, sends one JSON line ``{"secret", "command", "args"}`` and reads the owner's answer.
Without the secret, another user of the same computer cannot drive the agent.

The owner may take the lock a moment before it can act: its address is not written yet (or the
file left by a crashed owner is still there), or its window is still starting. A hand-over
therefore retries until its deadline, and the owner keeps commands that arrive before it is
ready in a :class:`CommandInbox` and runs them, in order, once it is.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from sos_agent.storage import atomic_write_json, read_json

log = logging.getLogger(__name__)

LOCK_FILE = "instance.lock"
ADDRESS_FILE = "instance.json"
MAX_LINE = 64 * 1024

Handler = Callable[[str, dict[str, Any]], dict[str, Any]]


class HandOverFailed(Exception):
    """Another agent holds the lock but could not be reached."""


class CommandInbox:
    """A handler that holds commands until the agent is ready, then runs them in order.

    Give :meth:`handle` to :func:`acquire` at once; call :meth:`open` with the real handler when
    the agent can act on commands, or :meth:`close` if it never will. A caller that waits for
    the result (``hand_over(wait=True)``) waits until then.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handler: Handler | None = None
        self._closed: str | None = None
        self._waiting: list[tuple[str, dict[str, Any], Future[dict[str, Any]]]] = []

    def handle(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            handler, closed = self._handler, self._closed
            if handler is None and closed is None:
                result: Future[dict[str, Any]] = Future()
                self._waiting.append((command, args, result))
                log.info("keeping %s until the agent is ready", command)
        if closed is not None:
            return {"outcome": "refused", "error": closed}
        if handler is not None:
            return handler(command, args)
        return result.result()

    def open(self, handler: Handler) -> None:
        """The agent is ready: run what waited (oldest first), then pass commands straight on."""
        while True:
            with self._lock:
                waiting, self._waiting = self._waiting, []
                if not waiting:
                    # Only now: a command arriving meanwhile queued behind the ones running.
                    self._handler = handler
                    return
            for command, args, result in waiting:
                try:
                    result.set_result(handler(command, args))
                except Exception as exc:
                    log.exception("handed-over %s failed", command)
                    result.set_result(
                        {"outcome": "refused", "error": str(exc) or type(exc).__name__}
                    )

    def close(self, reason: str) -> None:
        """The agent will not act on commands (it could not start, or it is quitting)."""
        with self._lock:
            self._closed = reason
            self._handler = None
            waiting, self._waiting = self._waiting, []
        for _command, _args, result in waiting:
            result.set_result({"outcome": "refused", "error": reason})

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)


def _try_lock(handle: Any) -> bool:
    if os.name == "nt":
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class _Accepted:
    """A command taken in; it runs once the sender has its acknowledgement."""

    def __init__(self, command: str, args: dict[str, Any]) -> None:
        self.command, self.args = command, args
        self.acknowledged = threading.Event()
        self.ok = False


class InstanceServer:
    """The running agent's end of the channel.

    A command whose sender does not wait for the result runs on one thread, in the order the
    commands arrived (two clicks on the SOS button are handled in turn). :meth:`close` can wait
    for commands still running, so that their senders get their answer.
    """

    def __init__(self, data_dir: Path, lock_handle: Any, handler: Handler) -> None:
        self.data_dir = Path(data_dir)
        self._lock_handle = lock_handle
        self.handler = handler
        self._running = 0  # commands taken in and not answered or done yet
        self._idle = threading.Condition()
        self._later: queue.SimpleQueue[_Accepted | None] = queue.SimpleQueue()
        threading.Thread(target=self._run_later, name="hand-overs", daemon=True).start()
        self.secret = secrets.token_urlsafe(32)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._closed = threading.Event()
        atomic_write_json(
            self.data_dir / ADDRESS_FILE,
            {"port": self.port, "secret": self.secret, "pid": os.getpid()},
            private=True,
        )
        self._thread = threading.Thread(target=self._serve, name="instance", daemon=True)
        self._thread.start()

    def close(self, wait: float = 0.0) -> None:
        """Take no more commands; wait up to ``wait`` s for those running; free the lock."""
        self._closed.set()
        try:
            (self.data_dir / ADDRESS_FILE).unlink()
        except FileNotFoundError:
            pass
        self._sock.close()
        if wait > 0:
            with self._idle:
                if not self._idle.wait_for(lambda: self._running == 0, timeout=wait):
                    log.warning("closing with %d hand-over(s) still running", self._running)
        self._later.put(None)
        self._lock_handle.close()

    def _started(self) -> None:
        with self._idle:
            self._running += 1

    def _finished(self) -> None:
        with self._idle:
            self._running -= 1
            self._idle.notify_all()

    def _run_later(self) -> None:
        while (accepted := self._later.get()) is not None:
            try:
                accepted.acknowledged.wait()
                if accepted.ok:
                    self.handler(accepted.command, accepted.args)
            except Exception:
                log.exception("hand-over command %s failed", accepted.command)
            finally:
                self._finished()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                with conn.makefile("rb") as reader:
                    request = json.loads(_read_line(reader))
                if not isinstance(request, dict) or not hmac.compare_digest(
                    str(request.get("secret", "")), self.secret
                ):
                    _send_line(conn, {"ok": False, "error": "bad secret"})
                    log.warning("refused a hand-over with a wrong secret")
                    return
                command = str(request.get("command", ""))
                args = request.get("args") or {}
            except (OSError, ValueError, EOFError) as exc:
                log.warning("hand-over connection failed: %s", exc)
                return
            self._started()
            if request.get("wait"):
                try:
                    _send_line(conn, {"ok": True})
                    conn.settimeout(None)
                    _send_line(conn, self.handler(command, args))
                except (OSError, ValueError) as exc:
                    log.warning("hand-over connection failed: %s", exc)
                except Exception:
                    log.exception("hand-over command %s failed", command)
                finally:
                    self._finished()
                return
            # Queued before the acknowledgement (so in arrival order), run only after it went
            # out: a sender that got no acknowledgement may try again, and must not get twice.
            accepted = _Accepted(command, args)
            self._later.put(accepted)
            try:
                _send_line(conn, {"ok": True})
                accepted.ok = True
            except OSError as exc:
                log.warning("hand-over connection failed: %s", exc)
            finally:
                accepted.acknowledged.set()


def acquire(data_dir: Path, handler: Handler) -> InstanceServer | None:
    """Become the user's agent (an :class:`InstanceServer`), or ``None`` if one already runs."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / LOCK_FILE, "a+b")  # noqa: SIM115 - held for the process lifetime
    if not _try_lock(handle):
        handle.close()
        return None
    return InstanceServer(data_dir, handle, handler)


def hand_over(
    data_dir: Path,
    command: str,
    args: dict[str, Any] | None = None,
    *,
    wait: bool = False,
    timeout: float = 2.0,
    result_timeout: float = 60.0,
) -> dict[str, Any]:
    """Send ``command`` to the running agent; its answer (after the command when ``wait``).

    Until ``timeout`` runs out, a missing or stale address (a new owner that has the lock but
    has not written its address yet, or the file of an owner that crashed) is read again and
    tried again. A command that may have reached the owner is never sent a second time.
    """
    path = Path(data_dir) / ADDRESS_FILE
    deadline = time.monotonic() + timeout
    problem = "the running agent did not publish its address"
    while True:
        address = read_json(path)
        if isinstance(address, dict) and "port" in address:
            request = {
                "secret": address.get("secret"), "command": command, "args": args or {},
                "wait": wait,
            }
            try:
                return _deliver(address, request, timeout, result_timeout if wait else None)
            except _NotDelivered as exc:
                problem = str(exc)
            except _Refused as exc:
                if read_json(path) == address:
                    raise HandOverFailed(str(exc)) from None
                problem = str(exc)  # the address was stale and its port reused: read it again
        if time.monotonic() >= deadline:
            raise HandOverFailed(problem)
        time.sleep(0.02)


class _NotDelivered(Exception):
    """The owner surely did not get the command: safe to try again."""


class _Refused(Exception):
    """The process at the address refused the command (e.g. a wrong secret)."""


def _deliver(
    address: dict[str, Any],
    request: dict[str, Any],
    timeout: float,
    result_timeout: float | None,
) -> dict[str, Any]:
    """One attempt; the acknowledgement (or the refusal), or the result when waiting for it."""
    try:
        connection = socket.create_connection(("127.0.0.1", int(address["port"])), timeout)
    except (OSError, ValueError) as exc:
        raise _NotDelivered(f"could not reach the running agent: {exc}") from exc
    with connection, connection.makefile("rb") as reader:
        try:
            _send_line(connection, request)
            ack = json.loads(_read_line(reader))
        except (ConnectionError, EOFError) as exc:
            # Closed or reset before any acknowledgement: the owner runs a command only after
            # acknowledging it, so it did not run (or this was not an agent at all).
            raise _NotDelivered(f"could not reach the running agent: {exc}") from exc
        except (OSError, ValueError) as exc:
            # A time-out: the command may still arrive and run, so it is not sent again.
            raise HandOverFailed(f"the running agent did not acknowledge: {exc}") from exc
        if not isinstance(ack, dict) or not ack.get("ok"):
            raise _Refused(ack.get("error", "refused") if isinstance(ack, dict) else "refused")
        if result_timeout is None:
            return ack
        try:
            connection.settimeout(result_timeout)
            return json.loads(_read_line(reader))
        except (OSError, ValueError, EOFError) as exc:
            raise HandOverFailed(
                f"the running agent took the command but did not answer: {exc}"
            ) from exc


def _send_line(conn: socket.socket, value: Any) -> None:
    conn.sendall(json.dumps(value).encode("utf-8") + b"\n")


def _read_line(reader: Any) -> bytes:
    data = reader.readline(MAX_LINE + 1)
    if len(data) > MAX_LINE:
        raise ValueError("line too long")
    if not data:
        raise EOFError("connection closed without an answer")
    return data
