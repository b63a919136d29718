"""The agent as a customer sees it: under Xvfb with a real tray host (trayer), driven by xdotool."""

from __future__ import annotations

import gc
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


def code_in_the_window_field(xdisplay: XDisplay, window: str) -> str | None:
    """The text of the window's code field, read the way a customer copies it.

    Focus the window, Tab to its first field (the code) and select all: Tk hands the field's
    own text to X as the selection, which another client then reads. No screenshot guessing,
    no log line written for the test.
    """
    xdisplay.run("xdotool", "windowfocus", "--sync", window)
    xdisplay.run("xdotool", "key", "--clearmodifiers", "Tab", "ctrl+slash")
    deadline = time.monotonic() + 10
    while (text := xdisplay.primary_selection()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return text


def settled_geometry(xdisplay: XDisplay, window: str) -> dict[str, int]:
    """The window's geometry once it stops changing (a menu is placed after being mapped)."""
    last = xdisplay.geometry(window)
    for _ in range(50):
        time.sleep(0.05)
        now = xdisplay.geometry(window)
        if now == last:
            return now
        last = now
    return last


def exit_code(process: subprocess.Popen[str], agent: AgentRunner, timeout: float = 15) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log = agent.data_dir / "logs" / "agent.log"
        tail = "\n".join(log.read_text().splitlines()[-15:]) if log.exists() else "(no log)"
        raise AssertionError(f"the agent did not exit in {timeout} s; its log:\n{tail}") from None


def docked_icon(xdisplay: XDisplay) -> str:
    icons = xdisplay.wait_for("--classname", TRAY_CLASS)
    assert len(icons) == 1, f"expected one tray icon:\n{xdisplay.windows()}"
    (icon,) = icons
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
    # The code field itself holds the code, not only the title.
    assert code_in_the_window_field(xdisplay, window) == code

    # Right click: the menu with the case's code and status, then "Quit" (the last item).
    xdisplay.click(icon, button=3)
    (menu,) = xdisplay.wait_for("--onlyvisible", "--class", "Menu")
    g = settled_geometry(xdisplay, menu)
    x, y = g["X"] + 30, g["Y"] + g["HEIGHT"] - 10
    # Tk highlights a menu item on pointer motion over it, and a click runs the highlighted one.
    xdisplay.run("xdotool", "mousemove", str(x), str(y), "mousemove_relative", "1", "0",
                 "click", "1")
    assert exit_code(running_agent, agent) == 0
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


@pytest.fixture
def plain_display() -> Iterator[XDisplay]:
    require_tools()
    display = start_display(tray=False)
    yield display
    display.stop()


def test_the_window_offers_the_deployments_topics_and_sends_the_choice(plain_display) -> None:
    """The customer window itself (in this process, on the test display), fed view models."""
    import tkinter as tk

    from sos_agent.brand import load_brand
    from sos_agent.i18n import translation
    from sos_agent.state import CaseRecord
    from sos_agent.viewmodel import ViewModel
    from sos_agent.window import CustomerWindow, WindowActions
    from tests.agent.conftest import DEFAULT_BRAND

    asked: list[str | None] = []
    ignore = lambda *a: None  # noqa: E731
    actions = WindowActions(
        save_fields=ignore, send_message=ignore, close_case=ignore, join=ignore,
        get_help=asked.append, hidden=ignore, quit=ignore,
    )
    vm = ViewModel(translation("fr"))
    root = tk.Tk(screenName=plain_display.name)
    try:
        root.withdraw()
        window = CustomerWindow(root, load_brand(DEFAULT_BRAND), vm.labels(), actions)
        window.show()
        topics = ("Printer", "Network")

        window.render(vm.window(None, None, True, [], ("name",), topics=topics))
        root.update()
        assert window.topic_row.winfo_manager() == "pack"
        assert window.topic_row.winfo_ismapped()
        assert tuple(window.topic_choice.cget("values")) == (*topics, "Autre chose")
        window.help_button.invoke()  # "something else": no topic, the deployment's own group
        window.topic_choice.set("Network")
        window.help_button.invoke()
        assert asked == [None, "Network"]

        # Once a request is open the choice goes away (the case stays where it was routed).
        record = CaseRecord(local_id="l", source="sos_button", code="s12-345-678",
                            token="sosc_x", status="new", topic="Network")
        window.render(vm.window(record, {"status": "new"}, True, [], ("name",), topics=topics))
        root.update()
        assert window.topic_row.winfo_manager() == "" and window.shown_code == "s12-345-678"

        # A deployment without topics never shows the choice.
        window.render(vm.window(None, None, True, [], ("name",), topics=()))
        root.update()
        assert window.topic_row.winfo_manager() == "" and window.chosen_topic() is None
    finally:
        root.destroy()


def test_the_tray_title_reaches_x_whatever_its_characters(
    xdisplay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tray icon itself (in this process, on the test display with its tray host).

    pystray writes titles as Latin-1 only: "…" (in "Sending your request…") made every such
    title fail inside its X loop and the tray kept showing an old state.
    """
    monkeypatch.setenv("DISPLAY", xdisplay.name)
    from sos_agent.icons import tray_image
    from sos_agent.tray import TrayActions, TrayIcon
    from sos_agent.viewmodel import TrayState

    ignore = lambda *a: None  # noqa: E731
    image = tray_image("#0b5cad", "#ffffff", TrayState.IDLE)
    tray = TrayIcon("sos-agent", image, "Ação SOS…", TrayActions(ignore, ignore, ignore, ignore))
    tray.run_detached()
    try:
        icon = docked_icon(xdisplay)
        wait_until(lambda: xdisplay.run("xdotool", "getwindowname", icon) == "Ação SOS…\n")
        labels = {"help": "Aide", "open": "Ouvrir", "quit": "Quitter"}
        for n, status in enumerate(["Envoi de votre demande…", "Connecté", "Connecté"]):
            title = f"Ação SOS: s12-345-67{n} · {status}"
            waiting = tray_image("#0b5cad", "#ffffff", TrayState.WAITING)
            tray.update(waiting, title, f"s12-345-67{n} · {status}", labels)
            wait_until(lambda t=title: xdisplay.run("xdotool", "getwindowname", icon) == t + "\n")
    finally:
        tray.stop()
        # pystray closes its X connection when the icon is collected: do it while X is up.
        del tray
        gc.collect()
