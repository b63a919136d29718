"""The agent as a customer sees it: under Xvfb with a real tray host (trayer), driven by xdotool."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.agentproc import AgentRunner
from tests.agent.xdisplay import XDisplay, require_tools, start_display
from tests.support.live import LiveBackend, start_backend

pytestmark = [pytest.mark.gui, pytest.mark.slow]

TRAY_CLASS = "sos-agentSystemTrayIcon"
WINDOW_CLASS = "SosAgentWindow"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def xdisplay() -> Iterator[XDisplay]:
    require_tools()
    display = start_display(tray=True)
    yield display
    display.stop()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LiveBackend]:
    live = start_backend(tmp_path)
    yield live
    live.stop()


@pytest.fixture
def agent(backend: LiveBackend, tmp_path: Path) -> AgentRunner:
    return AgentRunner(backend.url, backend.deployment_key, tmp_path / "home")


@pytest.fixture
def launch(agent: AgentRunner, xdisplay: XDisplay) -> Iterator:
    """Starts the agent in window mode on the test display (as the desktop would)."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = agent.popen(*args, **xdisplay.env, LANG="en_US.UTF-8")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
        _, err = process.communicate(timeout=20)
        assert "Traceback" not in err, err


def case(backend: LiveBackend, code: str) -> dict:
    return backend.api("GET", f"/cases/{code}").json()


def wait_until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def visible_window(xdisplay: XDisplay, wait: bool = False) -> str | None:
    """The customer window's id if it is shown."""
    args = ("--onlyvisible", "--class", WINDOW_CLASS)
    if wait:
        (window,) = xdisplay.wait_for(*args)
        return window
    found = xdisplay.run("xdotool", "search", *args, check=False).split()
    return found[0] if found else None


def docked_icon(xdisplay: XDisplay) -> str:
    (icon,) = xdisplay.wait_for("--classname", TRAY_CLASS)
    # Docked: trayer has embedded it at a visible size in its panel (top right).
    wait_until(lambda: xdisplay.geometry(icon)["WIDTH"] >= 16)
    assert xdisplay.geometry(icon)["X"] > 900
    return icon


def test_tray_icon_appears_and_clicking_it_opens_the_window_showing_the_code(
    agent, backend, xdisplay, launch, tmp_path
) -> None:
    # First launch happened earlier (headless); this start is like a start at login.
    _, first = agent.headless()
    code = first["code"]
    running_agent = launch()
    icon = docked_icon(xdisplay)
    assert not visible_window(xdisplay)
    wait_until(lambda: code in xdisplay.run("xdotool", "getwindowname", icon))

    xdisplay.click(icon)  # left click: "Get help" brings back the open case and shows it
    window = visible_window(xdisplay, wait=True)
    title = xdisplay.run("xdotool", "getwindowname", window)
    assert title.startswith("SOS Support") and code in title
    # While the window is open the customer side is connected to the session.
    wait_until(lambda: case(backend, code)["customer_connected"])
    assert len(backend.api("GET", "/cases").json()["cases"]) == 1

    shot = tmp_path / "agent-window.png"
    xdisplay.screenshot(window, shot)
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_AGENT_SCREENSHOT"):
        shutil.copy(shot, REPO / "docs" / "agent-window.png")

    # Right click: the menu with the case's code and status, then "Quit" (the last item).
    xdisplay.click(icon, button=3)
    (menu,) = xdisplay.wait_for("--onlyvisible", "--class", "Menu")
    g = xdisplay.geometry(menu)
    xdisplay.run("xdotool", "mousemove", str(g["X"] + 30), str(g["Y"] + g["HEIGHT"] - 10),
                 "click", "1")
    running_agent.wait(timeout=15)
    assert running_agent.returncode == 0
    # Quitting disconnected the customer side.
    assert case(backend, code)["customer_connected"] is False


def test_the_sos_shortcut_while_the_agent_runs_hands_over_and_shows_the_window(
    agent, backend, xdisplay, launch
) -> None:
    launch()
    icon = docked_icon(xdisplay)
    # First launch in the tray agent: it opens the case and shows the window; hide it again.
    wait_until(lambda: len(backend.api("GET", "/cases").json()["cases"]) == 1)
    code = backend.api("GET", "/cases").json()["cases"][0]["code"]
    window = visible_window(xdisplay, wait=True)
    assert code in xdisplay.run("xdotool", "getwindowname", window)
    xdisplay.run("xdotool", "windowunmap", "--sync", window)
    assert icon

    started = time.monotonic()
    clicked = launch("--sos")
    _, err = clicked.communicate(timeout=10)
    assert clicked.returncode == 0, err
    assert time.monotonic() - started < 1.5  # a whole Python start plus the hand-over
    assert visible_window(xdisplay, wait=True) == window
    (only,) = backend.api("GET", "/cases").json()["cases"]
    assert only["code"] == code and only["source"] == "first_launch"
