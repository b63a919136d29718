"""``sos-backend serve``: waitress, in one process or in several that share one listening socket.

One Python process runs one thread at a time, so one process uses one core however many
threads it has. With ``--workers N`` the parent binds the socket, forks N worker processes
that each build their own app and serve the socket with waitress, and supervises them: a
worker that dies is replaced, a stop signal reaches every worker. What the workers share
lives in the database; SQLite writers take turns across processes (``backend.db.WriterLock``)
and long-polls in one worker are woken by changes made in another (``backend.wakeups``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask

from backend.delivery import start_dispatcher
from backend.sweeper import start_sweeper

if TYPE_CHECKING:
    from backend.app import Runtime

log = logging.getLogger("sos.backend")

STABLE_AFTER = 10.0  # a worker that lived this long before dying is replaced at once
MAX_QUICK_DEATHS = 5  # so many deaths in a row, each sooner: the workers cannot start
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_on_signal(signum: int, _frame: Any) -> None:
    """Stop serving on SIGTERM: ``finally`` blocks run, so the process deregisters itself."""
    sys.exit(128 + signum)


def start_background(runtime: Runtime, *, sweep: bool = True) -> None:
    """A serving process's background work: expiry sweeps, deliveries, peer wake-ups."""
    if sweep:
        start_sweeper(runtime)
    start_dispatcher(runtime)
    if runtime.peers is not None:
        runtime.peers.listen()


def waitress_options(threads: int) -> dict[str, Any]:
    return {
        "threads": threads,
        "connection_limit": max(100, threads * 4),
        "channel_timeout": 60,
        "ident": "sos",
        "_quiet": True,
    }


def listen_socket(host: str, port: int) -> socket.socket:
    """The bound, listening socket the workers share (IPv6 when the host is one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    sock.setblocking(False)
    return sock


class WorkerPool:
    """Forks ``count`` workers running ``work(number, sock)`` and keeps them running."""

    def __init__(
        self,
        count: int,
        sock: socket.socket,
        work: Callable[[int, socket.socket], None],
        on_exit: Callable[[int], None] | None = None,
    ):
        self.count = count
        self.sock = sock
        self.work = work
        self.on_exit = on_exit  # called with the pid of each worker that has ended
        self.children: dict[int, int] = {}  # pid -> worker number
        self.started: dict[int, float] = {}
        self.stopping = False
        self.quick_deaths = 0

    def run(self) -> int:
        """Serve until a stop signal (SIGTERM, SIGINT) or until workers cannot start; exit code."""
        previous = {signum: signal.signal(signum, self._stop) for signum in STOP_SIGNALS}
        try:
            for number in range(self.count):
                if not self.stopping:
                    self._spawn(number)
            return self._supervise()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _stop(self, _signum: int = signal.SIGTERM, _frame: Any = None) -> None:
        self.stopping = True
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _spawn(self, number: int) -> None:
        parent = os.getpid()
        # A stop signal between the fork and the worker's own handlers would run the parent's
        # handler in the worker: hold signals back until each side has its handlers.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, exit_on_signal)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                _end_with_parent(parent)
                self.work(number, self.sock)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker %d failed", number)
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = number
        self.started[pid] = time.monotonic()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def _supervise(self) -> int:
        code = 0
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:  # pragma: no cover - nothing left to wait for
                break
            number = self.children.pop(pid, None)
            if number is None:
                continue
            if self.on_exit is not None:
                self.on_exit(pid)
            lived = time.monotonic() - self.started.pop(pid)
            if self.stopping:
                continue
            log.error(
                "worker %d (pid %d) exited (%s) after %.1f s",
                number,
                pid,
                _describe(status),
                lived,
            )
            self.quick_deaths = 0 if lived >= STABLE_AFTER else self.quick_deaths + 1
            if self.quick_deaths >= MAX_QUICK_DEATHS:
                log.error("workers keep exiting at start; stopping (see the errors above)")
                code = 1
                self._stop()
                continue
            time.sleep(min(0.2 * self.quick_deaths, 2.0))
            self._spawn(number)
        return code


def _end_with_parent(parent: int) -> None:
    """Have the kernel send SIGTERM to this worker when the parent dies, even by SIGKILL (Linux):
    no orphan keeps serving the port."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before that took effect
        sys.exit(0)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {os.waitstatus_to_exitcode(status)}"


def serve_workers(
    make_app: Callable[[], Flask],
    sock: socket.socket,
    *,
    threads: int,
    workers: int,
    on_exit: Callable[[int], None] | None = None,
) -> int:
    """Serve ``sock`` with ``workers`` processes; returns the exit code."""
    import waitress

    def work(number: int, sock: socket.socket) -> None:
        app = make_app()
        try:
            start_background(app.extensions["sos"], sweep=number == 0)  # one sweeper is enough
            waitress.serve(app, sockets=[sock], **waitress_options(threads))
        finally:
            app.extensions["sos"].close()

    return WorkerPool(workers, sock, work, on_exit).run()
