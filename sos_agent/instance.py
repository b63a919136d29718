"""One agent per user: the first process owns a local channel, later ones hand over and exit.

The owner holds an OS lock on ``<data>/instance.lock`` for its lifetime (released by the OS if it
crashes), listens on a localhost TCP port, and writes the port and a random secret to
``<data>/instance.json`` (readable by this user only). A second process finds the lock taken,
reads the file, sends one JSON line ``{"secret", "command", "args"}`` and reads the owner's answer.
Without the secret, another user of the same computer cannot drive the agent.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
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


class InstanceServer:
    """The running agent's end of the channel."""

    def __init__(self, data_dir: Path, lock_handle: Any, handler: Handler) -> None:
        self.data_dir = Path(data_dir)
        self._lock_handle = lock_handle
        self.handler = handler
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

    def close(self) -> None:
        self._closed.set()
        try:
            (self.data_dir / ADDRESS_FILE).unlink()
        except FileNotFoundError:
            pass
        self._sock.close()
        self._lock_handle.close()

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
                request = json.loads(_read_line(conn.makefile("rb")))
                if not isinstance(request, dict) or not hmac.compare_digest(
                    str(request.get("secret", "")), self.secret
                ):
                    _send_line(conn, {"ok": False, "error": "bad secret"})
                    log.warning("refused a hand-over with a wrong secret")
                    return
                command = str(request.get("command", ""))
                args = request.get("args") or {}
                _send_line(conn, {"ok": True})
                if request.get("wait"):
                    conn.settimeout(None)
                    _send_line(conn, self.handler(command, args))
                else:
                    threading.Thread(
                        target=self.handler, args=(command, args), daemon=True
                    ).start()
            except (OSError, ValueError) as exc:
                log.warning("hand-over connection failed: %s", exc)
            except Exception:
                log.exception("hand-over command failed")


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
    """Send ``command`` to the running agent; its answer (after the command when ``wait``)."""
    deadline = time.monotonic() + timeout
    address = None
    while time.monotonic() < deadline:
        # The owner may have just taken the lock and not yet written its address.
        address = read_json(Path(data_dir) / ADDRESS_FILE)
        if isinstance(address, dict) and "port" in address:
            break
        time.sleep(0.02)
    if not isinstance(address, dict) or "port" not in address:
        raise HandOverFailed("the running agent did not publish its address")
    request = {"secret": address.get("secret"), "command": command, "args": args or {}}
    request["wait"] = wait
    try:
        with socket.create_connection(("127.0.0.1", int(address["port"])), timeout=timeout) as c:
            _send_line(c, request)
            reader = c.makefile("rb")
            ack = json.loads(_read_line(reader))
            if not ack.get("ok"):
                raise HandOverFailed(ack.get("error", "refused"))
            if not wait:
                return ack
            c.settimeout(result_timeout)
            return json.loads(_read_line(reader))
    except (OSError, ValueError) as exc:
        raise HandOverFailed(f"could not reach the running agent: {exc}") from exc


def _send_line(conn: socket.socket, value: Any) -> None:
    conn.sendall(json.dumps(value).encode("utf-8") + b"\n")


def _read_line(reader: Any) -> bytes:
    data = reader.readline(MAX_LINE + 1)
    if len(data) > MAX_LINE:
        raise ValueError("line too long")
    if not data:
        raise ValueError("connection closed without an answer")
    return data
