"""Linux (freedesktop): ``.desktop`` files on the desktop, in the menu and in autostart."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sos_agent.storage import atomic_write_bytes

_EXEC_RESERVED = set(' \t\n"\'\\><~|&;$*?#()`')


def desktop_dir() -> Path:
    """The XDG desktop folder: ``$XDG_DESKTOP_DIR``, ``xdg-user-dir DESKTOP``, or ~/Desktop."""
    if env := os.environ.get("XDG_DESKTOP_DIR"):
        return Path(env).expanduser()
    if shutil.which("xdg-user-dir"):
        try:
            out = subprocess.run(
                ["xdg-user-dir", "DESKTOP"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        # xdg-user-dir answers $HOME when no desktop folder is configured: use ~/Desktop then.
        if out and Path(out) != Path.home():
            return Path(out)
    return Path.home() / "Desktop"


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def quote_exec_arg(arg: str) -> str:
    """Quote one argument for a desktop entry's ``Exec`` key (freedesktop spec rules)."""
    arg = arg.replace("%", "%%")
    if not arg or any(ch in _EXEC_RESERVED for ch in arg):
        escaped = "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg)
        return f'"{escaped}"'
    return arg


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def desktop_entry(spec, command: tuple[str, ...]) -> str:
    exec_line = " ".join(quote_exec_arg(a) for a in command).replace("\\", "\\\\")
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Version=1.0\n"
        f"Name={_escape_value(spec.name)}\n"
        f"Comment={_escape_value(spec.comment)}\n"
        f"Exec={exec_line}\n"
        f"Icon={_escape_value(str(spec.icon))}\n"
        "Terminal=false\n"
        "StartupNotify=false\n"
        "Categories=Utility;\n"
    )


def _write(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode("utf-8"))
    # Desktops run launchers on the desktop only when they are executable (and GNOME: trusted).
    path.chmod(0o755)
    return path


def install(spec, *, desktop: Path | None = None, applications: Path | None = None) -> list[Path]:
    """Write the SOS launcher to the desktop and to the applications menu."""
    entry = desktop_entry(spec, spec.sos_command)
    file_name = f"{spec.slug}-sos.desktop"
    paths = [
        _write((desktop or desktop_dir()) / file_name, entry),
        _write((applications or data_home() / "applications") / file_name, entry),
    ]
    if shutil.which("gio"):
        try:
            subprocess.run(
                ["gio", "set", str(paths[0]), "metadata::trusted", "true"],
                capture_output=True,
                timeout=5,
            )
        except (OSError, subprocess.SubprocessError):
            pass
    return paths


def set_start_at_login(spec, enabled: bool, *, autostart: Path | None = None) -> list[Path]:
    """Add or remove the XDG autostart entry that starts the agent in the tray at login."""
    path = (autostart or config_home() / "autostart") / f"{spec.slug}.desktop"
    if not enabled:
        path.unlink(missing_ok=True)
        return []
    return [_write(path, desktop_entry(spec, spec.command))]
