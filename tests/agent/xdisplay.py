"""A private X display for GUI tests: Xvfb on a free display number, a tray host (trayer)."""

from __future__ import annotations

import os
import shutil
import subprocess
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


def _free_display() -> int:
    for number in range(90, 200):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(
            f"/tmp/.X11-unix/X{number}"
        ).exists():
            return number
    raise RuntimeError("no free X display number")


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
            out = self.run("xdotool", "search", *argv, check=False).split()
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

    def screenshot(self, window: str, target: Path) -> None:
        self.run("import", "-window", window, str(target))

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def start_display(tray: bool = True) -> XDisplay:
    number = _free_display()
    display = XDisplay(number)
    xvfb = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    display.processes.append(xvfb)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if time.monotonic() > deadline or xvfb.poll() is not None:
            display.stop()
            raise RuntimeError("Xvfb did not start")
        time.sleep(0.05)
    if tray:
        env = dict(os.environ, DISPLAY=display.name)
        display.processes.append(subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
             "--height", "32", "--SetDockType", "true", "--transparent", "false"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        display.wait_for("--class", "trayer")
    return display
