"""A private X display for GUI tests: Xvfb on a free display number, a tray host (trayer)."""

from __future__ import annotations

import os
import random
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TOOLS = ("Xvfb", "trayer", "xdotool", "xwininfo", "import")


def require_tools() -> None:
    """Skip outside CI when a tool is missing; under CI (``CI=true``) that is a failure."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        message = (
            f"GUI test needs {', '.join(missing)} (Debian: xvfb trayer xdotool x11-utils "
            "imagemagick, listed in .ci/apt-packages.txt)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class XDisplay:
    number: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f":{self.number}"

    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.name}

    def run(self, *argv: str, check: bool = True) -> str:
        env = dict(os.environ, DISPLAY=self.name)
        # Window names may be in Latin-1 or UTF-8 (X's WM_NAME has no fixed encoding).
        result = subprocess.run(
            argv, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=20
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{argv}: {result.stderr}")
        return result.stdout

    def windows(self) -> str:
        """``xwininfo -root -tree``: every window with its name, class and geometry."""
        return self.run("xwininfo", "-root", "-tree")

    def wait_for(self, *argv: str, timeout: float = 15.0) -> list[str]:
        """Wait until ``xdotool search ...`` finds windows; their ids."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # xdotool may list a window twice (e.g. the tray icon once embedded): ids, once.
            out = list(dict.fromkeys(self.run("xdotool", "search", *argv, check=False).split()))
            if out:
                return out
            time.sleep(0.1)
        raise AssertionError(f"no window for {argv} in {timeout} s:\n{self.windows()}")

    def geometry(self, window: str) -> dict[str, int]:
        out = self.run("xdotool", "getwindowgeometry", "--shell", window)
        return {k: int(v) for k, v in (line.split("=") for line in out.split())
                if k in ("X", "Y", "WIDTH", "HEIGHT")}

    def click(self, window: str, button: int = 1) -> None:
        g = self.geometry(window)
        x, y = g["X"] + g["WIDTH"] // 2, g["Y"] + g["HEIGHT"] // 2
        self.run("xdotool", "mousemove", str(x), str(y), "click", str(button))

    def primary_selection(self) -> str | None:
        """The text of the X ``PRIMARY`` selection (what is selected on screen), if any.

        Read with a throw-away Tk client: the selection's owner serves it, so this is the text
        the owning widget really holds.
        """
        script = (
            "import tkinter\n"
            "root = tkinter.Tk()\n"
            "root.withdraw()\n"
            "try:\n"
            "    print(root.selection_get(selection='PRIMARY'), end='')\n"
            "except tkinter.TclError:\n"
            "    raise SystemExit(1)\n"
        )
        env = dict(os.environ, DISPLAY=self.name)
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, encoding="utf-8",
            timeout=20,
        )
        return result.stdout if result.returncode == 0 else None

    def screenshot(self, window: str, target: Path) -> None:
        self.run("import", "-window", window, str(target))

    def stop(self) -> None:
        for process in reversed(self.processes):
            _stop_process(process)


def _start_xvfb(attempts: int = 20) -> tuple[int, subprocess.Popen[bytes]]:
    """Start Xvfb on a random high display number; the number and the process.

    Xvfb itself refuses a number another server holds (its lock file), so picking one is free
    of races with other test runs on this machine; a high number keeps clear of displays
    (``:0``, ``:1``…) that stray clients reach by default. ``-displayfd`` tells when the server
    accepts connections, so there is no guessing whether it is ready.
    """
    rng = random.Random()
    for _ in range(attempts):
        number = rng.randrange(100, 1000)
        if Path(f"/tmp/.X{number}-lock").exists():
            continue
        xvfb, answer = _run_xvfb(number)
        if answer == str(number):
            return number, xvfb
        _stop_process(xvfb)
    raise RuntimeError(f"Xvfb did not start in {attempts} attempts")


def _run_xvfb(number: int, timeout: float = 10.0) -> tuple[subprocess.Popen[bytes], str]:
    read_end, write_end = os.pipe()
    try:
        xvfb = subprocess.Popen(
            ["Xvfb", f":{number}", "-displayfd", str(write_end), "-screen", "0",
             "1024x768x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_end,),
        )
        os.close(write_end)
        write_end = -1
        answer = b""
        deadline = time.monotonic() + timeout
        while not answer.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
                break
            chunk = os.read(read_end, 16)
            if not chunk:  # Xvfb exited: the number is taken (or Xvfb is broken)
                break
            answer += chunk
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    return xvfb, answer.decode("ascii", "replace").strip()


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(5)


def _start_tray_host(display: XDisplay, attempts: int = 3) -> None:
    """Start trayer and wait for its panel; start it again if it died on the way."""
    env = dict(os.environ, DISPLAY=display.name)
    for attempt in range(1, attempts + 1):
        trayer = subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
             "--height", "32", "--SetDockType", "true", "--transparent", "false"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        display.processes.append(trayer)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and trayer.poll() is None:
            if display.run("xdotool", "search", "--class", "trayer", check=False).split():
                return
            time.sleep(0.1)
        if trayer.poll() is None or attempt == attempts:
            raise AssertionError(
                f"trayer (exit {trayer.poll()}) showed no panel:\n{display.windows()}"
            )


def start_display(tray: bool = True) -> XDisplay:
    number, xvfb = _start_xvfb()
    display = XDisplay(number, [xvfb])
    try:
        if tray:
            _start_tray_host(display)
    except BaseException:
        display.stop()  # never leave an Xvfb or a trayer behind
        raise
    return display
