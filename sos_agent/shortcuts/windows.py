"""Windows: ``.lnk`` shortcuts made by the Windows Script Host (through PowerShell)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import platformdirs

Runner = Callable[[list[str]], object]


def _run_powershell(args: list[str]) -> object:
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    return subprocess.run(args, check=True, capture_output=True, timeout=30, creationflags=flags)


def _ps_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _programs_dir() -> Path:
    appdata = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
    return Path(appdata) / "Microsoft" / "Windows" / "Start Menu" / "Programs"


def lnk_script(path: Path, command: tuple[str, ...], description: str) -> str:
    """The PowerShell that writes one ``.lnk`` (target, arguments, icon of the executable)."""
    target, *args = command
    arguments = subprocess.list2cmdline(args)
    return "; ".join(
        [
            "$ErrorActionPreference = 'Stop'",
            f"$s = (New-Object -ComObject WScript.Shell).CreateShortcut({_ps_quote(str(path))})",
            f"$s.TargetPath = {_ps_quote(target)}",
            f"$s.Arguments = {_ps_quote(arguments)}",
            f"$s.Description = {_ps_quote(description)}",
            f"$s.IconLocation = {_ps_quote(target + ',0')}",
            f"$s.WorkingDirectory = {_ps_quote(str(Path(target).parent))}",
            "$s.Save()",
        ]
    )


def _make_lnk(path: Path, command: tuple[str, ...], description: str, run: Runner) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    script = lnk_script(path, command, description)
    run(["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script])
    return path


def install(
    spec, *, desktop: Path | None = None, programs: Path | None = None, run: Runner | None = None
) -> list[Path]:
    """The SOS shortcut on the desktop and in the Start menu."""
    run = run or _run_powershell
    name = f"{spec.name}.lnk"
    return [
        _make_lnk(
            (desktop or Path(platformdirs.user_desktop_dir())) / name,
            spec.sos_command,
            spec.comment,
            run,
        ),
        _make_lnk((programs or _programs_dir()) / name, spec.sos_command, spec.comment, run),
    ]


def set_start_at_login(
    spec, enabled: bool, *, startup: Path | None = None, run: Runner | None = None
) -> list[Path]:
    """A shortcut in the user's Startup folder starts the agent in the tray at login."""
    path = (startup or _programs_dir() / "Startup") / f"{spec.name}.lnk"
    if not enabled:
        path.unlink(missing_ok=True)
        return []
    return [_make_lnk(path, spec.command, spec.comment, run or _run_powershell)]
