"""macOS: a small ``.app`` on the desktop that starts the agent with ``--sos``; a LaunchAgent."""

from __future__ import annotations

import plistlib
import shlex
from pathlib import Path

from sos_agent.storage import atomic_write_bytes


def _bundle_id(spec) -> str:
    return f"net.sos-agent.{spec.slug}"


def write_app(spec, folder: Path) -> Path:
    """Write ``<folder>/<name>.app``: Info.plist, a launcher script and the icon."""
    app = folder / f"{spec.name}.app"
    contents = app / "Contents"
    launcher = contents / "MacOS" / "sos-launcher"
    script = "#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in spec.sos_command) + "\n"
    atomic_write_bytes(launcher, script.encode("utf-8"))
    launcher.chmod(0o755)
    info = {
        "CFBundleName": spec.name,
        "CFBundleDisplayName": spec.name,
        "CFBundleIdentifier": _bundle_id(spec) + ".sos",
        "CFBundleExecutable": "sos-launcher",
        "CFBundlePackageType": "APPL",
        "CFBundleIconFile": "icon.icns",
        "CFBundleShortVersionString": "1.0",
        "LSUIElement": True,
    }
    atomic_write_bytes(contents / "Info.plist", plistlib.dumps(info))
    _write_icns(spec.icon, contents / "Resources" / "icon.icns")
    return app


def _write_icns(png: Path, target: Path) -> None:
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(png) as image:
        image.convert("RGBA").resize((512, 512)).save(target, format="ICNS")


def install(spec, *, desktop: Path | None = None, applications: Path | None = None) -> list[Path]:
    """The SOS button on the desktop and in ~/Applications."""
    return [
        write_app(spec, desktop or Path.home() / "Desktop"),
        write_app(spec, applications or Path.home() / "Applications"),
    ]


def set_start_at_login(spec, enabled: bool, *, agents: Path | None = None) -> list[Path]:
    """A LaunchAgent that starts the agent in the menu bar at login."""
    path = (agents or Path.home() / "Library" / "LaunchAgents") / f"{_bundle_id(spec)}.plist"
    if not enabled:
        path.unlink(missing_ok=True)
        return []
    plist = {"Label": _bundle_id(spec), "ProgramArguments": list(spec.command), "RunAtLoad": True}
    atomic_write_bytes(path, plistlib.dumps(plist))
    return [path]
