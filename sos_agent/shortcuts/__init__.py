"""The SOS button on the desktop and the start at login, for Linux, Windows and macOS.

No maintained library covers all three without heavy dependencies (pyshortcuts needs pywin32 on
Windows), and each format is small: a ``.desktop`` file (Linux), a ``.lnk`` made by the
Windows Script Host through PowerShell (Windows), a tiny ``.app`` bundle and a LaunchAgent
(macOS). Each per-OS module exposes ``install(spec, folders)`` and ``set_start_at_login``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from sos_agent.config import AgentConfig

ICON_FILE = "icon.png"


@dataclass(frozen=True)
class ShortcutSpec:
    """What a shortcut starts and how it looks."""

    name: str  # the label under the icon, e.g. "SOS"
    comment: str
    slug: str  # a file-name-safe id, e.g. "sos-support"
    command: tuple[str, ...]  # the agent, without --sos
    icon: Path  # a PNG copied into the data folder (a frozen bundle's files are temporary)

    @property
    def sos_command(self) -> tuple[str, ...]:
        return (*self.command, "--sos")


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "sos-agent"


def agent_command(config: AgentConfig) -> tuple[str, ...]:
    """The command that starts this agent again: the executable when frozen, else the module."""
    if getattr(sys, "frozen", False):
        return (sys.executable,)
    return (sys.executable, "-m", "sos_agent", *config.launch_args)


def spec_for(config: AgentConfig) -> ShortcutSpec:
    """The shortcut for this agent, with the brand's logo copied into the data folder."""
    brand = config.brand
    icon = config.data_dir / ICON_FILE
    icon.parent.mkdir(parents=True, exist_ok=True)
    icon.write_bytes(Path(brand.logo_path).read_bytes())
    return ShortcutSpec(
        name=brand.shortcut_name or brand.product_name,
        comment=f"{brand.product_name} ({brand.company})",
        slug=slugify(brand.product_name),
        command=agent_command(config),
        icon=icon,
    )


def install_shortcuts(config: AgentConfig) -> list[Path]:
    """Put the SOS button on the desktop (and the applications menu); set start at login."""
    spec = spec_for(config)
    platform_module = _platform_module()
    paths = platform_module.install(spec)
    paths += platform_module.set_start_at_login(spec, config.brand.start_at_login)
    return paths


def _platform_module():
    if sys.platform == "win32":
        from sos_agent.shortcuts import windows

        return windows
    if sys.platform == "darwin":
        from sos_agent.shortcuts import macos

        return macos
    from sos_agent.shortcuts import linux

    return linux
