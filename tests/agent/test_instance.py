from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sos_agent import instance


def test_second_process_hands_over_to_the_first(tmp_path: Path) -> None:
    received = []
    server = instance.acquire(tmp_path, lambda c, a: received.append((c, a)) or {"code": "x"})
    assert server is not None
    try:
        assert instance.acquire(tmp_path, lambda c, a: {}) is None  # the lock is taken
        answer = instance.hand_over(tmp_path, "sos", {"name": "Bob"}, wait=True)
        assert answer == {"code": "x"}
        assert received == [("sos", {"name": "Bob"})]
    finally:
        server.close()
    again = instance.acquire(tmp_path, lambda c, a: {})
    assert again is not None
    again.close()


def test_address_file_is_private_and_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    calls = []
    server = instance.acquire(tmp_path, lambda c, a: calls.append(c) or {})
    try:
        address = tmp_path / instance.ADDRESS_FILE
        if os.name == "posix":
            assert address.stat().st_mode & 0o077 == 0
        data = json.loads(address.read_text())
        data["secret"] = "guess"
        address.write_text(json.dumps(data))
        with pytest.raises(instance.HandOverFailed, match="bad secret"):
            instance.hand_over(tmp_path, "sos")
        assert calls == []
    finally:
        server.close()


@pytest.mark.slow
def test_a_second_process_hands_over_and_exits_in_a_fraction_of_a_second(tmp_path: Path) -> None:
    received = []
    server = instance.acquire(tmp_path, lambda c, a: received.append(c) or {})
    try:
        script = (
            "import sys, time; t = time.monotonic(); from sos_agent import instance; "
            f"instance.hand_over({str(tmp_path)!r}, 'sos'); print(time.monotonic() - t)"
        )
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=10
        )
        assert float(out.stdout) < 0.3  # the hand-over itself, after Python started
        assert time.monotonic() - started < 3
        deadline = time.monotonic() + 2
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert received == ["sos"]
    finally:
        server.close()


# --- commands that arrive while the agent is starting -----------------------------------------


def test_a_command_handed_over_while_the_agent_starts_runs_once_it_is_ready(
    tmp_path: Path,
) -> None:
    inbox = instance.CommandInbox()
    server = instance.acquire(tmp_path, inbox.handle)
    ran: list[tuple[str, dict]] = []
    try:
        # The second process is acknowledged at once and exits (the SOS shortcut)...
        assert instance.hand_over(tmp_path, "sos", {"name": "Bob"}) == {"ok": True}
        assert instance.hand_over(tmp_path, "join", {"code": "s20-000-001"}) == {"ok": True}
        _wait_until(lambda: inbox.waiting == 1)  # the first waits; the next is queued behind
        time.sleep(0.1)
        assert ran == []
        # ...and the commands run, in the order they came, when the agent is ready.
        inbox.open(lambda c, a: ran.append((c, a)) or {"outcome": "ok"})
        _wait_until(lambda: len(ran) == 2)
        assert ran == [("sos", {"name": "Bob"}), ("join", {"code": "s20-000-001"})]
        # Later ones go straight through.
        instance.hand_over(tmp_path, "sos")
        _wait_until(lambda: len(ran) == 3)
        assert inbox.waiting == 0
    finally:
        server.close()


def test_a_waiting_hand_over_gets_the_result_once_the_agent_is_ready(tmp_path: Path) -> None:
    inbox = instance.CommandInbox()
    server = instance.acquire(tmp_path, inbox.handle)
    answers: list[dict] = []
    try:
        waiter = threading.Thread(
            target=lambda: answers.append(instance.hand_over(tmp_path, "sos", wait=True))
        )
        waiter.start()
        _wait_until(lambda: inbox.waiting == 1)
        assert answers == []
        inbox.open(lambda c, a: {"code": "s12-345-678", "outcome": "ok"})
        waiter.join(5)
        assert answers == [{"code": "s12-345-678", "outcome": "ok"}]
    finally:
        server.close()


def test_commands_waiting_for_an_agent_that_cannot_start_are_refused_not_left_hanging() -> None:
    inbox = instance.CommandInbox()
    answers: list[dict] = []
    waiter = threading.Thread(target=lambda: answers.append(inbox.handle("sos", {})))
    waiter.start()
    _wait_until(lambda: inbox.waiting == 1)
    inbox.close("no display found")
    waiter.join(5)
    assert answers == [{"outcome": "refused", "error": "no display found"}]
    assert inbox.handle("sos", {}) == {"outcome": "refused", "error": "no display found"}


def test_the_window_agent_keeps_a_hand_over_that_arrives_before_it_is_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_config
) -> None:
    """``run_gui`` with a stand-in for the tray and window app (no display needed)."""
    import sos_agent.__main__ as main_module
    import sos_agent.app

    inboxes: list[instance.CommandInbox] = []
    handled: list[tuple[str, dict]] = []
    handed: list[dict] = []
    config = make_config()

    class WatchedInbox(instance.CommandInbox):
        def __init__(self) -> None:
            super().__init__()
            inboxes.append(self)

    def slow_display_check() -> None:
        # A second launch (the SOS shortcut) while this agent is still checking the display.
        handed.append(instance.hand_over(config.data_dir, "sos", {"description": "help"}))
        _wait_until(lambda: inboxes[0].waiting == 1)

    class StartingApp:
        def __init__(self, config, core) -> None:
            pass

        def handle_command(self, command: str, args: dict) -> dict:
            handled.append((command, args))
            return {"outcome": "ok"}

        def run(self, command, args, on_ready=None) -> int:
            assert handled == []  # not run while the window and tray are being built
            on_ready()
            assert handled == [("sos", {"description": "help"})]
            return 0

    monkeypatch.setattr(instance, "CommandInbox", WatchedInbox)
    monkeypatch.setattr(main_module, "display_problem", slow_display_check)
    monkeypatch.setattr(sos_agent.app, "AgentApp", StartingApp)
    assert main_module.run_gui(config, "start", {"no_shortcut": True}) == 0
    assert handed == [{"ok": True}] and handled == [("sos", {"description": "help"})]


# --- a stale address --------------------------------------------------------------------------


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_stale_address_is_retried_until_the_new_owner_publishes_its_own(
    tmp_path: Path,
) -> None:
    # Left by an agent that crashed; the new owner has the lock but not yet written its address.
    stale = {"port": _unused_port(), "secret": "old", "pid": 1}
    (tmp_path / instance.ADDRESS_FILE).write_text(json.dumps(stale))
    received: list[str] = []
    servers: list[instance.InstanceServer] = []

    def new_owner() -> None:
        time.sleep(0.5)
        servers.append(instance.acquire(tmp_path, lambda c, a: received.append(c) or {}))

    owner = threading.Thread(target=new_owner)
    owner.start()
    try:
        assert instance.hand_over(tmp_path, "sos", timeout=5) == {"ok": True}
        _wait_until(lambda: received == ["sos"])
    finally:
        owner.join(5)
        for server in servers:
            server.close()


def test_a_stale_address_that_never_gets_replaced_fails_at_the_deadline(tmp_path: Path) -> None:
    stale = {"port": _unused_port(), "secret": "old", "pid": 1}
    (tmp_path / instance.ADDRESS_FILE).write_text(json.dumps(stale))
    started = time.monotonic()
    with pytest.raises(instance.HandOverFailed, match="could not reach the running agent"):
        instance.hand_over(tmp_path, "sos", timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 3


def test_no_address_at_all_fails_at_the_deadline_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(instance.HandOverFailed, match="did not publish its address"):
        instance.hand_over(tmp_path, "sos", timeout=0.2)


def _wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_closing_waits_for_a_hand_over_still_running_so_its_sender_gets_the_answer(
    tmp_path: Path,
) -> None:
    started = threading.Event()

    def slow(command: str, args: dict) -> dict:
        started.set()
        time.sleep(0.5)
        return {"code": "s12-345-678"}

    server = instance.acquire(tmp_path, slow)
    answers: list[dict] = []
    sender = threading.Thread(
        target=lambda: answers.append(instance.hand_over(tmp_path, "sos", wait=True))
    )
    sender.start()
    assert started.wait(5)
    began = time.monotonic()
    server.close(wait=5)  # the owner is done with its own command and is about to exit
    assert time.monotonic() - began >= 0.3  # it waited for the command still running
    sender.join(5)
    assert answers == [{"code": "s12-345-678"}]
