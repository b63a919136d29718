"""The agent's core must import without a display: never pystray or tkinter at top level."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.agent.conftest import REPO

CORE_MODULES = (
    "sos_agent.config",
    "sos_agent.client",
    "sos_agent.outbox",
    "sos_agent.core",
    "sos_agent.commands",
    "sos_agent.viewmodel",
    "sos_agent.icons",
    "sos_agent.instance",
    "sos_agent.state",
    "sos_agent.storage",
    "sos_agent.i18n",
    "sos_agent.shortcuts",
    "sos_agent.brand",
    "sos_agent.live",
    # These two load the UI lazily, only when a window is about to be shown.
    "sos_agent.app",
    "sos_agent.__main__",
)
UI_MODULES = ("pystray", "tkinter", "_tkinter")


def test_importing_the_core_loads_neither_pystray_nor_tkinter() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {UI_MODULES!r} if m in sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
