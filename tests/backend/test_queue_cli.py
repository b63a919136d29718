"""``sos-queue`` end to end: the real CLI as a subprocess against a real ``sos-backend serve``.

Every run gets its own HOME and XDG_CONFIG_HOME, so the token store is isolated. One server
serves the whole module; tests use their own cases so their order does not matter.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.live import SUPPORTER_PASSWORD, LiveBackend, free_port, start_backend

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBackend]:
    server = start_backend(tmp_path_factory.mktemp("queue-cli"))
    yield server
    server.stop()


def queue_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOS_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), PYTHONIOENCODING="utf-8")
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "backend.queue_cli", *args]


# Like a terminal's foreground job: Ctrl-C raises KeyboardInterrupt even when the test run
# itself was started in the background, where SIGINT is ignored and children inherit that.
INTERACTIVE = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'sos-queue'; runpy.run_module('backend.queue_cli', run_name='__main__')"
)


def interactive_command(*args: str) -> list[str]:
    return [sys.executable, "-c", INTERACTIVE, *args]


def sos_queue(home: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        env=queue_env(home),
        cwd=ROOT,
        capture_output=True,
        encoding="utf-8",
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def fails_cleanly(result: subprocess.CompletedProcess[str], message: str, code: int = 1) -> None:
    """Exit ``code`` with exactly one ``Error: ...`` line holding ``message``, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    if code == 1:
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")


def log_in(live: LiveBackend, home: Path) -> subprocess.CompletedProcess[str]:
    result = sos_queue(
        home, "login", "--server", live.url, "--username", "alice", "--password", SUPPORTER_PASSWORD
    )
    assert result.returncode == 0, result.stderr
    return result


def token_file(home: Path) -> Path:
    (path,) = home.rglob("tokens.json")
    return path


@pytest.fixture(scope="module")
def alice(live: LiveBackend, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME where alice is logged in to the live server."""
    home = tmp_path_factory.mktemp("alice-home")
    log_in(live, home)
    return home


def open_case(live: LiveBackend, name: str, description: str = "printer jams") -> str:
    """Open a case through the agent API with the deployment key; returns its code."""
    response = live.api(
        "POST",
        "/agent/cases",
        live.deployment_key,
        json={"source": "sos_button", "customer": {"name": name}, "description": description},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    return response.json()["case"]["code"]


def expert_view(live: LiveBackend, code: str) -> dict[str, Any]:
    response = live.api("GET", f"/cases/{code}")
    assert response.status_code == 200, response.text
    return response.json()


# ---- login and the token store ----------------------------------------------------------------


def test_login_keeps_a_private_token_file_that_later_commands_use(live, tmp_path):
    result = log_in(live, tmp_path)
    assert f"Logged in to {live.url} as Alice Martin (alice)." in result.stdout

    path = token_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store = json.loads(path.read_text())
    (entry,) = store["logins"].values()
    assert entry["server"] == live.url and entry["username"] == "alice"
    assert entry["token"].startswith("sosu_") and entry["token"] not in result.stdout
    assert store["default"] == f"alice@{live.url}"
    assert live.api("GET", "/me", entry["token"]).json()["username"] == "alice"

    # No --server: the stored default is used.
    me = sos_queue(tmp_path, "whoami", "--json")
    assert me.returncode == 0, me.stderr
    assert json.loads(me.stdout)["username"] == "alice"
    assert json.loads(me.stdout)["server"] == live.url


def test_login_with_a_wrong_password_says_so_and_stores_nothing(live, tmp_path):
    result = sos_queue(tmp_path, "login", "--server", live.url, "-u", "alice", "-p", "nope")
    fails_cleanly(result, "wrong username or password")
    assert list(tmp_path.rglob("tokens.json")) == []


def test_logout_revokes_the_token_on_the_server_and_forgets_it(live, tmp_path):
    log_in(live, tmp_path)
    token = next(iter(json.loads(token_file(tmp_path).read_text())["logins"].values()))["token"]

    result = sos_queue(tmp_path, "logout", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["revoked"] is True
    assert live.api("GET", "/me", token).status_code == 401
    assert token not in token_file(tmp_path).read_text()
    fails_cleanly(sos_queue(tmp_path, "list"), "not logged in")


def test_login_with_an_existing_token_keeps_it_and_logout_leaves_it_valid(live, tmp_path):
    bad = sos_queue(tmp_path, "login", "--server", live.url, "--token", "sosu_nonsense")
    fails_cleanly(bad, f"{live.url} refused that token")

    result = sos_queue(tmp_path, "login", "--server", live.url, "--token", live.admin_token)
    assert result.returncode == 0, result.stderr
    assert "as Ada Admin (admin)" in result.stdout
    assert json.loads(sos_queue(tmp_path, "whoami", "--json").stdout)["role"] == "admin"

    out = sos_queue(tmp_path, "logout")
    assert out.returncode == 0 and "the token itself was not revoked" in out.stdout
    assert live.api("GET", "/me", live.admin_token).status_code == 200


def test_availability_sets_away_and_back_online(live, alice):
    away = sos_queue(alice, "availability", "away", "--json")
    assert away.returncode == 0, away.stderr
    assert json.loads(away.stdout)["availability"] == "away"
    assert live.api("GET", "/me", live.supporter_token).json()["availability"] == "away"
    back = sos_queue(alice, "availability", "online")
    assert back.returncode == 0 and "You are online." in back.stdout


# ---- the queue --------------------------------------------------------------------------------


def test_list_shows_open_cases_as_a_table_and_as_json(live, alice):
    code = open_case(live, "Lisa Listing")

    table = sos_queue(alice, "list", "--search", "Lisa Listing")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["CODE", "STATUS", "GROUP", "ASSIGNEE", "CUSTOMER", "AGE"]
    assert row.split()[:4] == [code, "new", "Helpdesk", "-"] and "Lisa Listing" in row

    listed = sos_queue(alice, "list", "--json", "--assignee", "none", "--group", "Helpdesk")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert code in [c["code"] for c in data["cases"]] and data["counts"]["new"] >= 1

    mine = json.loads(sos_queue(alice, "list", "--json", "--assignee", "me").stdout)
    assert code not in [c["code"] for c in mine["cases"]]


def test_show_prints_the_details_and_the_last_messages(live, alice):
    code = open_case(live, "Sam Showcase", "screen is blue")
    for body in ("first message", "second message", "third message"):
        sent = live.api("POST", f"/cases/{code}/messages", json={"body": body})
        assert sent.status_code == 201

    shown = sos_queue(alice, "show", code.replace("-", ""), "--messages", "2")  # compact code
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"{code}  new  (sos_button)")
    assert "Sam Showcase" in shown.stdout and "screen is blue" in shown.stdout
    assert "Messages (last 2 of 3):" in shown.stdout
    assert "third message" in shown.stdout and "first message" not in shown.stdout

    data = json.loads(sos_queue(alice, "show", code, "--json").stdout)
    assert data["case"]["code"] == code
    assert [m["body"] for m in data["messages"]] == [
        "first message",
        "second message",
        "third message",
    ]


def test_claim_takes_a_free_case_and_names_who_won_when_it_is_taken(live, alice):
    code = open_case(live, "Carl Claim")
    claimed = sos_queue(alice, "claim", code, "--json")
    assert claimed.returncode == 0, claimed.stderr
    assert json.loads(claimed.stdout)["assignee"]["username"] == "alice"
    assert expert_view(live, code)["assignee"]["username"] == "alice"

    taken = open_case(live, "Tina Taken")
    assert live.api("POST", f"/cases/{taken}/assign", json={"assignee": "admin"}).ok
    lost = sos_queue(alice, "claim", taken)
    fails_cleanly(lost, f"case {taken} is already assigned to Ada Admin")
    assert expert_view(live, taken)["assignee"]["username"] == "admin"


def test_assign_connect_and_close_change_the_case_on_the_server(live, alice):
    code = open_case(live, "Ada Assign")

    to_me = sos_queue(alice, "assign", code, "me", "--json")
    assert json.loads(to_me.stdout)["assignee"]["username"] == "alice"
    to_admin = sos_queue(alice, "assign", code, "admin")
    assert to_admin.returncode == 0 and f"{code} → admin" in to_admin.stdout
    nobody = sos_queue(alice, "assign", code, "--none", "--json")
    assert json.loads(nobody.stdout)["assignee"] is None
    assert expert_view(live, code)["assignee"] is None

    connected = sos_queue(alice, "connect", code, "--json")
    assert connected.returncode == 0, connected.stderr
    case = json.loads(connected.stdout)
    assert case["expert_connected"] is True and case["status"] == "pending"
    assert case["connected_expert"]["username"] == "alice"

    closed = sos_queue(alice, "close", code)
    assert closed.returncode == 0 and f"Closed {code}." in closed.stdout
    assert expert_view(live, code)["status"] == "closed"
    fails_cleanly(sos_queue(alice, "close", code), "already closed")


# ---- errors -----------------------------------------------------------------------------------


def test_an_unreachable_server_is_one_clear_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    result = sos_queue(tmp_path, "login", "--server", url, "-u", "alice", "-p", "x")
    fails_cleanly(result, f"Error: cannot reach {url}: connection refused; check --server")


def test_a_server_that_is_not_sos_is_named_as_such(tmp_path):
    class NotSOS(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<h1>Not here</h1>")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotSOS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = sos_queue(tmp_path, "login", "--server", url, "-u", "alice", "-p", "x")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    fails_cleanly(result, f"{url} does not look like an SOS server (HTTP 404")


def test_a_revoked_token_asks_to_log_in_again(live, tmp_path):
    log_in(live, tmp_path)
    entry = next(iter(json.loads(token_file(tmp_path).read_text())["logins"].values()))
    revoked = live.api("DELETE", f"/tokens/{entry['token_id']}", entry["token"])
    assert revoked.status_code == 204
    fails_cleanly(sos_queue(tmp_path, "list"), "the server refused the token; run sos-queue login")


def test_an_unknown_code_shows_the_api_message(alice):
    fails_cleanly(sos_queue(alice, "show", "s00-000-000"), "no case with the code s00-000-000")


def test_commands_without_a_login_say_how_to_log_in(live, tmp_path):
    fails_cleanly(sos_queue(tmp_path, "list"), "not logged in; run sos-queue login")
    named = sos_queue(tmp_path, "--server", live.url, "claim", "s12-345-678")
    fails_cleanly(named, f"not logged in to {live.url}; run sos-queue login --server {live.url}")


def test_usage_mistakes_exit_2(alice):
    fails_cleanly(sos_queue(alice, "assign", "s12-345-678"), "pass --none to unassign", code=2)
    fails_cleanly(sos_queue(alice, "nosuchcommand"), "No such command", code=2)


# ---- watch ------------------------------------------------------------------------------------


class Watch:
    """``sos-queue watch`` as a process, with threads timing each line it prints."""

    def __init__(self, home: Path, *args: str, path: str | None = None) -> None:
        env = queue_env(home)
        if path:
            env["PATH"] = path + os.pathsep + env.get("PATH", "")
        self.process = subprocess.Popen(
            interactive_command("watch", *args),
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
        )
        self.out: queue.Queue[tuple[float, str]] = queue.Queue()
        self.err: queue.Queue[tuple[float, str]] = queue.Queue()
        self.readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: queue.Queue[tuple[float, str]]) -> None:
        for line in stream:
            lines.put((time.monotonic(), line.rstrip("\n")))

    def next_line(self, lines: queue.Queue[tuple[float, str]], timeout: float) -> tuple[float, str]:
        try:
            return lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no line from watch within {timeout} s (exit: {self.process.poll()})")

    def wait_for_stderr(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            _, line = self.next_line(self.err, max(0.01, deadline - time.monotonic()))
            if text in line:
                return line

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for reader in self.readers:
            reader.join(5)
        self.process.stdout.close()
        self.process.stderr.close()


def test_watch_prints_a_new_case_within_a_second_and_then_its_assignment(live, alice, tmp_path):
    # A stand-in notify-send records the desktop notifications.
    bin_dir, notes = tmp_path / "bin", tmp_path / "notes.txt"
    bin_dir.mkdir()
    fake = bin_dir / "notify-send"
    fake.write_text(f'#!/bin/sh\nprintf "%s|" "$@" >> "{notes}"\necho >> "{notes}"\n')
    fake.chmod(0o755)
    watch = Watch(alice, "--notify", "--max-events", "2", "--timeout", "30", path=str(bin_dir))
    try:
        watch.wait_for_stderr(f"Watching {live.url} as alice", timeout=15)
        created_at = time.monotonic()
        code = open_case(live, "Wendy Watcher", "printer jams")
        arrived, line = watch.next_line(watch.out, timeout=5)
        assert arrived - created_at < 1.0, f"the line came {arrived - created_at:.2f} s late"
        assert line.split()[1:3] == ["NEW", code]
        assert line.endswith(f"{code}  Helpdesk  Wendy Watcher: printer jams")

        assert live.api("POST", f"/cases/{code}/claim", live.supporter_token).ok
        _, line = watch.next_line(watch.out, timeout=5)
        assert f"ASSIGNED  {code} → alice" in line
        assert watch.process.wait(10) == 0  # --max-events reached
    finally:
        watch.stop()
    assert notes.read_text().splitlines() == [
        f"--app-name=sos-queue|SOS: new case {code}|Helpdesk  Wendy Watcher: printer jams|",
        f"--app-name=sos-queue|SOS: {code} is assigned to you|{line}|",
    ]


def test_watch_stops_quietly_with_exit_0_on_ctrl_c(alice):
    watch = Watch(alice, "--timeout", "30")
    try:
        watch.wait_for_stderr("Watching", timeout=15)
        time.sleep(0.2)  # into the long-poll
        watch.process.send_signal(signal.SIGINT)
        assert watch.process.wait(10) == 0
        watch.stop()
        assert watch.out.empty() and watch.err.empty()  # no traceback, no "Aborted!"
    finally:
        watch.stop()


def test_watch_reconnects_after_the_server_went_away(live, alice):
    watch = Watch(alice, "--json", "--max-events", "1", "--timeout", "40")
    try:
        watch.wait_for_stderr("Watching", timeout=15)
        live.stop()
        lost = watch.wait_for_stderr("cannot reach", timeout=10)
        assert lost.startswith(f"cannot reach {live.url}: ") and "retrying in" in lost
        live.start()
        code = open_case(live, "Rita Return")
        watch.wait_for_stderr(f"reconnected to {live.url}", timeout=15)
        _, line = watch.next_line(watch.out, timeout=10)
        event = json.loads(line)
        assert event["type"] == "case.created" and event["case_code"] == code
        assert event["case"]["customer"]["name"] == "Rita Return"
        assert watch.process.wait(10) == 0
    finally:
        watch.stop()
        if live.process is None:
            live.start()
